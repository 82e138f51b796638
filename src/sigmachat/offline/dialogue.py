"""Follow-ups: what a question means, given the conversation before it.

The offline analyst is stateless like a hosted model: every request carries the whole
conversation. This module folds the earlier turns, oldest first, into the *frame* of each
question (its intents, tickers, rank, numbers and portfolio), so that

- "and the second largest?" / "the next one" rank the previous topic one further;
- "it", "that one" mean the holding the previous answer was about;
- "what about X" asks the previous question about X (a ticker, a sector, a number);
- "and in the other portfolio?" asks the previous question about the user's other portfolio;

and a question that refers back to nothing is answered with a clarifying question rather
than a guess. Everything is a pure function of the texts, so both engines (which send the
same input items) get the same decision.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from sigmachat.market.security_master import OPTION_SYMBOL, load_security_master
from sigmachat.offline.intents import (
    _FOLLOW_UP,
    _GREETING,
    _HELP,
    _PORTFOLIO_WORDS,
    QuestionContext,
    Routing,
    build_calls,
    classify,
)

_NEXT_RE = re.compile(r"\b(the )?next( one| largest| biggest)?\b|\bone after (that|it)\b|\bafter that\b")
_PRONOUN_RE = re.compile(
    r"\b(it|its|it's|that one|this one|that stock|that holding|that position|that name|that fund|this stock|them)\b"
)
_WHAT_ABOUT_RE = re.compile(r"^\s*(and|also|what about|how about|what of|same for|now for|ok,? and)\b")
_BARE_NUMBER_RE = re.compile(r"(\d{1,2}(?:\.\d+)?)\s*(%|percent)")
_BOLD_TICKER_RE = re.compile(r"\*\*([A-Z][A-Z0-9_.\-]{0,24})\*\*")
RANKABLE = ("largest", "sectors")


@dataclass(frozen=True, slots=True)
class PastTurn:
    """An earlier user question and the assistant's answer to it."""

    question: str
    answer: str


@dataclass(slots=True)
class Frame:
    """What one question asks, with references resolved."""

    names: list[str]
    ctx: QuestionContext
    kind: str = "tools"  # tools | greeting | help | out_of_scope | ambiguous
    subject: tuple[str, ...] = ()  # the holdings the answer is about ("it" in the next question)


def answer_subject(answer: str) -> tuple[str, ...]:
    """The first ticker an answer puts in bold: what "it" means in the next question."""
    master = load_security_master()
    for match in _BOLD_TICKER_RE.finditer(answer or ""):
        sym = match.group(1)
        if master.securities.get(sym) is not None or OPTION_SYMBOL.match(sym) or "_" in sym:
            return (sym,)
    return ()


def _inherit(ctx: QuestionContext, prior: QuestionContext) -> None:
    ctx.symbols = ctx.symbols or list(prior.symbols)
    ctx.portfolio_id = ctx.portfolio_id or prior.portfolio_id
    ctx.rank = ctx.rank if ctx.rank is not None else prior.rank
    ctx.top_n = ctx.top_n if ctx.top_n is not None else prior.top_n
    ctx.move_pct = ctx.move_pct if ctx.move_pct is not None else prior.move_pct
    ctx.sectors = ctx.sectors or list(prior.sectors)
    ctx.other_portfolio = ctx.other_portfolio or prior.other_portfolio
    ctx.short = ctx.short or prior.short


