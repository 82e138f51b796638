"""The same UI on the ChatKit path: our own client of POST /chatkit renders like the legacy one."""

from __future__ import annotations

import json
import re

import pytest

from tests.browser.conftest import open_chat_as
from tests.browser.test_chat import LARGEST, RECORD_STATES, ask, assert_streamed_progressively, last_answer, wait_answer
from tests.conftest import FAMILY, HEDGE, HNW, INDIVIDUAL

pytestmark = pytest.mark.browser

STREAMING_TYPES = {"threads.create", "threads.add_user_message", "threads.retry_after_item"}


def record_chatkit_requests(page) -> list[str]:
    types: list[str] = []

    def on_request(req):
        if req.url.endswith("/chatkit") and req.method == "POST":
            types.append(json.loads(req.post_data or "{}").get("type", "?"))

    page.on("request", on_request)
    return types


def fault_next_chatkit_turn(page, scenario: str) -> None:
    """Add X-Sim-Scenario to the next streaming ChatKit request only."""
    used = [False]

    def handler(route):
        body = json.loads(route.request.post_data or "{}")
        if not used[0] and body.get("type") in STREAMING_TYPES:
            used[0] = True
            route.continue_(headers={**route.request.headers, "x-sim-scenario": scenario})
        else:
            route.continue_()

    page.route("**/chatkit", handler)


LEGACY_HISTORY = re.compile(r"/api/v1/chat/conversations/[^/?#]+/messages(?:[?#]|$)")


def record_history_requests(page) -> list[str]:
    """Requests to the legacy history API (GET .../conversations/{id}/messages, any query)."""
    urls: list[str] = []
    page.on("request", lambda req: urls.append(req.url) if LEGACY_HISTORY.search(req.url) else None)
    return urls


def test_chatkit_backend_streams_tools_and_history_like_the_legacy_path(page_for, chatkit_server):
    page = page_for(chatkit_server)
    types = record_chatkit_requests(page)
    history_calls = record_history_requests(page)
    open_chat_as(page, HNW)
    assert page.locator("#app").get_attribute("data-backend") == "chatkit"
    assert "threads.list" in types

    page.evaluate(RECORD_STATES)
    ask(page, LARGEST)
    answer = wait_answer(page)
    states = page.evaluate("window.__states")
    assert_streamed_progressively(states)
    assert any(s["status"] == "streaming" and s["tools"] for s in states), "no tool step while the answer ran"
    # The ChatKit stream carries the offline flag and each tool's outcome as data: the badge
    # shows while the answer is still being written, and no other request fills anything in.
    assert any(s["status"] == "streaming" and s["offline"] for s in states), "no offline badge while streaming"
    assert "HOME_EQUITY" in answer.inner_text()
    assert answer.locator(".badge-offline").is_visible()
    assert answer.locator(".tool .tool-name").first.text_content()  # the tool's name, inside the collapsed steps
    assert answer.locator(".tool.tool-ok").count() >= 1 and answer.locator(".tool.tool-error").count() == 0
    assert history_calls == [], history_calls
    assert "threads.create" in types
    # The server titles the thread (thread.updated) and the list shows it.
    page.wait_for_selector(f".conv-current .conv-title:text-is('{LARGEST}')")

    ask(page, "What is my sector exposure?")
    wait_answer(page)
    assert "threads.add_user_message" in types

    page.reload()
    page.wait_for_selector("#app[data-ready=true]")
    page.wait_for_selector(".msg-assistant:last-child[data-status=complete]")
    assert "items.list" in types
    assert page.locator(".msg-user").count() == 2
    first = page.locator(".msg-assistant").first
    assert "HOME_EQUITY" in first.inner_text()
    assert first.locator(".tool").count() >= 1
    assert first.locator(".badge-offline").is_visible()


def test_chatkit_stop_and_retry(page_for, chatkit_server):
    page = page_for(chatkit_server)
    types = record_chatkit_requests(page)
    open_chat_as(page, FAMILY)

    fault_next_chatkit_turn(page, "slow_tokens")
    ask(page, LARGEST)
    page.wait_for_function("() => Number(document.querySelector('.msg-assistant:last-child')?.dataset.chars) > 3")
    page.get_by_role("button", name="Stop generating").click()
    stopped = wait_answer(page, "cancelled")
    assert stopped.locator(".badge-stopped").is_visible()
    assert stopped.locator(".md").inner_text().strip()
    assert stopped.locator(".msg-error").count() == 0

    page.unroute("**/chatkit")
    fault_next_chatkit_turn(page, "server_error")
    ask(page, "What is my sector exposure?")
    failed = wait_answer(page, "failed")
    assert failed.locator(".msg-error").get_attribute("role") == "alert"
    failed.get_by_role("button", name="Retry").click()
    answer = wait_answer(page)
    assert answer.locator(".md").inner_text().strip()
    # ChatKit re-answers the same question (threads.retry_after_item): no duplicate question.
    assert "threads.retry_after_item" in types
    assert page.locator(".msg-user").count() == 2


