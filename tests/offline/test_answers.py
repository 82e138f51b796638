"""Answer composers are defensive: odd envelopes give sensible sentences, never exceptions."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sigmachat.offline.answers import COMPOSERS, ToolResult, compose_answer, money, pct
from tests.offline.helpers import envelope

TOOLS = sorted(COMPOSERS)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**9), 10**9)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "symbol",
                    "name",
                    "market_value",
                    "weight",
                    "nav",
                    "holdings",
                    "sectors",
                    "factors",
                    "beta",
                    "pnl",
                    "scenarios",
                    "quotes",
                    "close",
                    "change_pct",
                    "gainers",
                    "losers",
                    "by_symbol",
                    "hhi",
                    "pairs",
                    "correlation",
                    "realized",
                    "contributions",
                    "portfolios",
                    "positions",
                    "indices",
                    "exposure",
                    "x",
                ]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)


def result(tool: str, data=None, error=None, **meta) -> ToolResult:
    env = envelope(tool, data, error=error, **meta)
    return ToolResult(call_id="c", name=tool, arguments={}, envelope=env)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    tool=st.sampled_from(TOOLS),
    data=json_values,
    question=st.sampled_from(["What is my largest position?", "biggest short", "holdings", "risk"]),
)
def test_any_data_shape_gives_text_not_an_exception(tool: str, data, question: str) -> None:
    text = compose_answer(question, [result(tool, data)], intents=("largest", "holdings"), symbols=("AAPL",))
    assert isinstance(text, str) and text.strip()


@pytest.mark.parametrize("tool", TOOLS)
def test_error_envelopes_say_what_could_not_be_computed(tool: str) -> None:
    err = {"type": "execution_error", "message": "The database was unavailable; try again.", "retryable": True}
    text = compose_answer("anything", [result(tool, None, error=err)])
    assert "could not" in text.lower() and "The database was unavailable" in text and "ask again" in text
    assert "No figures could be computed" in text


def test_not_found_and_unparseable_outputs() -> None:
    not_found = result(
        "get_company_profile", error={"type": "not_found", "message": "Unknown symbol ZZZZ", "retryable": False}
    )
    assert "I could not get the company profile: Unknown symbol ZZZZ." in compose_answer(
        "What does ZZZZ do?", [not_found]
    )
    broken = ToolResult(call_id="c", name="get_sector_exposure", arguments={}, envelope=None, raw="<html>")
    assert "not a JSON envelope" in compose_answer("sectors", [broken])


def test_partial_failure_keeps_the_good_section() -> None:
    good = result(
        "get_sector_exposure",
        {"sectors": [{"sector": "Energy", "weight": 0.12, "market_value": 120000}]},
        price_source="demo",
    )
    bad = result("get_volatility_analysis", error={"type": "execution_error", "message": "boom", "retryable": False})
    text = compose_answer("sectors and risk", [good, bad])
    # The answer comes first (no heading); the supporting sections follow under theirs.
    assert text.startswith("Your largest sector is **Energy** at 12.0% of NAV") and "**Sectors**" not in text
    assert "**Risk and volatility**" in text and "I could not compute the volatility analysis: boom." in text
    assert "No figures could be computed" not in text
    assert "prices are demo data" in text


def test_missing_keys_give_shorter_sentences() -> None:
    text = compose_answer(
        "What is my largest position?",
        [result("get_portfolio_complete", {"holdings": [{"symbol": "XYZ"}]})],
        intents=("largest",),
    )
    assert "**XYZ**" in text


def test_advice_questions_get_facts_not_recommendations() -> None:
    text = compose_answer(
        "Should I sell AAPL?",
        [result("get_current_quotes", {"quotes": [{"symbol": "AAPL", "close": 200.5, "change_pct": 1.25}]})],
    )
    assert "$200.50" in text and "+1.25%" in text and "do not make buy or sell recommendations" in text


def test_formatting_units() -> None:
    assert money(1234567.891) == "$1,234,568"
    assert money(-412.3) == "-$412"
    assert money(0) == "$0"
    assert money(3.5) == "$3.50"
    assert money(197.14, cents=True) == "$197.14"
    assert money(None) == "n/a"
    assert pct(0.1234) == "12.3%"
    assert pct(1.26, fraction=False, signed=True) == "+1.3%"
    assert pct(1.25, fraction=False, signed=True) == "+1.2%"  # an exact tie rounds to even, as format() does
    assert pct(-0.00001) == "0.0%"


# No deadline: how long 500 examples take depends on the machine's load, not on the code.
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tool=st.sampled_from(TOOLS), data=json_values)
def test_composers_themselves_handle_any_shape(tool: str, data) -> None:
    """The composers, not just the safety net around them, cope with unexpected shapes."""
    from sigmachat.offline.answers import Focus

    focus = Focus(
        question="What is my largest position and sector exposure?",
        intents=("largest", "holdings", "summary"),
        symbols=("AAPL",),
    )
    COMPOSERS[tool](result(tool, data), focus)


def test_a_quote_priced_without_a_close_still_gets_its_52_week_range() -> None:
    # A quote priced from `price` alone used to raise a TypeError when placing it in its range.
    text = compose_answer(
        "What is the price of XYZ?",
        [result("get_current_quotes", {"quotes": [{"symbol": "XYZ", "price": 12.5, "low_52w": 10, "high_52w": 20}]})],
        intents=("quote",),
    )
    assert "**XYZ**" in text or "XYZ" in text
    assert "52-week range" in text and "of the way" not in text
