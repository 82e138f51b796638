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
class ChatRuntime:
    """The chat runtime: one model client, tool registry, run manager and ChatKit server per process."""

    model: ModelClient
    registry: ToolRegistry
    runs: RunManager
    chatkit: SigmaChatKitServer  # the ChatKit protocol server (POST /chatkit)


@dataclass
class Services:
    settings: Settings
    db: Database
    tokens: TokenService
    # Built by start_chat_runtime() (the CLI's data commands do not need it). Read it through
    # the properties below: they are never None, and say so plainly if the runtime is not up.
    runtime: ChatRuntime | None = None
    rollout: RolloutService | None = None  # which chat path serves a user (built in build())
    telemetry: Telemetry | None = None  # runs rows, /metrics, spans, shadow runs (built in build())
    login_throttle: LoginThrottle | None = None  # failed sign-ins per account and client (built in build())
    redis: Any = None  # redis.asyncio.Redis when SIGMACHAT_REDIS_URL is set (shared run state)
    closing: bool = False  # a drained instance handing over to the server's shutdown

    def _chat(self) -> ChatRuntime:
        if self.runtime is None:
            from sigmachat.errors import ServiceUnavailable

            raise ServiceUnavailable("The chat service is not running.")
        return self.runtime

    @property
    def model(self) -> ModelClient:
        return self._chat().model

    @property
    def registry(self) -> ToolRegistry:
        return self._chat().registry

    @property
    def runs(self) -> RunManager:
        return self._chat().runs

    @property
    def chatkit(self) -> SigmaChatKitServer:
        return self._chat().chatkit

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

        model = build_model_client(self.settings, http_client=http_client)
        registry = build_registry(self.settings)
        engines: dict[str, Any] = {
            "responses": ResponsesEngine(model, registry, self.settings, self.db.session),
            "agents": AgentsEngine(model, registry, self.settings, self.db.session),
        }
        event_log, coordinator = self._run_state(InMemoryEventLog)
        runs = RunManager(self.db, self.settings, engines, event_log, UsageGuard(self.settings), coordinator)
        chatkit = SigmaChatKitServer(SqlChatKitStore(self.db), runs, self.settings)
        self.runtime = ChatRuntime(model=model, registry=registry, runs=runs, chatkit=chatkit)
        if self.telemetry is not None:
            self.telemetry.attach(runs)

    def _run_state(self, in_memory_log: Any) -> tuple[Any, Any]:
        """The run event log and coordinator: Redis-backed with a Redis URL, else in process."""
        from sigmachat.runs.coordination import LocalCoordinator, RedisCoordinator
        from sigmachat.runs.redis_log import RedisEventLog

        if not self.settings.redis_url:
            return in_memory_log(self.settings.run_log_ttl_s), LocalCoordinator()
        from redis.asyncio import Redis

        # Timeouts keep a request from hanging when Redis is gone: it fails fast with a 503.
        # Every follower blocks in XREAD on a connection of its own, hence the large pool.
        self.redis = Redis.from_url(
            self.settings.redis_url, socket_connect_timeout=2, health_check_interval=15, max_connections=2000
        )
        prefix = self.settings.redis_prefix
        return (
            RedisEventLog(self.redis, ttl_s=self.settings.run_log_ttl_s, prefix=prefix),
            RedisCoordinator(
                self.redis, lease_ttl_s=self.settings.run_lease_ttl_s, prefix=prefix, url=self.settings.redis_url
            ),
        )

    async def aclose(self) -> None:
        runtime = self.runtime
        if runtime is not None:
            await runtime.runs.shutdown(self.settings.shutdown_grace_s)
            await runtime.chatkit.drain()  # cancels of runs whose ChatKit client left
        if self.telemetry is not None:
            await self.telemetry.aclose()  # shadow runs still need the model client
        if runtime is not None:
            await runtime.model.aclose()
        if self.rollout is not None:
            self.rollout.close()
        if self.redis is not None:
            await self.redis.aclose()
        await self.db.dispose()
