"""The engines-alone microbenchmark: both engines replay the same recorded answers whole."""

from __future__ import annotations

import io

from rich.console import Console

from sigmachat.bench.engines import ENGINES, engine_microbench
from sigmachat.bench.report import markdown, terminal_tables
from tests.bench.test_report import report  # noqa: F401  (the fixture: a report from before this section)

QUESTIONS = [("text", "What can you do?"), ("tools", "What does NVDA do and what is its price?")]


async def test_both_engines_replay_each_recorded_answer_with_the_same_tokens(settings):
    result = await engine_microbench(settings, QUESTIONS, runs=2, rounds=2)
    rows = {(r["question"], r["engine"]): r for r in result["rows"]}
    assert set(rows) == {(q, e) for q, _ in QUESTIONS for e in ENGINES}
    assert result["tools"] > 10  # the real registry's schemas go into every request
    for question, _ in QUESTIONS:
        responses, agents = rows[(question, "responses")], rows[(question, "agents")]
        assert responses["tokens"] == agents["tokens"] > 20  # the same answer, whole, from both
        assert responses["vs_responses"] == 1.0 and responses["extra_ms"] == 0 and agents["vs_responses"] > 0
        ratios = [a / r for a, r in zip(agents["rounds_ms"], responses["rounds_ms"], strict=True)]
        assert min(ratios) - 0.01 <= agents["vs_responses"] <= max(ratios) + 0.01  # a median of the pairs
        assert len(agents["rounds_ms"]) == 2 and agents["ms_per_answer"] > 0
    assert rows[("text", "agents")]["model_calls"] == 1
    assert rows[("tools", "agents")]["model_calls"] == 2  # the tool turn, then the answer


def test_the_section_renders_and_a_failure_says_what_failed(report):  # noqa: F811
    row = {"question": "text", "engine": "agents", "model_calls": 1, "tokens": 120, "ms_per_answer": 8.1,
           "rounds_ms": [8.0, 8.1, 8.3], "us_per_token": 67.5, "extra_ms": 5.42, "vs_responses": 3.12}  # fmt: skip
    with_engines = {**report, "engines": {"runs": 20, "rounds": 3, "tools": 18, "rows": [row]}}
    md = markdown(with_engines)
    assert "## The engines alone" in md and "| text | agents | 1 | 120 | 8.10 | 67.5 | +5.42 | ×3.12 |" in md
    console = Console(file=io.StringIO(), width=200, record=True)
    for table in terminal_tables(with_engines):
        console.print(table)
    assert "The engines alone" in console.export_text()
    failed = markdown({**report, "engines": {"error": "RuntimeError: boom"}})
    assert "## The engines alone\n\nNot measured: RuntimeError: boom." in failed
    assert "## The engines alone" not in markdown(report)  # reports from before it
