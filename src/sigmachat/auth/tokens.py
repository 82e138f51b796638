"""JWT access tokens (PyJWT, HS256)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import jwt

from sigmachat.settings import Settings

ISSUER = "sigmachat"


class InvalidToken(Exception):
    """The token is missing, expired, tampered with or otherwise unusable."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: str
    role: str
    expires_at: dt.datetime


class TokenService:
    def __init__(self, settings: Settings) -> None:
        self._secret = settings.resolved_jwt_secret()
        self._algorithm = settings.jwt_algorithm
        self.ttl = dt.timedelta(minutes=settings.token_ttl_minutes)

    def issue(self, user_id: str, role: str, *, now: dt.datetime | None = None) -> str:
        now = now or dt.datetime.now(dt.UTC)
        payload = {
            "sub": user_id,
            "role": role,
            "iss": ISSUER,
            "iat": int(now.timestamp()),
            "exp": int((now + self.ttl).timestamp()),
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(payload, self._secret, algorithm=self._algorithm)

    def verify(self, token: str) -> TokenClaims:
        try:
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=[self._algorithm],  # pinned: never trust the token's own "alg"
                issuer=ISSUER,
                options={"require": ["sub", "exp", "iat", "iss"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("expired") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken("invalid") from exc
        return TokenClaims(
            user_id=str(payload["sub"]),
            role=str(payload.get("role", "user")),
            expires_at=dt.datetime.fromtimestamp(payload["exp"], dt.UTC),
        )
