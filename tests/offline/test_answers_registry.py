"""The offline analyst answering from the real tool registry on the seeded demo database."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from sqlalchemy import select

from sigmachat.agent.instructions import instructions_for
from sigmachat.db.models import Portfolio, User
from sigmachat.offline.analyst import OfflineAnalyst
from sigmachat.portfolio.service import get_owned_portfolio, value_owned_portfolio
from sigmachat.tools.registry import ToolContext, build_registry
from tests.conftest import FAMILY, HEDGE, HNW

analyst = OfflineAnalyst()


async def _user_and_portfolios(services, email: str) -> tuple[str, list[str]]:
    async with services.db.session() as s:
        user = (await s.execute(select(User).where(User.email == email))).scalar_one()
        rows = (
            await s.execute(
                select(Portfolio).where(Portfolio.owner_id == user.id).order_by(Portfolio.created_at, Portfolio.name)
            )
        ).scalars()
        return user.id, [p.id for p in rows]


async def converse(
    services, email: str, question: str, *, select_portfolio: bool = True, registry=None, settings=None
) -> tuple[str, list[tuple[str, dict[str, Any]]]]:
    """Run the model-tool loop the engine runs: model turn, tools, model turn... until text."""
    settings = settings or services.settings
    registry = registry or build_registry(settings)
    user_id, pids = await _user_and_portfolios(services, email)
    pid = pids[0] if select_portfolio else None
    ctx = ToolContext(user_id=user_id, portfolio_id=pid, session_factory=services.db.session, settings=settings)
    items: list[dict[str, Any]] = [{"role": "user", "content": question}]
    calls: list[tuple[str, dict[str, Any]]] = []
    body = {
        "model": "m",
        "input": items,
        "tools": registry.openai_tools(),
        "instructions": instructions_for(as_of=settings.as_of_date, portfolio_id=pid),
    }
    for _ in range(4):
        turn = analyst.respond(body)
        if not turn.calls:
            return turn.text, calls
        for i, call in enumerate(turn.calls):
            result = await registry.call(call.name, call.arguments_json, ctx)
            call_id = f"call_{len(calls)}_{i}"
            calls.append((call.name, call.arguments))
            items += [
                {"type": "function_call", "call_id": call_id, "name": call.name, "arguments": call.arguments_json},
                {"type": "function_call_output", "call_id": call_id, "output": result.model_text},
            ]
    raise AssertionError("the analyst never answered")


async def test_largest_position_names_the_symbol_the_portfolio_api_shows(services) -> None:
    user_id, pids = await _user_and_portfolios(services, HNW)
    async with services.db.session() as s:
        portfolio = await get_owned_portfolio(s, user_id, pids[0])
        valuation = await value_owned_portfolio(s, portfolio, services.settings.as_of_date)
    top = valuation.holdings[0]
    text, calls = await converse(services, HNW, "What is my largest position?")
    assert [name for name, _ in calls] == ["get_portfolio_complete"]
    assert f"Your largest position in **{valuation.name}** is **{top.symbol}**" in text
    assert f"${abs(top.market_value):,.0f}" in text
    assert f"{top.weight * 100:.1f}% of NAV" in text
    assert "demo data" in text and "offline analyst" in text


async def test_largest_short_in_the_hedge_fund_book(services) -> None:
    user_id, pids = await _user_and_portfolios(services, HEDGE)
    async with services.db.session() as s:
        valuation = await value_owned_portfolio(
            s, await get_owned_portfolio(s, user_id, pids[0]), services.settings.as_of_date
        )
    shorts = [h for h in valuation.holdings if h.market_value < 0]
    text, _ = await converse(services, HEDGE, "What is my biggest short?")
    assert f"Your largest short position in **{valuation.name}** is **{shorts[0].symbol}**" in text


QUESTIONS = [
    ("What is my gross and net exposure?", "get_analytics_overview", ["Gross exposure is", "Net"]),
    ("What is my sector exposure?", "get_sector_exposure", ["Your largest sector is", "| Sector |"]),
    ("How risky is my portfolio?", "get_volatility_analysis", ["Annualised portfolio volatility", "Share of risk"]),
    ("What are my factor betas?", "get_factor_exposures", ["Market beta is", "R²"]),
    ("Run a stress test", "get_stress_test_results", ["The worst scenario is", "Market -20%"]),
    ("What if the market falls 15%?", "get_stress_test_results", ["In your scenario, **Market -15", "would lose"]),
    ("How concentrated am I?", "get_concentration_metrics", ["HHI", "top 5"]),
    ("What moved today?", "get_daily_movers", ["Day change", "The day's P&L"]),
    (
        "Show correlations between my holdings",
        "get_correlation_matrix",
        ["most correlated pair", "Average pairwise correlation"],
    ),
    ("Quote AAPL and NVDA", "get_current_quotes", ["| AAPL |", "| NVDA |", "52-week range"]),
    ("What does NVDA do?", "get_company_profile", ["**NVIDIA Corporation** (NVDA)", "beta to the S&P 500"]),
    ("How is the market today?", "get_market_overview", ["**SPY** closed at", "VIX"]),
    ("Any data quality issues?", "get_portfolio_data_quality", ["Price coverage is", "Price source: demo"]),
    ("Show my lots with entry prices", "get_positions_details", ["Entry price", "lots in **"]),
    ("Price history over the last 3 months", "get_prices_historical", ["over the last 63 trading days", "best **"]),
    ("How did the factor ETFs do this month?", "get_factor_etf_prices", ["Market (SPY)", "Momentum (MTUM)"]),
    ("Which portfolios do I have?", "list_user_portfolios", ["You have 1 portfolio", "Demo High Net Worth"]),
    ("How is my portfolio doing?", "get_analytics_overview", ["NAV of **", "**Holdings**", "Biggest gain"]),
]


@pytest.mark.parametrize(("question", "tool", "phrases"), QUESTIONS)
async def test_each_intent_answers_from_the_real_tools(services, question: str, tool: str, phrases: list[str]) -> None:
    text, calls = await converse(services, HNW, question)
    assert tool in [name for name, _ in calls]
    for phrase in phrases:
        assert phrase in text, f"{phrase!r} not in:\n{text}"
    assert "could not" not in text.lower()
    assert text.rstrip().endswith("._")  # the provenance footer
    assert re.search(r"\$\d|\d\.\d+%|\d\.\d\d", text), "the answer carries numbers"


async def test_options_book_answers_name_option_terms(services) -> None:
    text, _ = await converse(services, HEDGE, "Show my option positions with strikes and expiries")
    assert "The nearest expiry is" in text and re.search(r"\$\d+\.\d\d (call|put), expiring 20\d\d-", text)


async def test_no_selected_portfolio_lists_then_answers_for_the_named_one(services) -> None:
    text, calls = await converse(
        services, FAMILY, "What's the sector exposure of my private opportunities portfolio?", select_portfolio=False
    )
    assert [name for name, _ in calls] == ["list_user_portfolios", "get_sector_exposure"]
    assert "this answer is for **Demo Family Office Private Opportunities**" in text
    assert "Private Credit" in text


async def test_validation_error_from_the_registry_is_acknowledged(services) -> None:
    registry = build_registry(services.settings)
    user_id, pids = await _user_and_portfolios(services, HNW)
    ctx = ToolContext(
        user_id=user_id, portfolio_id=pids[0], session_factory=services.db.session, settings=services.settings
    )
    bad = {"portfolio_id": None, "lookback_days": 9999, "include_factor_etfs": False}
    result = await registry.call("get_prices_historical", json.dumps(bad), ctx)
    assert result.envelope["error"]["type"] == "validation_error"
    items = [
        {"role": "user", "content": "Show my price history"},
        {"type": "function_call", "call_id": "c1", "name": "get_prices_historical", "arguments": json.dumps(bad)},
        {"type": "function_call_output", "call_id": "c1", "output": result.model_text},
    ]
    turn = analyst.respond({"model": "m", "input": items, "tools": registry.openai_tools()})
    assert "I could not get historical prices: the request was rejected as invalid" in turn.text
    assert "No figures could be computed" in turn.text


async def test_truncated_tool_output_is_disclosed(services) -> None:
    settings = services.settings.model_copy(update={"tool_max_chars_portfolio": 1500})
    text, _ = await converse(services, HNW, "Show me all my holdings", settings=settings)
    assert "truncated" in text
