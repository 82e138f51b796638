"""The report: overheads against the direct path, the tables, the chart page and the docs page."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET

import pytest
from rich.console import Console

from sigmachat.bench.chart import Series, line_chart, nice_ticks
from sigmachat.bench.report import add_overheads, headline, html, markdown, terminal_tables, verdict, write_outputs


def _summary(p50, p95=None, p99=None):
    return {"n": 4, "p50": p50, "p95": p95 or p50, "p99": p99 or p50, "mean": p50, "min": p50, "max": p95 or p50}


def _cell(path, question, level, ttfb, total, *, errors=0, intact=None, streams=4):
    ok = streams - errors
    return {
        "path": path, "question": question, "level": level, "streams": streams, "wall_s": 2.0,
        "ttfb_ms": _summary(ttfb, ttfb * 1.2), "total_ms": _summary(total), "tokens_per_s": _summary(79.5),
        "events": 500, "events_per_s": 250.0, "ok": ok, "errors": errors,
        "error_kinds": {"client_timeout": errors} if errors else {},
        "intact": ok if intact is None else intact,
        "integrity_problems": {} if intact is None or intact == ok else {"dropped": ok - intact},
        "tool_calls_median": 0.0, "app_cpu_s": 0.5, "app_peak_rss_mb": 280.0,
    }  # fmt: skip


@pytest.fixture
def report():
    cells = []
    for level, load in ((1, 0), (10, 40)):
        cells += [
            _cell("direct", "text", level, 300 + load, 2000 + load),
            _cell("responses", "text", level, 330 + 2 * load, 2100 + 2 * load),
            _cell(
                "chatkit",
                "text",
                level,
                360 + 3 * load,
                2200 + 3 * load,
                errors=1 if level == 10 else 0,
                intact=2 if level == 10 else None,
            ),
        ]
    return {
        "kind": "sigmachat-bench", "mode": "quick", "started_at": "2026-11-24T12:00:00+00:00", "bench_seconds": 42.0,
        "code": {"commit": "abc1234", "dirty": False},
        "machine": {"cpu_count": 2, "cpu_model": "Test CPU", "memory_gb": 8.0, "python": "3.11.7", "platform": "Linux",
                    "load_avg_start": [0.1, 0.2, 0.3]},
        "upstream": {"kind": "sim", "ttfb_ms": 300.0, "tokens_per_s": 80.0, "model": "gpt-4.1-mini"},
        "plan": {"levels": [1, 10], "streams": {"1": 4, "10": 4}, "paths": ["direct", "responses", "chatkit"],
                 "stagger_ms": 5.0},
        "questions": [{"key": "text", "text": "What can you do?", "label": "Text only", "expected_tokens": 123,
                       "expected_chars": 503}],
        "warmup": {"direct_failed": 0, "app_failed": 0, "app_not_intact": 0},
        "phases": {"load_s": 30.0, "microbench_s": 5.0, "setup_s": 7.0},
        "cells": add_overheads(cells),
        "tools": {"error": "skipped in this test"},
        "store": {"store": "SqlChatKitStore", "database": "sqlite+aiosqlite", "operations": [
            {"op": "append item", "detail": "x", "n": 200, "ms": _summary(1.5)},
        ]},
    }  # fmt: skip


def test_overheads_compare_medians_at_the_same_level(report):
    cells = {(c["path"], c["level"]): c for c in report["cells"]}
    assert cells[("direct", 1)]["overhead"] is None
    o = cells[("responses", 10)]["overhead"]
    assert o["ttfb_p50_ms"] == 70.0  # 410 - 340
    assert o["ttfb_p50_ratio"] == pytest.approx(410 / 340, abs=1e-3)
    assert o["total_p50_ms"] == 140.0  # 2180 - 2040
    assert cells[("chatkit", 1)]["overhead"]["ttfb_p50_ms"] == 60.0


def test_verdict_counts_errors_and_damaged_streams_per_path(report):
    v = verdict(report)
    assert (v["streams"], v["errors"], v["not_intact"]) == (24, 1, 1)
    assert v["by_path"]["chatkit"] == {"streams": 8, "errors": 1, "not_intact": 1}
    assert v["by_path"]["responses"]["errors"] == 0


def test_terminal_tables_render(report):
    console = Console(file=io.StringIO(), width=200, record=True)
    for table in terminal_tables(report):
        console.print(table)
    text = console.export_text()
    assert "What can you do?" in text
    assert "+30 (×1.10)" in text  # responses at level 1: 330 vs 300
    assert "client_timeout 1" in text
    assert "2/3 (dropped 1)" in text  # intact of the completed streams


def test_markdown_has_method_machine_and_results(report):
    md = markdown(report)
    for heading in (
        "# Benchmarks",
        "## What is measured",
        "## Method",
        "## The machine",
        "## Results",
        "## Tool microbenchmarks",
        "## Store operations",
    ):
        assert heading in md
    assert "2 logical CPUs, Test CPU" in md
    assert "| 10 | chatkit | 4 |" in md
    assert "Not measured: skipped in this test." in md
    assert headline(report).startswith("responses, text: +30 ms median TTFB at 1 stream(s)")


def test_html_is_self_contained(report):
    page = html(report)
    assert page.count("<svg") == 2  # TTFB and overhead for the one question
    external = [
        w
        for w in page.replace('"', " ").split()
        if w.startswith(("http://", "https://")) and "www.w3.org/2000/svg" not in w
    ]
    assert external == []
    assert "<script" not in page


def test_write_outputs(tmp_path, report):
    written = write_outputs(report, tmp_path / "results", tmp_path / "docs" / "benchmarks.md")
    assert json.loads(written["latest.json"].read_text())["mode"] == "quick"
    assert (tmp_path / "docs" / "benchmarks.md").read_text().startswith("# Benchmarks")
    assert any(name.startswith("bench-2026") and name.endswith(".html") for name in written)


def test_chart_is_valid_svg_with_gaps():
    svg = line_chart(
        "TTFB",
        ["1", "10", "50"],
        [Series("direct p50", [300.0, None, 420.0]), Series("chatkit p95", [None, None, None], dashed=True)],
        y_label="ms",
    )
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    assert "stroke-dasharray" in svg
    assert nice_ticks(0) == [0.0, 1.0]
    assert nice_ticks(430) == [0.0, 100.0, 200.0, 300.0, 400.0, 500.0]
    assert nice_ticks(228, vmin=-72) == [-100.0, 0.0, 100.0, 200.0, 300.0]


def test_cpu_per_token_against_the_raw_reader_with_streams_per_core_and_warnings():
    from sigmachat.bench.report import add_cpu, cpu_headline, cpu_rows

    raw = {
        **_cell("raw", "text", 10, 300, 2000),
        "tokens": 4000,
        "loadgen_cpu_s": 0.4,
        "sim_cpu_s": 1.9,
        "app_cpu_s": 0.0,
    }
    app = {
        **_cell("responses", "text", 10, 330, 2100),
        "tokens": 4000,
        "app_cpu_s": 1.0,
        "loadgen_cpu_s": 0.5,
        "sim_cpu_s": 0.5,
    }
    idle = {**_cell("chatkit", "text", 10, 330, 2100), "tokens": 0, "app_cpu_s": 0.2}
    cells = add_cpu([raw, app, idle], tokens_per_s=80.0)
    cpu = app["cpu"]
    assert cpu["app_us_per_token"] == 250.0 and cpu["raw_us_per_token"] == 100.0 and cpu["ratio"] == 2.5
    assert cpu["streams_per_core"] == 50.0  # 1 / (250 µs × 80 tokens/s)
    assert cpu["app_core_share"] == 0.5 and cpu["warnings"] == []
    assert raw["cpu"]["warnings"] == ["simulator CPU-bound (95% of a core)"]
    assert idle["cpu"]["app_us_per_token"] is None and idle["cpu"]["ratio"] is None  # no tokens: no figure
    report = {"cells": cells, "questions": [{"key": "text"}], "plan": {"paths": ["raw", "responses", "chatkit"]}}
    row = cpu_rows(report, "text")[0]
    assert row[:8] == ["10", "responses", "4,000", "1.00", "250", "100", "×2.5", "50.0"]
    assert "raw cell: simulator CPU-bound" in row[9]
    assert cpu_headline(report).startswith("responses, text: 250 µs CPU per token, ×2.5 the raw reader's")


def test_with_rounds_the_ratio_is_the_median_of_each_rounds_ratio_to_the_raw_reader_of_that_round(report):
    from sigmachat.bench.report import add_cpu, cpu_rows, markdown

    def rounds(key, cpu_per_1000_tokens):
        return [{"wall_s": 1.0, "tokens": 1000, key: c, "sim_cpu_s": 0.1} for c in cpu_per_1000_tokens]

    # The machine slows down in round 2 and more in round 3: both readers pay for it.
    raw = {**_cell("raw", "text", 10, 300, 2000), "tokens": 3000, "loadgen_cpu_s": 0.45,
           "rounds": rounds("loadgen_cpu_s", [0.1, 0.15, 0.2])}  # fmt: skip
    app = {**_cell("responses", "text", 10, 330, 2100), "tokens": 3000, "app_cpu_s": 1.3,
           "rounds": rounds("app_cpu_s", [0.25, 0.45, 0.6])}  # fmt: skip
    add_cpu([raw, app], tokens_per_s=80.0)
    cpu = app["cpu"]
    # Medians over the rounds: 450 µs and 150 µs. Their quotient would be ×3.0; the rounds'
    # own ratios are ×2.5, ×3.0, ×3.0, and the median of those is the figure.
    assert (cpu["app_us_per_token"], cpu["raw_us_per_token"]) == (450.0, 150.0)
    assert cpu["round_ratios"] == [2.5, 3.0, 3.0] and cpu["ratio"] == 3.0
    assert raw["cpu"]["raw_us_per_token"] == 150.0
    app["rounds"][2]["app_cpu_s"] = 0.3  # a quiet last round: ×1.5
    add_cpu([raw, app], tokens_per_s=80.0)
    assert app["cpu"]["round_ratios"] == [2.5, 3.0, 1.5] and app["cpu"]["ratio"] == 2.5
    page = {**report, "cells": [raw, app], "plan": {**report["plan"], "levels": [10], "rounds": 3}}
    assert cpu_rows(page, "text")[0][6] == "×2.5 (2.5 / 3.0 / 1.5)"
    assert "3 rounds in which the paths take turns" in markdown(page)
    # Rounds that do not pair up (a raw cell measured once): the quotient of the medians.
    del raw["rounds"]
    add_cpu([raw, app], tokens_per_s=80.0)
    assert app["cpu"]["ratio"] == 2.0 and "round_ratios" not in app["cpu"]  # 300 µs / 150 µs


def test_a_bench_run_keeps_the_workers_comparison_section(tmp_path, report):
    from sigmachat.bench.workers import DOCS_END, DOCS_START

    docs = tmp_path / "benchmarks.md"
    section = f"{DOCS_START}\n## Several workers\n\nfigures\n\n{DOCS_END}\n"
    docs.write_text(f"# Benchmarks\n\nold figures\n\n{section}", encoding="utf-8")
    write_outputs(report, tmp_path / "results", docs)
    page = docs.read_text(encoding="utf-8")
    assert page.startswith("# Benchmarks") and "old figures" not in page
    assert page.count(DOCS_START) == 1 and page.endswith(section)


def test_the_hot_path_targets_are_checked_per_question_and_shown_in_the_docs_page(report):
    from sigmachat.bench.report import markdown, target_rows

    cells = [
        _cell("direct", "text", 50, 1000, 3000),
        _cell("responses", "text", 50, 1030, 3000),  # +30 ms: within 50
        _cell("chatkit", "text", 50, 1100, 3000),  # +100 ms; p95 1,320 against 1,236: x1.07
    ]

    def cpu(ratio):
        return {"ratio": ratio, "app_us_per_token": 100 * ratio, "raw_us_per_token": 100.0, "streams_per_core": 10.0}

    for c, ratios in zip(cells[1:], ({1: 2.0, 50: 2.9}, {1: 3.0, 50: 3.6}), strict=True):
        c["cpu"] = cpu(ratios[50])
        cells.append({**_cell(c["path"], "text", 1, 300, 2000), "cpu": cpu(ratios[1])})
    report = {**report, "cells": add_overheads(cells)}
    rows = {row[1]: row for row in target_rows(report)}
    assert rows["responses: CPU per token against the raw reader's"][3:] == ["×2.0 at 1, ×2.9 at 50", "yes"]
    assert rows["chatkit: CPU per token against the raw reader's"][3:] == ["×3.0 at 1, ×3.6 at 50", "**no**"]
    assert rows["responses: median TTFB against direct at 50 streams"][3:] == ["+30 ms", "yes"]
    assert rows["chatkit: median TTFB against direct at 50 streams"][3:] == ["+100 ms", "**no**"]
    assert rows["chatkit p95 TTFB against responses' at 50 streams"][3:] == ["×1.07 (1,320 / 1,236 ms)", "yes"]
    page = markdown(report)
    assert "## Targets" in page and "| text | chatkit p95 TTFB against responses' at 50 streams |" in page


def test_the_docs_page_says_which_app_settings_a_run_changed(report):
    assert "App settings changed" not in markdown(report)  # the app as configured by default
    report["app_settings"] = {"CHATKIT_ENGINE": "responses", "REDIS_URL": "(set)"}
    assert "**App settings changed for this run:** CHATKIT_ENGINE=responses, REDIS_URL=(set)" in markdown(report)
