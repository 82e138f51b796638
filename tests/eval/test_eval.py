"""The evaluation harness: a small subset of the set on both engines against the offline analyst,
and the fact matching it relies on."""

from __future__ import annotations

from sigmachat.eval.facts import Expectation, first_sentence, numbers_in
from sigmachat.eval.questions import load_cases
from sigmachat.eval.report import html_report
from sigmachat.eval.runner import EngineTurn, run_eval, score

SUBSET = (
    "hnw-ranking",
    "fam-other",
    "ind-benchmark",
    "hnw-aapl",
    "ind-weather",
    "ind-ambiguous",
)


def test_the_shipped_set_is_large_and_covers_the_kinds_of_question() -> None:
    cases = load_cases()
    assert sum(len(c.turns) for c in cases) >= 60
    assert {c.email.split("@")[0] for c in cases} == {
        "demo_individual",
        "demo_hnw",
        "demo_hedgefundstyle",
        "demo_familyoffice",
    }
    tags = {t for c in cases for t in c.tags}
    assert {
        "follow-up",
        "lower-case",
        "company-names",
        "numbers",
        "benchmark",
        "out-of-scope",
        "ambiguous",
    } <= tags
    assert any(len(c.turns) >= 3 for c in cases)
    # Facts are named, never written in as numbers.
    for c in cases:
        for t in c.turns:
            for spec in t.expect:
                assert not any(isinstance(v, float) for v in spec.values()), spec


def test_numbers_are_found_whatever_their_format() -> None:
    assert (2_606_205.0, False, True) in numbers_in("Without it NAV is **$2,606,205**.")
    assert any(abs(n - 2_610_000) < 1 and usd for n, _, usd in numbers_in("about $2.61M"))
    assert Expectation("nav", "usd", 2_606_205.0).found_in("NAV is $2.61M")
    assert not Expectation("nav", "usd", 2_606_205.0).found_in("NAV is $2.7M")
    assert Expectation("w", "pct", 0.0902).found_in("9.0% of NAV") and not Expectation("w", "pct", 0.0902).found_in(
        "9.5% of NAV"
    )
    assert Expectation("s", "symbol", phrases=("SPY",)).found_in("**SPY** closed") is True
    assert Expectation("s", "symbol", phrases=("SPY",)).found_in("SPYX closed") is False
    assert first_sentence("You hold 307.65 shares of **AAPL** (Apple Inc.) worth $60,651. Then more.") == (
        "You hold 307.65 shares of AAPL (Apple Inc.) worth $60,651."
    )


def test_scoring_reports_what_is_missing() -> None:
    turn = EngineTurn(
        text="The answer is late. Your largest position is **MSFT**.",
        tools=["get_portfolio_complete"],
    )
    score(
        turn,
        [Expectation("#1 holding MSFT", "symbol", phrases=("MSFT",), first_sentence=True)],
        ("get_sector_exposure",),
    )
    assert turn.missing == [
        "#1 holding MSFT (not in the first sentence)",
        "tool get_sector_exposure",
    ]
    assert not turn.passed


async def test_a_subset_passes_on_both_engines_with_the_same_tools(services) -> None:
    services.settings.send_rate_limit = ""
    cases = [c for c in load_cases() if c.id in SUBSET]
    report = await run_eval(services, cases, engines=("responses", "agents"))
    failures = {r.key: {e: t.missing for e, t in r.engines.items() if not t.passed} for r in report.results}
    assert report.pass_rate("responses") == report.pass_rate("agents") == 100.0, failures
    assert report.agreement() == 100.0
    assert len(report.results) == sum(len(c.turns) for c in cases)
    html = html_report(report)
    assert "hnw-ranking#2" in html and "and the second largest?" in html and "tool-sequence agreement" in html
