"""The analyst's turn decisions over stateless full-input conversations."""

from __future__ import annotations

import json

from sigmachat.agent.instructions import instructions_for
from sigmachat.offline.analyst import OfflineAnalyst, fit_arguments, parse_conversation
from tests.offline.helpers import envelope, follow_up_input, request_body, tool_specs

analyst = OfflineAnalyst()
HOLDINGS = {
    "nav": 2_000_000,
    "cash": 150_000,
    "holdings": [
        {"symbol": "AAPL", "name": "Apple Inc.", "market_value": 300_000, "weight": 0.15, "unrealized_pnl": 12_000},
        {
            "symbol": "MSFT",
            "name": "Microsoft Corporation",
            "market_value": 420_000,
            "weight": 0.21,
            "unrealized_pnl": 30_000,
            "lots": 4,
        },
    ],
}


def test_new_question_gets_tool_calls_with_every_schema_property() -> None:
    turn = analyst.respond(request_body([{"role": "user", "content": "What is my largest position?"}]))
    assert turn.text == ""
    assert [(c.name, c.arguments) for c in turn.calls] == [
        ("get_portfolio_complete", {"portfolio_id": None, "include_holdings": True, "include_timeseries": False})
    ]


def test_tool_outputs_after_the_question_give_the_answer() -> None:
    items = follow_up_input(
        "What is my largest position?", [("get_portfolio_complete", {}, envelope("get_portfolio_complete", HOLDINGS))]
    )
    turn = analyst.respond(request_body(items))
    assert turn.calls == ()
    assert "Your largest position is **MSFT** (Microsoft Corporation) at $420,000, 21.0% of NAV." in turn.text
    assert "4 lots" in turn.text


def test_multi_turn_history_new_question_calls_tools_again() -> None:
    # Earlier question, its tool call, output and answer; then a new question.
    items = follow_up_input(
        "What is my largest position?", [("get_portfolio_complete", {}, envelope("get_portfolio_complete", HOLDINGS))]
    )
    items.append({"role": "assistant", "content": "Your largest position is MSFT."})
    items.append({"role": "user", "content": [{"type": "input_text", "text": "And my sector exposure?"}]})
    turn = analyst.respond(request_body(items))
    assert [c.name for c in turn.calls] == ["get_sector_exposure"]
    conv = parse_conversation(request_body(items))
    assert conv.user_texts == ["What is my largest position?", "And my sector exposure?"]
    assert conv.results == []  # the old outputs belong to the old question


def test_follow_up_turn_with_history_composes_from_the_latest_outputs_only() -> None:
    items = follow_up_input(
        "What is my largest position?", [("get_portfolio_complete", {}, envelope("get_portfolio_complete", HOLDINGS))]
    )
    items.append({"role": "assistant", "content": "Your largest position is MSFT."})
    items += follow_up_input(
        "What is my sector exposure?",
        [
            (
                "get_sector_exposure",
                {},
                envelope(
                    "get_sector_exposure",
                    {"sectors": [{"sector": "Information Technology", "weight": 0.36, "market_value": 720000}]},
                ),
            )
        ],
    )
    turn = analyst.respond(request_body(items))
    assert "Information Technology" in turn.text and "36.0%" in turn.text
    assert "MSFT" not in turn.text


def test_greeting_and_help_need_no_tools() -> None:
    assert analyst.respond(request_body("hi")).calls == ()
    help_turn = analyst.respond(request_body([{"role": "user", "content": "What can you do?"}]))
    assert help_turn.calls == () and "largest position" in help_turn.text and "offline analyst" in help_turn.text


def test_without_offered_tools_the_model_says_it_cannot_compute() -> None:
    turn = analyst.respond(request_body("What is my largest position?", tools=[]))
    assert turn.calls == () and "cannot compute" in turn.text


def test_only_offered_tools_are_called() -> None:
    tools = [t for t in tool_specs() if t["name"] != "get_sector_exposure"]
    turn = analyst.respond(request_body("largest position and sector exposure", tools=tools))
    assert [c.name for c in turn.calls] == ["get_portfolio_complete"]


def test_fit_arguments_fills_nullable_properties_and_drops_unknown_ones() -> None:
    schema = {
        "type": "object",
        "properties": {"portfolio_id": {"type": ["string", "null"]}, "top_n": {"type": "integer", "default": 10}},
    }
    assert fit_arguments({"extra": 1}, schema) == {"portfolio_id": None, "top_n": 10}
    assert fit_arguments({"top_n": 5}, schema) == {"portfolio_id": None, "top_n": 5}


def test_without_a_selected_portfolio_it_lists_portfolios_first_then_uses_the_largest() -> None:
    instructions = instructions_for(as_of=__import__("datetime").date(2025, 7, 11), portfolio_id=None)
    body = request_body([{"role": "user", "content": "What is my largest position?"}], instructions=instructions)
    first = analyst.respond(body)
    assert [c.name for c in first.calls] == ["list_user_portfolios"]
    portfolios = [
        {"id": "p-small", "name": "Growth Sleeve", "nav": 500_000},
        {"id": "p-big", "name": "Family Core", "nav": 3_000_000},
    ]
    items = follow_up_input(
        "What is my largest position?", [("list_user_portfolios", {}, envelope("list_user_portfolios", portfolios))]
    )
    second = analyst.respond(request_body(items, instructions=instructions))
    assert [(c.name, c.arguments["portfolio_id"]) for c in second.calls] == [("get_portfolio_complete", "p-big")]
    # A portfolio named in the question wins over the largest.
    items = follow_up_input(
        "Largest position in my growth sleeve?",
        [("list_user_portfolios", {}, envelope("list_user_portfolios", portfolios))],
    )
    third = analyst.respond(request_body(items, instructions=instructions))
    assert third.calls[0].arguments["portfolio_id"] == "p-small"


def test_selected_portfolio_goes_straight_to_the_tools() -> None:
    instructions = instructions_for(as_of=__import__("datetime").date(2025, 7, 11), portfolio_id="p-1")
    turn = analyst.respond(request_body("What is my largest position?", instructions=instructions))
    assert [c.name for c in turn.calls] == ["get_portfolio_complete"]


def test_same_request_same_turn() -> None:
    body = request_body("What is my largest position and sector exposure?")
    assert analyst.respond(body) == analyst.respond(json.loads(json.dumps(body)))


def test_unparseable_tool_output_is_reported_not_raised() -> None:
    items = [
        {"role": "user", "content": "What is my largest position?"},
        {"type": "function_call", "call_id": "c1", "name": "get_portfolio_complete", "arguments": "{"},
        {"type": "function_call_output", "call_id": "c1", "output": "<html>oops"},
    ]
    turn = analyst.respond(request_body(items))
    assert "could not" in turn.text.lower()
