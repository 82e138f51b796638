"""The ``remember`` tool: the model saves a fact the user asked it to remember.

The same service as the memories API (chat/memories.py), so the same limits apply; a full
list or an over-long fact comes back to the model as a tool error it can explain.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from sigmachat.chat import memories
from sigmachat.errors import AppError
from sigmachat.tools.envelope import ToolError, ToolValidationError
from sigmachat.tools.runtime import ToolRuntime
from sigmachat.tools.schema import ToolArgs
from sigmachat.tools.tool import Tool, ToolOutput


class RememberArgs(ToolArgs):
    # No maxLength in the schema (strict mode does not accept it everywhere): the service checks it.
    fact: str = Field(
        ...,
        description=(
            "The fact or preference to remember, as one short sentence "
            f"(at most {memories.MAX_MEMORY_CHARS} characters)."
        ),
    )


class MemoryFull(ToolError):
    type = "execution_error"


async def _remember(args: RememberArgs, rt: ToolRuntime) -> ToolOutput:
    try:
        async with rt.ctx.session_factory() as session:
            memory = await memories.save_memory(session, rt.ctx.user_id, args.fact, source="tool")
            total = await memories.count_memories(session, rt.ctx.user_id)
    except AppError as exc:
        if exc.status_code == 409:
            raise MemoryFull(exc.message) from exc
        raise ToolValidationError(exc.message) from exc
    return ToolOutput(
        data={"memory_id": memory.id, "saved": memory.content, "count": total, "max_allowed": memories.MAX_MEMORIES}
    )


def _summary(data: Any) -> str:
    return f"Remembered: {data['saved']}" if isinstance(data, dict) and data.get("saved") else "ok"


TOOLS = [
    Tool(
        "remember",
        'Save a fact or preference the user asked you to remember ("remember that ..."). '
        "Saved memories are shown to you in later conversations. Only call it when the user asks.",
        RememberArgs,
        _remember,
        _summary,
        read_only=False,
    ),
]
