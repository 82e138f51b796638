"""Agent events → ChatKit events: order, validity, determinism, failures."""

from __future__ import annotations

import datetime as dt
import json

from chatkit.types import AssistantMessageItem, ErrorEvent, WorkflowItem

from sigmachat.agent.events import (
    EventFactory,
    Info,
    RunFailed,
    RunFinished,
    RunStarted,
    TextDelta,
    ToolFinished,
    ToolStarted,
)
from sigmachat.protocols.chatkit_server import ChatKitEventMapper
from sigmachat.tools.registry import tool_title
from tests.chatkit.helpers import STREAM_EVENT

BASE = dt.datetime(2025, 7, 1, 12, 0, tzinfo=dt.UTC)


def turn(*, fail: str | None = None, text_first: bool = False):
    ev = EventFactory("run_abc")
    events = [ev.make(RunStarted, conversation_id="thr_1", model="m", engine="agents", ts=1_000)]
    events.append(ev.make(Info, kind="retry_scheduled", attempt=2, delay_ms=1500, reason="rate_limited", ts=1_100))
    if text_first:
        events.append(ev.make(TextDelta, delta="Let me check. ", ts=1_150))
    events += [
        ev.make(ToolStarted, call_id="c1", name="get_positions_details", arguments={}, ts=1_200),
        ev.make(ToolStarted, call_id="c2", name="get_volatility_analysis", arguments={}, ts=1_210),
        ev.make(
            ToolFinished,
            call_id="c2",
            name="get_volatility_analysis",
            envelope={},
            duration_ms=5,
            summary="beta 1.1",
            ts=2_000,
        ),
        ev.make(
            ToolFinished,
            call_id="c1",
            name="get_positions_details",
            envelope={},
            duration_ms=9,
            summary="12 positions",
            ts=3_700,
        ),
        ev.make(TextDelta, delta="Your largest ", ts=3_800),
        ev.make(TextDelta, delta="position is AAPL.", ts=3_900),
    ]
    text = ("Let me check. " if text_first else "") + "Your largest position is AAPL."
    if fail:
        events.append(
            ev.make(
                RunFailed, code=fail, message="x", retryable=fail != "max_tool_iterations", partial_text=text, ts=4_000
            )
        )
    else:
        events.append(ev.make(RunFinished, final_text=text, duration_ms=3000, ts=4_000))
    return events


def mapped(events):
    mapper = ChatKitEventMapper(thread_id="thr_1", run_id="run_abc", assistant_item_id="msg_a1", answer_created_at=BASE)
    return [(e.seq, out) for e in events for out in mapper.feed(e)]


def names(pairs):
    out = []
    for _seq, e in pairs:
        n = e.type
        if n in ("thread.item.added", "thread.item.done"):
            n += ":" + e.item.type
        elif n == "thread.item.updated":
            n += ":" + e.update.type
        out.append(n)
    return out


def test_a_turn_with_two_tools_maps_to_a_live_workflow_then_the_message():
    pairs = mapped(turn())
    for _seq, event in pairs:  # every frame is a valid ThreadStreamEvent on the wire
        assert STREAM_EVENT.validate_json(event.model_dump_json(exclude_none=True)) == event
    assert names(pairs) == [
        "client_effect",
        "progress_update",
        "thread.item.added:workflow",
        "thread.item.updated:workflow.task.added",
        "thread.item.updated:workflow.task.updated",
        "client_effect",
        "thread.item.updated:workflow.task.updated",
        "client_effect",
        "thread.item.done:workflow",
        "thread.item.added:assistant_message",
        "thread.item.updated:assistant_message.content_part.text_delta",
        "thread.item.updated:assistant_message.content_part.text_delta",
        "thread.item.done:assistant_message",
    ]
    added = pairs[2][1].item
    assert isinstance(added, WorkflowItem)
    assert (
        added.workflow.tasks[0].title == tool_title("get_positions_details")
        and added.workflow.tasks[0].status_indicator == "loading"
    )
    done_wf = pairs[8][1].item
    assert [(t.title, t.content, t.status_indicator) for t in done_wf.workflow.tasks] == [
        (tool_title("get_positions_details"), "12 positions", "complete"),
        (tool_title("get_volatility_analysis"), "beta 1.1", "complete"),
    ]
    assert done_wf.workflow.summary.duration == 0  # the tools' own time (5 + 9 ms), in whole seconds
    assert done_wf.id == "wf_msg_a1"  # the id the store renders for the answer's tool calls
    assert "busy" in pairs[1][1].text and "attempt 2" in pairs[1][1].text
    assert pairs[0][1].name == "sigmachat.run_started" and pairs[0][1].data["offline"] is False
    done_msg = pairs[-1][1].item
    assert isinstance(done_msg, AssistantMessageItem) and done_msg.id == "msg_a1"
    assert done_msg.content[0].text == "Your largest position is AAPL."
    # Items sort in stream order: the workflow before the message.
    assert done_wf.created_at < done_msg.created_at


def test_mapping_is_deterministic_so_a_replay_rebuilds_the_same_items():
    a = [e.model_dump_json() for _s, e in mapped(turn())]
    b = [e.model_dump_json() for _s, e in mapped(turn())]
    assert a == b


def test_failure_closes_open_items_keeps_partial_text_and_ends_with_error():
    pairs = mapped(turn(fail="network_error"))
    assert names(pairs)[-3:] == ["thread.item.done:assistant_message", "client_effect", "error"]
    error = pairs[-1][1]
    assert isinstance(error, ErrorEvent)
    assert error.allow_retry is True and error.message == "The connection to the AI service dropped. Try again."
    assert pairs[-3][1].item.content[0].text == "Your largest position is AAPL."
    assert pairs[-2][1].data["status"] == "failed" and pairs[-2][1].data["code"] == "network_error"
    error = mapped(turn(fail="max_tool_iterations"))[-1][1]
    assert error.allow_retry is False and "too many steps" in error.message


