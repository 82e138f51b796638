"""The process-wide service container: built once per app from settings, no hidden globals."""

from __future__ import annotations

from dataclasses import dataclass

from sigmachat.auth.tokens import TokenService
from sigmachat.db.session import Database
from sigmachat.settings import Settings


@dataclass
class Services:
    settings: Settings
    db: Database
    tokens: TokenService

    @classmethod
    def build(cls, settings: Settings) -> Services:
        return cls(settings=settings, db=Database(settings), tokens=TokenService(settings))

    async def aclose(self) -> None:
        await self.db.dispose()
