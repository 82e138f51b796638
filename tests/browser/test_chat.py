"""The chat UI in a real browser against the real app (offline model, in-process faults).

Each test signs in as a demo user through the form and checks what a person would see.
Screenshots of the final states land in test-artifacts/browser/.
"""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from tests.browser.conftest import open_chat_as, sign_in
from tests.conftest import FAMILY, HEDGE, HNW, INDIVIDUAL

pytestmark = pytest.mark.browser

LARGEST = "What is my largest position?"

# Records every distinct state of the latest answer (status, text, tool steps) as the DOM
# changes, so the test can look at what was on screen without sampling at a rate.
RECORD_STATES = """() => {
  window.__states = [];
  const box = document.getElementById('messages');
  const rec = () => {
    const m = [...box.querySelectorAll('.msg-assistant')].pop();
    if (!m) return;
    const md = m.querySelector('.md');
    const s = {
      status: m.dataset.status,
      chars: Number(m.dataset.chars),
      text: md ? md.innerText.trim() : '',
      tools: [...m.querySelectorAll('.tool')].map(t => t.className),
      offline: !!m.querySelector('.badge-offline'),
    };
    const last = window.__states[window.__states.length - 1];
    if (!last || JSON.stringify(last) !== JSON.stringify(s)) window.__states.push(s);
  };
  new MutationObserver(rec).observe(box, {childList: true, subtree: true, characterData: true, attributes: true});
}"""


def last_answer(page):
    return page.locator(".msg-assistant").last


def wait_answer(page, status: str = "complete", timeout: float = 20_000):
    page.wait_for_selector(f".msg-assistant:last-child[data-status={status}]", timeout=timeout)
    return last_answer(page)


def ask(page, text: str) -> None:
    """Type a question, press Enter, and wait until it is on screen as the newest turn."""
    before = page.locator(".msg-user").count()
    box = page.get_by_role("textbox", name="Message")
    box.fill(text)
    box.press("Enter")
    page.wait_for_function(f"() => document.querySelectorAll('.msg-user').length > {before}")


def add_scenario_header(page, url_glob: str, scenario: str, times: int = 1) -> list[int]:
    """Route the next `times` requests to `url_glob` through with X-Sim-Scenario set."""
    used = [0]

    def handler(route):
        if used[0] < times:
            used[0] += 1
            route.continue_(headers={**route.request.headers, "x-sim-scenario": scenario})
        else:
            route.continue_()

    page.route(url_glob, handler)
    return used


def assert_streamed_progressively(states: list[dict]) -> None:
    """At least two different partial answers were on screen before the complete one."""
    partial = [s for s in states if s["status"] == "streaming" and s["text"]]
    texts = {s["text"] for s in partial}
    assert len(texts) >= 2, f"expected the answer to grow on screen, saw {sorted(texts)!r}"
    # The answer only grows (chars counts the markdown source; rendering may restyle it).
    counts = [s["chars"] for s in partial]
    assert counts == sorted(counts) and counts[0] < counts[-1]
    final = states[-1]
    assert final["status"] == "complete"
    assert final["chars"] >= counts[-1]


# ---- the main flow -----------------------------------------------------------------------------