def test_chatkit_answer_cut_at_the_output_bound_says_so_and_why(page_for, chatkit_server):
    page = page_for(chatkit_server)
    open_chat_as(page, HEDGE)
    fault_next_chatkit_turn(page, "ramble")  # ignores the bound; the server cuts it
    ask(page, LARGEST)
    cut = wait_answer(page, "incomplete", timeout=90_000)  # ~2,000 streamed deltas before the cut
    limit = chatkit_server.settings.max_output_tokens
    # The heading follows the saved failure code, read back once the stream ends.
    page.wait_for_function(
        "() => [...document.querySelectorAll('.msg-error')].some(e => e.innerText.includes('Answer cut short'))"
    )
    note = cut.locator(".msg-error").inner_text()
    assert f"limit of {limit} tokens" in note
    assert cut.locator(".md").inner_text().strip()  # what was written before the cut stays


def test_switching_backend_between_turns_continues_the_same_conversation(page_for, live_server):
    """The flag is evaluated per turn: a user moved to ChatKit mid-conversation keeps one history."""
    page = page_for(live_server)
    types = record_chatkit_requests(page)
    open_chat_as(page, HEDGE)
    assert page.locator("#app").get_attribute("data-backend") == "responses"
    ask(page, LARGEST)
    wait_answer(page)
    conversation = page.url.rsplit("/", 1)[-1]

    page.route(
        "**/api/v1/chat/config*",
        lambda route: route.fulfill(json={"backend": "chatkit", "reason": "test", "flag_version": 99}),
    )
    ask(page, "What is my sector exposure?")
    answer = wait_answer(page)
    assert page.locator("#app").get_attribute("data-backend") == "chatkit"
    assert "threads.add_user_message" in types
    assert answer.locator(".md").inner_text().strip()
    assert page.url.rsplit("/", 1)[-1] == conversation

    page.reload()
    page.wait_for_selector("#app[data-ready=true]")
    page.wait_for_selector(".msg-assistant:last-child[data-status=complete]")
    assert page.locator(".msg-user").all_inner_texts() == [LARGEST, "What is my sector exposure?"]
    assert page.locator(".msg-assistant").count() == 2


def test_chatkit_rename_and_delete(page_for, chatkit_server):
    page = page_for(chatkit_server)
    types = record_chatkit_requests(page)
    # A user no other test on this server asks LARGEST as: the title must name one thread.
    open_chat_as(page, INDIVIDUAL)
    ask(page, LARGEST)
    wait_answer(page)
    title = last_answer(page)  # noqa: F841 - the answer is on screen; now manage the thread
    page.wait_for_selector(f".conv-current .conv-title:text-is('{LARGEST}')")
    page.get_by_role("button", name=f"Rename “{LARGEST}”").click()
    dialog = page.get_by_role("dialog", name="Rename conversation")
    dialog.get_by_label("Title").fill("Largest holding check")
    dialog.get_by_role("button", name="Save").click()
    page.wait_for_selector(".conv-title:text-is('Largest holding check')")
    assert "threads.update" in types
    page.get_by_role("button", name="Delete “Largest holding check”").click()
    page.get_by_role("dialog", name="Delete conversation?").get_by_role("button", name="Delete").click()
    page.wait_for_function(
        "() => ![...document.querySelectorAll('.conv-title')].some(e => e.textContent === 'Largest holding check')"
    )
    assert "threads.delete" in types
    # The open conversation was the deleted one: a fresh draft with starters replaces it.
    assert page.get_by_role("list", name="Suggested questions").is_visible()


