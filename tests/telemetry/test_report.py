"""The comparison report, from seeded runs rows whose numbers are checked by hand."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from sigmachat.db.models import Conversation, Message, RunRecord, User
from sigmachat.telemetry.report import Thresholds, build_report, compute_report, parse_window
from tests.conftest import ADMIN, HNW, login, make_settings

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
T = NOW - dt.timedelta(hours=1)
TOOLS = ([], ["a"], ["a", "b"])


def _run(run_id, path, *, status="completed", code=None, ttfb=None, duration=None, tps=None, tools=(), chars=100,
         shadow=False, pair_id=None, at=T) -> RunRecord:  # fmt: skip
    return RunRecord(
        run_id=run_id, path=path, engine="agents" if path == "chatkit" else "responses",
        protocol="shadow" if shadow else ("chatkit" if path == "chatkit" else "legacy_sse"),
        status=status, error_code=code, ttfb_ms=ttfb, duration_ms=duration, output_tokens_per_s=tps,
        tool_call_count=len(tools), tool_calls=[{"name": n, "duration_ms": 1.0, "ok": True} for n in tools],
        answer_chars=chars, shadow=shadow, pair_id=pair_id, created_at=at, finished_at=at,
    )  # fmt: skip


def seeded_rows() -> list[RunRecord]:
    rows = []
    for i in range(1, 11):  # responses: TTFB 100..1000 ms, completion TTFB + 1 s, 10..100 tokens/s
        rows.append(
            _run(
                f"r{i}", "responses", ttfb=100.0 * i, duration=100.0 * i + 1000, tps=10.0 * i, tools=TOOLS[(i - 1) % 3]
            )
        )
    rows.append(_run("r_fail", "responses", status="failed", code="timeout"))
    rows.append(_run("r_cancel", "responses", status="cancelled", code="cancelled"))
    for i in range(1, 11):  # chatkit: TTFB 120..1200 ms
        rows.append(_run(f"c{i}", "chatkit", ttfb=120.0 * i, duration=120.0 * i + 1000, tps=12.0 * i, tools=["a"]))
    rows.append(_run("c_fail", "chatkit", status="failed", code="upstream_error"))
    rows.append(_run("c_int", "chatkit", status="interrupted", code="interrupted"))
    # shadow pairs (chatkit shadowing responses runs r1..r4)
    rows.append(_run("s1", "chatkit", shadow=True, pair_id="r1", ttfb=150.0, chars=150, tools=[]))
    rows.append(_run("s2", "chatkit", shadow=True, pair_id="r2", ttfb=200.0, chars=100, tools=["a"]))
    rows.append(_run("s3", "chatkit", shadow=True, pair_id="r3", ttfb=600.0, chars=50, tools=["b", "a"]))
    rows.append(_run("s4", "chatkit", shadow=True, pair_id="r4", status="failed", code="timeout"))
    # outside the window: must not count
    rows.append(_run("old", "chatkit", status="failed", code="timeout", at=NOW - dt.timedelta(days=2)))
    return rows


@pytest.fixture
async def seeded(settings):
    from sigmachat.services import Services

    svc = Services.build(make_settings(settings.var_dir, report_min_runs_per_path=11))
    async with svc.db.session() as session:
        user = (await session.execute(select(User).where(User.email == HNW))).scalar_one()
        session.add(Conversation(id="thr_fb", user_id=user.id))
        session.add_all(seeded_rows())
        for i, (run_id, fb) in enumerate(
            (("r1", "positive"), ("r2", "positive"), ("r3", "negative"), ("c1", "positive"), ("r5", None))
        ):
            edited = "A shorter answer." if run_id == "r3" else None  # a thumbs-down with the user's rewrite
            session.add(
                Message(
                    id=f"m{i}",
                    conversation_id="thr_fb",
                    user_id=user.id,
                    role="assistant",
                    run_id=run_id,
                    feedback=fb,
                    feedback_edited_text=edited,
                    created_at=T,
                )  # fmt: skip
            )
        await session.commit()
    yield svc
    await svc.aclose()


async def test_numbers_match_the_hand_computation(seeded):
    report = await build_report(seeded.db, seeded.settings, dt.timedelta(hours=24), now=NOW)
    r, c = report["paths"]["responses"], report["paths"]["chatkit"]

    assert (r["runs"], r["completed"], r["cancelled"], r["errors"]) == (12, 10, 1, 1)
    # Percentiles interpolate linearly: 100..1000 → p50 = 550, p95 = 900 + .55·100, p99 = 900 + .91·100.
    assert r["ttfb_ms"] == {"n": 10, "mean": 550.0, "p50": 550.0, "p95": 955.0, "p99": 991.0}
    assert (r["duration_ms"]["p50"], r["duration_ms"]["p95"], r["duration_ms"]["p99"]) == (1550.0, 1955.0, 1991.0)
    assert (r["tokens_per_s"]["p50"], r["tokens_per_s"]["p95"], r["tokens_per_s"]["p99"]) == (55.0, 95.5, 99.1)
    # Error rate: 1 timeout of 11 runs (the user's cancel is left out of both).
    assert r["error_rate_pct"] == 9.091 and r["errors_by_code"] == {"timeout": {"count": 1, "rate_pct": 9.091}}
    # Tools per completed turn: 0,1,2,0,1,2,0,1,2,0 → mean 0.9; sorted p95 between 2 and 2.
    assert r["tool_calls_per_turn"] == {"n": 10, "mean": 0.9, "p95": 2.0}
    assert r["feedback"] == {"positive": 2, "negative": 1, "ratio": 0.667, "edited": 1}

    assert (c["runs"], c["errors"], c["error_rate_pct"]) == (12, 2, 16.667)  # the 2-day-old run is outside the window
    assert c["errors_by_code"] == {
        "upstream_error": {"count": 1, "rate_pct": 8.333},
        "interrupted": {"count": 1, "rate_pct": 8.333},
    }
    assert c["ttfb_ms"]["p95"] == 1146.0 and c["feedback"] == {"positive": 1, "negative": 0, "ratio": 1.0, "edited": 0}
    assert sum(b["count"] for b in c["histograms"]["ttfb_ms"]) == 10

    (pair,) = report["shadow"]
    assert pair == {
        "shadow_path": "chatkit", "live_path": "responses", "pairs": 4, "both_completed": 3, "shadow_failed": 1,
        "tool_sequence_agreement": 0.667,  # s3 called the same tools in another order
        "tool_set_agreement": 1.0,
        "answer_length_ratio": 1.0,  # median of 1.5, 1.0, 0.5
        "ttfb_ratio": 1.5,  # median of 1.5, 1.0, 2.0
    }  # fmt: skip

    v = report["verdict"]
    assert v["decision"] == "no_go"
    assert {c["name"]: c["passed"] for c in v["checks"]} == {
        "sample_responses": True,
        "sample_chatkit": True,
        "ttfb_p95": False,
        "error_rate": False,
    }
    assert v["reasons"] == [
        "ChatKit p95 TTFB 1,146 ms is 1.20× Responses (955 ms); limit 1.10×.",
        "ChatKit error rate 16.67% exceeds Responses 9.09% + 0.5 points.",
    ]
    assert len(report["timeline"]) == 24 and report["timeline"][-1]["responses_runs"] == 10
    assert report["timeline"][-1]["responses"] == 55.0


def _row(run_id, path, ttfb, status="completed"):
    return {"run_id": run_id, "path": path, "status": status,
            "error_code": None if status == "completed" else "timeout",
            "ttfb_ms": ttfb, "duration_ms": ttfb + 100, "output_tokens_per_s": 50.0,
            "tool_call_count": 0, "tool_calls": [],
            "answer_chars": 10, "shadow": False, "pair_id": None, "created_at": T}  # fmt: skip


def test_go_when_chatkit_is_as_good_and_no_go_on_a_small_sample():
    rows = [_row(f"r{i}", "responses", 100.0 + i) for i in range(200)] + [
        _row(f"c{i}", "chatkit", 105.0 + i) for i in range(200)
    ]
    report = compute_report(
        rows, {}, since=NOW - dt.timedelta(days=1), until=NOW, thresholds=Thresholds(1.10, 0.5, 200)
    )
    assert report["verdict"] == {"decision": "go", "checks": report["verdict"]["checks"], "reasons": []}
    small = compute_report(
        rows[:199] + rows[200:], {}, since=NOW - dt.timedelta(days=1), until=NOW, thresholds=Thresholds(1.10, 0.5, 200)
    )
    assert small["verdict"]["decision"] == "no_go" and small["verdict"]["reasons"] == [
        "Too few responses runs to judge: 199 < 200."
    ]
    # 1 error in 200 ChatKit runs = 0.5 points over a clean Responses path: exactly at the limit, still go.
    edge = rows[:200] + [
        _row(f"c{i}", "chatkit", 105.0, status="failed" if i == 0 else "completed") for i in range(200)
    ]
    assert (
        compute_report(edge, {}, since=NOW - dt.timedelta(days=1), until=NOW, thresholds=Thresholds(1.10, 0.5, 200))[
            "verdict"
        ]["decision"]
        == "go"
    )


@pytest.mark.parametrize(("text", "hours"), [("24h", 24), ("30m", 0.5), ("7d", 168), ("2w", 336), (" 1.5H ", 1.5)])
def test_parse_window(text, hours):
    assert parse_window(text) == dt.timedelta(hours=hours)


@pytest.mark.parametrize("text", ["", "24", "h", "-1h", "0h", "1y", "2 days"])
def test_parse_window_rejects(text):
    with pytest.raises(ValueError):
        parse_window(text)


async def test_report_api_is_admin_only_and_renders_html(client, services):
    async with services.db.session() as session:
        session.add_all([_run("r_api", "responses", ttfb=300.0, duration=900.0, tps=40.0, at=dt.datetime.now(dt.UTC))])
        await session.commit()
    user = await login(client, HNW)
    assert (await client.get("/api/v1/admin/report", headers=user)).status_code == 403
    assert (await client.get("/api/v1/admin/report.html", headers=user)).status_code == 403
    admin = await login(client, ADMIN)
    resp = await client.get("/api/v1/admin/report?since=24h", headers=admin)
    assert resp.status_code == 200
    body = resp.json()
    assert body["paths"]["responses"]["runs"] == 1 and body["verdict"]["decision"] == "no_go"
    assert (await client.get("/api/v1/admin/report?since=forever", headers=admin)).status_code == 422
    page = await client.get("/api/v1/admin/report.html?since=7d", headers=admin)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert html.count("<svg") == 4 and "NO-GO" in html and "Too few chatkit runs" in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "") and "<script" not in html  # self-contained


def test_cli_report_writes_json_and_html(seeded, tmp_path, monkeypatch):
    from sigmachat.cli.main import app
    from sigmachat.settings import get_settings

    monkeypatch.setenv("SIGMACHAT_DATABASE_URL", seeded.settings.database_url)
    monkeypatch.setenv("SIGMACHAT_VAR_DIR", str(seeded.settings.var_dir))
    get_settings.cache_clear()
    try:
        out = tmp_path / "report.html"
        result = CliRunner().invoke(app, ["report", "--since", "3d", "--html", str(out), "--json"])
        assert result.exit_code == 0, result.output
        data = json.loads(result.output)
        assert data["paths"]["chatkit"]["runs"] == 13  # three days include the 2-day-old run too
        assert out.read_text().count("<svg") == 4
        result = CliRunner().invoke(app, ["report", "--fail-on-no-go"])
        assert result.exit_code == 1 and "NO-GO" in result.output
        assert CliRunner().invoke(app, ["report", "--since", "soon"]).exit_code == 2
    finally:
        get_settings.cache_clear()


async def test_live_counters_for_the_operator_page(app, client):
    rec = app.state.services.telemetry.recorder
    from tests.telemetry.fakes import FakeRun, synthetic_events

    events = synthetic_events("run_live", t0=int(dt.datetime.now(dt.UTC).timestamp() * 1000) - 3000, engine="agents")
    rec(FakeRun("run_live", engine="agents", protocol="chatkit"), events[0])
    admin = await login(client, ADMIN)
    body = (await client.get("/api/v1/admin/live", headers=admin)).json()
    assert body["active_streams"] == {"responses": 0, "chatkit": 1} and body["shadow_in_flight"] == 0
    assert body["flag"] == {"version": 0, "kill_switch": False, "percent": 0, "default": "responses"}
    for e in events[1:]:
        rec(FakeRun("run_live", engine="agents", protocol="chatkit"), e)
    await rec.flush()
    body = (await client.get("/api/v1/admin/live", headers=admin)).json()
    assert body["active_streams"]["chatkit"] == 0
    assert body["paths"]["chatkit"] == {
        "runs": 1,
        "errors": 0,
        "error_rate_pct": 0.0,
        "ttfb_p95_ms": 400.0,
        "tokens_per_s_p50": 50.0,
    }
    assert (await client.get("/api/v1/admin/live", headers=await login(client, HNW))).status_code == 403
