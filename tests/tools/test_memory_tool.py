"""The remember tool saves through the memories service: scoped to the caller, bounded, idempotent."""

from __future__ import annotations

from sigmachat.chat import memories
from tests.conftest import HEDGE, HNW
from tests.tools.conftest import caller, context


async def test_remember_saves_a_memory_for_the_caller_only(services, registry):
    hedge, hnw = await caller(services, HEDGE), await caller(services, HNW)
    result = await registry.call("remember", {"fact": "  I rebalance   every quarter "}, context(services, hedge))
    assert result.ok and result.envelope["data"]["saved"] == "I rebalance every quarter"
    assert result.summary == "Remembered: I rebalance every quarter"
    async with services.db.session() as session:
        saved = await memories.list_memories(session, hedge.user_id)
        assert [(m.content, m.source) for m in saved] == [("I rebalance every quarter", "tool")]
        assert await memories.list_memories(session, hnw.user_id) == []
    again = await registry.call("remember", {"fact": "I rebalance every quarter"}, context(services, hedge))
    assert again.ok and again.envelope["data"]["count"] == 1  # the same fact is not stored twice


async def test_remember_reports_limits_as_tool_errors(services, registry):
    hedge = await caller(services, HEDGE)
    ctx = context(services, hedge)
    too_long = await registry.call("remember", {"fact": "x" * (memories.MAX_MEMORY_CHARS + 1)}, ctx)
    assert (
        too_long.envelope["error"]["type"] == "validation_error" and "at most" in too_long.envelope["error"]["message"]
    )
    async with services.db.session() as session:
        for i in range(memories.MAX_MEMORIES):
            await memories.save_memory(session, hedge.user_id, f"fact {i}")
    full = await registry.call("remember", {"fact": "one more"}, ctx)
    assert full.envelope["error"]["type"] == "execution_error" and "Delete some" in full.envelope["error"]["message"]
    async with services.db.session() as session:
        assert await memories.count_memories(session, hedge.user_id) == memories.MAX_MEMORIES