def test_chatkit_reload_mid_answer_ends_with_the_whole_answer(page_for, chatkit_server):
    """Our UI declares X-Disconnect: continue on POST /chatkit: the reload does not stop the run,
    the reloaded page shows the partial answer saved so far and follows the run to its end."""

    page = page_for(chatkit_server)
    open_chat_as(page, HNW)
    fault_next_chatkit_turn(page, "slow_tokens")  # time to reload mid-answer
    ask(page, LARGEST)
    page.wait_for_function("() => Number(document.querySelector('.msg-assistant:last-child')?.dataset.chars) > 3")
    with page.expect_request(re.compile(r"/runs/[^/]+/stream")):
        page.reload()
    page.wait_for_selector("#app[data-ready=true]")
    answer = wait_answer(page, timeout=90_000)  # complete (5 tokens/s): not "Stopped", not an error
    assert answer.locator(".badge-stopped").count() == 0 and answer.locator(".msg-error").count() == 0
    shown = answer.locator(".md").inner_text().strip()
    saved = page.evaluate(
        """async () => {
            const id = decodeURIComponent(location.hash.split('/c/')[1]);
            const r = await fetch(`/api/v1/chat/conversations/${id}/messages`);
            const m = (await r.json()).messages.filter((x) => x.role === 'assistant').pop();
            return { status: m.status, content: m.content };
        }"""
    )
    assert saved["status"] == "complete"
    assert "HOME_EQUITY" in shown and "HOME_EQUITY" in saved["content"]
    assert shown.split()[:3] == saved["content"].split()[:3]
    assert page.locator(".msg-user").count() == 1 and page.locator(".msg-assistant").count() == 1


# Every answer as the reader sees it: status, badge, each tool step (state, title, name,
# summary), the error note and which rating button is pressed.
ANSWERS = """() => [...document.querySelectorAll('.msg-assistant')].map((m) => ({
  id: m.dataset.id,
  status: m.dataset.status,
  offline: !!m.querySelector('.badge-offline'),
  tools: [...m.querySelectorAll('.tool')].map((t) => ({
    state: t.className,
    title: t.querySelector('.tool-title')?.textContent ?? null,
    name: t.querySelector('.tool-name')?.textContent ?? null,
    summary: t.querySelector('.tool-summary')?.textContent ?? null,
  })),
  error: m.querySelector('.msg-error')?.textContent ?? null,
  pressed: [...m.querySelectorAll('.fb-btn[aria-pressed=true]')].map((b) => b.getAttribute('aria-label')),
  text: m.querySelector('.md')?.textContent ?? '',
}))"""


def test_a_reloaded_chatkit_thread_shows_what_the_live_answers_showed_from_its_items_alone(page_for, chatkit_server):
    """Tool titles, a failed tool, a failed run, the offline badge and a rating survive a reload,
    read from the ChatKit items only: no request to the legacy history API."""
    page = page_for(chatkit_server)
    types = record_chatkit_requests(page)
    history_calls = record_history_requests(page)
    open_chat_as(page, HNW)

    ask(page, LARGEST)
    wait_answer(page).get_by_role("button", name="Good answer").click()
    page.wait_for_selector(".msg-assistant:last-child .fb-up[aria-pressed=true]")
    fault_next_chatkit_turn(page, "tool_error")  # the model calls a tool with invalid arguments
    ask(page, "What is my volatility?")
    wait_answer(page)
    page.unroute("**/chatkit")
    fault_next_chatkit_turn(page, "server_error")  # the AI service fails: the run fails
    ask(page, "And my sector exposure?")
    wait_answer(page, "failed")
    page.unroute("**/chatkit")
    live = page.evaluate(ANSWERS)

    # The live answers show what the test then expects after the reload.
    ok, tool_failed, run_failed = live
    assert ok["status"] == "complete" and ok["offline"] and ok["pressed"] == ["Good answer"]
    assert ok["tools"] and all(t["state"] == "tool tool-ok" and t["name"] for t in ok["tools"])
    assert any(t["state"] == "tool tool-error" for t in tool_failed["tools"])
    assert run_failed["status"] == "failed" and run_failed["error"]
    # Tool titles are the registry's, the same GET /api/v1/tools serves.
    titles = {t["name"]: t["title"] for t in page.request.get("/api/v1/tools").json()["tools"]}
    assert all(t["title"] == titles[t["name"]] for a in live for t in a["tools"])
    failure = next(
        f for f in page.request.get("/api/v1/chat/failures").json()["failures"] if f["code"] == "upstream_error"
    )
    assert failure["message"] in run_failed["error"]

    types.clear()
    page.reload()
    page.wait_for_selector("#app[data-ready=true]")
    page.wait_for_function("() => document.querySelectorAll('.msg-assistant').length === 3")
    page.wait_for_selector(".msg-assistant:last-child[data-status=failed]")
    assert "items.list" in types
    assert page.evaluate(ANSWERS) == live
    assert history_calls == [], history_calls
