"""The run event log on Redis Streams: every instance can replay and follow every live run.

Layout per run (``<prefix>run:<run_id>:…``):

- ``:log`` a stream; the entry id of event ``seq`` is ``<seq>-0``, so "events after seq N"
  is ``XREAD … N-0`` and the SSE ``id: <run_id>:<seq>`` contract maps one to one;
- ``:meta`` a hash: the user who owns the run, the run's metadata (JSON), ``last_seq`` and
  ``finished``.

Appends go through one Lua script that refuses a sequence gap and an append after the
run finished, atomically: the resume contract relies on a gap-free sequence, and a run taken
over from a dead instance must not receive a late event from it. Finished runs expire
``ttl_s`` after their end (Redis ``EXPIRE``); while a run lives its keys carry a long safety
TTL so that nothing outlives a lost cluster.
"""

from __future__ import annotations

import json
from typing import cast

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from sigmachat.agent.events import AGENT_EVENT_ADAPTER, AgentEvent
from sigmachat.runs.event_log import JsonObject, RunLogInfo

# What XRANGE returns, and XREAD per stream: (entry id, {field: value}); the client does not
# decode responses, so both are bytes.
StreamEntries = list[tuple[bytes, dict[bytes, bytes]]]

# KEYS: log, meta. ARGV: seq, event json, safety ttl (s).
_APPEND = """
local last = redis.call('HGET', KEYS[2], 'last_seq')
if not last then return redis.error_reply('SIGMA_NO_RUN') end
if redis.call('HGET', KEYS[2], 'finished') == '1' then return redis.error_reply('SIGMA_FINISHED') end
if tonumber(ARGV[1]) ~= tonumber(last) + 1 then return redis.error_reply('SIGMA_GAP ' .. last) end
redis.call('XADD', KEYS[1], ARGV[1] .. '-0', 'e', ARGV[2])
redis.call('HSET', KEYS[2], 'last_seq', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""

# KEYS: log, meta. ARGV: ttl after the end (s). Idempotent.
_FINISH = """
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
redis.call('HSET', KEYS[2], 'finished', '1')
redis.call('EXPIRE', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""

LIVE_SAFETY_TTL_S = 24 * 3600  # a live run's keys; replaced by ttl_s once it finishes


class RunLogClosed(RuntimeError):
    """An append to a run that has finished (for example, taken over after its owner died)."""


class RedisEventLog:
    """``EventLog`` on Redis Streams (see the module docstring for the layout)."""

    def __init__(self, redis: Redis, *, ttl_s: float = 600.0, prefix: str = "sigmachat:") -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self.prefix = prefix
        self._append = redis.register_script(_APPEND)
        self._finish = redis.register_script(_FINISH)

    def _keys(self, run_id: str) -> tuple[str, str]:
        base = f"{self.prefix}run:{run_id}"
        return f"{base}:log", f"{base}:meta"

    async def create(self, run_id: str, *, owner_id: str, meta: JsonObject | None = None) -> None:
        _, meta_key = self._keys(run_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                meta_key, mapping={"owner_id": owner_id, "meta": json.dumps(meta or {}), "last_seq": 0, "finished": 0}
            )
            pipe.expire(meta_key, LIVE_SAFETY_TTL_S)
            await pipe.execute()

    async def append(self, run_id: str, event: AgentEvent) -> None:
        log_key, meta_key = self._keys(run_id)
        try:
            await self._append(keys=[log_key, meta_key], args=[event.seq, event.model_dump_json(), LIVE_SAFETY_TTL_S])
        except ResponseError as exc:
            text = str(exc)
            if "SIGMA_FINISHED" in text:
                raise RunLogClosed(f"run {run_id} has finished; event {event.seq} refused") from None
            if "SIGMA_GAP" in text:
                # The sequence is the resume contract: a gap would silently lose events.
                raise ValueError(f"run {run_id}: event seq {event.seq} appended after {text.split()[-1]}") from None
            if "SIGMA_NO_RUN" in text:
                raise KeyError(run_id) from None
            raise

    @staticmethod
    def _decode(entries: StreamEntries | None) -> list[AgentEvent]:
        return [AGENT_EVENT_ADAPTER.validate_json(fields[b"e"]) for _id, fields in entries or []]

    async def read(self, run_id: str, after_seq: int = 0) -> list[AgentEvent]:
        log_key, _ = self._keys(run_id)
        # The stubs type XRANGE's answer loosely; it is a list of (id, fields) entries.
        return self._decode(cast(StreamEntries, await self.redis.xrange(log_key, min=f"({max(after_seq, 0)}-0")))

    async def wait(self, run_id: str, after_seq: int, timeout: float) -> list[AgentEvent]:
        """Events after ``after_seq``; blocks up to ``timeout`` s (``XREAD BLOCK``) when there are none yet.

        One round trip per wake-up: a follower is blocked in Redis, not polling. A run that has
        already ended returns its terminal event at once (it is in the stream), so subscribers
        stop there without waiting.
        """
        log_key, _ = self._keys(run_id)
        found = await self.redis.xread({log_key: f"{max(after_seq, 0)}-0"}, block=max(1, int(timeout * 1000)))
        # The client speaks RESP2, where XREAD answers a list of [stream, entries] pairs (the stubs also allow
        # RESP3's dict).
        return self._decode(cast(list[tuple[bytes, StreamEntries]], found)[0][1]) if found else []

    async def mark_finished(self, run_id: str) -> None:
        log_key, meta_key = self._keys(run_id)
        await self._finish(keys=[log_key, meta_key], args=[max(1, int(self.ttl_s))])

    async def info(self, run_id: str) -> RunLogInfo | None:
        _, meta_key = self._keys(run_id)
        raw = await self.redis.hgetall(meta_key)
        if not raw:
            return None
        return RunLogInfo(
            run_id=run_id,
            owner_id=_text(raw[b"owner_id"]),
            finished=raw.get(b"finished") == b"1",
            last_seq=int(raw.get(b"last_seq", 0)),
            meta=json.loads(raw.get(b"meta", b"{}")),
        )

    async def expire(self, now: float | None = None) -> int:
        return 0  # Redis expires finished runs itself (EXPIRE in mark_finished)


def _text(value: bytes | str) -> str:
    """The client does not decode responses, but the stubs allow either type."""
    return value.decode() if isinstance(value, bytes) else value