def test_ask_streams_tokens_with_live_tool_steps_then_history_survives_reload(page_for, live_server):
    page = page_for(live_server)
    sign_in(page, HNW)
    assert page.locator("#user-name").inner_text().strip()
    assert page.get_by_label("Portfolio", exact=True).input_value()

    # Shift+Enter adds a line; Enter sends.
    box = page.get_by_role("textbox", name="Message")
    box.fill("first line")
    box.press("Shift+Enter")
    box.type("second line")
    assert box.input_value() == "first line\nsecond line"
    box.fill("")

    page.evaluate(RECORD_STATES)
    ask(page, LARGEST)
    answer = wait_answer(page)
    states = page.evaluate("window.__states")

    assert_streamed_progressively(states)
    assert any(s["status"] == "streaming" and s["tools"] for s in states), "no tool step was shown while the answer ran"
    assert any(s["status"] == "streaming" and any("tool-running" in c for c in s["tools"]) for s in states), (
        "tool step never showed as running"
    )
    assert "HOME_EQUITY" in answer.inner_text()
    assert answer.locator(".badge-offline").is_visible()
    # Focus is back in the input, ready for the next question.
    assert page.evaluate("document.activeElement.id") == "composer-input"
    expect_tool = answer.locator(".tools")
    assert re.search(r"Ran \d+ analysis steps? · \d", expect_tool.locator("summary").inner_text())
    # Collapsible: closed after the answer, opens on click with status and duration.
    expect_tool.locator("summary").click()
    step = expect_tool.locator(".tool").first
    assert step.locator(".tool-duration").inner_text().endswith(("ms", "s"))
    assert "tool-ok" in step.get_attribute("class")

    # The conversation is in the list, titled from the question, and current.
    current = page.locator(".conv-current")
    assert current.locator(".conv-title").inner_text() == LARGEST
    assert "/#/c/" in page.url

    page.reload()
    page.wait_for_selector("#app[data-ready=true]")
    page.wait_for_selector(".msg-assistant[data-status=complete]")
    assert page.locator(".msg-user .bubble").first.inner_text() == LARGEST
    reloaded = last_answer(page)
    assert "HOME_EQUITY" in reloaded.inner_text()
    assert reloaded.locator(".badge-offline").is_visible()
    assert reloaded.locator(".tool").count() >= 1
    assert page.locator(".conv-current .conv-title").inner_text() == LARGEST
    assert page.locator("#chat-title").inner_text() == LARGEST


def test_stop_mid_stream_keeps_the_partial_answer_marked_stopped(page_for, live_server):
    page = page_for(live_server)
    open_chat_as(page, INDIVIDUAL)
    add_scenario_header(page, "**/api/v1/chat/send", "slow_tokens")
    ask(page, LARGEST)
    page.wait_for_function(
        "() => { const m = document.querySelector('.msg-assistant:last-child .md'); "
        "return m && m.innerText.trim().length > 5 }"
    )
    stop = page.get_by_role("button", name="Stop generating")
    stop.click()
    answer = wait_answer(page, "cancelled")
    partial = answer.locator(".md").inner_text().strip()
    assert partial
    assert answer.locator(".badge-stopped").inner_text() == "Stopped"
    assert answer.locator(".msg-error").count() == 0
    assert page.get_by_role("button", name="Send message").is_visible()

    page.reload()
    saved = wait_answer(page, "cancelled")
    assert saved.locator(".badge-stopped").is_visible()
    assert saved.locator(".msg-error").count() == 0  # a stop is not an error
    assert saved.locator(".md").inner_text().strip().startswith(partial[:5])


def test_upstream_fault_shows_a_retryable_error_and_retry_succeeds(page_for, live_server):
    page = page_for(live_server)
    open_chat_as(page, HEDGE)
    add_scenario_header(page, "**/api/v1/chat/send", "server_error")
    ask(page, LARGEST)
    failed = wait_answer(page, "failed")
    error = failed.locator(".msg-error")
    assert error.get_attribute("role") == "alert"
    assert "Service problem" in error.inner_text()
    assert failed.locator(".badge-failed").is_visible()
    page.screenshot(path=str(_artifact("upstream-error.png")))
    error.get_by_role("button", name="Retry").click()
    answer = wait_answer(page)
    assert answer.locator(".md").inner_text().strip()
    assert answer.locator(".msg-error").count() == 0


def test_an_answer_cut_at_the_output_bound_says_so_and_why(page_for, live_server):
    page = page_for(live_server)
    open_chat_as(page, HEDGE)
    add_scenario_header(page, "**/api/v1/chat/send", "ramble")  # ignores the bound; the server cuts it
    ask(page, LARGEST)
    cut = wait_answer(page, "incomplete")
    assert cut.locator(".badge-failed").inner_text().strip() == "Incomplete"
    note = cut.locator(".msg-error").inner_text()
    limit = live_server.settings.max_output_tokens
    assert "Answer cut short" in note and f"limit of {limit} tokens" in note
    assert cut.locator(".md").inner_text().strip()  # what was written before the cut stays


