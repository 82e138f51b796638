"""One history, two shapes: message rows ↔ ChatKit thread items.

The run manager writes a run's rows for both protocols: the question (with the exact ChatKit
item JSON in ``payload`` when it came through ChatKit) and the answer (``role``/``content``/
``tool_calls``). The answer is rendered here as ChatKit items (a workflow of its tool calls,
then the message), the same items the ChatKit stream sent. Other items stored through the
ChatKit store keep their exact JSON in ``payload``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageItem,
    CustomTask,
    DurationSummary,
    InferenceOptions,
    ThreadItem,
    UserMessageItem,
    UserMessageTagContent,
    UserMessageTextContent,
    Workflow,
    WorkflowItem,
)
from pydantic import TypeAdapter

from sigmachat.db.models import Message, as_utc
from sigmachat.tools.registry import tool_title

# mypy flags this union argument on a warm cache but not on a cold one (a mypy caching quirk),
# so the ignore must not itself be reported as unused.
THREAD_ITEM_ADAPTER = TypeAdapter[ThreadItem](ThreadItem)  # type: ignore[arg-type, unused-ignore]  # a union, as in the SDK

# A legacy assistant row's tool calls appear as a workflow item with this id prefix + row id.
SYNTH_WORKFLOW_PREFIX = "wf_"


def user_text(item: UserMessageItem) -> str:
    """The plain text of a user message, as the model and the legacy history see it."""
    parts: list[str] = []
    for part in item.content:
        if isinstance(part, UserMessageTextContent):
            parts.append(part.text)
        elif isinstance(part, UserMessageTagContent):
            parts.append(part.text)
    text = "".join(parts).strip()
    if item.quoted_text:
        quoted = "\n".join(f"> {line}" for line in item.quoted_text.strip().splitlines())
        text = f"{quoted}\n\n{text}" if text else quoted
    return text


def assistant_text(item: AssistantMessageItem) -> str:
    return "".join(part.text for part in item.content)


def columns_for(item: ThreadItem) -> dict[str, Any]:
    """Row columns derived from an item (the payload keeps the item itself)."""
    role: str | None = None
    content = ""
    if isinstance(item, UserMessageItem):
        role, content = "user", user_text(item)
    elif isinstance(item, AssistantMessageItem):
        role, content = "assistant", assistant_text(item)
    return {"item_type": item.type, "role": role, "content": content}


def dump_item(item: ThreadItem) -> dict[str, Any]:
    # mode="json" keeps datetimes as ISO strings (naive stays naive) for an exact round trip.
    return item.model_dump(mode="json")


def load_payload(payload: dict[str, Any]) -> ThreadItem:
    return THREAD_ITEM_ADAPTER.validate_python(payload)


def to_utc(value: dt.datetime) -> dt.datetime:
    """Ordering value for a column. ChatKit builds naive local times (datetime.now())."""
    if value.tzinfo is None:
        value = value.astimezone()  # interpret as the process's local time
    return value.astimezone(dt.UTC)


def synthesized_workflow_id(row_id: str, index: int = 0) -> str:
    """The id of an answer's workflow: the answer row's id (a later stretch of tools: ``_<n>``)."""
    return f"{SYNTH_WORKFLOW_PREFIX}{row_id}" if index == 0 else f"{SYNTH_WORKFLOW_PREFIX}{row_id}_{index}"


def tool_task(name: str, *, done: bool, ok: bool = True, summary: str = "") -> CustomTask:
    """One tool step as a ChatKit workflow task, the same live and when the thread is loaded."""
    content = (summary or ("Done" if ok else "Could not be computed")) if done else None
    return CustomTask(
        title=tool_title(name), icon="analytics", status_indicator="complete" if done else "loading", content=content
    )


def tools_duration(durations_ms: list[float]) -> DurationSummary:
    """A workflow's summary: the time its tools took, in whole seconds."""
    return DurationSummary(duration=round(sum(durations_ms) / 1000))


def answer_workflow(row: Message, thread_id: str) -> WorkflowItem | None:
    """The tool calls stored on an answer row, as one completed ChatKit workflow."""
    calls = row.tool_calls or []
    if not calls:
        return None
    tasks = [
        tool_task(str(c.get("name", "")), done=True, ok=bool(c.get("ok", True)), summary=str(c.get("summary") or ""))
        for c in calls
    ]
    summary = tools_duration([float(c.get("duration_ms") or 0.0) for c in calls])
    return WorkflowItem(
        id=synthesized_workflow_id(row.id),
        thread_id=thread_id,
        created_at=as_utc(row.created_at) - dt.timedelta(microseconds=1),  # as streamed: just before the answer
        workflow=Workflow(type="custom", tasks=list(tasks), summary=summary, expanded=False),
    )


def answer_or_question(row: Message, thread_id: str) -> ThreadItem | None:
    """A user or assistant row without a stored item, as a ChatKit item (None: nothing to show)."""
    created = as_utc(row.created_at)
    if row.role == "user":
        return UserMessageItem(
            id=row.id,
            thread_id=thread_id,
            created_at=created,
            content=[UserMessageTextContent(text=row.content or "")],
            attachments=[],
            inference_options=InferenceOptions(),
        )
    # A 'streaming' row with text is an answer being written (saved about once a second by the
    # run manager): shown as far as it got, so a client reloading mid-run sees it.
    if row.role == "assistant" and row.content:
        return AssistantMessageItem(
            id=row.id,
            thread_id=thread_id,
            created_at=created,
            content=[AssistantMessageContent(text=row.content, annotations=[])],
        )
    return None
