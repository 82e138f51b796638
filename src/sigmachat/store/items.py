"""One history, two shapes: message rows ↔ ChatKit thread items.

A row written through ChatKit keeps the exact item JSON in ``payload`` and, for messages,
also ``role``/``content`` so the Responses path reads it like its own. A row written by the
Responses path has no payload: it is rendered here from ``role``/``content``/``tool_calls``
(a user message, or an assistant message preceded by a workflow of its tool calls).
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

THREAD_ITEM_ADAPTER: TypeAdapter[ThreadItem] = TypeAdapter(ThreadItem)

# A legacy assistant row's tool calls appear as a workflow item with this id prefix + row id.
SYNTH_WORKFLOW_PREFIX = "wf_"

# User-facing titles of tool steps (ChatKit workflow tasks). Unknown tools get a generic title.
TOOL_TITLES: dict[str, str] = {
    "list_user_portfolios": "Finding your portfolios",
    "get_portfolio_complete": "Loading the portfolio",
    "get_positions_details": "Looking up positions",
    "get_portfolio_data_quality": "Checking data quality",
    "get_prices_historical": "Fetching price history",
    "get_current_quotes": "Fetching quotes",
    "get_factor_etf_prices": "Fetching factor ETF prices",
    "get_analytics_overview": "Computing portfolio analytics",
    "get_factor_exposures": "Estimating factor exposures",
    "get_sector_exposure": "Breaking down sectors",
    "get_correlation_matrix": "Computing correlations",
    "get_stress_test_results": "Running stress scenarios",
    "get_concentration_metrics": "Checking concentration",
    "get_volatility_analysis": "Measuring volatility",
    "get_company_profile": "Reading the company profile",
    "get_daily_movers": "Finding the day's movers",
    "get_market_overview": "Checking the market",
    "get_benchmark_comparison": "Comparing with the S&P 500",
    "remember": "Saving a memory",
}


def tool_title(name: str) -> str:
    """A short, user-facing title for a tool step."""
    if name in TOOL_TITLES:
        return TOOL_TITLES[name]
    words = name.removeprefix("get_").replace("_", " ").strip()
    return f"Looking up {words}" if words else "Running an analysis step"


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


def synthesized_workflow_id(row_id: str) -> str:
    return f"{SYNTH_WORKFLOW_PREFIX}{row_id}"


def legacy_workflow(row: Message, thread_id: str) -> WorkflowItem | None:
    """The tool calls of a Responses-path assistant row, as a completed ChatKit workflow."""
    calls = row.tool_calls or []
    if not calls:
        return None
    tasks = []
    total_ms = 0.0
    for call in calls:
        total_ms += float(call.get("duration_ms") or 0.0)
        tasks.append(
            CustomTask(
                title=tool_title(str(call.get("name", ""))),
                content=(call.get("summary") or None),
                status_indicator="complete",
            )
        )
    return WorkflowItem(
        id=synthesized_workflow_id(row.id),
        thread_id=thread_id,
        created_at=as_utc(row.created_at),
        workflow=Workflow(type="custom", tasks=tasks, summary=DurationSummary(duration=round(total_ms / 1000)), expanded=False),
    )


def legacy_message(row: Message, thread_id: str) -> ThreadItem | None:
    """A Responses-path user or assistant row as a ChatKit item (None: nothing to show)."""
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