def test_network_drop_before_the_answer_starts_is_retried_automatically(page_for, live_server):
    page = page_for(live_server)
    open_chat_as(page, FAMILY)
    sends = []

    def flaky(route):
        sends.append(json.loads(route.request.post_data or "{}"))
        if len(sends) == 1:
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/api/v1/chat/send", flaky)
    ask(page, "What is my sector exposure?")
    answer = wait_answer(page)
    assert answer.locator(".msg-error").count() == 0
    assert len(sends) == 2
    # The retry is the same message (idempotent send), not a second question.
    assert sends[0]["client_message_id"] == sends[1]["client_message_id"]
    assert page.locator(".msg-user").count() == 1


def test_reload_mid_answer_resumes_the_stream(page_for, live_server):
    page = page_for(live_server)
    open_chat_as(page, HNW)
    add_scenario_header(page, "**/api/v1/chat/send", "slow_tokens")  # time to reload mid-answer
    ask(page, "How would my portfolio do in a market stress test?")
    page.wait_for_function("() => Number(document.querySelector('.msg-assistant:last-child')?.dataset.chars) > 3")
    with page.expect_request(re.compile(r"/api/v1/chat/runs/[^/]+/stream")):
        page.reload()
    page.wait_for_selector("#app[data-ready=true]")
    # The answer written before the reload is back, and it keeps growing from the live run.
    answer = last_answer(page)
    page.wait_for_function("() => Number(document.querySelector('.msg-assistant:last-child')?.dataset.chars) > 8")
    seen = int(answer.get_attribute("data-chars"))
    page.wait_for_function(f"() => Number(document.querySelector('.msg-assistant:last-child')?.dataset.chars) > {seen}")
    assert answer.get_attribute("data-status") == "streaming"
    assert page.locator(".msg-user").count() == 1
    # The resumed answer can still be stopped.
    page.get_by_role("button", name="Stop generating").click()
    wait_answer(page, "cancelled")


# Cuts the body of the next /send response after N chunks, the way a dropped connection looks
# to fetch() (the reader rejects with a TypeError). Going offline in DevTools does not cut a
# stream that is already flowing, so the drop is made at the fetch boundary instead.
DROP_SEND_STREAM = """(chunks) => {
  const orig = window.fetch;
  let armed = true;
  window.fetch = async (input, init) => {
    const resp = await orig(input, init);
    const url = typeof input === 'string' ? input : input.url;
    if (!armed || !url.includes('/api/v1/chat/send')) return resp;
    armed = false;
    const reader = resp.body.getReader();
    let n = 0;
    const body = new ReadableStream({
      async pull(ctrl) {
        if (n++ >= chunks) { reader.cancel(); ctrl.error(new TypeError('network error')); return; }
        const {value, done} = await reader.read();
        if (done) ctrl.close(); else ctrl.enqueue(value);
      },
    });
    return new Response(body, {status: resp.status, headers: resp.headers});
  };
}"""


def test_stream_drop_mid_answer_shows_reconnecting_and_resumes_from_last_event_id(page_for, live_server):
    page = page_for(live_server)
    open_chat_as(page, HEDGE)
    page.evaluate(DROP_SEND_STREAM, 12)
    resumes = []

    def slow_resume(route):
        resumes.append(route.request.headers.get("last-event-id"))
        page.wait_for_timeout(700)  # keep the stream down long enough to see the indicator
        route.continue_()

    page.route(re.compile(r".*/api/v1/chat/runs/[^/]+/stream.*"), slow_resume)
    page.evaluate(RECORD_STATES)
    ask(page, LARGEST)
    banner = page.locator("#banner")
    banner.wait_for(state="visible")
    assert "Reconnecting" in banner.inner_text()
    page.screenshot(path=str(_artifact("reconnecting.png")))
    answer = wait_answer(page)
    assert banner.is_hidden()
    assert resumes and re.fullmatch(r"run_\w+:\d+", resumes[0]) and int(resumes[0].split(":")[1]) > 0
    # Nothing lost, nothing doubled: the answer matches the saved one.
    live_text = answer.locator(".md").inner_text()
    page.reload()
    saved = wait_answer(page)
    assert saved.locator(".md").inner_text() == live_text


