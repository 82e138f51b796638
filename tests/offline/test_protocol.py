"""The offline model's wire format matches the real OpenAI captures (key sets, event order)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sigmachat.offline.protocol import (
    OFFLINE_METADATA,
    ResponseBuilder,
    ToolCallPlan,
    Turn,
    encode_sse,
    estimate_tokens,
    response_object,
    split_tokens,
    turn_events,
)
from tests.offline.helpers import request_body

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "openai-responses"


def recorded(name: str) -> list[dict[str, Any]]:
    out = []
    for block in (FIXTURES / name).read_text().split("\n\n"):
        data = [line[len("data: ") :] for line in block.splitlines() if line.startswith("data: ")]
        if data:
            out.append(json.loads("\n".join(data)))
    return out


def ours(turn: Turn, body: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    body = body or request_body([{"role": "user", "content": "What is my largest position?"}])
    builder = ResponseBuilder(
        body, model="sigmasight-offline-analyst", created_at=1752267600, metadata=OFFLINE_METADATA
    )
    return list(turn_events(builder, turn, body))


def pattern(events: list[dict[str, Any]]) -> list[str]:
    """Event types with runs of the same type collapsed (delta counts differ, order must not)."""
    return [t for t, _ in itertools.groupby(e["type"] for e in events)]


def shape(value: Any) -> Any:
    """The key structure of a value: dict keys recursively, first element of lists."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items() if k not in ("tools", "parameters", "metadata")}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return None


def shapes_by_type(events: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for e in events:
        key = e["type"]
        if "item" in e:
            key += ":" + e["item"]["type"] + ":" + e["item"].get("status", "")
        out.setdefault(key, shape(e))
    return out


TOOL_TURN = Turn(
    calls=(
        ToolCallPlan(
            "get_portfolio_complete", {"portfolio_id": None, "include_holdings": True, "include_timeseries": False}
        ),
        ToolCallPlan("get_sector_exposure", {"portfolio_id": None}),
    )
)
TEXT_TURN = Turn(
    text=(
        "Your largest position is **MSFT** at $1,234,567, 12.3% of NAV.\n\n"
        "| Symbol | Weight |\n|---|---:|\n| MSFT | 12.3% |"
    )
)


@pytest.mark.parametrize(
    "capture", ["stream-with-tools-responses-1.sse", "stream-multi-tool-conversation-responses-1.sse"]
)
def test_tool_call_turn_has_the_shapes_of_the_capture(capture: str) -> None:
    real = recorded(capture)
    mine = ours(TOOL_TURN)
    assert pattern(mine) == pattern(real)
    assert shapes_by_type(mine) == shapes_by_type(real)


@pytest.mark.parametrize(
    "capture",
    [
        "stream-with-tools-responses-2.sse",
        "stream-basic-text-responses-1.sse",
        "stream-multi-tool-conversation-responses-2.sse",
    ],
)
def test_text_turn_has_the_shapes_of_the_capture(capture: str) -> None:
    real = recorded(capture)
    mine = ours(TEXT_TURN)
    assert pattern(mine) == pattern(real)
    assert shapes_by_type(mine) == shapes_by_type(real)


def test_final_response_object_and_usage_keys_match_the_capture() -> None:
    real = recorded("stream-with-tools-responses-2.sse")[-1]["response"]
    mine = ours(TEXT_TURN)[-1]["response"]
    assert set(mine) == set(real)
    assert shape(mine["usage"]) == shape(real["usage"])
    assert mine["status"] == "completed" and mine["metadata"] == {"sigmachat_offline": "true"}
    usage = mine["usage"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"] and usage["output_tokens"] > 0


def test_sequence_numbers_are_gap_free_and_ids_have_openai_prefixes() -> None:
    events = ours(Turn(calls=TOOL_TURN.calls, text=TEXT_TURN.text))
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    final = events[-1]["response"]
    assert final["id"].startswith("resp_")
    kinds = [(item["type"], item["id"][:3]) for item in final["output"]]
    assert kinds == [("function_call", "fc_"), ("function_call", "fc_"), ("message", "msg")]
    assert all(item["call_id"].startswith("call_") for item in final["output"][:2])
    # Argument deltas reference the item id (fc_...), never the call id, as in the captures.
    assert {e["item_id"] for e in events if e["type"] == "response.function_call_arguments.delta"} == {
        i["id"] for i in final["output"][:2]
    }
    # The streamed pieces add up to the final text and arguments.
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text == TEXT_TURN.text == final["output"][2]["content"][0]["text"]
    first_args = "".join(
        e["delta"]
        for e in events
        if e.get("item_id") == final["output"][0]["id"] and e["type"].endswith("arguments.delta")
    )
    assert json.loads(first_args) == TOOL_TURN.calls[0].arguments


def test_same_request_gives_byte_identical_stream_and_different_requests_different_ids() -> None:
    body = request_body([{"role": "user", "content": "hi"}])
    one = b"".join(encode_sse(e) for e in ours(TEXT_TURN, body))
    two = b"".join(encode_sse(e) for e in ours(TEXT_TURN, json.loads(json.dumps(body))))
    assert one == two
    other = ours(TEXT_TURN, request_body([{"role": "user", "content": "hello"}]))
    assert other[0]["response"]["id"] != json.loads(one.split(b"data: ", 1)[1].split(b"\n", 1)[0])["response"]["id"]


def test_sse_framing_is_event_then_data_then_blank_line() -> None:
    frame = encode_sse({"type": "response.output_text.delta", "delta": "é"}).decode()
    assert frame == 'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"é"}\n\n'


def test_non_streaming_object_is_the_completed_response() -> None:
    body = request_body([{"role": "user", "content": "hi"}], stream=False)
    builder = ResponseBuilder(body, model="m", created_at=0, metadata=OFFLINE_METADATA)
    obj = response_object(builder, TEXT_TURN, body)
    real = recorded("stream-basic-text-responses-1.sse")[-1]["response"]
    assert set(obj) == set(real) and obj["status"] == "completed"
    assert obj["output"][0]["content"][0]["text"] == TEXT_TURN.text


@given(st.text(max_size=400))
def test_token_split_never_loses_a_character(text: str) -> None:
    assert "".join(split_tokens(text)) == text
    assert all(split_tokens(text))


def test_token_estimate_is_about_four_characters_per_token() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd" * 25) == 25
