"""Simulator faults on the ChatKit path, and the same failure codes from both engines."""

from __future__ import annotations

import json
import shutil

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import select

from sigmachat.agent.failures import kind
from sigmachat.api.app import create_app
from sigmachat.db.models import Message, User
from sigmachat.engines.agents import AgentsEngine
from sigmachat.engines.base import OutputBudget, RunRequest
from sigmachat.engines.model_client import build_model_client
from sigmachat.engines.responses import ResponsesEngine
from sigmachat.services import Services
from sigmachat.sim.app import sim_http_client
from sigmachat.tools.registry import build_registry
from tests.chat.test_faults import MAX_OUTPUT_TOKENS, OUTCOMES, QUESTION, UPSTREAM_APIS
from tests.chatkit.helpers import compact, create, parse_sse, req
from tests.conftest import BASE_URL, HNW, login, make_settings

SIM_URL = "http://sim.sigmachat.local/v1"


def sim_settings(tmp_path, **extra):
    return make_settings(
        tmp_path,
        openai_api_key="sk-sim",
        openai_base_url=SIM_URL,
        allow_fault_injection=True,
        retry_base_delay_ms=0,
        fallback_model=None,
        sse_heartbeat_s=0.02,
        send_rate_limit="",
        max_output_tokens=MAX_OUTPUT_TOKENS,
        **extra,
    )


def fresh_sim():
    return sim_http_client(ttfb_ms=0, tokens_per_s=0, slow_tokens_per_s=200, retry_after_s=0.05)


