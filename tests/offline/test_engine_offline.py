"""The Responses engine on the offline model (no key) and on the in-process simulator, with the real tools."""

from __future__ import annotations

from typing import Any

import openai
from sqlalchemy import select

from sigmachat.db.models import Portfolio, User
from sigmachat.engines.base import RunRequest
from sigmachat.engines.model_client import ModelClient, build_model_client
from sigmachat.engines.responses import ResponsesEngine
from sigmachat.portfolio.service import get_owned_portfolio, value_owned_portfolio
from sigmachat.sim import SimParams, sim_http_client
from sigmachat.tools.registry import build_registry
from tests.conftest import HNW


async def _hnw(services) -> tuple[str, str]:
    async with services.db.session() as s:
        user = (await s.execute(select(User).where(User.email == HNW))).scalar_one()
        pid = (await s.execute(select(Portfolio.id).where(Portfolio.owner_id == user.id))).scalars().first()
        return user.id, pid


async def _run(engine: ResponsesEngine, request: RunRequest) -> list[Any]:
    return [event async for event in engine.stream(request)]


async def test_no_key_runs_on_the_offline_model_and_names_the_largest_position(services) -> None:
    settings = services.settings
    assert settings.openai_api_key is None and settings.openai_base_url is None
    mc = build_model_client(settings)
    assert mc.offline and mc.default_model == settings.offline_model_name
    user_id, pid = await _hnw(services)
    async with services.db.session() as s:
        valuation = await value_owned_portfolio(s, await get_owned_portfolio(s, user_id, pid), settings.as_of_date)
    engine = ResponsesEngine(mc, build_registry(settings), settings, services.db.session)
    events = await _run(
        engine, RunRequest(run_id="r1", user_id=user_id, user_text="What is my largest position?", portfolio_id=pid)
    )
    await mc.aclose()
    types = [e.type for e in events]
    assert types[0] == "run_started" and events[0].offline is True
    assert types[1:3] == ["tool_started", "tool_finished"] and events[1].name == "get_portfolio_complete"
    assert types.count("text_delta") > 5 and types[-1] == "run_finished"
    final = events[-1]
    assert f"**{valuation.holdings[0].symbol}**" in final.final_text
    assert final.final_text == "".join(e.delta for e in events if e.type == "text_delta")
    assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0
    assert final.model == settings.offline_model_name


async def test_engine_retries_a_simulated_429_then_answers(services) -> None:
    settings = services.settings.model_copy(update={"retry_base_delay_ms": 0})
    http = sim_http_client(SimParams(ttfb_ms=0, tokens_per_s=0, retry_after_s=0))
    mc = ModelClient(
        openai.AsyncOpenAI(api_key="sk-sim", base_url="http://sim.sigmachat.local/v1", http_client=http, max_retries=0),
        offline=False,
        is_openai=False,
        default_model="gpt-4.1-mini",
        fallback_model=None,
    )
    user_id, pid = await _hnw(services)
    sleeps: list[float] = []

    async def no_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    engine = ResponsesEngine(mc, build_registry(settings), settings, services.db.session, sleep=no_sleep)
    request = RunRequest(
        run_id="r2",
        user_id=user_id,
        user_text="What is my sector exposure?",
        portfolio_id=pid,
        sim_scenario="rate_limit;times=1",
    )
    events = await _run(engine, request)
    types = [e.type for e in events]
    assert (
        types[:2] == ["run_started", "info"]
        and events[1].kind == "retry_scheduled"
        and events[1].reason == "rate_limited"
    )
    assert types.count("info") == 1  # only the first attempt of the question was failed
    assert types[-1] == "run_finished" and "Your largest sector is" in events[-1].final_text
    assert events[-1].retries == 1


async def test_engine_tool_error_scenario_acknowledges_the_validation_error(services) -> None:
    settings = services.settings
    http = sim_http_client(SimParams(ttfb_ms=0, tokens_per_s=0))
    mc = ModelClient(
        openai.AsyncOpenAI(api_key="sk-sim", base_url="http://sim.sigmachat.local/v1", http_client=http, max_retries=0),
        offline=False,
        is_openai=False,
        default_model="gpt-4.1-mini",
        fallback_model=None,
    )
    user_id, pid = await _hnw(services)
    engine = ResponsesEngine(mc, build_registry(settings), settings, services.db.session)
    events = await _run(
        engine,
        RunRequest(
            run_id="r3",
            user_id=user_id,
            user_text="What is my largest position?",
            portfolio_id=pid,
            sim_scenario="tool_error",
        ),
    )
    finished = [e for e in events if e.type == "tool_finished"]
    assert (
        len(finished) == 1 and finished[0].ok is False and finished[0].envelope["error"]["type"] == "validation_error"
    )
    assert events[-1].type == "run_finished"
    assert "rejected as invalid" in events[-1].final_text and "lookback_days" in events[-1].final_text
