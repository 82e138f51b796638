"""SigmaChatKitServer over a scripted engine: streams, persistence, pre-checks, isolation, disconnects."""

from __future__ import annotations

import asyncio
import json

import pytest
from chatkit.types import AssistantMessageItem, UserMessageItem, WorkflowItem
from sqlalchemy import select

from sigmachat.chat import conversations as convs
from sigmachat.db.models import Conversation, Message
from sigmachat.errors import AppError, Conflict, NotFound, RateLimited, ValidationFailed
from sigmachat.protocols.chatkit_server import NotSupported, StreamHandle
from tests.chatkit.conftest import build_runtime
from tests.chatkit.helpers import Frame, add_message, compact, create, req, validate
from tests.runs.fakes import ScriptedEngine
from tests.writes import count_writes


async def collect(handle: StreamHandle) -> list[Frame]:
    return [Frame(tag, validate(data)) async for tag, data in handle.frames]


async def run_create(rt, text="What is my largest position?", who="alice") -> tuple[StreamHandle, list[Frame]]:
    handle = await rt.server.handle(create(text), rt.ctx(who))
    assert isinstance(handle, StreamHandle)
    return handle, await collect(handle)


async def test_threads_create_streams_the_turn_and_persists_one_history(rt, services):
    handle, frames = await run_create(rt)
    assert handle.run_id.startswith("run_")
    assert compact(frames) == [
        "thread.created",
        "thread.item.done:user_message",
        "stream_options",
        "client_effect:sigmachat.run_started",
        "thread.item.added:workflow",
        "thread.item.updated:workflow.task.updated",
        "client_effect:sigmachat.tool_finished",
        "thread.item.done:workflow",
        "thread.item.added:assistant_message",
        "thread.item.updated:assistant_message.content_part.text_delta",
        "thread.item.done:assistant_message",
        "thread.updated",
    ]
    thread_id = frames[0].event.thread.id
    assert thread_id.startswith("thr_")
    # SSE ids: run:seq on the last frame of each agent event, gap-free and increasing.
    seqs = [int(f.id.rsplit(":", 1)[1]) for f in frames if f.id]
    assert all(f.id.startswith(handle.run_id + ":") for f in frames if f.id)
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert frames[-1].event.thread.title == "What is my largest position?"
    answer = frames[-2].event.item
    assert answer.content[0].text == "Your largest position is **HOME_EQUITY**."

    await rt.manager.wait_finished(handle.run_id, 5)
    items = (await rt.server.store.load_thread_items(thread_id, None, 20, "asc", rt.ctx())).data
    assert [type(i) for i in items] == [UserMessageItem, WorkflowItem, AssistantMessageItem]
    # Reloading the thread gives the very items the stream sent (rendered from the run's rows).
    workflow = next(f.event.item for f in frames if f.type == "thread.item.done" and f.event.item.type == "workflow")
    assert items[2] == answer and items[1] == workflow
    # What ChatKit items have no field for comes as data: the offline flag, each tool's outcome.
    effects = {f.event.name: f.event.data for f in frames if f.type == "client_effect"}
    assert effects["sigmachat.run_started"] == {
        "run_id": handle.run_id,
        "assistant_message_id": answer.id,
        "offline": False,
        "model": "fake-model",
        "engine": "agents",
    }
    assert effects["sigmachat.tool_finished"]["ok"] is True
    assert effects["sigmachat.tool_finished"]["title"] == workflow.workflow.tasks[0].title
    # The same rows serve the Responses path: GET .../messages and the next turn's history.
    async with services.db.session() as session:
        messages = await convs.list_messages(session, rt.alice, thread_id)
        conv = await session.get(Conversation, thread_id)
    visible = [m for m in messages if m.role]
    assert [(m.role, m.status) for m in visible] == [("user", "complete"), ("assistant", "complete")]
    assert visible[1].id == answer.id and visible[1].engine == "agents" and visible[1].run_id == handle.run_id
    assert visible[1].tool_calls[0]["name"] == "get_portfolio_complete"
    assert conv.title == "What is my largest position?" and conv.portfolio_id is not None
    page = json.loads(await rt.server.handle(req("threads.list", limit=5), rt.ctx()))
    assert page["data"][0]["id"] == thread_id


async def test_add_user_message_continues_with_history(rt):
    _handle, frames = await run_create(rt)
    thread_id = frames[0].event.thread.id
    handle = await rt.server.handle(add_message(thread_id, "And the second largest?"), rt.ctx())
    frames = await collect(handle)
    assert compact(frames)[:2] == ["thread.item.done:user_message", "stream_options"]
    assert "thread.updated" not in compact(frames)  # the title was set by the first exchange
    request = rt.engine.requests[-1]
    assert [(t.role, t.text) for t in request.history] == [
        ("user", "What is my largest position?"),
        ("assistant", "Your largest position is **HOME_EQUITY**."),
    ]
    assert request.user_text == "And the second largest?"


