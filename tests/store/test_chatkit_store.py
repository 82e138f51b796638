"""SqlChatKitStore: lossless round trips, keyset paging, upserts, isolation and default ids."""

from __future__ import annotations

import datetime as dt

import pytest
from chatkit.store import NotFoundError
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageItem,
    ClientToolCallItem,
    ClosedStatus,
    CustomTask,
    DurationSummary,
    EndOfTurnItem,
    FileAttachment,
    GeneratedImage,
    GeneratedImageItem,
    HiddenContextItem,
    ImageAttachment,
    InferenceOptions,
    LockedStatus,
    Page,
    SDKHiddenContextItem,
    SearchTask,
    StructuredInputItem,
    TaskItem,
    ThoughtTask,
    Thread,
    ThreadItem,
    ThreadMetadata,
    ToolChoice,
    URLSource,
    UserMessageItem,
    UserMessageTagContent,
    UserMessageTextContent,
    Workflow,
    WorkflowItem,
)
from pydantic import TypeAdapter

T0 = dt.datetime(2025, 7, 1, 12, 0, 0, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def thread(thread_id: str = "thr_aaaa0001", **kw) -> ThreadMetadata:
    return ThreadMetadata(id=thread_id, created_at=kw.pop("created_at", T0), **kw)


def user_msg(item_id: str, text: str, when: dt.datetime, thread_id: str = "thr_aaaa0001") -> UserMessageItem:
    return UserMessageItem(
        id=item_id,
        thread_id=thread_id,
        created_at=when,
        content=[UserMessageTextContent(text=text)],
        inference_options=InferenceOptions(),
    )


def every_item_type(thread_id: str) -> list[ThreadItem]:
    """One of every ThreadItem variant, with the optional parts filled in."""
    image = ImageAttachment(
        id="atc_img00001",
        name="chart.png",
        mime_type="image/png",
        preview_url="https://example.com/p.png",
        thread_id=thread_id,
        metadata={"bucket": "b1"},
    )
    return [
        UserMessageItem(
            id="msg_user0001",
            thread_id=thread_id,
            created_at=dt.datetime(2025, 7, 1, 12, 0, 1),  # naive, as ChatKit's own datetime.now()
            content=[
                UserMessageTextContent(text="Compare "),
                UserMessageTagContent(
                    id="AAPL", text="@AAPL", data={"symbol": "AAPL"}, group="tickers", interactive=True
                ),
            ],
            attachments=[image, FileAttachment(id="atc_file0001", name="a.csv", mime_type="text/csv")],
            quoted_text="the earlier table",
            inference_options=InferenceOptions(model="gpt-4.1-mini", tool_choice=ToolChoice(id="positions")),
        ),
        WorkflowItem(
            id="wf_flow0001",
            thread_id=thread_id,
            created_at=at(2),
            workflow=Workflow(
                type="custom",
                tasks=[
                    CustomTask(
                        title="Looking up positions", content="12 positions", status_indicator="complete", icon="search"
                    ),
                    SearchTask(
                        title="Search", queries=["aapl"], sources=[URLSource(title="Apple", url="https://apple.com")]
                    ),
                    ThoughtTask(title="Thinking", content="weighing it"),
                ],
                summary=DurationSummary(duration=3),
                expanded=True,
            ),
        ),
        AssistantMessageItem(
            id="msg_asst0001",
            thread_id=thread_id,
            created_at=at(3),
            content=[
                AssistantMessageContent(text="Your largest position is **AAPL**."),
                AssistantMessageContent(text=" Second part."),
            ],
        ),
        ClientToolCallItem(
            id="tc_call0001",
            thread_id=thread_id,
            created_at=at(4),
            call_id="call_1",
            name="pick_date",
            arguments={"min": "2025-01-01"},
            status="completed",
            output={"date": "2025-02-02"},
        ),
        TypeAdapter(ThreadItem).validate_python(
            {
                "type": "widget",
                "id": "msg_widget01",
                "thread_id": thread_id,
                "created_at": at(5).isoformat(),
                "copy_text": "AAPL 12%",
                "widget": {"type": "Card", "children": [{"type": "Text", "value": "AAPL 12%", "id": "t1"}]},
            }
        ),
        GeneratedImageItem(
            id="msg_image001",
            thread_id=thread_id,
            created_at=at(6),
            image=GeneratedImage(id="img1", url="https://x/y.png"),
        ),
        TypeAdapter(ThreadItem).validate_python(
            {
                "type": "structured_input",
                "id": "msg_struct01",
                "thread_id": thread_id,
                "created_at": at(7).isoformat(),
                "status": "pending",
                "inputs": [
                    {
                        "type": "multiple_choice",
                        "id": "q1",
                        "question": "Which?",
                        "options": [{"value": "a"}, {"value": "b"}],
                    },
                    {"type": "freeform", "id": "q2", "question": "Why?", "description": "be brief"},
                ],
            }
        ),
        TaskItem(
            id="tsk_task0001",
            thread_id=thread_id,
            created_at=at(8),
            task=CustomTask(title="Done", status_indicator="complete"),
        ),
        HiddenContextItem(
            id="msg_hidden01", thread_id=thread_id, created_at=at(9), content={"portfolio": "p1", "n": [1, 2]}
        ),
        SDKHiddenContextItem(
            id="shcx_hid0001", thread_id=thread_id, created_at=at(10), content="The user cancelled the stream."
        ),
        EndOfTurnItem(id="msg_end00001", thread_id=thread_id, created_at=at(11)),
    ]


async def test_every_item_type_round_trips_losslessly(store, alice):
    await store.save_thread(thread(), alice)
    items = every_item_type("thr_aaaa0001")
    assert {i.type for i in items} == {
        "user_message",
        "assistant_message",
        "client_tool_call",
        "widget",
        "generated_image",
        "structured_input",
        "workflow",
        "task",
        "hidden_context_item",
        "sdk_hidden_context",
        "end_of_turn",
    }
    assert isinstance(items[6], StructuredInputItem)
    for item in items:
        await store.add_thread_item("thr_aaaa0001", item, alice)
    for item in items:
        loaded = await store.load_item("thr_aaaa0001", item.id, alice)
        assert loaded == item, item.type
        assert type(loaded) is type(item)
    page = await store.load_thread_items("thr_aaaa0001", None, 50, "asc", alice)
    assert page.data == items
    assert page.has_more is False and page.after is None


async def test_thread_metadata_round_trips_even_from_a_full_thread(store, alice):
    full = Thread(
        id="thr_full0001",
        title="Risk review",
        created_at=dt.datetime(2025, 7, 1, 9, 30, 0, 123456),  # naive, exactly as ChatKit makes it
        status=LockedStatus(reason="archived"),
        allowed_image_domains=["example.com"],
        metadata={"portfolio_id": "p-1", "tags": ["risk"], "nested": {"a": 1}},
        items=Page(data=[user_msg("msg_x0000001", "hi", T0, "thr_full0001")]),
    )
    await store.save_thread(full, alice)
    loaded = await store.load_thread("thr_full0001", alice)
    assert loaded == ThreadMetadata(**full.model_dump(exclude={"items"}))
    assert loaded.metadata == {"portfolio_id": "p-1", "tags": ["risk"], "nested": {"a": 1}}

    # Upsert: a second save updates in place.
    loaded.title = "Renamed"
    loaded.status = ClosedStatus()
    loaded.metadata["tags"].append("q3")
    await store.save_thread(loaded, alice)
    again = await store.load_thread("thr_full0001", alice)
    assert again == loaded
    assert (await store.load_threads(10, None, "desc", alice)).data.count(again) == 1


async def test_item_upserts_and_add_tolerates_an_existing_id(store, alice):
    await store.save_thread(thread(), alice)
    first = AssistantMessageItem(
        id="msg_a0000001", thread_id="thr_aaaa0001", created_at=at(1), content=[AssistantMessageContent(text="draft")]
    )
    await store.add_thread_item("thr_aaaa0001", first, alice)
    final = first.model_copy(update={"content": [AssistantMessageContent(text="final answer")]})
    await store.add_thread_item("thr_aaaa0001", final, alice)  # same id again: no error, updated
    assert await store.load_item("thr_aaaa0001", first.id, alice) == final
    changed = final.model_copy(update={"content": [AssistantMessageContent(text="edited")]})
    await store.save_item("thr_aaaa0001", changed, alice)
    page = await store.load_thread_items("thr_aaaa0001", None, 10, "asc", alice)
    assert page.data == [changed]


async def _ids(store, ctx, thread_id, order, limit):
    seen, after, pages = [], None, 0
    while True:
        page = await store.load_thread_items(thread_id, after, limit, order, ctx)
        pages += 1
        seen.extend(i.id for i in page.data)
        assert len(page.data) <= limit
        if not page.has_more:
            assert page.after is None
            return seen, pages
        assert page.after == page.data[-1].id
        after = page.after


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 8])
async def test_keyset_paging_both_orders(store, alice, limit):
    await store.save_thread(thread(), alice)
    # Several items share a timestamp: the id breaks the tie, so paging never skips or repeats.
    whens = [at(1), at(2), at(2), at(2), at(3), at(4), at(4)]
    items = [user_msg(f"msg_p{i:07d}", f"q{i}", w) for i, w in enumerate(whens)]
    for item in reversed(items):  # insertion order must not matter
        await store.add_thread_item("thr_aaaa0001", item, alice)
    expected = [i.id for i in items]
    asc, pages = await _ids(store, alice, "thr_aaaa0001", "asc", limit)
    assert asc == expected
    assert pages == -(-len(items) // limit)  # no empty trailing page
    desc, _ = await _ids(store, alice, "thr_aaaa0001", "desc", limit)
    assert desc == list(reversed(expected))


async def test_thread_list_paging_both_orders(store, alice):
    ids = [f"thr_list{i:04d}" for i in range(5)]
    for i, tid in enumerate(ids):
        await store.save_thread(thread(tid, created_at=at(100 + (i // 2))), alice)  # ties again
    collected = []
    after = None
    while True:
        page = await store.load_threads(2, after, "asc", alice)
        collected += [t.id for t in page.data if t.id in ids]
        if not page.has_more:
            break
        after = page.after
    assert collected == ids
    page = await store.load_threads(50, None, "desc", alice)
    assert [t.id for t in page.data if t.id in ids] == list(reversed(ids))


async def test_isolation_in_every_method(store, alice, bob):
    await store.save_thread(thread(metadata={"secret": True}), alice)
    item = user_msg("msg_secret01", "my portfolio", at(1))
    await store.add_thread_item("thr_aaaa0001", item, alice)
    attachment = FileAttachment(id="atc_secret01", name="s.csv", mime_type="text/csv", thread_id="thr_aaaa0001")
    await store.save_attachment(attachment, alice)

    with pytest.raises(NotFoundError):
        await store.load_thread("thr_aaaa0001", bob)
    with pytest.raises(NotFoundError):
        await store.load_thread_items("thr_aaaa0001", None, 10, "asc", bob)
    with pytest.raises(NotFoundError):
        await store.load_item("thr_aaaa0001", "msg_secret01", bob)
    with pytest.raises(NotFoundError):
        await store.add_thread_item("thr_aaaa0001", user_msg("msg_bob00001", "x", at(2)), bob)
    with pytest.raises(NotFoundError):
        await store.save_item(
            "thr_aaaa0001", item.model_copy(update={"content": [UserMessageTextContent(text="pwned")]}), bob
        )
    with pytest.raises(NotFoundError):
        await store.save_thread(thread(title="pwned"), bob)
    with pytest.raises(NotFoundError):
        await store.delete_thread_item("thr_aaaa0001", "msg_secret01", bob)
    with pytest.raises(NotFoundError):
        await store.delete_thread("thr_aaaa0001", bob)
    with pytest.raises(NotFoundError):
        await store.load_attachment("atc_secret01", bob)
    with pytest.raises(NotFoundError):
        await store.delete_attachment("atc_secret01", bob)
    with pytest.raises(NotFoundError):
        await store.save_attachment(attachment.model_copy(update={"name": "pwned"}), bob)
    with pytest.raises(NotFoundError):
        await store.set_feedback("thr_aaaa0001", ["msg_secret01"], "negative", bob)
    # Bob's own item may not be written into Alice's row id either (same id, his own thread).
    await store.save_thread(thread("thr_bob00001"), bob)
    with pytest.raises(NotFoundError):
        await store.add_thread_item("thr_bob00001", item.model_copy(update={"thread_id": "thr_bob00001"}), bob)
    assert [t.id for t in (await store.load_threads(50, None, "desc", bob)).data] == ["thr_bob00001"]

    # Alice's data is untouched.
    assert (await store.load_thread("thr_aaaa0001", alice)).metadata == {"secret": True}
    assert await store.load_item("thr_aaaa0001", "msg_secret01", alice) == item
    assert await store.load_attachment("atc_secret01", alice) == attachment


async def test_attachments_upsert_load_delete(store, alice):
    await store.save_thread(thread(), alice)
    a = ImageAttachment(
        id="atc_a0000001", name="x.png", mime_type="image/png", preview_url="https://e.com/x.png", metadata={"k": 1}
    )
    await store.save_attachment(a, alice)
    assert await store.load_attachment(a.id, alice) == a
    b = a.model_copy(update={"thread_id": "thr_aaaa0001"})
    await store.save_attachment(b, alice)
    assert await store.load_attachment(a.id, alice) == b
    await store.delete_attachment(a.id, alice)
    with pytest.raises(NotFoundError):
        await store.load_attachment(a.id, alice)


async def test_delete_thread_removes_items_and_attachments(store, alice):
    await store.save_thread(thread(), alice)
    await store.add_thread_item("thr_aaaa0001", user_msg("msg_d0000001", "x", at(1)), alice)
    await store.save_attachment(
        FileAttachment(id="atc_d0000001", name="x", mime_type="text/plain", thread_id="thr_aaaa0001"), alice
    )
    await store.delete_thread("thr_aaaa0001", alice)
    with pytest.raises(NotFoundError):
        await store.load_thread("thr_aaaa0001", alice)
    with pytest.raises(NotFoundError):
        await store.load_attachment("atc_d0000001", alice)


async def test_delete_item_and_unknown_item_is_a_no_op(store, alice):
    await store.save_thread(thread(), alice)
    await store.add_thread_item("thr_aaaa0001", user_msg("msg_e0000001", "x", at(1)), alice)
    await store.delete_thread_item("thr_aaaa0001", "msg_e0000001", alice)
    await store.delete_thread_item("thr_aaaa0001", "msg_e0000001", alice)
    with pytest.raises(NotFoundError):
        await store.load_item("thr_aaaa0001", "msg_e0000001", alice)


async def test_feedback_is_stored_with_the_item(store, services, alice):
    from sigmachat.db.models import Message

    await store.save_thread(thread(), alice)
    reply = AssistantMessageItem(
        id="msg_f0000001", thread_id="thr_aaaa0001", created_at=at(1), content=[AssistantMessageContent(text="ok")]
    )
    await store.add_thread_item("thr_aaaa0001", reply, alice)
    assert await store.set_feedback("thr_aaaa0001", [reply.id], "positive", alice) == 1
    async with services.db.session() as session:
        assert (await session.get(Message, reply.id)).feedback == "positive"
    assert await store.load_item("thr_aaaa0001", reply.id, alice) == reply  # the item itself is unchanged


def test_default_id_prefixes(store, alice):
    meta = thread()
    assert store.generate_thread_id(alice).startswith("thr_")
    for kind, prefix in [
        ("message", "msg_"),
        ("tool_call", "tc_"),
        ("workflow", "wf_"),
        ("task", "tsk_"),
        ("attachment", "atc_"),
    ]:
        assert store.generate_item_id(kind, meta, alice).startswith(prefix)
