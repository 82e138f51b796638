"""One history: Responses-path rows open as ChatKit items, ChatKit items read as legacy messages."""

from __future__ import annotations

import datetime as dt

import pytest
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageItem,
    CustomTask,
    DurationSummary,
    UserMessageItem,
    Workflow,
    WorkflowItem,
)
from sqlalchemy import text

from sigmachat.chat import conversations as convs
from sigmachat.db.models import Message
from sigmachat.tools.registry import tool_title
from tests.store.conftest import Ctx
from tests.store.test_chatkit_store import T0, at, user_msg

TOOLS = [
    {
        "call_id": "call_a",
        "name": "get_positions_details",
        "arguments": {"portfolio_id": "p"},
        "summary": "12 positions, largest AAPL",
        "ok": True,
        "duration_ms": 1200.0,
        "truncated": False,
        "output": '{"data": {"positions": []}}',
    },
    {
        "call_id": "call_b",
        "name": "get_volatility_analysis",
        "arguments": {},
        "summary": "beta 1.1",
        "ok": True,
        "duration_ms": 900.0,
        "truncated": False,
        "output": '{"data": {"beta": 1.1}}',
    },
]


async def legacy_conversation(services, ctx: Ctx) -> str:
    """Two turns written the way the Responses path's run manager writes them."""
    async with services.db.session() as session:
        conv = await convs.create_conversation(session, ctx.user_id)
        rows = [
            Message(
                id="msg_lu000001",
                conversation_id=conv.id,
                user_id=ctx.user_id,
                item_type="user_message",
                role="user",
                content="What is my largest position?",
                run_id="run_1",
                created_at=T0,
            ),
            Message(
                id="msg_la000001",
                conversation_id=conv.id,
                user_id=ctx.user_id,
                item_type="assistant_message",
                role="assistant",
                content="AAPL is your largest position.",
                tool_calls=TOOLS,
                status="complete",
                run_id="run_1",
                engine="responses",
                created_at=T0 + dt.timedelta(microseconds=1),
            ),
            Message(
                id="msg_lu000002",
                conversation_id=conv.id,
                user_id=ctx.user_id,
                item_type="user_message",
                role="user",
                content="Thanks",
                run_id="run_2",
                created_at=at(10),
            ),
            Message(
                id="msg_la000002",
                conversation_id=conv.id,
                user_id=ctx.user_id,
                item_type="assistant_message",
                role="assistant",
                content="You're welcome.",
                tool_calls=[],
                status="complete",
                run_id="run_2",
                created_at=at(10) + dt.timedelta(microseconds=1),
            ),
            # A failed run that said nothing renders as an empty answer that says how it ended.
            Message(
                id="msg_lu000003",
                conversation_id=conv.id,
                user_id=ctx.user_id,
                item_type="user_message",
                role="user",
                content="And risk?",
                run_id="run_3",
                created_at=at(20),
            ),
            Message(
                id="msg_la000003",
                conversation_id=conv.id,
                user_id=ctx.user_id,
                item_type="assistant_message",
                role="assistant",
                content="",
                status="failed",
                error={"code": "upstream_error", "message": "The AI service had a problem answering. Try again."},
                run_id="run_3",
                created_at=at(20) + dt.timedelta(microseconds=1),
            ),
        ]
        session.add_all(rows)
        await session.commit()
        return conv.id


EXPECTED_IDS = [
    "msg_lu000001",
    "wf_msg_la000001",
    "msg_la000001",
    "msg_lu000002",
    "msg_la000002",
    "msg_lu000003",
    "msg_la000003",
]