def resolve(question: str, earlier: list[Frame], prior_answer: str = "") -> Frame:
    """The frame of ``question`` after the turns ``earlier`` (the last one answered by ``prior_answer``)."""
    prior = earlier[-1] if earlier else None
    names, ctx = classify(question)
    lowered = ctx.text
    has_prior = prior is not None and prior.kind == "tools" and bool(prior.names)
    subject = tuple(ctx.symbols) or (tuple(prior.ctx.symbols) or prior.subject if prior else ())
    pronoun = bool(_PRONOUN_RE.search(lowered)) and not ctx.symbols
    if pronoun and has_prior and prior is not None and subject and not ctx.other_portfolio:
        # "How has it done?": ask again with the holding the previous answer was about.
        names, ctx = classify(question, symbols=list(subject))
        ctx.portfolio_id = ctx.portfolio_id or prior.ctx.portfolio_id
        ctx.other_portfolio = prior.ctx.other_portfolio
    wants_next = bool(_NEXT_RE.search(lowered)) and not ctx.other_portfolio
    follow = bool(_FOLLOW_UP.search(question) or _WHAT_ABOUT_RE.search(lowered)) or wants_next or ctx.rank is not None
    if has_prior:
        assert prior is not None
        p = prior.ctx
        ranking = next(
            (f for f in reversed(earlier) if f.kind == "tools" and set(f.names) & set(RANKABLE)),
            None,
        )
        if (ctx.rank is not None or wants_next) and ranking is not None and not (set(names) - set(RANKABLE)):
            # "and the second largest?" / "the next one": the latest ranking, one further, in the
            # portfolio the conversation was just talking about.
            rank = ctx.rank if ctx.rank is not None else (ranking.ctx.rank or 1) + 1
            names = names or [n for n in ranking.names if n in RANKABLE]
            _inherit(ctx, ranking.ctx)
            ctx.other_portfolio = p.other_portfolio
            ctx.portfolio_id = p.portfolio_id
            ctx.rank = rank
            ctx.symbols = []
        elif ctx.other_portfolio:
            names = names or list(prior.names)
            _inherit(ctx, p)
            ctx.portfolio_id = None
        elif not names and follow:
            if ctx.sectors:
                names = ["benchmark"] if "benchmark" in prior.names else ["sectors"]
            elif ctx.move_pct is None and "stress" in prior.names and (m := _BARE_NUMBER_RE.search(lowered)):
                # "and 40%?" after a stress question: the same direction, the new size.
                sign = -1.0 if (p.move_pct or -1.0) < 0 else 1.0
                names, ctx.move_pct = ["stress"], sign * float(m.group(1))
            else:
                names = list(prior.names)
                _inherit(ctx, p)
        elif names and follow and not ctx.symbols and set(names) <= {"stress"} and ctx.move_pct is None:
            _inherit(ctx, p)
    if names:
        return Frame(names, ctx, "tools", tuple(ctx.symbols) or subject)
    if _GREETING.match(question):
        return Frame([], ctx, "greeting")
    if _HELP.search(question):
        return Frame([], ctx, "help")
    if _PORTFOLIO_WORDS.search(lowered) and not pronoun:
        return Frame(["summary"], ctx, "tools")
    if follow or pronoun or len(lowered.split()) <= 3:
        return Frame([], ctx, "ambiguous")
    return Frame([], ctx, "out_of_scope")


def resolve_conversation(past: list[PastTurn], question: str) -> Frame:
    """Fold the earlier turns, oldest first, then resolve the latest question."""
    frames: list[Frame] = []
    answer = ""
    for turn in past:
        frame = resolve(turn.question, frames, answer)
        if frame.kind == "tools" and turn.answer:
            frame = replace(frame, subject=answer_subject(turn.answer) or frame.subject)
        frames.append(frame)
        answer = turn.answer
    return resolve(question, frames, answer)


def route_conversation(past: list[PastTurn], question: str) -> Routing:
    """The routing decision for the latest question of a conversation."""
    frame = resolve_conversation(past, question)
    ctx = frame.ctx
    if frame.kind != "tools":
        return Routing((), (), tuple(ctx.symbols), kind=frame.kind)
    return Routing(
        tuple(frame.names), build_calls(frame.names, ctx), tuple(ctx.symbols), kind="tools", rank=ctx.rank,
        top_n=ctx.top_n, sectors=tuple(ctx.sectors), other_portfolio=ctx.other_portfolio, short=ctx.short,
    )  # fmt: skip
