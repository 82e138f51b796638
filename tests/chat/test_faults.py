"""Every simulator fault scenario through the app on the Responses path (legacy SSE), against
both upstream APIs the simulator serves (Responses and Chat Completions).

For each: the user message is stored, the outcome is the documented one (transparent retry,
or an error event with the right code and retryable flag), a partial answer is kept with the
right status, nothing stays streaming, and no 500 or stack trace reaches the client.
"""

from __future__ import annotations

import shutil

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import select

from sigmachat.api.app import create_app
from sigmachat.db.models import Message, RunRecord
from sigmachat.engines.base import OutputBudget
from sigmachat.sim.app import sim_http_client
from tests.conftest import BASE_URL, HNW, login, make_settings
from tests.sse import parse

QUESTION = "What is my largest position?"

# scenario -> (terminal event, error code, legacy error_type, retryable, assistant status, partial text expected)
OUTCOMES = {
    "rate_limit": ("error", "rate_limited", "RATE_LIMITED", True, "failed", False),
    "rate_limit;times=1": ("done", None, None, None, "complete", None),
    "server_error": ("error", "upstream_error", "SERVER_ERROR", True, "failed", False),
    "server_error;times=2": ("done", None, None, None, "complete", None),
    "overloaded": ("error", "upstream_overloaded", "SERVER_ERROR", True, "failed", False),
    "reset_before_first_byte": ("error", "network_error", "NETWORK_ERROR", True, "failed", False),
    "reset_before_first_byte;times=1": ("done", None, None, None, "complete", None),
    "drop_mid_stream": ("error", "network_error", "NETWORK_ERROR", True, "failed", True),
    "no_terminal_event": ("error", "stream_incomplete", "NETWORK_ERROR", True, "failed", True),
    "malformed_event": ("error", "malformed_event", "SERVER_ERROR", True, "failed", True),
    "response_failed": ("error", "response_failed", "SERVER_ERROR", True, "failed", None),
    "response_incomplete": ("error", "response_incomplete", "FATAL_ERROR", False, "incomplete", True),
    "slow_tokens": ("done", None, None, None, "complete", None),
    "tool_error": ("done", None, None, None, "complete", None),
    # Model misbehaviour: a recoverable tool error the model reads, then an answer...
    "unknown_tool": ("done", None, None, None, "complete", None),
    "invalid_json_arguments": ("done", None, None, None, "complete", None),
    # ...up to the tool-iteration limit.
    "unknown_tool_loop": ("error", "max_tool_iterations", "FATAL_ERROR", False, "failed", False),
    # An answer that ignores the output bound is cut at it.
    "ramble": ("error", "response_incomplete", "FATAL_ERROR", False, "incomplete", True),
}
# Small enough that a rambling answer is cut quickly; the bound's value is not what is tested.
MAX_OUTPUT_TOKENS = 1000
UPSTREAM_APIS = ["responses", "chat_completions"]