async def test_retry_after_item_replaces_the_answer(rt):
    _h, frames = await run_create(rt)
    thread_id = frames[0].event.thread.id
    user_item = frames[1].event.item
    await rt.manager.wait_finished(_h.run_id, 5)
    handle = await rt.server.handle(
        req("threads.retry_after_item", thread_id=thread_id, item_id=user_item.id), rt.ctx()
    )
    frames = await collect(handle)
    assert compact(frames)[0] == "stream_options"
    assert compact(frames)[-1] == "thread.item.done:assistant_message"
    await rt.manager.wait_finished(handle.run_id, 5)
    items = (await rt.server.store.load_thread_items(thread_id, None, 20, "asc", rt.ctx())).data
    assert [i.type for i in items] == ["user_message", "workflow", "assistant_message"]
    assert items[0].id == user_item.id
    assert rt.engine.requests[-1].history == []  # the retried question is not replayed twice


async def test_non_streaming_requests(rt, services):
    _h, frames = await run_create(rt)
    thread_id = frames[0].event.thread.id
    await rt.manager.wait_finished(_h.run_id, 5)
    thread = json.loads(await rt.server.handle(req("threads.get_by_id", thread_id=thread_id), rt.ctx()))
    assert [i["type"] for i in thread["items"]["data"]] == ["user_message", "workflow", "assistant_message"]
    items = json.loads(await rt.server.handle(req("items.list", thread_id=thread_id, order="desc", limit=2), rt.ctx()))
    assert [i["type"] for i in items["data"]] == ["assistant_message", "workflow"] and items["has_more"] is True
    more = json.loads(
        await rt.server.handle(req("items.list", thread_id=thread_id, order="desc", after=items["after"]), rt.ctx())
    )
    assert [i["type"] for i in more["data"]] == ["user_message"] and more["has_more"] is False
    updated = json.loads(await rt.server.handle(req("threads.update", thread_id=thread_id, title="Renamed"), rt.ctx()))
    assert updated["title"] == "Renamed"
    answer_id = thread["items"]["data"][2]["id"]
    assert (
        await rt.server.handle(
            req("items.feedback", thread_id=thread_id, item_ids=[answer_id], kind="negative"), rt.ctx()
        )
        == b"{}"
    )
    async with services.db.session() as session:
        assert (await session.get(Message, answer_id)).feedback == "negative"
    assert await rt.server.handle(req("threads.delete", thread_id=thread_id), rt.ctx()) == b"{}"
    with pytest.raises(NotFound):
        await rt.server.handle(req("threads.get_by_id", thread_id=thread_id), rt.ctx())


async def test_a_second_user_can_neither_load_list_update_delete_nor_stream_into_a_thread(rt):
    _h, frames = await run_create(rt)
    thread_id = frames[0].event.thread.id
    user_item = frames[1].event.item
    await rt.manager.wait_finished(_h.run_id, 5)
    bob = rt.ctx("bob")
    for body in (
        req("threads.get_by_id", thread_id=thread_id),
        req("items.list", thread_id=thread_id),
        req("threads.update", thread_id=thread_id, title="mine"),
        req("threads.delete", thread_id=thread_id),
        req("items.feedback", thread_id=thread_id, item_ids=[user_item.id], kind="positive"),
        add_message(thread_id, "hello"),
        req("threads.retry_after_item", thread_id=thread_id, item_id=user_item.id),
    ):
        with pytest.raises(NotFound):
            await rt.server.handle(body, bob)
    page = json.loads(await rt.server.handle(req("threads.list"), bob))
    assert thread_id not in [t["id"] for t in page["data"]]
    # Alice's thread is intact.
    thread = json.loads(await rt.server.handle(req("threads.get_by_id", thread_id=thread_id), rt.ctx()))
    assert thread["title"] == "What is my largest position?" and len(thread["items"]["data"]) == 3


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"{not json", AppError),
        (b'{"type": "threads.fly", "params": {}}', NotSupported),
        (req("attachments.create", name="a.png", size=10, mime_type="image/png"), NotSupported),
        (req("attachments.delete", attachment_id="atc_1"), NotSupported),
        (req("threads.custom_action", thread_id="thr_x", action={"type": "x", "payload": {}}), NotSupported),
        (req("threads.sync_custom_action", thread_id="thr_x", action={"type": "x", "payload": {}}), NotSupported),
        (req("input.transcribe", audio_base64="", mime_type="audio/webm"), NotSupported),
        (req("threads.add_client_tool_output", thread_id="thr_x", result={}), NotSupported),
        (
            json.dumps(
                {
                    "type": "threads.create",
                    "params": {"input": {"content": [], "attachments": ["atc_1"], "inference_options": {}}},
                }
            ).encode(),
            NotSupported,
        ),
        (create(""), ValidationFailed),
        (create("x" * 4001), ValidationFailed),
        (b'{"type": "threads.create", "params": {}}', ValidationFailed),
        (req("threads.get_by_id", thread_id="thr_unknown"), NotFound),
        (add_message("thr_unknown", "hi"), NotFound),
    ],
)
async def test_rejected_before_any_stream(rt, services, body, error):
    async with services.db.session() as session:
        before = len((await session.execute(select(Conversation.id))).all())
    with pytest.raises(error) as info:
        await rt.server.handle(body, rt.ctx())
    assert 400 <= info.value.status_code < 500
    async with services.db.session() as session:
        assert len((await session.execute(select(Conversation.id))).all()) == before