def test_resuming_an_expired_run_loads_the_saved_answer(page_for, live_server):
    page = page_for(live_server)
    open_chat_as(page, FAMILY)
    ask(page, LARGEST)
    answer = wait_answer(page)
    conversation = page.url.rsplit("/", 1)[-1]
    saved = page.evaluate(
        f"fetch('/api/v1/chat/conversations/{conversation}/messages').then(r => r.json()).then(b => b.messages.pop())"
    )
    # The run's event log expires (as it does run_log_ttl_s after the end) ...
    log = live_server.services().runs.events
    live_server.run(log.expire(now=10**12))
    # ... and a late resume (a tab that slept through the end) gets 410 with the saved message.
    result = page.evaluate(
        """async (runId) => {
          const { createLegacyBackend } = await import('/static/js/legacy.js');
          const events = [];
          const r = await createLegacyBackend().resume({ runId, afterSeq: 3, onEvent: (e) => events.push(e) });
          return { expired: r.expired, content: r.message && r.message.content,
                   status: r.message && r.message.status, events: events.length };
        }""",
        saved["run_id"],
    )
    assert result == {"expired": True, "content": saved["content"], "status": "complete", "events": 0}
    assert answer.locator(".md").inner_text().strip()


def test_rate_limit_shows_a_countdown_then_retry_works(page_for, live_server):
    page = page_for(live_server)
    open_chat_as(page, INDIVIDUAL)
    hits = [0]

    def limited(route):
        hits[0] += 1
        if hits[0] == 1:
            body = {
                "error": {
                    "code": "rate_limited",
                    "message": "Too many messages. Try again in 2 s.",
                    "details": {"retry_after_ms": 2000},
                }
            }
            route.fulfill(
                status=429, headers={"Retry-After": "2", "Content-Type": "application/json"}, body=json.dumps(body)
            )
        else:
            route.continue_()

    page.route("**/api/v1/chat/send", limited)
    ask(page, "What is my sector exposure?")
    failed = wait_answer(page, "failed")
    retry = failed.get_by_role("button", name=re.compile("Retry"))
    assert "Rate limited" in failed.locator(".msg-error").inner_text()
    assert re.search(r"retry in \d s", failed.locator(".msg-error").inner_text(), re.I)
    assert retry.is_disabled()
    page.screenshot(path=str(_artifact("rate-limited.png")))
    page.wait_for_function(
        "() => { const b = document.querySelector('.retry-btn'); return b && !b.disabled }", timeout=6000
    )
    page.get_by_role("button", name="Retry", exact=True).click()
    wait_answer(page)
    assert page.locator(".msg-user").count() == 1  # nothing was stored by the rejected send


def test_session_expiry_returns_to_sign_in_with_a_message(page_for, live_server):
    page = page_for(live_server)
    open_chat_as(page, FAMILY)
    services = live_server.services()
    me = page.evaluate("fetch('/api/v1/auth/me').then(r => r.json())")
    expired = services.tokens.issue(me["id"], me["role"], now=dt.datetime.now(dt.UTC) - dt.timedelta(days=3))
    page.context.add_cookies([{"name": "auth_token", "value": expired, "url": live_server.url}])
    box = page.get_by_role("textbox", name="Message")
    box.fill(LARGEST)
    box.press("Enter")  # the next request answers 401 auth_expired
    page.wait_for_url("**/login?expired=1")
    assert "session has expired" in page.get_by_role("alert").inner_text()


def test_sign_out_and_quick_pick_sign_in(page_for, live_server):
    page = page_for(live_server)
    page.goto("/")
    page.wait_for_url("**/login")  # visitors without a session get the sign-in page
    page.get_by_role("button", name=re.compile("Sign in as Hedge-fund style")).click()
    page.wait_for_selector("#app[data-ready=true]")
    assert page.locator("#user-name").inner_text()
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/login?signed_out=1")
    assert "signed out" in page.get_by_role("alert").inner_text()
    page.goto("/")
    page.wait_for_url("**/login")


