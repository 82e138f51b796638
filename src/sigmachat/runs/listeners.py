"""What the run manager tells its listeners (telemetry, the shadow comparison), typed.

A listener sees a read-only view of the run (``RunView``) and the run's agent events, in
order, as they are appended to the event log. Listeners run synchronously on the event
path (once per token), so they must be cheap and must not raise; the run manager logs and
swallows what they raise anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from sigmachat.agent.events import AgentEvent, TerminalEvent
from sigmachat.engines.base import RunRequest


class RunView(Protocol):
    """What a listener may read of a run (the run manager's run object, or telemetry's own
    ``RunMeta`` for a shadow run that the run manager never sees)."""

    @property
    def run_id(self) -> str: ...
    @property
    def engine(self) -> str: ...
    @property
    def protocol(self) -> str: ...
    @property
    def user_id(self) -> str | None: ...
    @property
    def conversation_id(self) -> str | None: ...
    @property
    def portfolio_id(self) -> str | None: ...


# ``listener(run, event)`` for every event of every run, as it is appended to the log.
EventListener = Callable[[RunView, AgentEvent], None]
# ``listener(run, request, terminal)`` once a run's answer is persisted; what it returns is ignored
# (the shadow runner returns the task it scheduled).
FinishListener = Callable[[RunView, RunRequest, TerminalEvent], object]
