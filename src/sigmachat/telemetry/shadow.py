"""Shadow comparison: a sampled share of finished turns answered again by the other engine.

After a live run finishes, :meth:`ShadowRunner.maybe_shadow` may start the other engine in the
background on the same input (same text, history, portfolio and model). Its events go only
to the run recorder: the shadow run is a ``runs`` row with ``shadow = true`` and
``pair_id`` = the live run id. Nothing is written to the conversation, to the event log or
to any stream: the user never sees it. The analytics tools are read-only, so running them
twice changes nothing. Shadow runs are skipped (not queued) beyond ``shadow_max_concurrent``
and stopped after ``shadow_timeout_s``; their cost is the operator's, not the user's budget.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import uuid
from collections.abc import Callable, Mapping

import structlog

from sigmachat.agent.events import EventFactory, RunFailed, RunFinished, RunStarted, TerminalEvent, is_terminal
from sigmachat.engines.base import Engine, RunRequest, aclose_quietly
from sigmachat.logging import get_logger
from sigmachat.runs.listeners import RunView
from sigmachat.settings import Settings
from sigmachat.telemetry.recorder import RunMeta, RunRecorder

log = get_logger("sigmachat.shadow")

OTHER_ENGINE = {"responses": "agents", "agents": "responses"}


class ShadowRunner:
    def __init__(
        self,
        settings: Settings,
        recorder: RunRecorder,
        engines: Mapping[str, Engine] | None = None,
        *,
        sample: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self.recorder = recorder
        self.engines: Mapping[str, Engine] = engines or {}
        self._sample = sample
        self._tasks: set[asyncio.Task[None]] = set()
        self.skipped_busy = 0

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def other_engine(self, live_engine: str) -> str | None:
        other = OTHER_ENGINE.get(live_engine)
        return other if other in self.engines else None

    def maybe_shadow(
        self, live: RunView, request: RunRequest, terminal: TerminalEvent | None = None
    ) -> asyncio.Task[None] | None:
        """Call after a live run ended (``live``: the run manager's run; ``request``: the
        RunRequest it ran; ``terminal``: its last event). Returns the background task or None.

        Never raises and never blocks: it only decides and schedules.
        """
        try:
            rate = self.settings.shadow_sample_rate
            if rate <= 0 or (isinstance(live, RunMeta) and live.shadow):
                return None
            if terminal is not None and not isinstance(terminal, RunFinished):
                return None  # only answered turns are compared
            other = self.other_engine(live.engine)
            if other is None:
                return None
            if self._sample() >= rate:
                return None
            if len(self._tasks) >= self.settings.shadow_max_concurrent:
                self.skipped_busy += 1
                log.info("shadow_skipped_busy", pair_id=live.run_id, in_flight=len(self._tasks))
                return None
            shadow_id = f"run_shadow_{uuid.uuid4().hex}"
            meta = RunMeta(
                run_id=shadow_id,
                engine=other,
                protocol="shadow",
                user_id=live.user_id,
                conversation_id=live.conversation_id,
                portfolio_id=live.portfolio_id or request.portfolio_id,
                shadow=True,
                pair_id=live.run_id,
            )
            shadow_request = dataclasses.replace(
                request, run_id=shadow_id, history=list(request.history), sim_scenario=None
            )
            task = asyncio.get_running_loop().create_task(self._run(meta, shadow_request), name=f"shadow:{shadow_id}")
        except Exception:
            log.exception("shadow_schedule_failed", pair_id=getattr(live, "run_id", None))
            return None
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _run(self, meta: RunMeta, request: RunRequest) -> None:
        structlog.contextvars.bind_contextvars(run_id=meta.run_id, pair_id=meta.pair_id, shadow=True)
        engine = self.engines[meta.engine]
        last_seq: int = 0
        terminal: TerminalEvent | None = None
        code: str | None = None
        stream = engine.stream(request)
        try:
            async with asyncio.timeout(self.settings.shadow_timeout_s):
                async for event in stream:
                    last_seq = event.seq
                    self.recorder(meta, event)
                    if is_terminal(event):
                        terminal = event
                        break
        except TimeoutError:
            code = "timeout"
        except asyncio.CancelledError:
            code = "cancelled"
        except Exception:
            log.exception("shadow_run_crashed")
            code = "internal_error"
        finally:
            await aclose_quietly(stream)
        if terminal is None:
            # Close the shadow run's record ourselves, continuing its sequence.
            ev = EventFactory(meta.run_id, start_after=last_seq)
            if last_seq == 0:
                self.recorder(
                    meta, ev.make(RunStarted, conversation_id=meta.conversation_id, model="", engine=meta.engine)
                )
            self.recorder(
                meta, ev.make(RunFailed, code=code or "internal_error", message="shadow run ended", retryable=True)
            )
        log.info("shadow_finished", outcome=terminal.type if terminal is not None else code)
        if code == "cancelled":
            raise asyncio.CancelledError

    async def aclose(self, timeout: float = 5.0) -> None:
        """Shutdown: let shadow runs end briefly, then cancel them (they are expendable)."""
        tasks = list(self._tasks)
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=timeout)