async def test_a_responses_conversation_opens_as_chatkit_items(store, services, alice):
    thread_id = await legacy_conversation(services, alice)
    meta = await store.load_thread(thread_id, alice)
    assert meta.id == thread_id and meta.metadata == {}
    page = await store.load_thread_items(thread_id, None, 50, "asc", alice)
    assert [i.id for i in page.data] == EXPECTED_IDS
    user, workflow, answer = page.data[:3]
    assert isinstance(user, UserMessageItem) and user.content[0].text == "What is my largest position?"
    assert isinstance(workflow, WorkflowItem)
    assert [t.title for t in workflow.workflow.tasks] == [
        tool_title("get_positions_details"),
        tool_title("get_volatility_analysis"),
    ]
    assert [t.content for t in workflow.workflow.tasks] == ["12 positions, largest AAPL", "beta 1.1"]
    assert all(t.status_indicator == "complete" for t in workflow.workflow.tasks)
    assert workflow.workflow.summary == DurationSummary(duration=2)
    assert isinstance(answer, AssistantMessageItem) and answer.content[0].text == "AAPL is your largest position."
    run, *tools = [a.source for a in answer.content[0].annotations]
    assert (run.id, run.data["status"], run.data["engine"]) == ("run_1", "complete", "responses")
    assert [(t.title, t.data["name"], t.data["status"]) for t in tools] == [
        (tool_title("get_positions_details"), "get_positions_details", "ok"),
        (tool_title("get_volatility_analysis"), "get_volatility_analysis", "ok"),
    ]
    failed = page.data[-1]
    assert isinstance(failed, AssistantMessageItem) and failed.content[0].text == ""
    [run] = [a.source for a in failed.content[0].annotations]
    assert run.data["status"] == "failed" and run.data["code"] == "upstream_error"
    assert run.description == "The AI service had a problem answering. Try again."
    assert await store.load_item(thread_id, "wf_msg_la000001", alice) == workflow
    assert thread_id in [t.id for t in (await store.load_threads(50, None, "desc", alice)).data]


@pytest.mark.parametrize("limit", [1, 2, 4])
async def test_paging_across_rendered_workflows(store, services, alice, limit):
    thread_id = await legacy_conversation(services, alice)
    for order, expected in (("asc", EXPECTED_IDS), ("desc", list(reversed(EXPECTED_IDS)))):
        seen, after = [], None
        while True:
            page = await store.load_thread_items(thread_id, after, limit, order, alice)
            seen += [i.id for i in page.data]
            if not page.has_more:
                break
            after = page.after
        assert seen == expected, order


async def test_chatkit_items_read_as_legacy_messages_and_history(store, services, alice):
    async with services.db.session() as session:
        conv = await convs.create_conversation(session, alice.user_id)
    question = user_msg("msg_cu000001", "What is my largest position?", at(1), conv.id)
    question = question.model_copy(update={"quoted_text": None})
    answer = AssistantMessageItem(
        id="msg_ca000001",
        thread_id=conv.id,
        created_at=at(2),
        content=[AssistantMessageContent(text="AAPL, "), AssistantMessageContent(text="at 12%.")],
    )
    workflow = WorkflowItem(
        id="wf_c0000001",
        thread_id=conv.id,
        created_at=at(1.5),
        workflow=Workflow(type="custom", tasks=[CustomTask(title="Looking up positions")]),
    )
    for item in (question, workflow, answer):
        await store.add_thread_item(conv.id, item, alice)
    async with services.db.session() as session:
        messages = await convs.list_messages(session, alice.user_id, conv.id)
    visible = [convs.message_to_dict(m) for m in messages if m.role]  # what GET .../messages returns
    assert [(m["role"], m["content"]) for m in visible] == [
        ("user", "What is my largest position?"),
        ("assistant", "AAPL, at 12%."),
    ]
    turns = convs.history_from_messages(messages)
    assert [(t.role, t.text) for t in turns] == [
        ("user", "What is my largest position?"),
        ("assistant", "AAPL, at 12%."),
    ]


async def test_items_of_a_run_are_not_written_by_the_store(store, services, alice):
    """In a request that starts a run, the run manager owns the run's rows: the SDK's writes are skipped."""
    async with services.db.session() as session:
        conv = await convs.create_conversation(session, alice.user_id)
        session.add(
            Message(
                id="msg_r0000001",
                conversation_id=conv.id,
                user_id=alice.user_id,
                item_type="assistant_message",
                role="assistant",
                content="AAPL.",
                tool_calls=TOOLS,
                status="complete",
                run_id="run_ck",
                created_at=at(5),
            )
        )
        await session.commit()
    run_ctx = Ctx(alice.user_id, run_owns_items=True)
    rendered = await store.load_item(conv.id, "wf_msg_r0000001", alice)
    answer = await store.load_item(conv.id, "msg_r0000001", alice)
    other = WorkflowItem(
        id="wf_r0000002",
        thread_id=conv.id,
        created_at=at(4),
        workflow=Workflow(type="custom", tasks=[CustomTask(title="Looking up positions")]),
    )
    edited = answer.model_copy(update={"content": [AssistantMessageContent(text="Changed.")]})
    await store.add_thread_item(conv.id, rendered, run_ctx)
    await store.add_thread_item(conv.id, other, run_ctx)
    await store.save_item(conv.id, edited, run_ctx)
    page = await store.load_thread_items(conv.id, None, 10, "asc", alice)
    assert [i.id for i in page.data] == ["wf_msg_r0000001", "msg_r0000001"]
    assert page.data == [rendered, answer]


