"""A stand-in for an external OpenFeature provider (flagd, Unleash, ...), loaded by setting."""

from __future__ import annotations

from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider


def build(settings):
    flag = InMemoryFlag("chatkit", {"responses": "responses", "chatkit": "chatkit"}, flag_metadata={"flag_version": 7})
    return InMemoryProvider({"chat_backend": flag})
