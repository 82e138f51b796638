"""/metrics: Prometheus text that parses, moves after a run, and keeps its labels bounded."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from sigmachat.telemetry import Metrics
from tests.conftest import HNW, login
from tests.telemetry.fakes import FakeRun, synthetic_events


def samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(text: str, name: str, **labels) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_parse_and_move_after_synthetic_runs(app, client):
    before = (await client.get("/metrics")).text
    assert value(before, "sigmachat_active_streams", path="responses") == 0.0
    rec = app.state.services.telemetry.recorder
    events = synthetic_events("run_m1")
    rec(FakeRun("run_m1"), events[0])
    mid = (await client.get("/metrics")).text
    assert value(mid, "sigmachat_active_streams", path="responses") == 1.0
    for e in events[1:]:
        rec(FakeRun("run_m1"), e)
    for e in synthetic_events("run_m2", engine="agents", fail_code="timeout"):
        rec(FakeRun("run_m2", engine="agents", protocol="chatkit"), e)
    await rec.flush()
    resp = await client.get("/metrics")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    text = resp.text
    assert value(text, "sigmachat_active_streams", path="responses") == 0.0
    assert (
        value(text, "sigmachat_runs_total", path="responses", engine="responses", status="completed", error_code="none")
        == 1
    )
    assert (
        value(text, "sigmachat_runs_total", path="chatkit", engine="agents", status="failed", error_code="timeout") == 1
    )
    assert value(text, "sigmachat_run_ttfb_seconds_count", path="responses") == 1
    assert value(text, "sigmachat_run_ttfb_seconds_sum", path="responses") == 0.4
    assert value(text, "sigmachat_run_duration_seconds_count", path="chatkit") == 1
    assert value(text, "sigmachat_run_output_tokens_per_second_sum", path="responses") == 50.0
    assert value(text, "sigmachat_run_output_tokens_per_second_count", path="chatkit") == 0  # failed runs have no rate
    assert (
        value(text, "sigmachat_tool_duration_seconds_count", path="responses", tool="get_portfolio_complete", ok="true")
        == 1
    )
    assert value(text, "sigmachat_tokens_total", path="responses", kind="output") == 100


async def test_metrics_move_after_a_real_run_through_the_app(client):
    headers = await login(client, HNW)
    conv = (await client.post("/api/v1/chat/conversations", json={}, headers=headers)).json()
    before = (await client.get("/metrics")).text
    resp = await client.post(
        "/api/v1/chat/send",
        json={"conversation_id": conv["id"], "text": "What is my largest position?"},
        headers=headers,
    )
    assert resp.status_code == 200
    await client.get("/api/v1/chat/config", headers=headers)
    after = (await client.get("/metrics")).text
    key = dict(path="responses", engine="responses", status="completed", error_code="none")
    assert value(after, "sigmachat_runs_total", **key) == value(before, "sigmachat_runs_total", **key) + 1
    assert value(after, "sigmachat_run_ttfb_seconds_count", path="responses") == 1
    assert value(after, "sigmachat_flag_evaluations_total", backend="responses", reason="default") == 1
    assert value(after, "sigmachat_active_streams", path="responses") == 0


def test_labels_stay_bounded():
    m = Metrics()
    for i in range(200):
        m.tool_duration.labels("responses", m.tool_label(f"tool_{i}"), "true").observe(0.1)
    m.tool_duration.labels("responses", m.tool_label("Bad Name; DROP"), "true").observe(0.1)
    tools = {
        s.labels["tool"]
        for f in text_string_to_metric_families(m.exposition().decode())
        for s in f.samples
        if "tool" in s.labels
    }
    assert len(tools) <= 65 and "other" in tools and "Bad Name; DROP" not in tools
    assert (
        m.error_label("made_up_code") == "other"
        and m.error_label("timeout") == "timeout"
        and m.error_label(None) == "none"
    )


async def test_metrics_token_and_switch(settings):
    import httpx
    from asgi_lifespan import LifespanManager

    from sigmachat.api.app import create_app
    from tests.conftest import make_settings

    app = create_app(make_settings(settings.var_dir, metrics_token="s3cret"))
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        assert (await c.get("/metrics")).status_code == 401
        assert (await c.get("/metrics", headers={"Authorization": "Bearer nope"})).status_code == 401
        assert (await c.get("/metrics", headers={"Authorization": "Bearer s3cret"})).status_code == 200
    app = create_app(make_settings(settings.var_dir, metrics_enabled=False))
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        assert (await c.get("/metrics")).status_code == 404
