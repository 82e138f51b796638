"""The offline analyst: a deterministic model that answers portfolio questions through the tools.

It reads a Responses API request exactly as a hosted model would (stateless full input:
instructions, earlier messages, ``function_call`` and ``function_call_output`` items) and
decides one turn:

- a new question -> ``function_call`` items chosen by intent (:mod:`sigmachat.offline.intents`);
- tool outputs after the latest question -> a markdown answer composed from them
  (:mod:`sigmachat.offline.answers`);
- a greeting or "what can you do" -> a short answer without tools;
- "remember that ..." -> the ``remember`` tool; "what do you remember about me?" -> the saved
  memories in the instructions (:mod:`sigmachat.offline.personal`, which also shapes answers
  to the conversation's mode).

It is the product's no-key mode: every number in its answers comes from a tool result.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from sigmachat.agent.instructions import parse_memories_note
from sigmachat.offline.answers import (
    ToolResult,
    ambiguous_answer,
    compose_answer,
    greeting_answer,
    help_answer,
    no_tools_answer,
    out_of_scope_answer,
)
from sigmachat.offline.dialogue import PastTurn, route_conversation
from sigmachat.offline.intents import Routing
from sigmachat.offline.personal import (
    asks_recall,
    mode_of,
    recall_answer,
    remember_fact,
    remembered_answer,
    shape_for_mode,
)
from sigmachat.offline.protocol import ToolCallPlan, Turn

# Tools that need a portfolio; without a selected portfolio the analyst lists portfolios first.
_PORTFOLIO_TOOLS = frozenset(
    {
        "get_portfolio_complete",
        "get_positions_details",
        "get_portfolio_data_quality",
        "get_prices_historical",
        "get_analytics_overview",
        "get_factor_exposures",
        "get_sector_exposure",
        "get_correlation_matrix",
        "get_stress_test_results",
        "get_concentration_metrics",
        "get_volatility_analysis",
        "get_daily_movers",
        "get_benchmark_comparison",
    }
)
# The engine's context note says this when the conversation has no portfolio (agent/instructions.py).
_NO_PORTFOLIO_NOTE = re.compile(r"no portfolio is selected", re.IGNORECASE)
_PORTFOLIO_NOTE = re.compile(r"portfolio id is ([\w-]+)")


@dataclass(slots=True)
class Conversation:
    """The parts of a stateless Responses input that the analyst reasons over."""

    instructions: str = ""
    user_texts: list[str] = field(default_factory=list)  # every user message, oldest first
    answers: list[str] = field(default_factory=list)  # the assistant's answer to each user message ("" if none)
    results: list[ToolResult] = field(default_factory=list)  # tool outputs after the latest user message

    @property
    def question(self) -> str | None:
        return self.user_texts[-1] if self.user_texts else None

    @property
    def has_tool_results(self) -> bool:
        return bool(self.results)

    @property
    def past(self) -> list[PastTurn]:
        """The earlier questions with their answers."""
        answers = self.answers + [""] * len(self.user_texts)
        return [PastTurn(q, answers[i]) for i, q in enumerate(self.user_texts[:-1])]

    @property
    def portfolio_id(self) -> str | None:
        """The conversation's portfolio, from the engine's context note."""
        match = _PORTFOLIO_NOTE.search(self.instructions)
        return match.group(1) if match else None


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, str):
                parts.append(part)
        return "".join(parts)
    return ""


def _parse_json(text: Any) -> Any:
    if isinstance(text, dict | list):
        return text
    if not isinstance(text, str):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def parse_conversation(request: dict[str, Any]) -> Conversation:
    """Split the request's input into user messages and the latest turn's tool results."""
    conv = Conversation(instructions=str(request.get("instructions") or ""))
    raw_input = request.get("input")
    items: list[Any] = [{"role": "user", "content": raw_input}] if isinstance(raw_input, str) else list(raw_input or [])
    calls: dict[str, dict[str, Any]] = {}
    for item in items:
        if not isinstance(item, dict):
            continue
        itype = item.get("type")
        role = item.get("role")
        if itype in (None, "message") and role == "user":
            while len(conv.answers) < len(conv.user_texts):
                conv.answers.append("")  # an earlier question without an answer
            conv.user_texts.append(_content_text(item.get("content")))
            conv.results = []  # results belong to the question they answered
            calls = {}
        elif itype in (None, "message") and role == "assistant" and conv.user_texts:
            text = _content_text(item.get("content"))
            if len(conv.answers) < len(conv.user_texts):
                conv.answers.append(text)
            else:
                conv.answers[-1] += text
        elif itype == "function_call":
            call_id = str(item.get("call_id") or item.get("id") or "")
            calls[call_id] = item
        elif itype == "function_call_output":
            call_id = str(item.get("call_id") or "")
            call = calls.get(call_id, {})
            args = _parse_json(call.get("arguments"))
            output = item.get("output")
            envelope = _parse_json(output)
            conv.results.append(
                ToolResult(
                    call_id=call_id,
                    name=str(call.get("name") or _tool_from_envelope(envelope) or "unknown_tool"),
                    arguments=args if isinstance(args, dict) else {},
                    envelope=envelope if isinstance(envelope, dict) else None,
                    raw=output if isinstance(output, str) else json.dumps(output),
                )
            )
    return conv


def _tool_from_envelope(envelope: Any) -> str | None:
    if isinstance(envelope, dict) and isinstance(envelope.get("meta"), dict):
        tool = envelope["meta"].get("tool")
        return tool if isinstance(tool, str) else None
    return None


def offered_tools(request: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Function tools the request offers, by name, with their parameter schemas."""
    tools: dict[str, dict[str, Any]] = {}
    for tool in request.get("tools") or []:
        if isinstance(tool, dict) and tool.get("type") == "function" and isinstance(tool.get("name"), str):
            params = tool.get("parameters")
            tools[tool["name"]] = params if isinstance(params, dict) else {}
    return tools


