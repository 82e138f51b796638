"""One history, two shapes: message rows ↔ ChatKit thread items.

The run manager writes a run's rows for both protocols: the question (with the exact ChatKit
item JSON in ``payload`` when it came through ChatKit) and the answer (``role``/``content``/
``tool_calls``). The answer is rendered here as ChatKit items (a workflow of its tool calls,
then the message), the same items the ChatKit stream sent. Other items stored through the
ChatKit store keep their exact JSON in ``payload``.

What a client needs to show an answer beyond its text (how its run ended, the offline flag,
the rating, each tool's name and outcome) rides on the message as entity annotations: the one
field of ChatKit's item types that carries integration data (``EntitySource.data``). ChatKit's
own clients list them under the answer's collapsed "Sources"; ours reads their data. The
stream's final message item and the stored one carry the same annotations (``answer_sources``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chatkit.types import (
    Annotation,
    AssistantMessageContent,
    AssistantMessageItem,
    CustomTask,
    DurationSummary,
    EntitySource,
    InferenceOptions,
    ThreadItem,
    UserMessageItem,
    UserMessageTagContent,
    UserMessageTextContent,
    Workflow,
    WorkflowItem,
)
from pydantic import TypeAdapter

from sigmachat.agent.events import ToolCallRecord
from sigmachat.agent.failures import kind
from sigmachat.db.models import Message, as_utc
from sigmachat.tools.registry import tool_title

# mypy flags this union argument on a warm cache but not on a cold one (a mypy caching quirk),
# so the ignore must not itself be reported as unused.
THREAD_ITEM_ADAPTER = TypeAdapter[ThreadItem](ThreadItem)  # type: ignore[arg-type, unused-ignore]  # a union, as in the SDK

# A legacy assistant row's tool calls appear as a workflow item with this id prefix + row id.
SYNTH_WORKFLOW_PREFIX = "wf_"

# The key of an answer annotation's data that says what the entity is: the answer's run or
# one of its tool calls. Values are strings throughout: ChatKit.js types entity data as
# Record<string, string>.
SOURCE_KIND = "sigmachat"


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


# ---- what an answer carries beyond its text ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class AnswerRun:
    """How an answer's run went, as the stream knows it at its end and as the answer row stores it."""

    run_id: str
    status: str  # the message status: complete | streaming | failed | cancelled | incomplete | interrupted
    offline: bool = False
    model: str | None = None
    engine: str | None = None
    code: str | None = None  # the failure code (a key of agent.failures.KINDS)
    message: str | None = None  # the failure as the user reads it
    retryable: bool | None = None
    feedback: str | None = None  # positive | negative

    @classmethod
    def of_row(cls, row: Message) -> AnswerRun:
        error = row.error if isinstance(row.error, dict) else {}
        code = error.get("code")
        return cls(
            run_id=row.run_id or row.id,
            status=row.status,
            offline=bool(row.offline),
            model=row.model,
            engine=row.engine,
            code=str(code) if code else None,
            message=str(error["message"]) if error.get("message") else None,
            retryable=bool(error["retryable"]) if "retryable" in error else None,
            feedback=row.feedback,
        )


def _flag(value: bool) -> str:
    return "true" if value else "false"


def run_source(run: AnswerRun) -> EntitySource:
    """The answer's run as an entity: where the answer came from and how it ended."""
    data = {SOURCE_KIND: "run", "run_id": run.run_id, "status": run.status, "offline": _flag(run.offline)}
    if run.model:
        data["model"] = run.model
    if run.engine:
        data["engine"] = run.engine
    if run.code:
        failure = kind(run.code)
        data["code"] = run.code
        data["error_type"] = failure.legacy_type
        data["retryable"] = _flag(failure.retryable if run.retryable is None else run.retryable)
    if run.feedback:
        data["feedback"] = run.feedback
    by = "the built-in offline model" if run.offline else (run.model or "the AI service")
    return EntitySource(
        id=run.run_id,
        title=f"Answered by {by}",
        # A failure's message is what a person reads under the title (ChatKit's sources list too).
        description=(run.message or kind(run.code).message) if run.code else None,
        icon="sparkle",
        data=data,
    )


def tool_source(call: ToolCallRecord) -> EntitySource:
    """One tool call of the answer as an entity: the tool, its title, whether it worked."""
    return EntitySource(
        id=call.call_id,
        title=tool_title(call.name),
        # What its workflow task shows under the title: the summary, or whether it worked.
        description=tool_task(call.name, done=True, ok=call.ok, summary=call.summary).content,
        icon="analytics",
        data={
            SOURCE_KIND: "tool",
            "name": call.name,
            "status": "ok" if call.ok else "error",
            "duration_ms": f"{round(call.duration_ms, 1)}",
        },
    )


def answer_sources(run: AnswerRun, tool_calls: Sequence[ToolCallRecord]) -> list[Annotation]:
    """The annotations of an answer message: its run, then each tool call in order."""
    sources = [run_source(run), *(tool_source(c) for c in tool_calls)]
    return [Annotation(source=source) for source in sources]


def row_tool_calls(row: Message) -> list[ToolCallRecord]:
    return [ToolCallRecord.model_validate(c) for c in (row.tool_calls or []) if isinstance(c, dict)]


def answer_item(row: Message, thread_id: str) -> AssistantMessageItem:
    """An answer row as its message, whatever its state, with what the client needs to show it.

    Also an answer without text (a run that failed or was stopped before it wrote anything, or
    one still calling its tools): its run's status, failure and id are what a client reloading
    the thread needs, to show the failure or to follow the run to its end.
    """
    annotations = answer_sources(AnswerRun.of_row(row), row_tool_calls(row))
    return AssistantMessageItem(
        id=row.id,
        thread_id=thread_id,
        created_at=as_utc(row.created_at),
        content=[AssistantMessageContent(text=row.content or "", annotations=annotations)],
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
    # A 'streaming' row is an answer being written (its text saved about once a second by the
    # run manager): shown as far as it got, so a client reloading mid-run sees it and its run.
    if row.role == "assistant":
        return answer_item(row, thread_id)
    return None
