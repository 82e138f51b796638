"""What instances must agree on while a run lives: who runs it, and which runs are busy.

The run manager asks its coordinator to *admit* a run (one active run per conversation, the
per-user cap on concurrent runs), to keep the run's *lease* alive while it runs, to *release*
it at the end, to pass a *cancel* to whichever instance runs it, and which runs have an owner
that stopped renewing (*dead runs*, to be closed by a living instance).

``LocalCoordinator`` is the embedded single-process default (today's behaviour);
``RedisCoordinator`` shares all of it through Redis so that any instance can serve any request.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Protocol

from redis.asyncio import Redis

from sigmachat.logging import get_logger

log = get_logger("sigmachat.runs.coordination")


def new_instance_id() -> str:
    """Unique per process start: host, pid and a random tail (a restarted pid is a new owner)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


CANCEL_REQUEST_TTL_S = 60  # a cancel asked on another instance is kept this long for its owner to find


@dataclass(frozen=True)
class RunClaim:
    run_id: str
    user_id: str
    conversation_id: str
    assistant_message_id: str
    instance_id: str


@dataclass(frozen=True)
class Admission:
    ok: bool
    active_run_id: str | None = None  # the run already writing in the conversation
    user_active: int = 0  # the user's concurrent runs, when the cap refused


class RunCoordinator(Protocol):
    instance_id: str
    shared: bool  # True when several instances see the same state

    async def active_run_for(self, conversation_id: str) -> str | None: ...
    async def active_runs_for(self, conversation_ids: list[str]) -> list[str | None]: ...
    async def active_count_for_user(self, user_id: str) -> int: ...
    async def admit(self, claim: RunClaim, user_cap: int) -> Admission: ...
    async def release(self, claim: RunClaim) -> None: ...
    async def dead_runs(self) -> list[RunClaim]: ...
    async def live_runs(self, run_ids: list[str]) -> set[str]: ...
    async def claim_takeover(self, run_id: str, *, registered: bool = True) -> bool: ...
    async def publish_cancel(self, run_id: str) -> None: ...
    async def cancel_requests(self, run_ids: list[str]) -> list[str]: ...
    def start(self, on_cancel: Callable[[str], Awaitable[None]]) -> None: ...
    def keep_leases(self, run_ids: Callable[[], list[str]], on_lost: Callable[[list[str]], None]) -> None: ...
    async def aclose(self) -> None: ...


class LocalCoordinator:
    """One process: the facts live in this process's memory."""

    shared = False

    def __init__(self) -> None:
        self.instance_id = new_instance_id()
        self._claims: dict[str, RunClaim] = {}
        self._by_conversation: dict[str, str] = {}

    async def active_run_for(self, conversation_id: str) -> str | None:
        return self._by_conversation.get(conversation_id)

    async def active_runs_for(self, conversation_ids: list[str]) -> list[str | None]:
        return [self._by_conversation.get(c) for c in conversation_ids]

    async def active_count_for_user(self, user_id: str) -> int:
        return sum(1 for c in self._claims.values() if c.user_id == user_id)

    async def admit(self, claim: RunClaim, user_cap: int) -> Admission:
        if active := self._by_conversation.get(claim.conversation_id):
            return Admission(False, active_run_id=active)
        count = await self.active_count_for_user(claim.user_id)
        if user_cap and count >= user_cap:
            return Admission(False, user_active=count)
        self._claims[claim.run_id] = claim
        self._by_conversation[claim.conversation_id] = claim.run_id
        return Admission(True)

    async def release(self, claim: RunClaim) -> None:
        self._claims.pop(claim.run_id, None)
        if self._by_conversation.get(claim.conversation_id) == claim.run_id:
            del self._by_conversation[claim.conversation_id]

    async def dead_runs(self) -> list[RunClaim]:
        return []  # one process: its runs die with it, and start-up recovery closes them

    async def live_runs(self, run_ids: list[str]) -> set[str]:
        return set()  # at start-up nothing of an earlier process is alive

    async def claim_takeover(self, run_id: str, *, registered: bool = True) -> bool:
        return True

    async def publish_cancel(self, run_id: str) -> None:
        return None

    async def cancel_requests(self, run_ids: list[str]) -> list[str]:
        return []  # one process: a cancel reaches its run directly

    def start(self, on_cancel: Callable[[str], Awaitable[None]]) -> None:
        return None

    def keep_leases(self, run_ids: Callable[[], list[str]], on_lost: Callable[[list[str]], None]) -> None:
        return None

    async def aclose(self) -> None:
        return None


