"""Access tokens: verified once per process, their expiry checked on every use."""

from __future__ import annotations

import datetime as dt

import jwt
import pytest

from sigmachat.auth.tokens import InvalidToken, TokenService
from sigmachat.settings import Settings


@pytest.fixture
def tokens() -> TokenService:
    return TokenService(Settings(jwt_secret="s" * 40, token_ttl_minutes=60))


def test_a_token_is_checked_once_and_its_expiry_on_every_use(tokens, monkeypatch):
    calls = []
    real_decode = jwt.decode
    monkeypatch.setattr(jwt, "decode", lambda *a, **kw: calls.append(1) or real_decode(*a, **kw))
    issued = dt.datetime.now(dt.UTC)
    token = tokens.issue("u1", "user", now=issued)
    first = tokens.verify(token)
    assert tokens.verify(token) == first and first.user_id == "u1" and first.role == "user"
    assert len(calls) == 1  # the signature and claims were checked once
    with pytest.raises(InvalidToken, match="expired"):
        tokens.verify(token, now=issued + dt.timedelta(minutes=61))  # remembered, yet expired


def test_an_expired_token_is_refused_before_it_is_remembered(tokens):
    token = tokens.issue("u1", "user", now=dt.datetime.now(dt.UTC) - dt.timedelta(hours=2))
    with pytest.raises(InvalidToken, match="expired"):
        tokens.verify(token)


def test_a_tampered_or_foreign_token_is_invalid_every_time(tokens):
    token = tokens.issue("u1", "user")
    header, payload, signature = token.split(".")
    tampered = f"{header}.{payload}.{signature[:-2]}{'AA' if not signature.endswith('AA') else 'BB'}"
    foreign = TokenService(Settings(jwt_secret="t" * 40)).issue("u1", "admin")
    for bad in (tampered, foreign, "not-a-token", tampered):
        with pytest.raises(InvalidToken, match="invalid"):
            tokens.verify(bad)
    assert tokens.verify(token).user_id == "u1"
