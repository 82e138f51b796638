"""What both streaming protocols share on the wire: the event id and the response headers.

Every frame that ends an agent event carries ``id: <run_id>:<seq>``; a client that reconnects
with that id as ``Last-Event-ID`` (or ``?after=<seq>``) gets the frames after it.
"""

from __future__ import annotations

# No caching, and no buffering in nginx (``X-Accel-Buffering``): tokens must flow as they come.
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def stream_headers(run_id: str) -> dict[str, str]:
    """Headers of a run's stream: the common ones and ``X-Run-Id`` (for resume and cancel)."""
    return {**STREAM_HEADERS, "X-Run-Id": run_id}


def sse_id(run_id: str, seq: int) -> str:
    return f"{run_id}:{seq}"


def parse_last_event_id(value: str | None, run_id: str) -> int | None:
    """``<run_id>:<seq>`` → seq; ``None`` when absent or for another run."""
    if not value:
        return None
    rid, _, seq = value.rpartition(":")
    if rid != run_id or not seq.isdigit():
        return None
    return int(seq)
