"""SqlChatKitStore: ChatKit's ``Store`` over our conversations and messages tables.

A ChatKit thread is a conversation row; a thread item is a message row. Items written here
keep their exact JSON (``payload``) so they round-trip losslessly; rows written by the
Responses path have no payload and are rendered as ChatKit items (see ``store.items``), so a
user moved between the two paths keeps one history.

Every method is scoped to ``context.user_id``: another user's thread, item or attachment
behaves exactly like an unknown id (``NotFoundError``) and never appears in a list.
Pagination is keyset on (created_at, id); ``after`` is the id of the last item of a page.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Protocol

from chatkit.store import NotFoundError, Store
from chatkit.types import Attachment, Page, ThreadItem, ThreadMetadata
from pydantic import TypeAdapter
from sqlalchemy import bindparam, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from sigmachat.chat import feedback
from sigmachat.chat.conversations import default_portfolio_id, get_conversation
from sigmachat.db.models import Attachment as AttachmentRow
from sigmachat.db.models import Conversation, Message, as_utc, table_of, utcnow
from sigmachat.db.paging import keyset_page
from sigmachat.db.session import Database
from sigmachat.errors import NotFound
from sigmachat.store import items as conv

# mypy flags this union argument on a warm cache but not on a cold one (a mypy caching quirk),
# so the ignore must not itself be reported as unused.
ATTACHMENT_ADAPTER = TypeAdapter[Attachment](Attachment)  # type: ignore[arg-type, unused-ignore]  # a union, as in the SDK

# A thread's row by id, built once: the SDK saves a thread twice in every answer it streams.
_THREAD_ROW = select(Conversation).where(Conversation.id == bindparam("thread_id"))
# A new thread's row, written here (this store owns a ChatKit thread's row): one Core insert,
# the ORM's unit of work cost more than the row.
_NEW_THREAD = table_of(Conversation).insert()

# (created_at, row id, sub): a legacy assistant row renders as its tool workflow (sub 0)
# followed by the message itself (sub 1); every other row renders as one item (sub 1).
Key = tuple[dt.datetime, str, int]


class StoreContext(Protocol):
    """What the store needs from a request context: whose data this is."""

    user_id: str


def _user(context: Any) -> str:
    user_id = getattr(context, "user_id", None)
    if not user_id:
        raise NotFoundError("No user in the request context.")
    return user_id


def _run_owns_items(context: Any) -> bool:
    """True in a request that starts a run: the run manager stores that run's items, not us.

    The question, the answer and its tool calls are rows the run manager writes (and keeps
    writing while the run lives, whether or not the client stays). The SDK hands us the same
    items again as it streams them; storing them would make a second writer of each row.
    """
    return bool(getattr(context, "run_owns_items", False))


class SqlChatKitStore(Store[Any]):
    """SQLAlchemy implementation of ``chatkit.store.Store`` (SQLite and PostgreSQL)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def generate_thread_id(self, context: Any) -> str:
        """A new thread's id; in a request that starts a run, the id reserved when it was admitted."""
        admission = getattr(context, "admission", None)
        if admission is not None and admission.new_conversation:
            return str(admission.conversation_id)
        return super().generate_thread_id(context)

    # ---- threads ---------------------------------------------------------------------------

    async def _conversation(self, session: AsyncSession, thread_id: str, user_id: str) -> Conversation:
        try:
            return await get_conversation(session, user_id, thread_id)  # the user's own, or not found
        except NotFound as exc:
            raise NotFoundError(f"Thread {thread_id} not found") from exc

    @staticmethod
    def _thread(row: Conversation) -> ThreadMetadata:
        extra = dict(row.chatkit or {})
        data: dict[str, Any] = {
            "id": row.id,
            "title": row.title,
            "created_at": extra.get("created_at") or as_utc(row.created_at),
            "metadata": dict(row.metadata_ or {}),
        }
        if row.status:
            data["status"] = row.status
        if extra.get("allowed_image_domains") is not None:
            data["allowed_image_domains"] = extra["allowed_image_domains"]
        return ThreadMetadata.model_validate(data)

    async def load_thread(self, thread_id: str, context: Any) -> ThreadMetadata:
        async with self.db.session() as session:
            return self._thread(await self._conversation(session, thread_id, _user(context)))

    async def save_thread(self, thread: ThreadMetadata, context: Any) -> None:
        """Upsert. Reads the metadata fields explicitly, so a full ``Thread`` keeps its metadata too.

        An update that changes nothing writes nothing: the SDK saves the thread again when a
        run's title (already stored by the run manager) appears on it.
        """
        user_id = _user(context)
        extra = {
            "created_at": thread.model_dump(mode="json", include={"created_at"})["created_at"],
            "allowed_image_domains": thread.allowed_image_domains,
        }
        values: dict[str, Any] = {
            "title": thread.title,
            "status": thread.status.model_dump(mode="json"),
            "metadata_": dict(thread.metadata or {}),
            "chatkit": extra,
            "created_at": conv.to_utc(thread.created_at),
        }
        async with self.db.session() as session:
            row = (await session.execute(_THREAD_ROW, {"thread_id": thread.id})).scalar_one_or_none()
            if row is not None and row.user_id != user_id:
                raise NotFoundError(f"Thread {thread.id} not found")
            if row is None:
                portfolio_id = getattr(context, "portfolio_id", None) or await default_portfolio_id(session, user_id)
                new = {
                    "id": thread.id, "user_id": user_id, "portfolio_id": portfolio_id, "updated_at": utcnow(),
                    **{("metadata" if name == "metadata_" else name): value for name, value in values.items()},
                }  # fmt: skip
                if mode := getattr(context, "mode", None):  # threads.create's metadata.mode
                    new["mode"] = mode
                await (await session.connection()).execute(_NEW_THREAD, new)
            else:
                changed = {
                    name: value
                    for name, value in values.items()
                    if (as_utc(getattr(row, name)) if name == "created_at" else getattr(row, name)) != value
                }
                if not changed:
                    return
                for name, value in changed.items():
                    setattr(row, name, value)
                row.updated_at = utcnow()
            await session.commit()

    async def load_threads(self, limit: int, after: str | None, order: str, context: Any) -> Page[ThreadMetadata]:
        user_id = _user(context)
        desc = order == "desc"
        async with self.db.session() as session:
            stmt = select(Conversation).where(Conversation.user_id == user_id)
            start: tuple[dt.datetime, str] | None = None
            if after:
                stmt_after = select(Conversation.created_at, Conversation.id).where(
                    Conversation.id == after, Conversation.user_id == user_id
                )
                found = (await session.execute(stmt_after)).one_or_none()
                if found is None:
                    raise NotFoundError(f"Thread {after} not found")
                start = (found[0], found[1])
            stmt = keyset_page(stmt, Conversation.created_at, Conversation.id, start, desc=desc)
            rows = list((await session.execute(stmt.limit(limit + 1))).scalars())
        page = rows[:limit]
        has_more = len(rows) > limit
        return Page(
            data=[self._thread(r) for r in page],
            has_more=has_more,
            after=page[-1].id if has_more and page else None,
        )

    async def delete_thread(self, thread_id: str, context: Any) -> None:
        user_id = _user(context)
        async with self.db.session() as session:
            row = await self._conversation(session, thread_id, user_id)
            await session.execute(delete(Message).where(Message.conversation_id == row.id))
            await session.execute(delete(AttachmentRow).where(AttachmentRow.thread_id == row.id))
            await session.delete(row)
            await session.commit()

    # ---- items -----------------------------------------------------------------------------

    @staticmethod
    def _expand(row: Message, thread_id: str) -> list[tuple[Key, ThreadItem]]:
        """The items one row stands for, in ascending order.

        An answer row with tool calls renders as its workflow followed by the message: the
        run manager stores a run's tool steps once, on the answer, for both protocols.
        """
        created = as_utc(row.created_at)
        out: list[tuple[Key, ThreadItem]] = []
        if row.role == "assistant" and row.tool_calls:
            workflow = conv.answer_workflow(row, thread_id)
            if workflow is not None:
                out.append(((created, row.id, 0), workflow))
        item = conv.load_payload(row.payload) if row.payload is not None else conv.answer_or_question(row, thread_id)
        if item is not None:
            out.append(((created, row.id, 1), item))
        return out

    async def _item_key(self, session: AsyncSession, thread_id: str, user_id: str, item_id: str) -> Key:
        row = await self._row(session, thread_id, user_id, item_id)
        if row is not None:
            return (as_utc(row.created_at), row.id, 1)
        owner = await self._synth_owner(session, thread_id, user_id, item_id)
        if owner is not None:
            return (as_utc(owner.created_at), owner.id, 0)
        raise NotFoundError(f"Item {item_id} not found")

    async def _row(self, session: AsyncSession, thread_id: str, user_id: str, item_id: str) -> Message | None:
        return (
            await session.execute(
                select(Message).where(
                    Message.id == item_id, Message.conversation_id == thread_id, Message.user_id == user_id
                )
            )
        ).scalar_one_or_none()

    async def _synth_owner(self, session: AsyncSession, thread_id: str, user_id: str, item_id: str) -> Message | None:
        """The answer row a rendered workflow id stands for, if it renders one."""
        if not item_id.startswith(conv.SYNTH_WORKFLOW_PREFIX):
            return None
        row = await self._row(session, thread_id, user_id, item_id[len(conv.SYNTH_WORKFLOW_PREFIX) :])
        if row is None or row.role != "assistant" or not row.tool_calls:
            return None
        return row

    async def load_thread_items(
        self, thread_id: str, after: str | None, limit: int, order: str, context: Any
    ) -> Page[ThreadItem]:
        user_id = _user(context)
        desc = order == "desc"
        async with self.db.session() as session:
            await self._conversation(session, thread_id, user_id)
            cursor: Key | None = await self._item_key(session, thread_id, user_id, after) if after else None
            bound: tuple[dt.datetime, str] | None = (cursor[0], cursor[1]) if cursor else None
            inclusive = True  # the cursor's own row may still hold an item beyond the cursor
            batch = limit + 2
            out: list[tuple[Key, ThreadItem]] = []
            while len(out) <= limit:
                stmt = select(Message).where(Message.conversation_id == thread_id, Message.user_id == user_id)
                stmt = keyset_page(stmt, Message.created_at, Message.id, bound, desc=desc, inclusive=inclusive)
                rows = list((await session.execute(stmt.limit(batch))).scalars())
                for row in rows:
                    expanded = self._expand(row, thread_id)
                    for key, item in reversed(expanded) if desc else expanded:
                        if cursor is not None and (key >= cursor if desc else key <= cursor):
                            continue
                        out.append((key, item))
                if len(rows) < batch:
                    break
                bound, inclusive = (as_utc(rows[-1].created_at), rows[-1].id), False
        page = [item for _key, item in out[:limit]]
        has_more = len(out) > limit
        return Page(data=page, has_more=has_more, after=page[-1].id if has_more and page else None)

    async def load_item(self, thread_id: str, item_id: str, context: Any) -> ThreadItem:
        user_id = _user(context)
        async with self.db.session() as session:
            await self._conversation(session, thread_id, user_id)
            row = await self._row(session, thread_id, user_id, item_id)
            if row is None:
                row = await self._synth_owner(session, thread_id, user_id, item_id)
            if row is not None:
                for _key, item in self._expand(row, thread_id):
                    if item.id == item_id:
                        return item
        raise NotFoundError(f"Item {item_id} not found")

    async def add_thread_item(self, thread_id: str, item: ThreadItem, context: Any) -> None:
        """Insert, or update when the id exists. Items of a run are the run manager's: skipped."""
        if _run_owns_items(context):
            return
        await self._upsert(thread_id, item, context)

    async def save_item(self, thread_id: str, item: ThreadItem, context: Any) -> None:
        if _run_owns_items(context):
            return
        await self._upsert(thread_id, item, context)

    async def _upsert(self, thread_id: str, item: ThreadItem, context: Any, *, _retry: bool = True) -> None:
        user_id = _user(context)
        cols = conv.columns_for(item)
        payload = conv.dump_item(item)
        created = conv.to_utc(item.created_at)
        try:
            async with self.db.session() as session:
                conv_row = await self._conversation(session, thread_id, user_id)
                row = await session.get(Message, item.id)
                if row is not None and (row.user_id != user_id or row.conversation_id != thread_id):
                    raise NotFoundError(f"Item {item.id} not found")
                if row is None and await self._synth_owner(session, thread_id, user_id, item.id) is not None:
                    # A rendered workflow is the answer row's tool calls, which are the run
                    # manager's to write: there is no item row of ours to save.
                    return
                if row is None:
                    session.add(
                        Message(
                            id=item.id,
                            conversation_id=thread_id,
                            user_id=user_id,
                            payload=payload,
                            created_at=created,
                            status="complete",
                            **cols,
                        )
                    )
                else:
                    # Run bookkeeping (status, tool_calls, usage, run_id ...) belongs to the
                    # run manager: only the item's own fields are written here.
                    row.payload = payload
                    row.item_type = cols["item_type"]
                    row.created_at = created
                    if cols["role"] is not None:
                        row.role = cols["role"]
                        row.content = cols["content"]
                conv_row.updated_at = utcnow()
                await session.commit()
        except IntegrityError:
            if not _retry:
                raise
            await self._upsert(thread_id, item, context, _retry=False)  # lost an insert race: update

    async def delete_thread_item(self, thread_id: str, item_id: str, context: Any) -> None:
        """Delete an item; an unknown id is a no-op (the SDK deletes rendered pairs one by one)."""
        user_id = _user(context)
        async with self.db.session() as session:
            await self._conversation(session, thread_id, user_id)
            row = await self._row(session, thread_id, user_id, item_id)
            if row is not None:
                await session.delete(row)
            else:
                owner = await self._synth_owner(session, thread_id, user_id, item_id)
                if owner is not None:
                    # The rendered workflow is the row's tool calls: deleting it forgets them.
                    owner.tool_calls = []
            await session.commit()

    async def set_feedback(self, thread_id: str, item_ids: list[str], kind: str | None, context: Any) -> int:
        """Store feedback ("positive" | "negative" | None) with the items; returns rows changed.
        The same columns the original chat API's feedback writes (chat/feedback.py)."""
        user_id = _user(context)
        async with self.db.session() as session:
            await self._conversation(session, thread_id, user_id)
            return await feedback.set_kind_on_items(session, user_id, thread_id, item_ids, kind)

    # ---- attachments -----------------------------------------------------------------------

    async def save_attachment(self, attachment: Attachment, context: Any) -> None:
        user_id = _user(context)
        async with self.db.session() as session:
            if attachment.thread_id:
                await self._conversation(session, attachment.thread_id, user_id)
            row = await session.get(AttachmentRow, attachment.id)
            if row is not None and row.user_id != user_id:
                raise NotFoundError(f"Attachment {attachment.id} not found")
            payload = attachment.model_dump(mode="json")
            if row is None:
                session.add(
                    AttachmentRow(id=attachment.id, user_id=user_id, thread_id=attachment.thread_id, payload=payload)
                )
            else:
                row.payload = payload
                row.thread_id = attachment.thread_id
            await session.commit()

    async def _attachment(self, session: AsyncSession, attachment_id: str, user_id: str) -> AttachmentRow:
        row = (
            await session.execute(
                select(AttachmentRow).where(AttachmentRow.id == attachment_id, AttachmentRow.user_id == user_id)
            )
        ).scalar_one_or_none()
        if row is None:
            raise NotFoundError(f"Attachment {attachment_id} not found")
        return row

    async def load_attachment(self, attachment_id: str, context: Any) -> Attachment:
        async with self.db.session() as session:
            row = await self._attachment(session, attachment_id, _user(context))
            return ATTACHMENT_ADAPTER.validate_python(row.payload)

    async def delete_attachment(self, attachment_id: str, context: Any) -> None:
        async with self.db.session() as session:
            row = await self._attachment(session, attachment_id, _user(context))
            await session.delete(row)
            await session.commit()
