"""The process-wide service container: built once per app from settings, no hidden globals."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sigmachat.auth.tokens import TokenService
from sigmachat.db.session import Database
from sigmachat.settings import Settings

if TYPE_CHECKING:
    from sigmachat.auth.throttle import LoginThrottle
    from sigmachat.engines.model_client import ModelClient
    from sigmachat.protocols.chatkit_server import SigmaChatKitServer
    from sigmachat.rollout import RolloutService
    from sigmachat.runs.manager import RunManager
    from sigmachat.telemetry import Telemetry
    from sigmachat.tools.registry import ToolRegistry


@dataclass
class Services:
    settings: Settings
    db: Database
    tokens: TokenService
    # Chat runtime, built by start_chat_runtime() (the CLI's data commands do not need it).
    model: ModelClient | None = None
    registry: ToolRegistry | None = None
    runs: RunManager | None = None
    chatkit: SigmaChatKitServer | None = None  # the ChatKit protocol server (POST /chatkit)
    rollout: RolloutService | None = None  # which chat path serves a user (built in build())
    telemetry: Telemetry | None = None  # runs rows, /metrics, spans, shadow runs (built in build())
    login_throttle: LoginThrottle | None = None  # failed sign-ins per account and client (built in build())

    @classmethod
    def build(cls, settings: Settings) -> Services:
        from sigmachat.auth.throttle import LoginThrottle
        from sigmachat.rollout import RolloutService
        from sigmachat.telemetry import Telemetry

        services = cls(settings=settings, db=Database(settings), tokens=TokenService(settings))
        services.telemetry = Telemetry(settings, services.db)
        services.rollout = RolloutService(settings, services.db, observer=services.telemetry.metrics.flag_evaluated)
        services.login_throttle = LoginThrottle(settings)
        return services

    def start_chat_runtime(self, *, http_client: Any = None) -> None:
        """Model client, tool registry, engines and run manager: one of each per process."""
        from sigmachat.engines.agents import AgentsEngine
        from sigmachat.engines.model_client import build_model_client
        from sigmachat.engines.responses import ResponsesEngine
        from sigmachat.protocols.chatkit_server import SigmaChatKitServer
        from sigmachat.runs.event_log import InMemoryEventLog
        from sigmachat.runs.limits import UsageGuard
        from sigmachat.runs.manager import RunManager
        from sigmachat.store import SqlChatKitStore
        from sigmachat.tools.registry import build_registry

        self.model = build_model_client(self.settings, http_client=http_client)
        self.registry = build_registry(self.settings)
        engines: dict[str, Any] = {
            "responses": ResponsesEngine(self.model, self.registry, self.settings, self.db.session),
            "agents": AgentsEngine(self.model, self.registry, self.settings, self.db.session),
        }
        self.runs = RunManager(
            self.db, self.settings, engines, InMemoryEventLog(self.settings.run_log_ttl_s), UsageGuard(self.settings)
        )
        self.chatkit = SigmaChatKitServer(SqlChatKitStore(self.db), self.runs, self.settings)
        if self.telemetry is not None:
            self.telemetry.attach(self.runs)

    async def aclose(self) -> None:
        if self.runs is not None:
            await self.runs.shutdown(self.settings.shutdown_grace_s)
        if self.chatkit is not None:
            await self.chatkit.drain()  # ChatKit items of runs whose client left
        if self.telemetry is not None:
            await self.telemetry.aclose()  # shadow runs still need the model client
        if self.model is not None:
            await self.model.aclose()
        if self.rollout is not None:
            self.rollout.close()
        await self.db.dispose()
