"""The load generator's machinery in-process: one stream per path through the real app (offline
model, unpaced) and the in-process simulator for the direct path. No timing assertions."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx2
import openai
import pytest

from sigmachat.bench.loadgen import LoadGenerator, LoadPlan, Question, total_steps
from sigmachat.bench.runner import QUESTIONS, BenchOptions
from sigmachat.sim.app import sim_http_client
from tests.conftest import DEMO_PASSWORD, HNW

BASE = "http://127.0.0.1:8000"


def _plan(settings, paths=("direct", "responses", "chatkit")) -> LoadPlan:
    return LoadPlan(
        app_url=BASE,
        app_pid=0,  # no process to sample in-process
        upstream="sim",
        upstream_base_url="http://sim.sigmachat.local/v1",
        upstream_api_key="sk-test",
        model=settings.model,
        database_url=settings.database_url,
        users=[HNW],
        password=DEMO_PASSWORD,
        questions=list(QUESTIONS),
        paths=list(paths),
        levels=[1],
        streams={1: 1},
    )


@pytest.fixture
async def clients(app):
    http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url=BASE, timeout=30)
    oa = openai.AsyncOpenAI(
        api_key="sk-test",
        base_url="http://sim.sigmachat.local/v1",
        http_client=sim_http_client(ttfb_ms=0, tokens_per_s=0),
        max_retries=0,
    )
    yield http, oa
    await oa.close()
    await http.aclose()


async def test_one_stream_per_path_is_measured_and_intact(settings, clients):
    http, oa = clients
    messages = []
    gen = LoadGenerator(_plan(settings), messages.append)
    try:
        await gen.setup(http)
        warm = await gen.warm_up(http, oa)
        assert warm == {"direct_failed": 0, "app_failed": 0, "app_not_intact": 0}
        tools_question = next(q for q in QUESTIONS if q.key == "tools")
        expected = gen.expected[(HNW, "tools")]
        assert "NVDA" in expected
        cells = [await gen.cell(path, tools_question, 1, 1, http, oa) for path in ("direct", "responses", "chatkit")]
    finally:
        await gen.close()
    for cell in cells:
        assert (cell.streams, cell.ok, cell.errors, cell.intact) == (1, 1, 0, 1), cell
        assert cell.tool_calls_median == 3.0  # profile, quote, and what the user holds in it
        assert cell.ttfb_ms["n"] == 1 and cell.events > 0
        assert cell.app_cpu_s is None  # nothing sampled without a pid
    # Progress: the warm-up and each measured stream were reported to the parent.
    assert sum(m[1] for m in messages if m[0] == "advance") == 2 + 4 + 3  # direct 2, app 2 x 2, cells 3


TEXT_QUESTION = Question("text", "What can you do?", "Text only")


@contextlib.asynccontextmanager
async def _set_up(settings, http) -> AsyncIterator[LoadGenerator]:
    """A load generator logged in, without the warm-up (so no expected texts)."""
    gen = LoadGenerator(_plan(settings, paths=("direct", "responses")), lambda m: None)
    try:
        await gen.setup(http)
        yield gen
    finally:
        await gen.close()


async def test_the_text_question_uses_no_tools(settings, clients):
    http, oa = clients
    async with _set_up(settings, http) as gen:
        cell = await gen.cell("responses", TEXT_QUESTION, 1, 1, http, oa)
    assert cell.ok == 1 and cell.tool_calls_median == 0.0
    # Deterministic upstream but no warm-up, so no expected text: never counted as intact.
    assert cell.intact == 0 and cell.integrity_problems == {"no_expected_text": 1}


async def test_rounds_of_a_cell_add_up_to_one_cell(settings, clients):
    http, oa = clients
    async with _set_up(settings, http) as gen:
        runs = [await gen.measure("responses", TEXT_QUESTION, 1, n, http, oa) for n in (1, 2)]
    cell = gen.summarize("responses", TEXT_QUESTION, 1, runs)
    assert cell.streams == 3 and cell.ok == 3 and cell.ttfb_ms["n"] == 3  # every round's streams
    assert [r["tokens"] for r in cell.rounds] == [len(runs[0].results[0].deltas), 2 * len(runs[0].results[0].deltas)]
    assert cell.tokens == sum(r["tokens"] for r in cell.rounds) > 0
    assert cell.wall_s == pytest.approx(sum(r["wall_s"] for r in cell.rounds), abs=0.01)
    assert cell.app_cpu_s is None and all(r["app_cpu_s"] is None for r in cell.rounds)  # no pid in-process


def test_plan_sizes_fit_the_modes():
    quick, full = BenchOptions(quick=True), BenchOptions()
    assert quick.resolved_levels() == [1, 10] and full.resolved_levels() == [1, 10, 50, 200]
    assert full.resolved_streams()[200] == 200
    assert BenchOptions(levels=(3,), streams=7).resolved_streams() == {3: 7}
    plan = LoadPlan(
        "u",
        0,
        "sim",
        None,
        "k",
        "m",
        "db",
        ["a", "b"],
        "p",
        list(QUESTIONS),
        ["direct", "chatkit"],
        [1, 10],
        {1: 2, 10: 10},
    )
    # warm-up: 2 users x 2 questions direct, 2 questions chatkit; then 2 questions x 2 paths x (2 + 10) streams
    assert total_steps(plan) == 4 + 2 + 48
    plan.rounds = 3  # chatkit three times, direct (the floor) once
    assert total_steps(plan) == 4 + 2 + 2 * (1 + 3) * 12
    assert (full.resolved_rounds(), quick.resolved_rounds(), BenchOptions(rounds=5).resolved_rounds()) == (1, 1, 5)


def test_quick_mode_runs_the_simulator_faster_unless_told_a_pace():
    from sigmachat.bench.runner import QUICK_PACE, _upstream
    from sigmachat.settings import get_settings

    pace = get_settings().sim_tokens_per_s
    assert _upstream(BenchOptions())["tokens_per_s"] == pace
    assert _upstream(BenchOptions(quick=True))["tokens_per_s"] == pace * QUICK_PACE > pace
    assert _upstream(BenchOptions(quick=True, tokens_per_s=50.0))["tokens_per_s"] == 50.0


async def test_a_legacy_stream_is_a_new_chats_first_message_with_the_conversation_made_on_the_clock(settings, app):
    """As the original frontend's sendAIMessage: POST /chat/conversations, then /chat/send, in one action."""
    import time

    from sigmachat.bench.clients import legacy_stream

    arrivals: list[tuple[str, str, float]] = []

    async def recording(scope, receive, send):
        if scope["type"] == "http":
            arrivals.append((scope["method"], scope["path"], time.perf_counter()))
        await app(scope, receive, send)

    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=recording), base_url=BASE, timeout=30) as http:
        login = await http.post("/api/v1/auth/login", json={"email": HNW, "password": DEMO_PASSWORD})
        token = login.json()["access_token"]
        owned = (await http.get("/api/v1/portfolios", headers={"Authorization": f"Bearer {token}"})).json()
        portfolio_id = owned[0]["id"]
        arrivals.clear()
        result = await legacy_stream(http, BASE, token, None, "What can you do?", portfolio_id=portfolio_id)
        assert result.ok, result.error
        assert [(m, p) for m, p, _ in arrivals] == [
            ("POST", "/api/v1/chat/conversations"),
            ("POST", "/api/v1/chat/send"),
        ]
        assert result.t_sent <= arrivals[0][2]  # the creation is inside the measured time
        listed = (await http.get("/api/v1/chat/conversations", headers={"Authorization": f"Bearer {token}"})).json()
        assert len(listed) == 1 and listed[0]["portfolio_id"] == portfolio_id
        # Given a conversation, only the send.
        arrivals.clear()
        again = await legacy_stream(http, BASE, token, listed[0]["id"], "And what else?")
        assert again.ok, again.error
        assert [(m, p) for m, p, _ in arrivals] == [("POST", "/api/v1/chat/send")]
