"""The in-process event log's wait: woken by the next change, bounded by its timeout."""

from __future__ import annotations

import asyncio
import time

from sigmachat.agent.events import TextDelta
from sigmachat.runs.event_log import InMemoryEventLog


def _delta(seq: int) -> TextDelta:
    return TextDelta(run_id="r1", seq=seq, delta=f"t{seq}")


async def _log() -> InMemoryEventLog:
    log = InMemoryEventLog()
    await log.create("r1", owner_id="u1")
    await log.append("r1", _delta(1))
    return log


async def test_a_wait_returns_at_once_when_events_are_already_there():
    log = await _log()
    assert [e.seq for e in await log.wait("r1", 0, timeout=5)] == [1]


async def test_every_waiter_wakes_on_the_next_append():
    log = await _log()
    waiters = [asyncio.create_task(log.wait("r1", 1, timeout=5)) for _ in range(3)]
    await asyncio.sleep(0.01)
    assert not any(w.done() for w in waiters)
    await log.append("r1", _delta(2))
    results = await asyncio.wait_for(asyncio.gather(*waiters), 1)
    assert [[e.seq for e in r] for r in results] == [[2], [2], [2]]


async def test_a_wait_with_nothing_new_ends_empty_after_its_timeout():
    log = await _log()
    started = time.monotonic()
    assert await log.wait("r1", 1, timeout=0.05) == []
    assert time.monotonic() - started >= 0.04


async def test_the_end_of_the_run_wakes_its_waiters():
    log = await _log()
    waiter = asyncio.create_task(log.wait("r1", 1, timeout=5))
    await asyncio.sleep(0.01)
    await log.mark_finished("r1")
    assert await asyncio.wait_for(waiter, 1) == []
    assert (await log.info("r1")).finished


async def test_a_cancelled_waiter_does_not_disturb_the_others():
    log = await _log()
    gone = asyncio.create_task(log.wait("r1", 1, timeout=5))
    staying = asyncio.create_task(log.wait("r1", 1, timeout=5))
    await asyncio.sleep(0.01)
    gone.cancel()
    await asyncio.gather(gone, return_exceptions=True)
    await log.append("r1", _delta(2))
    assert [e.seq for e in await asyncio.wait_for(staying, 1)] == [2]
    # and the next change finds no waiter left over from either
    await log.append("r1", _delta(3))
    assert [e.seq for e in await log.wait("r1", 2, timeout=5)] == [3]


async def test_an_unknown_run_has_nothing_to_wait_for():
    assert await InMemoryEventLog().wait("nope", 0, timeout=5) == []