async def test_deleting_or_saving_a_rendered_workflow(store, services, alice):
    thread_id = await legacy_conversation(services, alice)
    await store.delete_thread_item(thread_id, "wf_msg_la000001", alice)
    page = await store.load_thread_items(thread_id, None, 50, "asc", alice)
    assert "wf_msg_la000001" not in [i.id for i in page.data]

    # A rendered workflow is the answer's tool calls (the run manager's to write): saving it
    # through the store stores nothing, and the thread still renders it from the answer.
    thread_id = await legacy_conversation_2(services, alice)
    rendered = await store.load_item(thread_id, "wf_msg_lb000001", alice)
    edited = rendered.model_copy(update={"workflow": rendered.workflow.model_copy(update={"expanded": True})})
    await store.save_item(thread_id, edited, alice)
    page = await store.load_thread_items(thread_id, None, 50, "asc", alice)
    assert [i.id for i in page.data] == ["msg_lb000000", "wf_msg_lb000001", "msg_lb000001"]
    assert page.data[1] == rendered


async def legacy_conversation_2(services, ctx: Ctx) -> str:
    async with services.db.session() as session:
        conv = await convs.create_conversation(session, ctx.user_id)
        session.add_all(
            [
                Message(
                    id="msg_lb000000",
                    conversation_id=conv.id,
                    user_id=ctx.user_id,
                    item_type="user_message",
                    role="user",
                    content="Q",
                    created_at=T0,
                ),
                Message(
                    id="msg_lb000001",
                    conversation_id=conv.id,
                    user_id=ctx.user_id,
                    item_type="assistant_message",
                    role="assistant",
                    content="A",
                    tool_calls=TOOLS,
                    status="complete",
                    created_at=at(1),
                ),
            ]
        )
        await session.commit()
        return conv.id


async def test_migration_0003_keeps_existing_conversations(tmp_path):
    """Rows written before the ChatKit store existed survive the upgrade and load as a thread."""
    from sigmachat.db.migrate import upgrade
    from sigmachat.services import Services
    from sigmachat.store import SqlChatKitStore
    from tests.conftest import make_settings

    services = Services.build(make_settings(tmp_path))
    try:
        await upgrade(services.db.engine, "0002")
        async with services.db.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO users (id, email, full_name, password_hash, role, created_at) "
                    "VALUES ('u1', 'a@b.c', 'A', 'x', 'user', '2025-07-01 12:00:00.000000')"
                )
            )
            await conn.execute(
                text(
                    "INSERT INTO conversations (id, user_id, title, metadata, created_at, updated_at) "
                    "VALUES ('thr_old00001', 'u1', 'Old', '{}', "
                    "'2025-07-01 12:00:00.000000', '2025-07-01 12:00:00.000000')"
                )
            )
            await conn.execute(
                text(
                    "INSERT INTO messages "
                    "(id, conversation_id, user_id, item_type, role, content, status, offline, created_at) "
                    "VALUES ('msg_old00001', 'thr_old00001', 'u1', 'user_message', 'user', 'hello', 'complete', 0, "
                    "'2025-07-01 12:00:01.000000')"
                )
            )
        await upgrade(services.db.engine)
        store = SqlChatKitStore(services.db)
        ctx = Ctx("u1")
        thread = await store.load_thread("thr_old00001", ctx)
        assert thread.title == "Old" and thread.created_at == T0
        items = (await store.load_thread_items("thr_old00001", None, 10, "asc", ctx)).data
        assert [(i.id, i.content[0].text) for i in items] == [("msg_old00001", "hello")]
    finally:
        await services.aclose()