async def test_busy_thread_is_refused_before_anything_is_written(services):
    gate = asyncio.Event()
    rt = await build_runtime(services, ScriptedEngine(gate=gate))
    handle = await rt.server.handle(create(), rt.ctx())
    frames = handle.frames
    first = [await anext(frames) for _ in range(4)]
    thread_id = validate(first[0][1]).thread.id
    question_id = validate(first[1][1]).item.id
    with count_writes(services.db) as writes:
        with pytest.raises(Conflict) as info:
            await rt.server.handle(add_message(thread_id, "again"), rt.ctx())
        assert info.value.details["active_run_id"] == handle.run_id
        # A retry would first delete the answer being written: refused before that, too.
        with pytest.raises(Conflict):
            await rt.server.handle(req("threads.retry_after_item", thread_id=thread_id, item_id=question_id), rt.ctx())
    # Nothing stored, so nothing to undo: no row inserted or deleted, nothing by the store (the
    # only writes are the first run saving its answer in progress, about once a second).
    assert [r for r in writes.rows if r[0] != "UPDATE"] == [] and writes.count(owner="store/chatkit_store.py") == 0
    assert writes.owners("messages") <= {"runs/manager.py"} and writes.count("conversations") == 0
    gate.set()
    rest = [f async for f in frames]
    assert validate(rest[-1][1]).type == "thread.updated"
    items = (await rt.server.store.load_thread_items(thread_id, None, 20, "asc", rt.ctx())).data
    assert [i.type for i in items] == ["user_message", "workflow", "assistant_message"]
    assert len(rt.engine.requests) == 1


async def test_rate_limited_start_is_a_4xx_and_writes_no_thread(services):
    rt = await build_runtime(services, send_rate_limit="1/minute")
    from sigmachat.runs.limits import UsageGuard

    rt.manager.guard = UsageGuard(rt.manager.settings)
    await run_create(rt)
    threads_before = json.loads(await rt.server.handle(req("threads.list"), rt.ctx()))["data"]
    with count_writes(services.db) as writes, pytest.raises(RateLimited):
        await rt.server.handle(create("second"), rt.ctx())
    assert writes.rows == []
    threads_after = json.loads(await rt.server.handle(req("threads.list"), rt.ctx()))["data"]
    assert threads_after == threads_before


async def _disconnect_mid_run(services, policy: str):
    gate = asyncio.Event()
    rt = await build_runtime(services, ScriptedEngine(gate=gate), chatkit_disconnect=policy)
    handle = await rt.server.handle(create(), rt.ctx())
    frames = handle.frames
    seen = []
    async for _tag, data in frames:
        seen.append(validate(data))
        if seen[-1].type == "thread.item.updated" and seen[-1].update.type.endswith("text_delta"):
            break
    await frames.aclose()  # the client went away mid-answer
    thread_id = seen[0].thread.id
    return rt, gate, handle, thread_id


async def test_disconnect_cancels_the_run_by_default_and_keeps_what_was_said(services):
    rt, gate, handle, thread_id = await _disconnect_mid_run(services, "cancel")
    await rt.manager.wait_finished(handle.run_id, 5)
    await rt.server.drain()
    gate.set()
    events = await rt.manager.events.read(handle.run_id)
    assert events[-1].type == "run_failed" and events[-1].code == "cancelled"
    items = (await rt.server.store.load_thread_items(thread_id, None, 20, "asc", rt.ctx())).data
    assert [i.type for i in items] == ["user_message", "workflow", "assistant_message"]
    assert items[2].content[0].text == "Your largest "
    async with services.db.session() as session:
        row = await session.get(Message, items[2].id)
    assert row.status == "cancelled" and row.content == "Your largest "


