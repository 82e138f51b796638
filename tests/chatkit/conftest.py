"""A ChatKit runtime over a scripted engine (no model, no tools): store, run manager, server."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from sigmachat.protocols.chatkit_server import ChatContext, SigmaChatKitServer
from sigmachat.runs.event_log import InMemoryEventLog
from sigmachat.runs.manager import RunManager
from sigmachat.store import SqlChatKitStore
from tests.conftest import HNW, INDIVIDUAL
from tests.runs.fakes import ScriptedEngine
from tests.store.conftest import user_id


@dataclass
class Runtime:
    server: SigmaChatKitServer
    manager: RunManager
    engine: ScriptedEngine
    alice: str
    bob: str

    def ctx(self, who: str = "alice", **kw) -> ChatContext:
        return ChatContext(user_id=getattr(self, who), **kw)


async def build_runtime(services, engine: ScriptedEngine | None = None, **setting_overrides) -> Runtime:
    settings = services.settings.model_copy(update=setting_overrides) if setting_overrides else services.settings
    engine = engine or ScriptedEngine()
    engine.name = "agents"
    manager = RunManager(services.db, settings, {"agents": engine}, InMemoryEventLog())
    server = SigmaChatKitServer(SqlChatKitStore(services.db), manager, settings)
    return Runtime(server, manager, engine, await user_id(services, HNW), await user_id(services, INDIVIDUAL))


@pytest.fixture
async def rt(services) -> Runtime:
    runtime = await build_runtime(services)
    yield runtime
    await runtime.manager.shutdown(5)
    await runtime.server.drain()
