"""GET /api/v1/tools, the ``sigmachat tools`` commands and the benchmark runner."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from sigmachat.cli.main import app as cli
from tests.conftest import HEDGE, login


async def test_tools_endpoint_lists_the_contract_for_signed_in_users(client):
    assert (await client.get("/api/v1/tools")).status_code == 401
    headers = await login(client, HEDGE)
    resp = await client.get("/api/v1/tools", headers=headers)
    assert resp.status_code == 200
    tools = resp.json()["tools"]
    assert len(tools) == 19  # the contract's 17, get_benchmark_comparison and remember
    assert tools[-1]["name"] == "remember" and tools[-1]["portfolio_scoped"] is False
    overview = next(t for t in tools if t["name"] == "get_analytics_overview")
    assert overview["portfolio_scoped"] is True
    assert overview["parameters"]["properties"]["portfolio_id"]["type"] == ["string", "null"]
    assert all(t["description"] and t["parameters"]["additionalProperties"] is False for t in tools)
    # The one title per tool that every UI shows (the web client reads it from here).
    assert overview["title"] == "Computing portfolio analytics"
    assert all(t["title"] for t in tools)


@pytest.fixture
def cli_env(settings, monkeypatch):
    """Point the CLI's settings at the test database."""
    from sigmachat.settings import get_settings

    monkeypatch.setenv("SIGMACHAT_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("SIGMACHAT_VAR_DIR", str(settings.var_dir))
    monkeypatch.setenv("SIGMACHAT_JWT_SECRET", "test-secret-" + "x" * 40)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_cli_lists_and_calls_tools(cli_env):
    runner = CliRunner()
    listed = runner.invoke(cli, ["tools", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [t["name"] for t in json.loads(listed.stdout)][:2] == ["list_user_portfolios", "get_portfolio_complete"]

    portfolios = runner.invoke(cli, ["tools", "call", "list_user_portfolios", "--user", HEDGE])
    assert portfolios.exit_code == 0, portfolios.output
    pid = json.loads(portfolios.stdout)["data"]["portfolios"][0]["id"]
    overview = runner.invoke(
        cli, ["tools", "call", "get_analytics_overview", "--user", HEDGE, "--args", json.dumps({"portfolio_id": pid})]
    )
    assert overview.exit_code == 0, overview.output
    assert json.loads(overview.stdout)["data"]["portfolio"]["id"] == pid

    bad = runner.invoke(
        cli,
        [
            "tools",
            "call",
            "get_prices_historical",
            "--user",
            HEDGE,
            "--portfolio",
            pid,
            "--args",
            '{"lookback_days": 999}',
        ],
    )
    assert bad.exit_code == 1
    assert json.loads(bad.stdout)["error"]["type"] == "validation_error"


async def test_benchmark_runs_every_tool_on_the_largest_portfolio(services):
    from sigmachat.bench.tools import run_tool_benchmark

    report = await run_tool_benchmark(services, runs=1)
    assert report.user_email == "demo_hnw@sigmasight.com" and report.lots == 39
    assert len(report.timings) == 18  # every read-only tool; remember writes, so it is not timed
    assert all(t.ok for t in report.timings), [t.tool for t in report.timings if not t.ok]
    assert json.loads(json.dumps(report.as_dict()))["timings"][0]["tool"] == "list_user_portfolios"