@pytest.fixture(params=UPSTREAM_APIS)
async def sim_client(request, tmp_path, template_db):
    shutil.copy(template_db, tmp_path / "sigmachat.db")
    settings = make_settings(
        tmp_path,
        openai_api_key="sk-sim",
        openai_base_url="http://sim.sigmachat.local/v1",
        allow_fault_injection=True,
        retry_base_delay_ms=0,
        fallback_model=None,
        sse_heartbeat_s=0.02,
        send_rate_limit="",
        max_output_tokens=MAX_OUTPUT_TOKENS,
        upstream_api=request.param,
    )
    # Fast but real: slow_tokens still streams with pauses (heartbeats), Retry-After kept short.
    model_client = sim_http_client(ttfb_ms=0, tokens_per_s=0, slow_tokens_per_s=200, retry_after_s=0.05)
    app = create_app(settings, model_http_client=model_client)
    async with LifespanManager(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as c:
        c.app = app
        yield c


@pytest.mark.parametrize("scenario", list(OUTCOMES))
async def test_fault_scenario_outcome(sim_client, scenario):
    terminal, code, error_type, retryable, status, partial = OUTCOMES[scenario]
    headers = await login(sim_client, HNW)
    conv = (await sim_client.post("/api/v1/chat/conversations", json={}, headers=headers)).json()
    resp = await sim_client.post(
        "/api/v1/chat/send",
        json={"conversation_id": conv["id"], "text": QUESTION},
        headers={**headers, "X-Sim-Scenario": scenario},
    )
    assert resp.status_code == 200
    assert "Traceback" not in resp.text
    frames = [f for f in parse(resp.text) if f.event != "heartbeat"]
    assert frames[0].event == "message_created" and frames[-1].event == terminal
    seqs = [f.data["seq"] for f in frames[1:]]
    assert seqs == list(range(1, len(seqs) + 1))
    last = frames[-1].data["data"]
    if terminal == "error":
        assert last["code"] == code and last["error_type"] == error_type and last["retryable"] is retryable
        if partial:
            assert last["partial_text"]
    if ";times=" in scenario:
        assert any(f.event == "info" and f.data["data"]["info_type"] == "retry_scheduled" for f in frames)
    if scenario in ("tool_error", "unknown_tool", "invalid_json_arguments", "unknown_tool_loop"):
        results = [f.data["data"] for f in frames if f.event == "tool_result"]
        assert results
        assert all(r["ok"] is False and r["tool_result"]["error"]["type"] == "validation_error" for r in results)
    if scenario == "ramble":
        # Cut at the bound (by the guard's estimate of the streamed tokens), and said so.
        streamed = sum(OutputBudget.cost(f.data["data"]["delta"]) for f in frames if f.event == "token")
        assert MAX_OUTPUT_TOKENS - 10 <= streamed <= MAX_OUTPUT_TOKENS
        assert last["incomplete_reason"] == "max_output_tokens"
        assert f"limit of {MAX_OUTPUT_TOKENS} tokens" in last["error"]
    elif terminal == "error":
        assert last["incomplete_reason"] == ("max_output_tokens" if code == "response_incomplete" else None)
    if scenario == "unknown_tool_loop":
        limit = sim_client.app.state.services.settings.max_tool_iterations
        assert len([f for f in frames if f.event == "tool_result"]) == limit

    services = sim_client.app.state.services
    async with services.db.session() as s:
        rows = (
            (await s.execute(select(Message).where(Message.conversation_id == conv["id"]).order_by(Message.created_at)))
            .scalars()
            .all()
        )
    assert [r.role for r in rows] == ["user", "assistant"]
    assert rows[0].content == QUESTION
    assert rows[1].status == status
    if terminal == "error":
        assert rows[1].error["code"] == code
        assert rows[1].content == last["partial_text"]
        assert rows[1].error.get("incomplete_reason") == last["incomplete_reason"]
    assert services.runs.active_count() == 0


async def test_heartbeats_flow_while_tokens_are_slow(sim_client):
    headers = await login(sim_client, HNW)
    conv = (await sim_client.post("/api/v1/chat/conversations", json={}, headers=headers)).json()
    resp = await sim_client.post(
        "/api/v1/chat/send",
        json={"conversation_id": conv["id"], "text": QUESTION},
        headers={**headers, "X-Sim-Scenario": "slow_tokens"},
    )
    frames = parse(resp.text)
    beats = [f for f in frames if f.event == "heartbeat"]
    assert beats, "expected heartbeats during a slow stream"
    assert all(f.id is None and f.data["type"] == "heartbeat" for f in beats)
    assert frames[-1].event == "done"


async def test_fault_injection_is_ignored_unless_enabled(client):
    headers = await login(client, HNW)
    conv = (await client.post("/api/v1/chat/conversations", json={}, headers=headers)).json()
    resp = await client.post(
        "/api/v1/chat/send",
        json={"conversation_id": conv["id"], "text": QUESTION},
        headers={**headers, "X-Sim-Scenario": "server_error"},
    )
    assert parse(resp.text)[-1].event == "done"


async def test_the_upstreams_own_error_reaches_the_runs_table_never_the_user(sim_client):
    headers = await login(sim_client, HNW)
    conv = (await sim_client.post("/api/v1/chat/conversations", json={}, headers=headers)).json()
    resp = await sim_client.post(
        "/api/v1/chat/send",
        json={"conversation_id": conv["id"], "text": QUESTION},
        headers={**headers, "X-Sim-Scenario": "response_failed"},
    )
    last = parse(resp.text)[-1]
    assert last.event == "error" and last.data["data"]["code"] == "response_failed"
    assert "simulated" not in resp.text  # the simulator's own words stay on the server
    services = sim_client.app.state.services
    # The client may see the end before the run's own task has told telemetry about it.
    await services.runs.wait_finished(last.data["run_id"], timeout=10)
    await services.telemetry.recorder.flush()
    async with services.db.session() as s:
        row = (await s.execute(select(RunRecord).where(RunRecord.conversation_id == conv["id"]))).scalar_one()
        mine = select(Message).where(Message.conversation_id == conv["id"], Message.role == "assistant")
        saved = (await s.execute(mine)).scalar_one()
    assert (row.status, row.error_code, row.upstream_error_code) == ("failed", "response_failed", "server_error")
    assert "(simulated)" in row.upstream_error_message
    assert "simulated" not in str(saved.error)
