"""The analyst-style picker, thumbs up/down and the memory manager, in a real browser, on both
chat paths (they write the same records the original chat API reads)."""

from __future__ import annotations

import pytest

from tests.browser.conftest import open_chat_as
from tests.browser.test_chat import ask, wait_answer
from tests.conftest import FAMILY, INDIVIDUAL

pytestmark = pytest.mark.browser

LARGEST = "What is my largest position?"


def _current_conversation(page) -> dict:
    cid = page.evaluate("decodeURIComponent(location.hash.replace('#/c/', ''))")
    resp = page.request.get(f"/api/v1/chat/conversations/{cid}")
    assert resp.ok, resp.text()
    return resp.json()


def _feedback(page, message_id: str):
    return page.request.get(f"/api/v1/chat/messages/{message_id}/feedback").json()


def test_style_feedback_and_memories_on_the_responses_path(page_for, live_server):
    page = page_for(live_server)
    open_chat_as(page, INDIVIDUAL)
    style = page.get_by_label("Analyst style")
    assert style.input_value() == "green"
    style.select_option("blue")  # picked before the conversation exists
    ask(page, LARGEST)
    answer = wait_answer(page)
    assert _current_conversation(page)["mode"] == "blue"
    style.select_option("violet")
    page.wait_for_function("() => document.getElementById('announcer').textContent.includes('Style changed')")
    assert _current_conversation(page)["mode"] == "violet"

    message_id = answer.get_attribute("data-id")
    up = answer.get_by_role("button", name="Good answer")
    up.click()
    page.wait_for_function("() => document.getElementById('announcer').textContent.includes('Thanks')")
    assert wait_answer(page).get_by_role("button", name="Good answer").get_attribute("aria-pressed") == "true"
    assert _feedback(page, message_id)["rating"] == "up"

    ask(page, "Remember that I like short answers.")
    assert "I like short answers" in wait_answer(page).inner_text()
    page.get_by_role("button", name="What the analyst remembers").click()
    dialog = page.get_by_role("dialog", name="What the analyst remembers")
    item = dialog.locator(".memory-item")
    item.first.wait_for()
    assert item.count() == 1 and item.first.inner_text().strip() == "I like short answers"
    dialog.get_by_role("button", name="Forget “I like short answers”").click()
    dialog.locator("#memories-empty").wait_for(state="visible")
    assert page.request.get("/api/v1/chat/memories/count").json()["count"] == 0
    page.screenshot(path="test-artifacts/browser/continuity-memories.png")
    dialog.get_by_role("button", name="Done").click()


def test_style_and_feedback_on_the_chatkit_path(page_for, chatkit_server):
    page = page_for(chatkit_server)
    open_chat_as(page, FAMILY)
    page.get_by_label("Analyst style").select_option("indigo")
    ask(page, LARGEST)
    answer = wait_answer(page)
    # The new thread is created with the picked style (threads.create metadata): its first
    # answer is already written in it.
    assert "Themes to watch" in answer.inner_text()
    assert _current_conversation(page)["mode"] == "indigo"
    assert page.get_by_label("Analyst style").input_value() == "indigo"
    message_id = answer.get_attribute("data-id")
    answer.get_by_role("button", name="Poor answer").click()
    page.wait_for_function("() => document.getElementById('announcer').textContent.includes('Thanks')")
    assert _feedback(page, message_id)["rating"] == "down"
