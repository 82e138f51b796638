"""Helpers for the recorded Responses API streams in tests/fixtures/openai-responses/."""

from __future__ import annotations

import json
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "openai-responses"


def raw(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def events(name: str) -> list[dict]:
    """The data objects of a recorded stream, in order."""
    out = []
    for block in raw(name).decode().split("\n\n"):
        data = [line[len("data: ") :] for line in block.splitlines() if line.startswith("data: ")]
        if data:
            out.append(json.loads("\n".join(data)))
    return out
