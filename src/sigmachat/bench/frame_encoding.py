"""Microbenchmark of the legacy SSE encoder: µs per frame, for each kind of agent event.

The per-token frame is the hot path (one per text delta of every streamed answer); the
others are a handful per run. Run it on an idle machine and compare before and after a
change to ``protocols/legacy_sse.py``::

    python -m sigmachat.bench.frame_encoding [--number 20000] [--repeat 7]

Each figure is the best of ``repeat`` rounds of ``number`` encodes (the minimum is the
least disturbed by other processes on a shared machine).
"""

from __future__ import annotations

import argparse
import functools
import timeit

from sigmachat.agent.events import (
    AgentEvent,
    EventFactory,
    Info,
    RunFailed,
    RunFinished,
    RunStarted,
    TextDelta,
    ToolCallRecord,
    ToolFinished,
    ToolStarted,
    Usage,
)
from sigmachat.protocols import legacy_sse


def sample_events() -> dict[str, AgentEvent]:
    """One realistic event of each kind (the token carries a typical 4-character delta)."""
    ev = EventFactory("run_0123456789abcdef0123456789abcdef")
    record = ToolCallRecord(call_id="call_1", name="get_positions", summary="39 positions")
    return {
        "start": ev.make(RunStarted, conversation_id="conv_1", model="gpt-4.1-mini", engine="responses"),
        "token": ev.make(TextDelta, delta=" the"),
        "tool_call": ev.make(ToolStarted, call_id="call_1", name="get_positions", arguments={"limit": 50}),
        "tool_result": ev.make(
            ToolFinished,
            call_id="call_1",
            name="get_positions",
            envelope={"ok": True, "data": {"positions": [{"symbol": "NVDA", "weight": 0.1834}] * 5}},
            duration_ms=12.345,
            summary="39 positions",
        ),
        "info": ev.make(Info, kind="retry_scheduled", attempt=2, delay_ms=800, reason="rate_limited"),
        "done": ev.make(
            RunFinished,
            final_text="Your largest position is NVDA. " * 20,
            usage=Usage(input_tokens=1200, output_tokens=240),
            ttfb_ms=412.3,
            duration_ms=2310.7,
            tool_calls=[record],
            model="gpt-4.1-mini",
        ),
        "error": ev.make(RunFailed, code="network_error", message="The connection dropped.", retryable=True),
    }


def measure(number: int, repeat: int) -> dict[str, float]:
    """µs per frame, best of ``repeat`` rounds, per frame kind."""
    out: dict[str, float] = {}
    for name, event in sample_events().items():
        timer = timeit.Timer(functools.partial(legacy_sse.encode, event, portfolio_id="pf_1"))
        out[name] = min(timer.repeat(repeat=repeat, number=number)) / number * 1e6
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--number", type=int, default=20_000, help="encodes per round")
    parser.add_argument("--repeat", type=int, default=7, help="rounds (the best one counts)")
    args = parser.parse_args(argv)
    for name, us in measure(args.number, args.repeat).items():
        print(f"{name:12s} {us:7.2f} µs/frame")


if __name__ == "__main__":
    main()
