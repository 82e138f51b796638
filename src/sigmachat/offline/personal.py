"""What the offline analyst knows about the person asking: their saved memories and the
conversation's mode, both read from the request's instructions as a hosted model reads its
context (agent/instructions.py writes them).

- "remember that ..." becomes a ``remember`` tool call, then a confirmation;
- "what do you remember about me?" is answered from the memories in the context;
- the mode shapes a composed answer: ``blue`` keeps the figures and at most one sentence
  of prose, ``indigo`` adds themes to watch, ``violet`` leads with risk and ends with risks to
  review. ``green`` (the default, explanatory) is the analyst's usual answer.

No numbers are added here: the added lines are about what to look at, never figures.
"""

from __future__ import annotations

import re

from sigmachat.agent.instructions import DEFAULT_MODE, MODES
from sigmachat.offline.answers import ToolResult

_REMEMBER = re.compile(
    r"^\s*(?:please\s+)?(?:remember|note|keep in mind)\s*(?:that|:)\s*(?P<fact>.+?)\s*[.!]?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_RECALL = re.compile(
    r"\bwhat do you (?:remember|know) about me\b|\b(?:list|show)? ?my (?:saved )?memories\b"
    r"|\bwhat have i asked you to remember\b|\bwhat did i ask you to remember\b",
    re.IGNORECASE,
)
_MODE_LINE = re.compile(r"^Conversation mode: (?P<mode>[a-z]+)\b", re.MULTILINE)

# Per mode, per tool: one line about what to watch (no figures).
_THEMES = {
    "get_sector_exposure": "Sector tilt: whether the largest sector weight is a deliberate theme or drift.",
    "get_factor_exposures": "Factor tilts: how the portfolio would fare if market leadership rotates between styles.",
    "get_concentration_metrics": "Concentration: how much of the story rests on a few names.",
    "get_analytics_overview": "Positioning: how gross and net exposure would change in a risk-off market.",
    "get_portfolio_complete": "Leaders: whether the largest holdings still fit the portfolio's thesis.",
    "get_stress_test_results": "Scenarios: which macro shock the portfolio is most exposed to.",
    "get_volatility_analysis": "Volatility regime: whether recent volatility is rising or settling.",
}
_RISKS = {
    "get_portfolio_complete": "Single-name risk in the largest holdings, and any short or option positions.",
    "get_concentration_metrics": "Concentration: a few names carrying most of the value.",
    "get_analytics_overview": "Leverage: gross exposure above net means losses can exceed a simple long book's.",
    "get_sector_exposure": "Sector concentration: one sector's drawdown hits most of the book at once.",
    "get_stress_test_results": "The worst stress scenario's loss, and whether it is acceptable.",
    "get_volatility_analysis": "Volatility and drawdown: how far the value could fall in a bad month.",
    "get_factor_exposures": "Market beta: the portfolio falls with the market by about its beta.",
    "get_correlation_matrix": "Correlated holdings offer less diversification than their count suggests.",
}
_DEFAULT_RISK = "Data limits: figures are point-in-time; check the as-of date and price source below."


def remember_fact(question: str) -> str | None:
    """The fact in "remember that ..." (None when the message is not such a request)."""
    match = _REMEMBER.match(question)
    if not match:
        return None
    fact = " ".join(match.group("fact").split())
    return fact or None


def asks_recall(question: str) -> bool:
    return bool(_RECALL.search(question))


def mode_of(instructions: str) -> str:
    match = _MODE_LINE.search(instructions)
    return match.group("mode") if match and match.group("mode") in MODES else DEFAULT_MODE


def remembered_answer(result: ToolResult) -> str:
    if result.error is not None:
        return f"I could not save that: {result.error.get('message') or 'the memory service failed'}."
    data = result.data if isinstance(result.data, dict) else {}
    saved = data.get("saved") or result.arguments.get("fact") or ""
    count, limit = data.get("count"), data.get("max_allowed")
    tail = f" You have {count} of {limit} memories saved." if count is not None and limit else ""
    return f"Noted. I will remember: “{saved}”.{tail}"


def recall_answer(memories: list[str]) -> str:
    if not memories:
        return "You have not asked me to remember anything yet. Say *remember that …* and I will."
    lines = "\n".join(f"- {m}" for m in memories)
    return f"Here is what you asked me to remember:\n\n{lines}"


def _is_figures(paragraph: str) -> bool:
    first = paragraph.lstrip()
    return first.startswith(("|", "- ", "* ", "**")) or bool(re.match(r"\d+\.\s", first))


def shape_for_mode(answer: str, mode: str, tools: list[str]) -> str:
    """The composed answer in the conversation's mode (see the module docstring)."""
    if mode == "blue":
        kept: list[str] = []
        prose_used = False
        for para in answer.split("\n\n"):
            if _is_figures(para) or para.startswith("_"):
                kept.append(para)
            elif not prose_used:
                sentence = re.split(r"(?<=[.!?])\s", para.strip(), maxsplit=1)[0]
                kept.append(sentence)
                prose_used = True
        return "\n\n".join(kept)
    if mode == "indigo":
        themes = [_THEMES[t] for t in dict.fromkeys(tools) if t in _THEMES] or [_THEMES["get_portfolio_complete"]]
        body, footer = _split_footer(answer)
        return body + "\n\n**Themes to watch**\n\n" + "\n".join(f"- {t}" for t in themes[:3]) + footer
    if mode == "violet":
        risks = [_RISKS[t] for t in dict.fromkeys(tools) if t in _RISKS][:3] + [_DEFAULT_RISK]
        body, footer = _split_footer(answer)
        lead = "**Risk first.** Read these figures for what could go wrong before what went right."
        return lead + "\n\n" + body + "\n\n**Risks to review**\n\n" + "\n".join(f"- {r}" for r in risks) + footer
    return answer


def _split_footer(answer: str) -> tuple[str, str]:
    """The answer without its italic as-of footer, and the footer (kept last)."""
    head, sep, last = answer.rpartition("\n\n")
    if sep and last.startswith("_"):
        return head, "\n\n" + last
    return answer, ""
