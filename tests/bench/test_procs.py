"""The process layout: the app's environment, stopping children, the commands' registration."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from sigmachat.bench.procs import ManagedProcess, app_env, free_port, run_reporting_process, seed_cache_key
from tests.bench import reporting_child


def test_app_env_is_production_like_with_abuse_limits_off(tmp_path, monkeypatch):
    monkeypatch.setenv("SIGMACHAT_SEND_RATE_LIMIT", "1/minute")  # a developer's shell must not leak in
    monkeypatch.setenv("OPENAI_API_KEY", "sk-real")
    env = app_env(
        tmp_path,
        database_url="sqlite+aiosqlite:///x.db",
        openai_base_url="http://127.0.0.1:9/v1",
        openai_api_key="sk-bench",
    )
    assert env["SIGMACHAT_SEND_RATE_LIMIT"] == ""
    assert env["SIGMACHAT_MAX_CONCURRENT_RUNS_PER_USER"] == "0"
    assert env["SIGMACHAT_DAILY_TOKEN_BUDGET"] == "0"
    assert env["SIGMACHAT_OPENAI_BASE_URL"] == "http://127.0.0.1:9/v1"
    assert env["SIGMACHAT_OPENAI_API_KEY"] == "sk-bench"
    assert "OPENAI_API_KEY" not in env
    assert env["SIGMACHAT_ALLOW_FAULT_INJECTION"] == "false"


def test_stop_ends_a_child_that_ignores_nothing(tmp_path):
    popen = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    proc = ManagedProcess("sleeper", popen, "http://127.0.0.1:1", tmp_path / "x.log")
    assert proc.alive()
    proc.stop(timeout_s=5)
    assert not proc.alive()
    proc.stop()  # idempotent


def test_free_port_and_seed_key():
    assert 1024 < free_port() < 65536
    assert seed_cache_key() == seed_cache_key() and len(seed_cache_key()) == 16


def test_free_port_never_hands_out_a_port_twice(monkeypatch):
    """The kernel may offer a just-probed port again before any server binds it: two servers
    were once given one port, and one readiness check answered for both."""
    from sigmachat.bench import procs

    offered = iter([41001, 41001, 41002, 41001, 41003])
    monkeypatch.setattr(procs, "_probe_port", lambda: next(offered))
    monkeypatch.setattr(procs, "_HANDED_OUT", set())
    assert [procs.free_port(), procs.free_port(), procs.free_port()] == [41001, 41002, 41003]


def test_bench_and_soak_are_commands():
    from sigmachat.cli.main import app

    runner = CliRunner()
    help_text = runner.invoke(app, ["--help"]).output
    assert "bench" in help_text and "soak" in help_text
    assert runner.invoke(app, ["bench", "--levels", "one"]).exit_code == 2
    assert runner.invoke(app, ["soak", "--paths", "carrier-pigeon"]).exit_code == 2


def test_a_saved_report_can_be_rendered_again(tmp_path):
    import json

    from sigmachat.cli.main import app

    report = {
        "mode": "quick", "started_at": "2026-11-24T12:00:00+00:00", "bench_seconds": 1.0, "code": {},
        "machine": {"cpu_count": 2, "memory_gb": 1.0, "python": "3.11", "platform": "Linux"},
        "upstream": {"kind": "sim", "ttfb_ms": 300, "tokens_per_s": 80, "model": "m"},
        "plan": {"levels": [], "streams": {}, "paths": []}, "questions": [], "cells": [],
    }  # fmt: skip
    saved = tmp_path / "r.json"
    saved.write_text(json.dumps(report))
    docs = tmp_path / "benchmarks.md"
    result = CliRunner().invoke(
        app, ["bench", "--from-json", str(saved), "--out", str(tmp_path / "out"), "--docs-path", str(docs)]
    )
    assert result.exit_code == 0, result.output
    assert docs.read_text().startswith("# Benchmarks") and (tmp_path / "out" / "latest.html").exists()


def test_a_reporting_process_relays_progress_and_returns_its_result():
    seen: list[tuple] = []
    result = run_reporting_process(reporting_child.reports, (3,), name="child", timeout_s=60, on_message=seen.append)
    assert result == 30 and seen == [("advance", 0), ("advance", 1), ("advance", 2)]


def test_a_reporting_process_that_fails_or_dies_raises_the_given_error():
    class Failed(RuntimeError):
        pass

    with pytest.raises(Failed, match="child failed:\nboom"):
        run_reporting_process(reporting_child.fails, (), name="child", timeout_s=60, on_message=print, error=Failed)
    with pytest.raises(Failed, match=r"child exited \(3\) without a result"):
        run_reporting_process(reporting_child.dies, (), name="child", timeout_s=60, on_message=print, error=Failed)


def test_app_settings_name_a_setting_in_any_case_with_or_without_its_prefix(monkeypatch):
    from sigmachat.bench.procs import app_settings

    # Validated alone: a setting the developer's shell holds (here a wrong one) plays no part.
    monkeypatch.setenv("SIGMACHAT_HTTP_KEEP_ALIVE_S", "not a number")
    env = app_settings(["CHATKIT_ENGINE=responses", "sigmachat_log_level=INFO", "shadow_sample_rate = 0.5"])
    assert env == {
        "SIGMACHAT_CHATKIT_ENGINE": "responses",
        "SIGMACHAT_LOG_LEVEL": "INFO",
        "SIGMACHAT_SHADOW_SAMPLE_RATE": "0.5",
    }
    assert app_settings([]) == {}


@pytest.mark.parametrize(
    ("pair", "says"),
    [
        ("CHATKIT_ENGINE", "NAME=VALUE"),
        ("=responses", "NAME=VALUE"),
        ("CHATKIT_ENGIN=responses", "CHATKIT_ENGIN: no such setting"),
        ("DATABASE_URL=sqlite+aiosqlite:///other.db", "DATABASE_URL: the benchmark sets this itself"),
        ("OPENAI_API_KEY=sk-x", "the benchmark sets this itself"),
        ("CHATKIT_ENGINE=langchain", "CHATKIT_ENGINE=langchain: String should match pattern"),
        ("HTTP_KEEP_ALIVE_S=0", "HTTP_KEEP_ALIVE_S=0: Input should be greater than or equal to 1"),
    ],
)
def test_app_settings_refuse_what_the_app_or_the_benchmark_would_not_take(pair, says):
    from sigmachat.bench.procs import app_settings

    with pytest.raises(ValueError, match=says.replace("+", r"\+").replace(".", r"\.")):
        app_settings([pair])


def test_a_report_shows_the_settings_a_run_changed_but_not_secrets_or_urls():
    from sigmachat.bench.procs import shown_settings

    shown = shown_settings(
        {
            "SIGMACHAT_CHATKIT_ENGINE": "responses",
            "SIGMACHAT_REDIS_URL": "redis://:pw@127.0.0.1:1/0",
            "SIGMACHAT_METRICS_TOKEN": "t0ken",
        }
    )
    assert shown == {"CHATKIT_ENGINE": "responses", "REDIS_URL": "(set)", "METRICS_TOKEN": "(set)"}


def test_the_bench_command_refuses_a_bad_app_setting_before_starting_anything(tmp_path):
    from sigmachat.cli.main import app

    runner = CliRunner()
    bad = runner.invoke(app, ["bench", "--app-setting", "NO_SUCH=1", "--out", str(tmp_path)])
    assert bad.exit_code == 2
    assert "NO_SUCH: no such setting" in bad.output
    both = runner.invoke(app, ["bench", "--workers-compare", "--app-setting", "CHATKIT_ENGINE=responses"])
    assert both.exit_code == 2
    assert "not to --workers-compare" in both.output
    assert not any(tmp_path.iterdir())  # nothing measured, nothing written
