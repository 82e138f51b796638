"""Intent routing: each family of question picks the tool a portfolio manager would expect."""

from __future__ import annotations

import pytest

from sigmachat.offline.intents import extract_lookback_days, extract_symbols, route

CASES = [
    # (question, expected tool names in order)
    ("What is my largest position?", ["get_portfolio_complete"]),
    ("What's my biggest short?", ["get_portfolio_complete"]),
    ("Show me my holdings", ["get_portfolio_complete"]),
    ("What's my unrealised P&L?", ["get_portfolio_complete"]),
    ("How is my portfolio doing?", ["get_analytics_overview", "get_portfolio_complete"]),
    ("What is my gross and net exposure?", ["get_analytics_overview"]),
    ("Am I net long?", ["get_analytics_overview"]),
    ("What is my sector exposure?", ["get_sector_exposure"]),
    ("How much exposure to tech do I have?", ["get_sector_exposure"]),
    ("How risky is my portfolio?", ["get_volatility_analysis"]),
    ("What is my realized volatility?", ["get_volatility_analysis"]),
    ("What are my factor exposures?", ["get_factor_exposures"]),
    ("What's my beta to the market?", ["get_factor_exposures"]),
    ("Run a stress test", ["get_stress_test_results"]),
    ("What happens if the market drops 20%?", ["get_stress_test_results"]),
    ("How concentrated is my portfolio?", ["get_concentration_metrics"]),
    ("Am I diversified enough?", ["get_concentration_metrics"]),
    ("Which of my holdings move together? Show correlations", ["get_correlation_matrix"]),
    ("What moved today?", ["get_daily_movers"]),
    ("Who are my top gainers and losers?", ["get_daily_movers"]),
    ("What's the price of AAPL?", ["get_current_quotes"]),
    ("Quote NVDA and MSFT", ["get_current_quotes"]),
    ("What does NVDA do?", ["get_company_profile"]),
    ("Tell me about Apple", ["get_company_profile"]),
    ("How is the market today?", ["get_market_overview"]),
    ("Any data quality issues or stale prices?", ["get_portfolio_data_quality"]),
    ("Show my option positions with strikes and expiries", ["get_positions_details"]),
    ("Which portfolios do I have?", ["list_user_portfolios"]),
    ("Show the price history over the last 3 months", ["get_prices_historical"]),
    ("How did the factor ETFs perform?", ["get_factor_etf_prices"]),
    # multi-intent: one turn, several calls
    ("What is my largest position and my sector exposure?", ["get_portfolio_complete", "get_sector_exposure"]),
    ("Give me volatility, factor betas and a stress test", ["get_factor_exposures", "get_volatility_analysis", "get_stress_test_results"]),
]


@pytest.mark.parametrize(("question", "tools"), CASES)
def test_question_routes_to_the_expected_tools(question: str, tools: list[str]) -> None:
    routing = route(question)
    assert routing.kind == "tools"
    assert [c.name for c in routing.calls] == tools


@pytest.mark.parametrize("question", ["hi", "Hello!", "thanks", "good morning"])
def test_greetings_need_no_tools(question: str) -> None:
    routing = route(question)
    assert routing.kind == "greeting" and routing.calls == ()


@pytest.mark.parametrize("question", ["What can you do?", "help", "What's the weather in Paris?"])
def test_questions_without_portfolio_intent_get_help(question: str) -> None:
    routing = route(question)
    assert routing.kind == "help" and routing.calls == ()


def test_portfolio_id_is_null_unless_the_question_names_one() -> None:
    assert route("What is my largest position?").calls[0].arguments["portfolio_id"] is None
    pid = "1b4e28ba-2fa1-41d2-883f-0016d3cca427"
    assert route(f"Largest position in portfolio {pid}?").calls[0].arguments["portfolio_id"] == pid


def test_quotes_take_at_most_five_symbols_from_the_question() -> None:
    call = route("Quotes for AAPL, MSFT, NVDA, TSLA, AMZN and META please").calls[0]
    assert call.name == "get_current_quotes"
    assert call.arguments["symbols"] == ["AAPL", "MSFT", "NVDA", "TSLA", "AMZN"]


def test_follow_up_reuses_the_previous_question_intent() -> None:
    routing = route("and why is that?", previous_user_texts=["What is my sector exposure?"])
    assert [c.name for c in routing.calls] == ["get_sector_exposure"]


@pytest.mark.parametrize(
    ("text", "symbols"),
    [
        ("What is V?", ["V"]),
        ("Plan C for the weekend", []),
        ("I am OK with NAV and ETF risk", []),
        ("Compare $C and BRK-B", ["C", "BRK-B"]),
        ("what about microsoft and nvidia", ["MSFT", "NVDA"]),
    ],
)
def test_symbol_extraction(text: str, symbols: list[str]) -> None:
    assert extract_symbols(text) == symbols


def test_lookback_parsing() -> None:
    assert extract_lookback_days("over the last 3 months") == 63
    assert extract_lookback_days("past two weeks") == 10
    assert extract_lookback_days("no window", default=30) == 30