async def test_disconnect_with_continue_policy_finishes_and_stores_the_answer(services):
    rt, gate, handle, thread_id = await _disconnect_mid_run(services, "continue")
    gate.set()
    await rt.manager.wait_finished(handle.run_id, 5)
    await rt.server.drain()
    items = (await rt.server.store.load_thread_items(thread_id, None, 20, "asc", rt.ctx())).data
    assert [i.type for i in items] == ["user_message", "workflow", "assistant_message"]
    assert items[2].content[0].text == "Your largest position is **HOME_EQUITY**."
    assert (await rt.server.store.load_thread(thread_id, rt.ctx())).title == "What is my largest position?"


async def test_failed_run_streams_an_error_and_keeps_partial_text(services):
    rt = await build_runtime(services, ScriptedEngine(fail_code="network_error"))
    handle, frames = await run_create(rt)
    assert compact(frames)[-4:] == [
        "thread.item.done:assistant_message",
        "client_effect:sigmachat.run_failed",
        "error",
        "thread.updated",
    ]
    failed = [f.event.data for f in frames if f.type == "client_effect" and f.event.name == "sigmachat.run_failed"][0]
    assert (
        failed["code"] == "network_error" and failed["status"] == "failed" and failed["error_type"] == "NETWORK_ERROR"
    )
    error = [f.event for f in frames if f.type == "error"][0]
    assert error.allow_retry is True and error.message.startswith("The connection to the AI service dropped")
    await rt.manager.wait_finished(handle.run_id, 5)
    thread_id = frames[0].event.thread.id
    items = (await rt.server.store.load_thread_items(thread_id, None, 20, "asc", rt.ctx())).data
    assert items[-1].content[0].text == "Your largest position is **HOME_EQUITY**."


async def test_model_override_only_from_the_allowlist(services):
    rt = await build_runtime(services, chatkit_model_allowlist=["gpt-4.1"])
    await run_create(rt)
    h = await rt.server.handle(create("hi", inference_options={"model": "gpt-4.1"}), rt.ctx())
    await collect(h)
    h = await rt.server.handle(create("hi", inference_options={"model": "o3-pro"}), rt.ctx())
    await collect(h)
    assert [r.model for r in rt.engine.requests] == [None, "gpt-4.1", None]


async def _disconnect_with_context(services, settings: dict | None = None, **ctx):
    gate = asyncio.Event()
    rt = await build_runtime(services, ScriptedEngine(gate=gate), **(settings or {}))  # server default: cancel
    handle = await rt.server.handle(create(), rt.ctx(**ctx))
    frames = handle.frames
    seen = []
    async for _tag, data in frames:
        seen.append(validate(data))
        if seen[-1].type == "thread.item.updated" and seen[-1].update.type.endswith("text_delta"):
            break
    await frames.aclose()  # a reload: the page goes away mid-answer
    return rt, gate, handle, seen[0].thread.id


async def test_a_client_declaring_continue_keeps_its_answer_going_after_a_disconnect(services):
    """Our UI sends X-Disconnect: continue (it stops through the run API): a reload is not a stop."""
    # Progress is saved once a period has passed since the run began (here: at once).
    rt, gate, handle, thread_id = await _disconnect_with_context(
        services, settings={"run_progress_save_s": 1e-6}, disconnect="continue"
    )
    await asyncio.sleep(0.1)
    assert await rt.manager.active_run_for(thread_id) == handle.run_id  # still running

    # Mid-run, a reloaded client sees the partial answer (saved progressively), not nothing.
    items = (await rt.server.store.load_thread_items(thread_id, None, 20, "asc", rt.ctx())).data
    assert items[-1].type == "assistant_message" and items[-1].content[0].text == "Your largest "
    async with services.db.session() as session:
        row = await session.get(Message, items[-1].id)
    assert row.status == "streaming"

    gate.set()
    await rt.manager.wait_finished(handle.run_id, 5)
    await rt.server.drain()
    items = (await rt.server.store.load_thread_items(thread_id, None, 20, "asc", rt.ctx())).data
    assert items[-1].content[0].text == "Your largest position is **HOME_EQUITY**."
    async with services.db.session() as session:
        assert (await session.get(Message, items[-1].id)).status == "complete"


async def test_a_client_declaring_nothing_keeps_chatkit_s_stop_on_disconnect(services):
    rt, gate, handle, thread_id = await _disconnect_with_context(services)
    await rt.manager.wait_finished(handle.run_id, 5)
    await rt.server.drain()
    gate.set()
    events = await rt.manager.events.read(handle.run_id)
    assert events[-1].type == "run_failed" and events[-1].code == "cancelled"