def _nullable(schema: Any) -> bool:
    if not isinstance(schema, dict):
        return False
    stype = schema.get("type")
    if stype == "null" or (isinstance(stype, list) and "null" in stype):
        return True
    return any(_nullable(s) for s in schema.get("anyOf") or schema.get("oneOf") or [])


def fit_arguments(arguments: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Arguments shaped to the tool's schema, as a strict-mode model sends them: every
    property present (null where the schema allows it and we have no value), nothing extra."""
    props = schema.get("properties") if isinstance(schema.get("properties"), dict) else None
    if props is None:
        return dict(arguments)
    fitted: dict[str, Any] = {}
    for name, prop in props.items():
        if name in arguments and (arguments[name] is not None or _nullable(prop)):
            fitted[name] = arguments[name]
        elif _nullable(prop):
            fitted[name] = None
        elif isinstance(prop, dict) and "default" in prop:
            fitted[name] = prop["default"]
    return fitted


class OfflineAnalyst:
    """Decides the next turn of a conversation. Pure and deterministic: request in, Turn out."""

    def respond(self, request: dict[str, Any]) -> Turn:
        conv = parse_conversation(request)
        question = conv.question
        if question is None or not question.strip():
            return Turn(
                text=(
                    "I did not receive a question. Ask me about your portfolio: "
                    "holdings, exposure, risk, factors, stress tests and more."
                )
            )
        tools = offered_tools(request)
        personal = self._personal(conv, question, tools)
        if personal is not None:
            return personal
        routing = route_conversation(conv.past, question)
        if conv.has_tool_results:
            follow_up = self._after_portfolio_list(conv, routing, tools, question)
            if follow_up is not None:
                return follow_up
            answer = compose_answer(
                question, conv.results, intents=routing.intents, symbols=routing.symbols, rank=routing.rank,
                top_n=routing.top_n, sectors=routing.sectors, short=routing.short,
            )  # fmt: skip
            return Turn(text=shape_for_mode(answer, mode_of(conv.instructions), [r.name for r in conv.results]))
        if routing.kind == "greeting":
            return Turn(text=greeting_answer())
        if routing.kind == "help":
            return Turn(text=help_answer(question))
        if routing.kind == "out_of_scope":
            return Turn(text=out_of_scope_answer())
        if routing.kind == "ambiguous":
            return Turn(text=ambiguous_answer())
        calls = self._plan(routing.calls, tools)
        if not calls:
            return Turn(text=no_tools_answer([c.name for c in routing.calls]))
        if routing.other_portfolio and "list_user_portfolios" in tools:
            # "and in the other portfolio?": find the user's portfolios first.
            return Turn(calls=(ToolCallPlan("list_user_portfolios", fit_arguments({}, tools["list_user_portfolios"])),))
        if _NO_PORTFOLIO_NOTE.search(conv.instructions) and "list_user_portfolios" in tools:
            if any(c.name in _PORTFOLIO_TOOLS and not c.arguments.get("portfolio_id") for c in calls):
                # No portfolio in this conversation: find the user's portfolios first.
                return Turn(
                    calls=(ToolCallPlan("list_user_portfolios", fit_arguments({}, tools["list_user_portfolios"])),)
                )
        return Turn(calls=tuple(calls))

    @staticmethod
    def _personal(conv: Conversation, question: str, tools: dict[str, dict[str, Any]]) -> Turn | None:
        """ "Remember that ..." (the remember tool, then a confirmation) and "what do you
        remember about me?" (answered from the memories in the instructions)."""
        fact = remember_fact(question)
        if fact is not None and "remember" in tools:
            if conv.has_tool_results:
                return Turn(text=remembered_answer(conv.results[-1]))
            return Turn(calls=(ToolCallPlan("remember", fit_arguments({"fact": fact}, tools["remember"])),))
        if asks_recall(question):
            return Turn(text=recall_answer(parse_memories_note(conv.instructions)))
        return None

    @staticmethod
    def _plan(planned: tuple[ToolCallPlan, ...], tools: dict[str, dict[str, Any]]) -> list[ToolCallPlan]:
        return [ToolCallPlan(c.name, fit_arguments(c.arguments, tools[c.name])) for c in planned if c.name in tools]

    def _after_portfolio_list(
        self, conv: Conversation, routing: Routing, tools: dict[str, dict[str, Any]], question: str
    ) -> Turn | None:
        """Second step when no portfolio was selected: call the planned tools on the portfolio
        the question names (by name), else the user's largest portfolio."""
        if routing.kind != "tools" or any(r.name != "list_user_portfolios" for r in conv.results):
            return None
        wanted = [c for c in routing.calls if c.name != "list_user_portfolios"]
        if not wanted:
            return None
        exclude = conv.portfolio_id if routing.other_portfolio else None
        portfolio_id = choose_portfolio(conv.results[-1], question, exclude=exclude)
        if portfolio_id is None:
            return None  # compose explains there is no portfolio to analyse
        calls = [
            ToolCallPlan(
                c.name, {**c.arguments, "portfolio_id": portfolio_id} if c.name in _PORTFOLIO_TOOLS else c.arguments
            )
            for c in wanted
        ]
        planned = self._plan(tuple(calls), tools)
        return Turn(calls=tuple(planned)) if planned else None


def _portfolio_rows(result: ToolResult) -> list[dict[str, Any]]:
    data = (result.envelope or {}).get("data")
    if isinstance(data, dict):
        data = data.get("portfolios")
    return [p for p in data or [] if isinstance(p, dict) and p.get("id")] if isinstance(data, list) else []


_GENERIC_NAME_WORDS = frozenset({"demo", "portfolio", "portfolios", "sigmasight", "account", "the", "and", "fund"})


def _name_words(name: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]{3,}", name.lower()) if w not in _GENERIC_NAME_WORDS}


def choose_portfolio(result: ToolResult, question: str, *, exclude: str | None = None) -> str | None:
    """The portfolio a question means: the one whose distinguishing name words it uses most
    ("the private one"), else the largest by NAV; never ``exclude`` ("the other portfolio")
    when there is another."""
    rows = _portfolio_rows(result)
    if exclude and any(str(r.get("id")) != exclude for r in rows):
        rows = [r for r in rows if str(r.get("id")) != exclude]
    if not rows:
        return None
    asked = set(re.findall(r"[a-z]{3,}", question.lower()))
    names = [_name_words(str(row.get("name") or "")) for row in rows]
    shared = set.intersection(*names) if names else set()  # words every name has tell nothing apart
    scores = [len((words - shared) & asked) for words in names]
    best = max(scores)
    if best > 0 and scores.count(best) == 1:
        return str(rows[scores.index(best)]["id"])

    def size(row: dict[str, Any]) -> float:
        for key in ("nav", "total_value", "equity_balance", "market_value"):
            value = row.get(key)
            if isinstance(value, int | float):
                return float(value)
        return 0.0

    return str(max(rows, key=size)["id"])
