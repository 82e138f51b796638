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
from collections.abc import Iterable
from typing import Any, Protocol

from chatkit.store import NotFoundError, Store
from chatkit.types import Attachment, Page, ThreadItem, ThreadMetadata
from pydantic import TypeAdapter
from sqlalchemy import and_, delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from sigmachat.chat import feedback
from sigmachat.chat.conversations import default_portfolio_id
from sigmachat.db.models import Attachment as AttachmentRow
from sigmachat.db.models import Conversation, Message, as_utc, utcnow
from sigmachat.db.session import Database
from sigmachat.store import items as conv

ATTACHMENT_ADAPTER: TypeAdapter[Attachment] = TypeAdapter(Attachment)

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


class SqlChatKitStore(Store[Any]):
    """SQLAlchemy implementation of ``chatkit.store.Store`` (SQLite and PostgreSQL)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # ---- threads ---------------------------------------------------------------------------

    async def _conversation(self, session: AsyncSession, thread_id: str, user_id: str) -> Conversation:
        conv_row = (
            await session.execute(
                select(Conversation).where(Conversation.id == thread_id, Conversation.user_id == user_id)
            )
        ).scalar_one_or_none()
        if conv_row is None:
            raise NotFoundError(f"Thread {thread_id} not found")
        return conv_row

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
        """Upsert. Reads the metadata fields explicitly, so a full ``Thread`` keeps its metadata too."""
        user_id = _user(context)
        extra = {
            "created_at": thread.model_dump(mode="json", include={"created_at"})["created_at"],
            "allowed_image_domains": thread.allowed_image_domains,
        }
        values = {
            "title": thread.title,
            "status": thread.status.model_dump(mode="json"),
            "metadata_": dict(thread.metadata or {}),
            "chatkit": extra,
            "created_at": conv.to_utc(thread.created_at),
            "updated_at": utcnow(),
        }
        async with self.db.session() as session:
            row = await session.get(Conversation, thread.id)
            if row is not None and row.user_id != user_id:
                raise NotFoundError(f"Thread {thread.id} not found")
            if row is None:
                portfolio_id = getattr(context, "portfolio_id", None) or await default_portfolio_id(session, user_id)
                session.add(Conversation(id=thread.id, user_id=user_id, portfolio_id=portfolio_id, **values))
            else:
                for name, value in values.items():
                    setattr(row, name, value)
            await session.commit()

    async def load_threads(self, limit: int, after: str | None, order: str, context: Any) -> Page[ThreadMetadata]:
        user_id = _user(context)
        desc = order == "desc"
        async with self.db.session() as session:
            stmt = select(Conversation).where(Conversation.user_id == user_id)
            if after:
                cursor = (
                    await session.execute(
                        select(Conversation.created_at, Conversation.id).where(
                            Conversation.id == after, Conversation.user_id == user_id
                        )
                    )
                ).one_or_none()
                if cursor is None:
                    raise NotFoundError(f"Thread {after} not found")
                c, cid = cursor
                if desc:
                    stmt = stmt.where(or_(Conversation.created_at < c, and_(Conversation.created_at == c, Conversation.id < cid)))
                else:
                    stmt = stmt.where(or_(Conversation.created_at > c, and_(Conversation.created_at == c, Conversation.id > cid)))
            if desc:
                stmt = stmt.order_by(Conversation.created_at.desc(), Conversation.id.desc())
            else:
                stmt = stmt.order_by(Conversation.created_at.asc(), Conversation.id.asc())
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

    async def _runs_with_workflows(self, session: AsyncSession, thread_id: str, rows: Iterable[Message]) -> set[str]:
        """Runs whose tool steps were stored as real ChatKit workflow items (no synthesis then)."""
        run_ids = {r.run_id for r in rows if r.role == "assistant" and r.tool_calls and r.run_id}
        if not run_ids:
            return set()
        found = await session.execute(
            select(Message.run_id).where(
                Message.conversation_id == thread_id,
                Message.item_type == "workflow",
                Message.run_id.in_(run_ids),
            )
        )
        return {rid for rid in found.scalars() if rid}

    @staticmethod
    def _expand(row: Message, thread_id: str, covered_runs: set[str]) -> list[tuple[Key, ThreadItem]]:
        """The items one row stands for, in ascending order."""
        created = as_utc(row.created_at)
        out: list[tuple[Key, ThreadItem]] = []
        if row.role == "assistant" and row.tool_calls and not (row.run_id and row.run_id in covered_runs):
            workflow = conv.legacy_workflow(row, thread_id)
            if workflow is not None:
                out.append(((created, row.id, 0), workflow))
        item = conv.load_payload(row.payload) if row.payload is not None else conv.legacy_message(row, thread_id)
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
        """The legacy assistant row a synthesized workflow id stands for, if it still renders one."""
        if not item_id.startswith(conv.SYNTH_WORKFLOW_PREFIX):
            return None
        row = await self._row(session, thread_id, user_id, item_id[len(conv.SYNTH_WORKFLOW_PREFIX) :])
        if row is None or row.role != "assistant" or not row.tool_calls:
            return None
        if row.run_id and row.run_id in await self._runs_with_workflows(session, thread_id, [row]):
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
                if bound is not None:
                    c, rid = bound
                    if desc:
                        id_cond = Message.id <= rid if inclusive else Message.id < rid
                        stmt = stmt.where(or_(Message.created_at < c, and_(Message.created_at == c, id_cond)))
                    else:
                        id_cond = Message.id >= rid if inclusive else Message.id > rid
                        stmt = stmt.where(or_(Message.created_at > c, and_(Message.created_at == c, id_cond)))
                if desc:
                    stmt = stmt.order_by(Message.created_at.desc(), Message.id.desc())
                else:
                    stmt = stmt.order_by(Message.created_at.asc(), Message.id.asc())
                rows = list((await session.execute(stmt.limit(batch))).scalars())
                covered = await self._runs_with_workflows(session, thread_id, rows)
                for row in rows:
                    expanded = self._expand(row, thread_id, covered)
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
                covered = await self._runs_with_workflows(session, thread_id, [row])
                for _key, item in self._expand(row, thread_id, covered):
                    if item.id == item_id:
                        return item
        raise NotFoundError(f"Item {item_id} not found")

    async def add_thread_item(self, thread_id: str, item: ThreadItem, context: Any) -> None:
        """Insert, or update when the id exists (the SDK may add an item the run already created)."""
        await self._upsert(thread_id, item, context)

    async def save_item(self, thread_id: str, item: ThreadItem, context: Any) -> None:
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
                if row is None:
                    owner = await self._synth_owner(session, thread_id, user_id, item.id)
                    if owner is not None:
                        # Saving a rendered legacy workflow makes it a real row; link it to the
                        # run so the rendering stops, and keep it just before its message.
                        owner.run_id = owner.run_id or f"legacy_{owner.id}"
                        created = as_utc(owner.created_at) - dt.timedelta(microseconds=1)
                    session.add(
                        Message(
                            id=item.id,
                            conversation_id=thread_id,
                            user_id=user_id,
                            payload=payload,
                            created_at=created,
                            status="complete",
                            run_id=(owner.run_id if owner is not None else getattr(context, "run_id", None)),
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
                session.add(AttachmentRow(id=attachment.id, user_id=user_id, thread_id=attachment.thread_id, payload=payload))
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

