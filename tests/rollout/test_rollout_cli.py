"""sigmachat rollout show|set|audit against a real database, audited as cli:<os user>."""

from __future__ import annotations

import getpass
import json

import pytest
from typer.testing import CliRunner

from sigmachat.cli.main import app


@pytest.fixture
def cli_env(settings, monkeypatch):
    from sigmachat.settings import get_settings

    monkeypatch.setenv("SIGMACHAT_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("SIGMACHAT_VAR_DIR", str(settings.var_dir))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _run(*args: str):
    result = CliRunner().invoke(app, list(args))
    return result


def test_set_show_and_audit(cli_env):
    r = _run("rollout", "set", "--percent", "10", "--allow-user", "Pilot@Example.com", "--allow-portfolio", "pf-1")
    assert r.exit_code == 0, r.output
    assert "version 0 → 1" in r.output
    r = _run("rollout", "set", "--kill")
    assert r.exit_code == 0 and "ON" in r.output
    r = _run("rollout", "set", "--unkill", "--deny-user", "no@example.com", "--default", "chatkit")
    assert r.exit_code == 0, r.output

    state = json.loads(_run("rollout", "show", "--json").output)
    assert state["percent"] == 10 and state["kill_switch"] is False and state["default"] == "chatkit"
    assert state["allow_users"] == ["pilot@example.com"] and state["allow_portfolios"] == ["pf-1"]
    assert state["deny_users"] == ["no@example.com"] and state["version"] == 3
    assert state["updated_by"] == f"cli:{getpass.getuser()}"

    r = _run("rollout", "set", "--remove-user", "pilot@example.com")
    assert json.loads(_run("rollout", "show", "--json").output)["allow_users"] == []
    r = _run("rollout", "audit")
    assert r.exit_code == 0 and "kill_switch" in r.output and f"cli:{getpass.getuser()}" in r.output


def test_bad_input_changes_nothing(cli_env):
    assert _run("rollout", "set", "--percent", "101").exit_code != 0
    assert _run("rollout", "set", "--allow-user", "not-an-email").exit_code == 2
    assert _run("rollout", "set", "--kill", "--unkill").exit_code == 2
    assert _run("rollout", "set", "--default", "agents").exit_code == 2
    assert _run("rollout", "set").exit_code == 2
    assert json.loads(_run("rollout", "show", "--json").output)["version"] == 0