# KEYS: conversation lock, user's run set, active hash, lease. ARGV: run_id, claim, cap, lease ms, instance.
_ADMIT = """
local current = redis.call('GET', KEYS[1])
if current then return {'conflict', current} end
local count = redis.call('SCARD', KEYS[2])
if tonumber(ARGV[3]) > 0 and count >= tonumber(ARGV[3]) then return {'cap', tostring(count)} end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
redis.call('SET', KEYS[4], ARGV[5], 'PX', ARGV[4])
return {'ok', ARGV[1]}
"""

# KEYS: conversation lock, user's run set, active hash, lease. ARGV: run_id.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('DEL', KEYS[4])
return 1
"""

# KEYS: lease, active hash. ARGV: run_id, takeover value, ms, "1" if the run must still be registered.
# Atomic: between a sweep's look at the claims and this, the owner may have finished and released
# its run; a released run is not taken over (that was a false "run_taken_over" of a finished run).
_TAKEOVER = """
if ARGV[4] == '1' and redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return 0 end
if redis.call('SET', KEYS[1], ARGV[2], 'NX', 'PX', ARGV[3]) then return 1 end
return 0
"""

# KEYS: lease. ARGV: instance, ms. Renew only a lease we still hold (it may have been taken over).
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


class RedisCoordinator:
    """Admission, leases and cancel signals shared by every instance through Redis.

    Keys (``<prefix>``): ``conv:<id>:run`` the conversation's active run; ``user:<id>:runs``
    the user's active runs; ``runs:active`` every active run's claim; ``run:<id>:lease`` the
    owner instance, with a TTL renewed while the run lives. A lease that expired means the owner
    is gone; a living instance takes the run over (``claim_takeover``) and closes it.
    Admission and release are single Lua scripts, so two instances cannot both admit a run
    into one conversation.
    """

    shared = True

    def __init__(self, redis: Redis, *, lease_ttl_s: float, prefix: str = "sigmachat:", url: str | None = None) -> None:
        self.redis = redis
        self.url = url  # for the lease keeper's own (blocking) client
        self._keeper: threading.Thread | None = None
        self._keeper_stop = threading.Event()
        self.instance_id = new_instance_id()
        self.lease_ms = max(1000, int(lease_ttl_s * 1000))
        self.prefix = prefix
        self.channel = f"{prefix}cancel"
        self._admit = redis.register_script(_ADMIT)
        self._release = redis.register_script(_RELEASE)
        self._takeover = redis.register_script(_TAKEOVER)
        self._listener: asyncio.Task[None] | None = None

    def _conv(self, conversation_id: str) -> str:
        return f"{self.prefix}conv:{conversation_id}:run"

    def _user(self, user_id: str) -> str:
        return f"{self.prefix}user:{user_id}:runs"

    def _lease(self, run_id: str) -> str:
        return f"{self.prefix}run:{run_id}:lease"

    def _cancel(self, run_id: str) -> str:
        return f"{self.prefix}run:{run_id}:cancel"

    @property
    def _active(self) -> str:
        return f"{self.prefix}runs:active"

    async def active_run_for(self, conversation_id: str) -> str | None:
        return (await self.active_runs_for([conversation_id]))[0]

    async def active_runs_for(self, conversation_ids: list[str]) -> list[str | None]:
        # One MGET for a whole page of conversations instead of a round trip each.
        if not conversation_ids:
            return []
        values = await self.redis.mget([self._conv(c) for c in conversation_ids])
        return [(v.decode() if isinstance(v, bytes) else v) or None for v in values]

    async def active_count_for_user(self, user_id: str) -> int:
        return int(await self.redis.scard(self._user(user_id)))

    async def admit(self, claim: RunClaim, user_cap: int) -> Admission:
        keys = [self._conv(claim.conversation_id), self._user(claim.user_id), self._active, self._lease(claim.run_id)]
        args: list[str | int] = [claim.run_id, json.dumps(asdict(claim)), user_cap, self.lease_ms, self.instance_id]
        verdict, value = (v.decode() if isinstance(v, bytes) else v for v in await self._admit(keys=keys, args=args))
        if verdict == "conflict":
            return Admission(False, active_run_id=value)
        if verdict == "cap":
            return Admission(False, user_active=int(value))
        return Admission(True)

    async def release(self, claim: RunClaim) -> None:
        keys = [self._conv(claim.conversation_id), self._user(claim.user_id), self._active, self._lease(claim.run_id)]
        await self._release(keys=keys, args=[claim.run_id])

    async def dead_runs(self) -> list[RunClaim]:
        claims = [RunClaim(**json.loads(raw)) for raw in (await self.redis.hgetall(self._active)).values()]
        if not claims:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for claim in claims:
                pipe.exists(self._lease(claim.run_id))
            alive = await pipe.execute()
        return [c for c, a in zip(claims, alive, strict=True) if not a]

    async def live_runs(self, run_ids: list[str]) -> set[str]:
        if not run_ids:
            return set()
        async with self.redis.pipeline(transaction=False) as pipe:
            for run_id in run_ids:
                pipe.exists(self._lease(run_id))
            alive = await pipe.execute()
        return {r for r, a in zip(run_ids, alive, strict=True) if a}

    async def claim_takeover(self, run_id: str, *, registered: bool = True) -> bool:
        """Only one living instance closes a dead run: the one that sets the lease first.

        ``registered``: only while the run's claim is still active (a sweep's find); start-up
        recovery passes False for rows whose claim may be gone (Redis lost its data)."""
        keys = [self._lease(run_id), self._active]
        args: list[str | int] = [run_id, f"takeover:{self.instance_id}", 60_000, "1" if registered else "0"]
        return bool(await self._takeover(keys=keys, args=args))

    async def publish_cancel(self, run_id: str) -> None:
        # Kept as well as announced: pub/sub drops a message its listener misses (reconnecting,
        # or not yet subscribed), and the cancel was then lost while the client was told it
        # worked (the cluster suite, under load). The owner's lease loop finds the key.
        await self.redis.set(self._cancel(run_id), "1", ex=CANCEL_REQUEST_TTL_S)
        await self.redis.publish(self.channel, run_id)

    async def cancel_requests(self, run_ids: list[str]) -> list[str]:
        """The runs among these whose cancel was asked on any instance (in the last minute)."""
        if not run_ids:
            return []
        found = await self.redis.mget([self._cancel(r) for r in run_ids])
        return [run_id for run_id, value in zip(run_ids, found, strict=True) if value is not None]

    def start(self, on_cancel: Callable[[str], Awaitable[None]]) -> None:
        """Listen for cancel requests that landed on other instances."""

        async def listen() -> None:
            while True:
                try:
                    async with self.redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                        await pubsub.subscribe(self.channel)
                        async for message in pubsub.listen():
                            if message.get("type") == "message":
                                await on_cancel(message["data"].decode())
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # Redis went away: retry; cancels are lost meanwhile
                    log.warning("cancel_listener_error", error=type(exc).__name__)
                    await asyncio.sleep(1.0)

        self._listener = asyncio.get_running_loop().create_task(listen(), name="run-cancel-listener")

    def keep_leases(self, run_ids: Callable[[], list[str]], on_lost: Callable[[list[str]], None]) -> None:
        """Renew this process's leases from a thread of its own, every third of the lease.

        A lease says "this process is alive", not "its event loop is idle": an instance busy
        streaming a hundred answers can lag its event loop for seconds (found by the cluster
        soak: a saturated owner lost live runs to a survivor). A thread with a blocking client
        keeps renewing through that; a process that is gone stops renewing at once.
        ``on_lost`` is called (from the thread) with runs whose lease another instance holds.
        """
        import redis as redis_sync

        if self.url is None:
            raise RuntimeError("keep_leases needs the Redis URL")
        client = redis_sync.Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=2)
        renew = client.register_script(_RENEW)
        period = self.lease_ms / 3000

        def loop() -> None:
            while not self._keeper_stop.wait(period):
                try:
                    ids = run_ids()
                    if not ids:
                        continue
                    with client.pipeline(transaction=False) as pipe:
                        for run_id in ids:
                            renew(keys=[self._lease(run_id)], args=[self.instance_id, self.lease_ms], client=pipe)
                        results = pipe.execute()
                    lost = [r for r, ok in zip(ids, results, strict=True) if not ok]
                    if lost:
                        on_lost(lost)
                except Exception as exc:  # Redis unreachable: try again next period
                    log.warning("run_lease_renew_failed", error=type(exc).__name__)
            client.close()

        self._keeper = threading.Thread(target=loop, name="run-lease-keeper", daemon=True)
        self._keeper.start()

    async def aclose(self) -> None:
        self._keeper_stop.set()
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
