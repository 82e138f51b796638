"""The tolerant stream reader against real recorded Responses API streams."""

from __future__ import annotations

import json

import pytest

from sigmachat.engines.responses_stream import FunctionCall, ResponsesStreamReader, TextChunk, TurnEnd
from tests.engines.recorded import FIXTURES, events


def _read(evts):
    reader = ResponsesStreamReader()
    out = [o for e in evts for o in reader.feed(e)]
    return reader, out


def _strip(evts, *keys):
    return [{k: v for k, v in e.items() if k not in keys} for e in evts]


def test_basic_text_stream_yields_all_deltas_and_usage():
    evts = events("stream-basic-text-responses-1.sse")
    reader, out = _read(evts)
    text = "".join(o.delta for o in out if isinstance(o, TextChunk))
    completed = next(e for e in evts if e["type"] == "response.completed")
    expected = completed["response"]["output"][-1]["content"][0]["text"]
    assert text == expected
    [end] = [o for o in out if isinstance(o, TurnEnd)]
    assert end.status == "completed"
    assert end.usage.input_tokens == completed["response"]["usage"]["input_tokens"]
    assert end.usage.output_tokens == completed["response"]["usage"]["output_tokens"]
    assert end.response_id == completed["response"]["id"]


def test_parallel_tool_calls_are_assembled_by_item_id():
    reader, out = _read(events("stream-with-tools-responses-1.sse"))
    calls = [o for o in out if isinstance(o, FunctionCall)]
    assert [c.name for c in calls] == ["search", "weather"]
    assert all(c.call_id.startswith("call_") for c in calls)
    assert json.loads(calls[0].arguments)["query"].startswith("Detroit Tigers")
    assert json.loads(calls[1].arguments) == {"city": "Detroit"}
    assert not [o for o in out if isinstance(o, TextChunk)]


def test_reasoning_items_are_ignored_and_calls_found():
    _, out = _read(events("stream-multi-tool-conversation-responses-reasoning-1.sse"))
    calls = [o for o in out if isinstance(o, FunctionCall)]
    assert len(calls) == 1 and calls[0].name


def test_falsy_arguments_survive():
    _, out = _read(events("stream-falsy-argument-conversation-responses-1.sse"))
    calls = [o for o in out if isinstance(o, FunctionCall)]
    args = [json.loads(c.arguments) for c in calls]
    flat = [v for a in args for v in a.values()]
    assert any(v in (0, False, "") for v in flat), args


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.sse")))
def test_compatible_servers_without_sequence_output_index_or_logprobs(name):
    """Stripping the fields compatible servers omit changes nothing the reader reports."""
    evts = events(name)
    _, full = _read(evts)
    _, stripped = _read(_strip(evts, "sequence_number", "output_index", "logprobs", "content_index"))
    assert repr(full) == repr(stripped)


def test_stream_without_terminal_event_never_ends():
    evts = [e for e in events("stream-basic-text-responses-1.sse") if e["type"] != "response.completed"]
    _, out = _read(evts)
    assert not [o for o in out if isinstance(o, TurnEnd)]


def test_done_only_text_and_final_output_only_calls_are_read():
    # A server that sends no deltas: the text arrives in output_text.done / the final output.
    evts = [
        {"type": "response.output_text.done", "item_id": "m1", "text": "Hello"},
        {
            "type": "response.completed",
            "response": {
                "id": "r1",
                "output": [
                    {"type": "message", "id": "m1", "content": [{"type": "output_text", "text": "Hello"}]},
                    {"type": "function_call", "id": "fc1", "call_id": "c1", "name": "x", "arguments": "{}"},
                ],
                "usage": None,
            },
        },
    ]
    _, out = _read(evts)
    assert [o.delta for o in out if isinstance(o, TextChunk)] == ["Hello"]
    assert [o.call_id for o in out if isinstance(o, FunctionCall)] == ["c1"]


def test_incomplete_and_failed_report_reason_and_error():
    _, out = _read(
        [
            {
                "type": "response.incomplete",
                "response": {"id": "r", "incomplete_details": {"reason": "max_output_tokens"}},
            }
        ]
    )
    assert out[-1].status == "incomplete" and out[-1].incomplete_reason == "max_output_tokens"
    _, out = _read(
        [{"type": "response.failed", "response": {"id": "r", "error": {"code": "server_error", "message": "boom"}}}]
    )
    assert out[-1].status == "failed" and out[-1].error_code == "server_error"
