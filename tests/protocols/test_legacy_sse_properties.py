"""Property tests: any agent event survives SSE framing byte-for-byte (newlines, unicode, 'data:')."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sigmachat.agent.events import EventFactory, RunFailed, TextDelta, ToolStarted
from sigmachat.protocols import legacy_sse
from tests.sse import parse

text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200)


def _wire(events) -> str:
    return "".join(legacy_sse.encode(e).decode() for e in events)


@settings(max_examples=300, deadline=None)
@given(st.lists(text, min_size=1, max_size=20))
def test_text_deltas_round_trip_in_order(deltas):
    ev = EventFactory("run_p")
    events = [ev.make(TextDelta, delta=d) for d in deltas]
    frames = parse(_wire(events))
    assert [f.data["data"]["delta"] for f in frames] == deltas
    assert [f.id for f in frames] == [f"run_p:{i}" for i in range(1, len(deltas) + 1)]
    assert all(f.event == "token" for f in frames)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=20), st.one_of(text, st.integers(), st.booleans(), st.none()), max_size=5
    ),
    text,
)
def test_tool_arguments_and_error_messages_round_trip(arguments, message):
    ev = EventFactory("run_q")
    events = [
        ev.make(ToolStarted, call_id="call_1", name="get_current_quotes", arguments=arguments),
        ev.make(RunFailed, code="network_error", message=message, retryable=True, partial_text=message),
    ]
    tool, failed = parse(_wire(events))
    assert tool.data["data"]["tool_args"] == arguments
    assert failed.data["data"]["error"] == message and failed.data["data"]["partial_text"] == message
    assert failed.data["data"]["error_type"] == "NETWORK_ERROR"


@given(st.text(max_size=40), st.integers(min_value=0, max_value=10**9))
def test_last_event_id_parsing_only_accepts_this_runs_ids(run_suffix, seq):
    run_id = "run_" + run_suffix
    assert legacy_sse.parse_last_event_id(f"{run_id}:{seq}", run_id) == seq
    assert legacy_sse.parse_last_event_id(f"run_other{run_suffix}x:{seq}", run_id) is None
    assert legacy_sse.parse_last_event_id(None, run_id) is None


def _sse_starlette_bytes(event) -> bytes:
    """The frame as sse-starlette's ServerSentEvent writes it (the contract the fast encoder keeps)."""
    import json

    from sse_starlette import ServerSentEvent

    envelope = {
        "type": legacy_sse.EVENT_NAMES[event.type],
        "run_id": event.run_id,
        "seq": event.seq,
        "data": legacy_sse.payload(event),
        "timestamp": event.ts,
    }
    data = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False, default=str)
    return ServerSentEvent(
        data=data, event=envelope["type"], id=f"{event.run_id}:{event.seq}", sep=legacy_sse.SEP
    ).encode()


@settings(max_examples=300, deadline=None)
@given(st.lists(text, min_size=1, max_size=10), text)
def test_frames_are_byte_identical_to_sse_starlettes(deltas, message):
    ev = EventFactory("run_b")
    events = [ev.make(TextDelta, delta=d) for d in deltas]
    events.append(
        ev.make(RunFailed, code="network_error", message=message, retryable=True, partial_text="".join(deltas))
    )
    for event in events:
        assert legacy_sse.encode(event) == _sse_starlette_bytes(event)
