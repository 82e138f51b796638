"""Runs the evaluation set through the run manager on each engine and scores every turn.

Each case is a real conversation (created, bound to its portfolio, turns sent one after the
other through :class:`~sigmachat.runs.manager.RunManager`), so follow-ups see the same
history a user's would. The model is whatever the settings configure: the offline analyst,
the simulator (``OPENAI_BASE_URL``) or a real model (``OPENAI_API_KEY``).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from sigmachat.auth.service import normalise_email
from sigmachat.chat.conversations import create_conversation
from sigmachat.db.models import User
from sigmachat.eval.facts import Expectation, FactError, FactSource, first_sentence
from sigmachat.eval.questions import Case
from sigmachat.services import Services
from sigmachat.tools.runtime import ToolContext

ENGINES = ("responses", "agents")


@dataclass(slots=True)
class EngineTurn:
    """One engine's answer to one turn, scored."""

    text: str = ""
    tools: list[str] = field(default_factory=list)
    ttfb_ms: float | None = None
    total_ms: float | None = None
    status: str = "complete"
    missing: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.status == "complete" and not self.missing


@dataclass(slots=True)
class TurnResult:
    case_id: str
    index: int
    email: str
    question: str
    tags: tuple[str, ...]
    engines: dict[str, EngineTurn] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.case_id}#{self.index + 1}"

    @property
    def same_tools(self) -> bool | None:
        seqs = [e.tools for e in self.engines.values()]
        return all(s == seqs[0] for s in seqs) if len(seqs) > 1 else None


@dataclass(slots=True)
class EvalReport:
    engines: tuple[str, ...]
    model: str
    results: list[TurnResult] = field(default_factory=list)

    def pass_rate(self, engine: str) -> float:
        turns = [r.engines[engine] for r in self.results if engine in r.engines]
        return 100.0 * sum(t.passed for t in turns) / len(turns) if turns else 0.0

    def passed(self, engine: str) -> int:
        return sum(r.engines[engine].passed for r in self.results if engine in r.engines)

    def agreement(self) -> float | None:
        same = [r.same_tools for r in self.results if r.same_tools is not None]
        return 100.0 * sum(same) / len(same) if same else None

    def latency(self, engine: str, what: str) -> dict[str, float | None]:
        values = sorted(
            v for r in self.results if engine in r.engines if (v := getattr(r.engines[engine], what)) is not None
        )
        if not values:
            return {"p50": None, "p95": None}
        p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
        return {"p50": statistics.median(values), "p95": p95}

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "engines": {
                e: {"passed": self.passed(e), "total": len(self.results), "pass_rate": round(self.pass_rate(e), 1),
                    "ttfb_ms": self.latency(e, "ttfb_ms"), "total_ms": self.latency(e, "total_ms")}
                for e in self.engines
            },
            "tool_sequence_agreement": self.agreement(),
            "turns": [
                {"id": r.key, "user": r.email, "question": r.question, "tags": list(r.tags), "same_tools": r.same_tools,
                 "engines": {e: {"passed": t.passed, "missing": t.missing, "tools": t.tools, "ttfb_ms": t.ttfb_ms,
                                 "total_ms": t.total_ms, "status": t.status, "answer": t.text}
                             for e, t in r.engines.items()}}
                for r in self.results
            ],
        }  # fmt: skip


async def _user_id(services: Services, email: str) -> str:
    async with services.db.session() as session:
        user = (await session.execute(select(User).where(User.email == normalise_email(email)))).scalar_one_or_none()
    if user is None:
        raise FactError(f"no user {email} in this database (seed the demo data)")
    return user.id


async def _ask(services: Services, user_id: str, conversation_id: str, text: str, engine: str) -> EngineTurn:
    out = EngineTurn()
    started = time.perf_counter()
    run = await services.runs.start(
        user_id=user_id,
        conversation_id=conversation_id,
        text=text,
        engine=engine,
        protocol="eval",
    )
    async for event in services.runs.subscribe(run.run_id):
        if event.type == "tool_started":
            out.tools.append(event.name)
        elif event.type == "text_delta" and out.ttfb_ms is None:
            out.ttfb_ms = (time.perf_counter() - started) * 1000
        elif event.type == "run_finished":
            out.text = event.final_text
        elif event.type == "run_failed":
            out.status = f"failed: {event.code}"
            out.text = event.partial_text
    out.total_ms = (time.perf_counter() - started) * 1000
    return out


def score(turn: EngineTurn, expectations: list[Expectation], tools: tuple[str, ...] | None) -> None:
    lead = first_sentence(turn.text)
    for e in expectations:
        if not e.found_in(turn.text):
            turn.missing.append(e.label)
        elif e.first_sentence and not e.found_in(lead):
            turn.missing.append(f"{e.label} (not in the first sentence)")
    if tools is not None:
        if not tools and turn.tools:
            turn.missing.append(f"no tool call expected, got {', '.join(turn.tools)}")
        for name in tools:
            if name not in turn.tools:
                turn.missing.append(f"tool {name}")
    if turn.status != "complete":
        turn.missing.append(turn.status)


async def run_eval(
    services: Services,
    cases: Iterable[Case],
    *,
    engines: Iterable[str] = ENGINES,
    progress: Callable[[TurnResult], None] | None = None,
) -> EvalReport:
    """Ask every case on every engine; expected facts come from the tools for the same portfolio."""
    if services.runtime is None:  # the CLI's services start without the chat runtime
        services.start_chat_runtime()
    engines = tuple(engines)
    report = EvalReport(engines, services.model.default_model)
    registry = services.registry
    for case in cases:
        user_id = await _user_id(services, case.email)

        def ctx_for(pid: str | None, user_id: str = user_id) -> ToolContext:
            return ToolContext(
                user_id=user_id,
                portfolio_id=pid,
                session_factory=services.db.session,
                settings=services.settings,
            )

        facts = FactSource(registry, ctx_for)
        portfolio_id = await facts.portfolio_id(case.portfolio, None)
        conversations = {}
        for engine in engines:
            async with services.db.session() as session:
                conversations[engine] = await create_conversation(
                    session, user_id, portfolio_id, title=f"eval {case.id}"
                )
        # Facts first: they also warm the tool caches, so neither engine pays for the first computation.
        bound = conversations[engines[0]].portfolio_id
        expected: list[list[Expectation] | str] = []
        for turn in case.turns:
            try:
                expected.append([e for spec in turn.expect for e in await facts.expectations(spec, bound)])
            except FactError as exc:
                expected.append(f"fact not computable: {exc}")
        results = [TurnResult(case.id, i, case.email, t.ask, case.tags) for i, t in enumerate(case.turns)]
        # Alternate which engine goes first, so neither always meets the colder process.
        order = engines if len(report.results) % 2 == 0 else tuple(reversed(engines))
        for engine in order:
            for turn, result, facts_or_error in zip(case.turns, results, expected, strict=True):
                answer = await _ask(services, user_id, conversations[engine].id, turn.ask, engine)
                if isinstance(facts_or_error, str):
                    answer.missing.append(facts_or_error)
                score(
                    answer,
                    facts_or_error if isinstance(facts_or_error, list) else [],
                    turn.tools,
                )
                result.engines[engine] = answer
        for result in results:
            report.results.append(result)
            if progress is not None:
                progress(result)
    return report
