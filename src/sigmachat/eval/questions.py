"""The question set: conversations of the demo users, each turn with the facts its answer needs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any


@dataclass(frozen=True, slots=True)
class Turn:
    ask: str
    expect: tuple[dict[str, Any], ...]
    tools: tuple[str, ...] | None = None  # tools the answer must use ([] = none at all); None = no check


@dataclass(frozen=True, slots=True)
class Case:
    id: str
    email: str
    turns: tuple[Turn, ...]
    portfolio: str | None = None  # a fragment of the conversation's portfolio name; None = the user's first
    tags: tuple[str, ...] = field(default_factory=tuple)


def load_cases(text: str | None = None) -> list[Case]:
    """The shipped set (``data/eval_questions.json``), or ``text`` in the same format."""
    raw = json.loads(
        text
        if text is not None
        else resources.files("sigmachat.data").joinpath("eval_questions.json").read_text("utf-8")
    )
    users = raw["users"]
    cases = []
    for c in raw["cases"]:
        turns = tuple(
            Turn(
                t["ask"],
                tuple(t.get("expect", ())),
                tuple(t["tools"]) if t.get("tools") is not None else None,
            )
            for t in c["turns"]
        )
        cases.append(
            Case(
                c["id"],
                users.get(c["user"], c["user"]),
                turns,
                c.get("portfolio"),
                tuple(c.get("tags", ())),
            )
        )
    ids = [c.id for c in cases]
    if len(ids) != len(set(ids)):
        raise ValueError("duplicate case ids in the evaluation set")
    return cases