@pytest.fixture(params=UPSTREAM_APIS)
async def sim_client(request, tmp_path, template_db):
    shutil.copy(template_db, tmp_path / "sigmachat.db")
    app = create_app(sim_settings(tmp_path, upstream_api=request.param), model_http_client=fresh_sim())
    async with LifespanManager(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as c:
        c.app = app
        yield c


@pytest.mark.parametrize("scenario", list(OUTCOMES))
async def test_fault_scenario_on_the_chatkit_path(sim_client, scenario):
    terminal, code, _legacy_type, retryable, status, partial = OUTCOMES[scenario]
    headers = await login(sim_client, HNW)
    resp = await sim_client.post("/chatkit", content=create(QUESTION), headers={**headers, "X-Sim-Scenario": scenario})
    assert resp.status_code == 200 and "Traceback" not in resp.text
    frames = parse_sse(resp.text)  # every frame is a valid ThreadStreamEvent
    kinds = compact(frames)
    assert kinds[-1] == "thread.updated"  # the title, after the first exchange, whatever happened
    if ";times=" in scenario:
        assert "progress_update" in kinds
        assert kinds.index("progress_update") < kinds.index("thread.item.done:assistant_message")
    if terminal == "error":
        error = [f.event for f in frames if f.type == "error"]
        assert len(error) == 1 and kinds[-2] == "error"
        assert error[0].allow_retry is retryable
        expected = kind(code).message
        assert error[0].message == expected or (
            code == "response_incomplete" and error[0].message.startswith("The answer stopped early (")
        )
    else:
        assert kinds[-2] == "thread.item.done:assistant_message"
        assert "error" not in kinds

    thread_id = frames[0].event.thread.id
    services = sim_client.app.state.services
    async with services.db.session() as s:
        rows = (
            (
                await s.execute(
                    select(Message)
                    .where(Message.conversation_id == thread_id, Message.role.is_not(None))
                    .order_by(Message.created_at)
                )
            )
            .scalars()
            .all()
        )
    assert [r.role for r in rows] == ["user", "assistant"]
    assert rows[0].content == QUESTION and rows[1].status == status and rows[1].engine == "agents"
    if terminal == "error":
        assert rows[1].error["code"] == code
    if scenario == "ramble":
        assert f"limit of {MAX_OUTPUT_TOKENS} tokens" in error[0].message
        assert rows[1].error["incomplete_reason"] == "max_output_tokens"
        deltas = [
            f.event.update.delta for f in frames
            if f.type == "thread.item.updated" and f.event.update.type == "assistant_message.content_part.text_delta"
        ]  # fmt: skip
        assert "".join(deltas) == rows[1].content
        assert MAX_OUTPUT_TOKENS - 10 <= sum(OutputBudget.cost(d) for d in deltas) <= MAX_OUTPUT_TOKENS
    # Whatever the fault, the thread reloads as what the user saw.
    items = (
        await sim_client.post("/chatkit", content=req("items.list", thread_id=thread_id, order="asc"), headers=headers)
    ).json()["data"]
    assert items[0]["type"] == "user_message"
    streamed = [f.event.item for f in frames if f.type == "thread.item.done"][1:]  # after the user message
    assert [i["id"] for i in items[1:]] == [i.id for i in streamed]
    if partial:
        assert items[-1]["type"] == "assistant_message" and items[-1]["content"][0]["text"] == rows[1].content
    assert services.runs.active_count() == 0


@pytest.fixture(params=UPSTREAM_APIS)
async def sim_services(request, tmp_path, template_db):
    shutil.copy(template_db, tmp_path / "sigmachat.db")
    services = Services.build(sim_settings(tmp_path, upstream_api=request.param))
    async with services.db.session() as s:
        user_id = (await s.execute(select(User.id).where(User.email == HNW))).scalar_one()
    yield services, user_id
    await services.aclose()


async def _terminal(sim, engine_cls, scenario: str):
    services, user_id = sim
    settings = services.settings
    mc = build_model_client(settings, http_client=fresh_sim())
    try:
        engine = engine_cls(mc, build_registry(settings), settings, services.db.session)

        async def no_wait(_s):  # the simulator's Retry-After is honoured in the delay, not waited
            return None

        engine.sleep = no_wait  # both engines share ModelEngine.sleep
        request = RunRequest(run_id="run_parity", user_id=user_id, user_text=QUESTION, sim_scenario=scenario)
        events = [e async for e in engine.stream(request)]
    finally:
        await mc.aclose()
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    last = events[-1]
    # Each retry's attempt, delay and reason, each switch's models: the upstream policy's decisions.
    infos = [e.model_dump(exclude={"run_id", "seq", "ts"}) for e in events if e.type == "info"]
    tools = [e.name for e in events if e.type == "tool_started"]
    oks = [e.ok for e in events if e.type == "tool_finished"]
    outcome = (
        last.type,
        getattr(last, "code", None),
        getattr(last, "retryable", None),
        bool(getattr(last, "partial_text", "")),
    )
    return outcome, infos, tools, oks, last


@pytest.mark.parametrize("scenario", [None, *OUTCOMES])
async def test_both_engines_report_the_same_outcome_for_the_same_fault(sim_services, scenario):
    responses, r_infos, r_tools, r_oks, r_last = await _terminal(sim_services, ResponsesEngine, scenario)
    agents, a_infos, a_tools, a_oks, a_last = await _terminal(sim_services, AgentsEngine, scenario)
    assert agents == responses
    assert a_infos == r_infos and a_tools == r_tools and a_oks == r_oks
    assert (a_last.retries, a_last.attempts, a_last.fallback_used) == (
        r_last.retries,
        r_last.attempts,
        r_last.fallback_used,
    )
    # A misbehaving model reads the same recoverable tool error from either engine.
    assert [_tool_error(t) for t in a_last.tool_calls] == [_tool_error(t) for t in r_last.tool_calls]
    if scenario in ("unknown_tool", "invalid_json_arguments", "unknown_tool_loop"):
        assert r_last.tool_calls and all(_tool_error(t)[1]["type"] == "validation_error" for t in r_last.tool_calls)
    if a_last.type == "run_finished":
        assert a_last.final_text == r_last.final_text
        assert a_last.usage.output_tokens == r_last.usage.output_tokens > 0
        assert a_last.ttfb_ms is not None and a_last.duration_ms >= a_last.ttfb_ms
        assert [t.name for t in a_last.tool_calls] and all(t.output for t in a_last.tool_calls)
    else:
        failed = ("message", "retry_after_ms", "incomplete_reason", "upstream_code", "upstream_message", "model")
        assert {f: getattr(a_last, f) for f in failed} == {f: getattr(r_last, f) for f in failed}


def _tool_error(record):
    envelope = json.loads(record.output)
    return record.name, envelope.get("error")


async def test_heartbeat_comments_keep_a_slow_chatkit_stream_alive(sim_client):
    headers = await login(sim_client, HNW)
    resp = await sim_client.post(
        "/chatkit", content=create(QUESTION), headers={**headers, "X-Sim-Scenario": "slow_tokens"}
    )
    assert any(line.startswith(":") for line in resp.text.replace("\r\n", "\n").split("\n")), "expected ping comments"
    assert compact(parse_sse(resp.text))[-2] == "thread.item.done:assistant_message"  # comments are ignored by parsers
