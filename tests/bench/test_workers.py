"""The workers comparison's figures and docs section, and the app sampler over a process tree.
No timing assertions: the figures are computed from given cells."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from sigmachat.bench.loadgen import AppSampler
from sigmachat.bench.workers import (
    DOCS_END,
    DOCS_START,
    markdown_section,
    replace_section,
    summarize,
)


def _cell(path: str, workers: int, rnd: int, cpu: float, by_process: dict[str, float], pids: list[int]) -> dict:
    return {
        "path": path, "workers": workers, "round": rnd, "tokens": 1000, "app_cpu_s": cpu, "wall_s": 10.0,
        "streams": 10, "ok": 10, "intact": 10, "errors": 0, "ttfb_ms": {"p50": 400.0},
        "app_cpu_by_process": by_process, "worker_pids": pids,
    }  # fmt: skip


def _cells() -> list[dict]:
    return [
        _cell("responses", 1, 0, 0.30, {"main": 0.30}, []),
        _cell("responses", 2, 0, 0.33, {"main": 0.01, "child-11": 0.20, "child-12": 0.12, "child-13": 0.0}, [11, 12]),
        _cell("responses", 1, 1, 0.40, {"main": 0.40}, []),
        _cell("responses", 2, 1, 0.40, {"main": 0.01, "child-11": 0.19, "child-12": 0.20}, [11, 12]),
    ]


def test_summary_compares_medians_and_splits_the_cpu_over_master_and_workers():
    s = summarize(_cells(), ["responses"], [1, 2])
    one, two = s["paths"]["responses"]["1"], s["paths"]["responses"]["2"]
    assert one["us_per_token"] == [300.0, 400.0] and one["median_us_per_token"] == 350.0
    assert two["median_us_per_token"] == 365.0
    assert two["ratio_of_medians"] == round(365 / 350, 3)
    assert two["median_round_ratio"] == round((1.1 + 1.0) / 2, 3)
    # 0.73 s in all: the master 0.02, the workers 0.39 and 0.32; an idle other child is not listed.
    assert two["process_shares"] == {"master": round(0.02 / 0.73, 3), "worker 1": round(0.39 / 0.73, 3),
                                     "worker 2": round(0.32 / 0.73, 3)}  # fmt: skip
    assert (s["streams"], s["errors"], s["not_intact"]) == (40, 0, 0)


def _report() -> dict:
    cells = _cells()
    return {
        "started_at": "2026-11-29T18:00:00+00:00", "bench_seconds": 100.0, "code": {"commit": "abc1234"},
        "machine": {"cpu_count": 2, "load_avg_start": [3.0], "load_avg_end": [4.0]},
        "plan": {"workers": [1, 2], "level": 50, "streams": 100, "rounds": 2, "paths": ["responses"],
                 "question": "What can you do?"},
        "cells": cells, "summary": summarize(cells, ["responses"], [1, 2]), "note": None,
    }  # fmt: skip


def test_docs_section_states_the_ratio_and_the_verdict():
    section = markdown_section(_report())
    assert section.startswith(DOCS_START) and section.rstrip().endswith(DOCS_END)
    assert "| responses | 2 | 330, 400 | 365 | ×1.04 |" in section
    assert "2 workers use ×1.04 one worker's CPU per token (within the ×1.10 target)" in section


def test_the_section_is_replaced_in_place():
    page = "# Benchmarks\n\nintro\n"
    first = replace_section(page, markdown_section(_report()))
    assert first.startswith(page.rstrip("\n")) and first.count(DOCS_START) == 1
    again = replace_section(first + "after\n", "X\n")
    assert DOCS_START not in again and again.endswith("X\nafter\n")


async def test_app_sampler_sums_a_process_and_its_children():
    # A parent that starts a child which burns CPU: the child's seconds count, under its own name.
    code = (
        "import subprocess, sys, time; "
        "c = subprocess.Popen([sys.executable, '-c', 'import time\\ntime.sleep(0.2)\\nt=time.process_time()\\n"
        "while time.process_time() - t < 0.3: pass\\ntime.sleep(30)']); time.sleep(30)"
    )
    parent = subprocess.Popen([sys.executable, "-c", code])
    try:
        sampler = AppSampler(parent.pid, interval_s=0.01)
        for _ in range(100):  # the child exists once the parent has started it
            await asyncio.sleep(0.02)
            import psutil

            if psutil.Process(parent.pid).children():
                break
        sampler.start()
        await asyncio.sleep(0.8)
        total, rss = await sampler.stop()
        by_process = sampler.per_process()
    finally:
        parent.kill()
        parent.wait()
    assert total is not None and rss is not None and rss > 0
    assert "main" in by_process
    children = [v for k, v in by_process.items() if k.startswith("child-")]
    assert len(children) == 1 and children[0] > 0.05
    assert abs(total - sum(by_process.values())) < 0.01