def test_failure_while_a_tool_runs_marks_it_stopped():
    ev = EventFactory("run_abc")
    events = [
        ev.make(RunStarted, model="m", engine="agents"),
        ev.make(ToolStarted, call_id="c1", name="get_positions_details"),
        ev.make(RunFailed, code="cancelled", message="stopped", retryable=False),
    ]
    pairs = mapped(events)
    assert names(pairs) == [
        "client_effect",
        "thread.item.added:workflow",
        "thread.item.done:workflow",
        "thread.item.added:assistant_message",
        "thread.item.done:assistant_message",
        "client_effect",
        "error",
    ]
    assert pairs[2][1].item.workflow.tasks[0].content == "Stopped"
    assert pairs[5][1].data["status"] == "cancelled"
    assert json.loads(pairs[6][1].model_dump_json())["allow_retry"] is False
    # The run ends with its (empty) answer, saying how it ended: the item a reload shows.
    answer = pairs[4][1].item
    assert answer.id == "msg_a1" and answer.content[0].text == ""
    [run] = [a.source for a in answer.content[0].annotations]  # no finished tool call
    assert run.data == {
        "sigmachat": "run",
        "run_id": "run_abc",
        "status": "cancelled",
        "offline": "false",
        "model": "m",
        "engine": "agents",
        "code": "cancelled",
        "error_type": "FATAL_ERROR",
        "retryable": "false",
    }
    assert run.description == "stopped"


def test_the_answer_carries_its_run_and_tool_calls_as_entity_sources():
    done = mapped(turn())[-1][1].item
    run, *tools = [a.source for a in done.content[0].annotations]
    assert run.type == "entity" and run.id == "run_abc" and run.description is None
    assert run.data == {
        "sigmachat": "run",
        "run_id": "run_abc",
        "status": "complete",
        "offline": "false",
        "model": "m",
        "engine": "agents",
    }
    # In the order they finished, as the run manager records them; titles from the registry.
    assert [(t.id, t.title, t.description, t.data) for t in tools] == [
        (
            "c2",
            tool_title("get_volatility_analysis"),
            "beta 1.1",
            {"sigmachat": "tool", "name": "get_volatility_analysis", "status": "ok", "duration_ms": "5.0"},
        ),
        (
            "c1",
            tool_title("get_positions_details"),
            "12 positions",
            {"sigmachat": "tool", "name": "get_positions_details", "status": "ok", "duration_ms": "9.0"},
        ),
    ]
    # ChatKit.js types entity data as Record<string, string>.
    assert all(isinstance(v, str) for a in done.content[0].annotations for v in a.source.data.values())


def test_text_before_tools_keeps_one_message_and_a_workflow():
    kinds = names(mapped(turn(text_first=True)))
    assert kinds.count("thread.item.added:assistant_message") == 1
    assert kinds.count("thread.item.done:assistant_message") == 1
    assert kinds.index("thread.item.added:assistant_message") < kinds.index("thread.item.added:workflow")


def test_every_registry_tool_has_its_own_title_for_users(settings):
    from sigmachat.tools.registry import build_registry

    specs = build_registry(settings).specs()
    assert all(spec.title and tool_title(spec.name) == spec.title for spec in specs)
    assert len({spec.title for spec in specs}) >= len(specs) - 2  # titles tell the steps apart


def test_a_pre_encoded_text_delta_frame_has_the_bytes_of_the_sdk_s_own_encoding():
    """The per-token frame we encode ourselves equals the SDK's serialization of the event
    ``feed`` builds, for text with quotes, escapes, control characters and non-ASCII."""
    from chatkit.server import ChatKitServer

    serialize = ChatKitServer._serialize
    deltas = [
        "Hello",
        ' "quoted" \\ back',
        "line\nbreak\r\ttab",
        "\x00\x01\x1f\x7f",
        "é ü 中文 😀 \u2028\u2029",
        "</script>",
    ]
    ev = EventFactory("run_abc")
    reference = ChatKitEventMapper(
        thread_id="thr_1", run_id="run_abc", assistant_item_id="msg_1", answer_created_at=BASE
    )
    fast = ChatKitEventMapper(thread_id="thr_1", run_id="run_abc", assistant_item_id="msg_1", answer_created_at=BASE)
    started = ev.make(RunStarted, conversation_id="thr_1", model="m", engine="agents", ts=1)
    first = ev.make(TextDelta, delta="Hi. ", ts=2)
    for mapper in (reference, fast):
        mapper.feed(started)
    assert fast.text_delta_frame(first) is None  # the first delta opens the item: feed's job
    for mapper in (reference, fast):
        mapper.feed(first)
    for i, delta in enumerate(deltas):
        event = ev.make(TextDelta, delta=delta, ts=10 + i)
        [frame] = reference.feed(event)
        encoded = fast.text_delta_frame(event)
        assert encoded is not None
        assert encoded.data.encode() == serialize(None, frame)  # type: ignore[arg-type]
        assert encoded.sse_id == f"run_abc:{event.seq}"
    # The item the answer closes with holds the same text either way.
    finished = ev.make(RunFinished, final_text="", duration_ms=1, ts=99)
    ref_done, fast_done = reference.feed(finished)[-1], fast.feed(finished)[-1]
    assert serialize(None, fast_done) == serialize(None, ref_done)  # type: ignore[arg-type]
