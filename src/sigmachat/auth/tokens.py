"""JWT access tokens (PyJWT, HS256)."""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from dataclasses import dataclass

import jwt

from sigmachat.settings import Settings

ISSUER = "sigmachat"
VERIFIED_TOKENS_KEPT = 4096  # per process: a few KB each at most


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
        self._verified = functools.lru_cache(maxsize=VERIFIED_TOKENS_KEPT)(self._decode)

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

    def verify(self, token: str, *, now: dt.datetime | None = None) -> TokenClaims:
        """The claims of a valid token; ``InvalidToken("expired")`` / ``("invalid")`` otherwise.

        A token's signature and claims are fixed by its text, so a verified one is remembered
        (bounded, least recently used) and only its expiry is looked at again: the same token
        comes with every request of a session, twice per answer, and checking the signature and
        claims each time was a visible share of a request's CPU. Tokens that fail are not
        remembered; a tampered token is a different text.
        """
        claims = self._verified(token)
        if claims.expires_at <= (now or dt.datetime.now(dt.UTC)):
            raise InvalidToken("expired")
        return claims

    def _decode(self, token: str) -> TokenClaims:
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
