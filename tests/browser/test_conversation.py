"""The conversation in a real browser: follow-ups answered from the previous turn, one portfolio
per conversation when the selector changes, and the composer's length limit shown, not cut."""

from __future__ import annotations

import json

import pytest

from tests.browser.conftest import open_chat_as
from tests.browser.test_chat import LARGEST, ask, wait_answer
from tests.conftest import FAMILY, HNW

pytestmark = pytest.mark.browser


def _api(page, path: str):
    return page.evaluate(f"() => fetch({json.dumps(path)}).then(r => r.json())")


def _holdings_by_size(page) -> list[str]:
    pid = page.get_by_label("Portfolio", exact=True).input_value()
    detail = _api(page, f"/api/v1/portfolios/{pid}")
    return [h["symbol"] for h in sorted(detail["holdings"], key=lambda h: -abs(h["market_value"]))]


@pytest.mark.parametrize("server_name", ["live_server", "chatkit_server"])
def test_a_follow_up_is_answered_from_the_previous_turn(page_for, request, server_name):
    # Both paths: the Responses engine behind the legacy API, the Agents SDK behind ChatKit.
    page = page_for(request.getfixturevalue(server_name))
    open_chat_as(page, HNW)
    ranked = _holdings_by_size(page)
    ask(page, LARGEST)
    first = wait_answer(page).locator(".md").inner_text()
    assert first.startswith(f"Your largest position in Demo High Net Worth Investor Portfolio is {ranked[0]}")
    ask(page, "and the second largest?")
    second = wait_answer(page).locator(".md").inner_text()
    # Answer first: the second-largest holding, not a repeat of the largest.
    assert second.startswith(f"Your second-largest position in Demo High Net Worth Investor Portfolio is {ranked[1]}")
    assert page.locator(".msg-assistant").count() == 2
    ask(page, "what about aapl?")
    third = wait_answer(page).locator(".md").inner_text()
    pid = page.get_by_label("Portfolio", exact=True).input_value()
    aapl = next(h for h in _api(page, f"/api/v1/portfolios/{pid}")["holdings"] if h["symbol"] == "AAPL")
    assert third.startswith(f"You hold {aapl['quantity']:,.2f} shares of AAPL (Apple Inc.)") and "of NAV" in third


@pytest.mark.parametrize("server_name", ["live_server", "chatkit_server"])
def test_switching_the_portfolio_mid_conversation_starts_a_conversation_of_the_new_portfolio(
    page_for, request, server_name
):
    page = page_for(request.getfixturevalue(server_name))
    open_chat_as(page, FAMILY)
    selector = page.get_by_label("Portfolio", exact=True)
    options = selector.locator("option")
    first_id, second_id = (
        options.nth(0).get_attribute("value"),
        options.nth(1).get_attribute("value"),
    )
    first_name = options.nth(0).inner_text().split(" · ")[0]
    second_name = options.nth(1).inner_text().split(" · ")[0]
    selector.select_option(first_id)
    ask(page, LARGEST)
    wait_answer(page)
    page.wait_for_function("() => location.hash.startsWith('#/c/')")
    first_conv = page.evaluate("location.hash").split("/c/")[1]
    assert page.locator("#chat-portfolio").inner_text() == first_name

    selector.select_option(second_id)
    # A new conversation (a draft) for the new portfolio: the old one is no longer open.
    leave_first = f"() => !location.hash.endsWith({json.dumps(first_conv)})"
    page.wait_for_function(leave_first)
    assert page.locator(".msg-user").count() == 0
    assert page.locator("#chat-portfolio").inner_text() == second_name
    ask(page, LARGEST)
    answer = wait_answer(page).locator(".md").inner_text()
    assert second_name in answer.split(".")[0]
    page.wait_for_function("() => location.hash.startsWith('#/c/')")
    second_conv = page.evaluate("location.hash").split("/c/")[1]
    assert second_conv != first_conv
    # The stored conversations agree with what the header showed.
    assert _api(page, f"/api/v1/chat/conversations/{first_conv}")["portfolio_id"] == first_id
    assert _api(page, f"/api/v1/chat/conversations/{second_conv}")["portfolio_id"] == second_id
    # Reopening the first conversation puts the selector back on its portfolio.
    page.goto(f"/#/c/{first_conv}")
    page.wait_for_selector(".msg-assistant[data-status=complete]")
    page.wait_for_function(f"() => document.getElementById('portfolio-select').value === {json.dumps(first_id)}")
    assert page.locator("#chat-portfolio").inner_text() == first_name


def test_the_composer_shows_the_limit_and_never_cuts_a_long_paste(page_for, live_server):
    page = page_for(live_server)
    open_chat_as(page, HNW)
    box = page.get_by_role("textbox", name="Message")
    count = page.locator("#composer-count")
    box.fill("x" * 100)
    assert count.is_hidden()
    box.fill("x" * 3500)
    assert count.is_visible() and count.inner_text() == "3,500 / 4,000 characters"
    pasted = "y" * 50_000
    box.fill(pasted)
    assert box.input_value() == pasted  # nothing cut
    assert "50,000 of 4,000 characters" in count.inner_text()
    assert page.locator("#send-btn").is_disabled()
    box.press("Enter")
    assert page.locator(".msg-user").count() == 0  # refused in place, not sent
