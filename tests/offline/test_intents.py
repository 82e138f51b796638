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
    # A question about a ticker also says what the user holds in it (the holdings call second).
    ("What's the price of AAPL?", ["get_current_quotes", "get_portfolio_complete"]),
    ("Quote NVDA and MSFT", ["get_current_quotes", "get_portfolio_complete"]),
    ("What does NVDA do?", ["get_company_profile", "get_portfolio_complete"]),
    ("Tell me about Apple", ["get_company_profile", "get_portfolio_complete"]),
    ("How is the market today?", ["get_market_overview"]),
    ("Any data quality issues or stale prices?", ["get_portfolio_data_quality"]),
    ("Show my option positions with strikes and expiries", ["get_positions_details"]),
    ("Which portfolios do I have?", ["list_user_portfolios"]),
    ("Show the price history over the last 3 months", ["get_prices_historical"]),
    ("How did the factor ETFs perform?", ["get_factor_etf_prices"]),
    # multi-intent: one turn, several calls
    ("What is my largest position and my sector exposure?", ["get_portfolio_complete", "get_sector_exposure"]),
    (
        "Give me volatility, factor betas and a stress test",
        ["get_factor_exposures", "get_volatility_analysis", "get_stress_test_results"],
    ),
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


@pytest.mark.parametrize("question", ["What can you do?", "help"])
def test_questions_without_portfolio_intent_get_help(question: str) -> None:
    routing = route(question)
    assert routing.kind == "help" and routing.calls == ()


@pytest.mark.parametrize("question", ["What's the weather in Paris?", "Write me a poem about the sea"])
def test_questions_outside_the_portfolio_are_out_of_scope(question: str) -> None:
    routing = route(question)
    assert routing.kind == "out_of_scope" and routing.calls == ()


@pytest.mark.parametrize("question", ["Is it good?", "How much?", "What about that one?"])
def test_questions_that_refer_to_nothing_are_ambiguous(question: str) -> None:
    routing = route(question)
    assert routing.kind == "ambiguous" and routing.calls == ()


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


# ---- follow-ups (the conversation decides what a short question means) -----------------------


def _after(*turns: tuple[str, str], question: str):
    from sigmachat.offline.dialogue import PastTurn, route_conversation

    return route_conversation([PastTurn(q, a) for q, a in turns], question)


def test_second_largest_ranks_the_previous_topic() -> None:
    routing = _after(
        ("What is my largest position?", "Your largest position is **HOME_EQUITY**."),
        question="and the second largest?",
    )
    assert routing.intents == ("largest",) and routing.rank == 2
    assert [c.name for c in routing.calls] == ["get_portfolio_complete"]
    sectors = _after(("What is my largest sector?", "Your largest sector is **Energy**."), question="and the next one?")
    assert sectors.intents == ("sectors",) and sectors.rank == 2


def test_the_next_one_counts_on_from_the_previous_rank() -> None:
    routing = _after(("What is my largest position?", ""), ("and the second largest?", ""), question="the next one")
    assert routing.rank == 3


def test_it_means_the_holding_the_previous_answer_was_about() -> None:
    routing = _after(
        ("and the second largest?", ""),
        ("What is my largest position?", "Your largest is **MSFT** at $1."),
        question="How has it done over the last month?",
    )
    assert routing.symbols == ("MSFT",) and routing.calls[0].name == "get_prices_historical"
    assert routing.calls[0].arguments["lookback_days"] == 30  # "last month": the default 30 days


def test_what_about_a_lower_case_ticker_asks_what_the_user_holds() -> None:
    routing = _after(("What is my largest position?", "Your largest is **MSFT**."), question="what about aapl?")
    assert routing.symbols == ("AAPL",)
    assert [c.name for c in routing.calls] == ["get_portfolio_complete", "get_current_quotes"]


def test_numbers_become_stress_arguments_and_follow_ups_keep_the_direction() -> None:
    first = route("How would a 30% market drop affect me?")
    assert first.calls[0].arguments["custom_market_move_pct"] == -30.0
    again = _after(("How would a 30% market drop affect me?", ""), question="and 40%?")
    assert again.calls[0].arguments["custom_market_move_pct"] == -40.0
    fell = _after(("How would a 30% market drop affect me?", ""), question="what if it fell 10% instead?")
    assert fell.calls[0].arguments["custom_market_move_pct"] == -10.0


def test_other_portfolio_repeats_the_previous_question() -> None:
    routing = _after(("What is my largest position?", ""), question="and in the other portfolio?")
    assert routing.other_portfolio and routing.intents == ("largest",)


def test_benchmark_questions_use_the_benchmark_tool_and_sector_follow_ups_stay_on_it() -> None:
    routing = route("Compare my tech exposure to the S&P 500")
    assert [c.name for c in routing.calls] == ["get_benchmark_comparison"] and routing.sectors == (
        "Information Technology",
    )
    energy = _after(("Compare my tech exposure to the S&P 500", ""), question="what about energy?")
    assert [c.name for c in energy.calls] == ["get_benchmark_comparison"] and energy.sectors == ("Energy",)


def test_top_n_and_company_names() -> None:
    assert route("What are my top 3 holdings?").top_n == 3
    assert route("how much costco stock do i hold?").symbols == ("COST",)
    assert "COST" not in route("what does it cost to trade?").symbols  # an everyday word stays a word