def test_conversation_list_pages_renames_and_deletes(page_for, live_server):
    page = page_for(live_server)
    open_chat_as(page, HEDGE)
    # 23 conversations through the API (same origin, cookie auth), then the list pages by 20.
    page.evaluate(
        """async () => {
          for (let i = 1; i <= 23; i++) {
            await fetch('/api/v1/chat/conversations', {method: 'POST', headers: {'Content-Type': 'application/json'},
              body: JSON.stringify({title: 'Paged ' + String(i).padStart(2, '0')})});
          }
        }"""
    )
    page.reload()
    page.wait_for_selector("#app[data-ready=true]")
    titles = page.locator(".conv-title")
    assert titles.first.inner_text() == "Paged 23"  # newest first
    more = page.get_by_role("button", name="Load older conversations")
    assert more.is_visible()
    before = titles.count()
    more.click()
    page.wait_for_function(f"() => document.querySelectorAll('.conv-title').length > {before}")
    assert "Paged 01" in titles.all_inner_texts()

    page.get_by_role("button", name="Rename “Paged 23”").click()
    dialog = page.get_by_role("dialog", name="Rename conversation")
    dialog.get_by_label("Title").fill("Renamed <b>bold</b>")
    dialog.get_by_role("button", name="Save").click()
    page.wait_for_selector(".conv-title:text-is('Renamed <b>bold</b>')")

    page.get_by_role("button", name="Delete “Paged 22”").click()
    confirm = page.get_by_role("dialog", name="Delete conversation?")
    assert "Paged 22" in confirm.inner_text()
    confirm.get_by_role("button", name="Cancel").click()
    assert "Paged 22" in titles.all_inner_texts()
    page.get_by_role("button", name="Delete “Paged 22”").click()
    confirm.get_by_role("button", name="Delete").click()
    page.wait_for_function(
        "() => ![...document.querySelectorAll('.conv-title')].some(e => e.textContent === 'Paged 22')"
    )
    page.reload()
    page.wait_for_selector("#app[data-ready=true]")
    texts = page.locator(".conv-title").all_inner_texts()
    assert "Paged 22" not in texts and "Renamed <b>bold</b>" in texts


def test_narrow_375px_layout_in_dark_theme(page_for, live_server):
    page = page_for(live_server, width=375, height=812, color_scheme="dark")
    sign_in(page, HNW)
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    box = page.locator("#sidebar").bounding_box()
    assert box["x"] + box["width"] <= 1, "the conversation list should be off-canvas at 375 px"
    # Starter questions are there for an empty conversation.
    starters = page.get_by_role("list", name="Suggested questions").get_by_role("button")
    assert starters.count() == 4
    starters.filter(has_text="Sector exposure").click()
    answer = wait_answer(page)
    assert answer.locator("table").count() >= 1
    # Nothing overflows the viewport sideways (wide tables scroll inside their own box).
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    assert page.get_by_role("textbox", name="Message").is_visible()
    page.get_by_role("button", name="Show conversations").click()
    page.wait_for_selector(".sidebar-open")
    assert page.locator(".conv-current .conv-title").is_visible()
    page.screenshot(path=str(_artifact("narrow-375-sidebar.png")))
    page.locator(".conv-current .conv-open").click()
    page.wait_for_selector(".app:not(.sidebar-open)")


def test_theme_toggle_switches_and_persists(page_for, live_server):
    page = page_for(live_server)
    open_chat_as(page, INDIVIDUAL)
    start = page.evaluate("document.documentElement.dataset.theme")
    page.get_by_role("button", name=re.compile("Switch to (dark|light) theme")).click()
    flipped = page.evaluate("document.documentElement.dataset.theme")
    assert flipped != start
    page.reload()
    page.wait_for_selector("#app[data-ready=true]")
    assert page.evaluate("document.documentElement.dataset.theme") == flipped


def _artifact(name: str):
    from tests.browser.conftest import ARTIFACTS

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name
