"""The registry over the demo data: every tool answers, errors are envelopes, users are isolated."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from sigmachat.tools.registry import ToolRegistry
from sigmachat.tools.schema import ToolArgs
from sigmachat.tools.tool import Tool, ToolOutput
from tests.conftest import FAMILY, HEDGE, HNW, INDIVIDUAL
from tests.tools.conftest import caller, context

SAMPLE_ARGS = {"get_current_quotes": {"symbols": ["AAPL", "NFLX"]}, "get_company_profile": {"symbol": "NVDA"}}
META_KEYS = {"tool", "requested", "applied", "as_of", "truncated", "limits", "duration_ms"}


async def test_every_tool_answers_on_the_hedge_fund_portfolio(services, registry):
    hedge = await caller(services, HEDGE)
    ctx = context(services, hedge)
    for spec in (s for s in registry.specs() if s.name in registry.read_only_names):  # remember: test_memory_tool
        result = await registry.call(spec.name, SAMPLE_ARGS.get(spec.name, {}), ctx)
        assert result.ok, (spec.name, result.envelope["error"])
        env = result.envelope
        assert set(env) == {"meta", "data", "error"} and env["error"] is None
        assert META_KEYS <= set(env["meta"]), spec.name
        assert env["meta"]["tool"] == spec.name and env["meta"]["as_of"] == "2025-07-11"
        assert env["meta"]["price_source"] == "demo", spec.name  # demo prices are always labelled
        if spec.portfolio_scoped:
            assert env["meta"]["applied"]["portfolio_id"] == hedge.portfolio_id  # injected from the conversation
        parsed = json.loads(result.model_text)  # finite numbers only, or json.loads would choke on NaN
        assert parsed["meta"]["tool"] == spec.name
        budget = (
            services.settings.tool_max_chars_portfolio
            if spec.portfolio_scoped
            else services.settings.tool_max_chars_default
        )
        assert len(result.model_text) <= budget
        assert result.summary and result.duration_ms > 0


async def test_portfolio_numbers_match_the_portfolio_api(client, app):
    from tests.conftest import login

    headers = await login(client, HNW)
    [summary] = (await client.get("/api/v1/portfolios", headers=headers)).json()
    detail = (await client.get(f"/api/v1/portfolios/{summary['id']}", headers=headers)).json()
    services = app.state.services
    hnw = await caller(services, HNW)
    result = await services.registry.call(
        "get_portfolio_complete", {"portfolio_id": summary["id"]}, context(services, hnw, None)
    )
    data = result.envelope["data"]
    for key in (
        "nav",
        "cash",
        "long_value",
        "short_value",
        "gross_exposure",
        "net_exposure",
        "unrealized_pnl",
        "holding_count",
        "position_count",
    ):
        assert data[key] == summary[key], key
    api_holdings = {h["symbol"]: h for h in detail["holdings"]}
    for h in data["holdings"]:
        assert h["market_value"] == api_holdings[h["symbol"]]["market_value"]
        assert h["lots"] == api_holdings[h["symbol"]]["lots"]
    # Lots aggregated: GOOGL's four lots are one holding.
    googl = next(h for h in data["holdings"] if h["symbol"] == "GOOGL")
    assert googl["lots"] == 4
    values = [abs(h["market_value"]) for h in data["holdings"]]
    assert values == sorted(values, reverse=True)


async def test_exposure_overview_is_consistent(services, registry):
    hedge = await caller(services, HEDGE)
    data = (await registry.call("get_analytics_overview", {}, context(services, hedge))).envelope["data"]
    e = data["exposure"]
    assert e["short"]["value"] < 0 < e["long"]["value"]
    assert e["gross"]["value"] == pytest.approx(e["long"]["value"] - e["short"]["value"], abs=0.02)
    assert e["net"]["value"] == pytest.approx(e["long"]["value"] + e["short"]["value"], abs=0.02)
    assert e["gross"]["pct_of_nav"] == pytest.approx(e["gross"]["value"] / data["nav"], abs=1e-4)
    assert data["nav"] == pytest.approx(data["cash"] + e["net"]["value"], abs=0.05)
    assert data["options"]["count"] == 8
    assert data["counts_by_asset_class"]["OPTIONS"]["holdings"] == 8
    assert data["short_count"] > 0


async def test_volatility_parts_add_up(services, registry):
    hnw = await caller(services, HNW)
    data = (await registry.call("get_volatility_analysis", {}, context(services, hnw))).envelope["data"]
    assert 0 < data["portfolio_volatility"] < 1
    assert data["realized"]["252d"] == pytest.approx(data["portfolio_volatility"], abs=1e-4)
    assert sum(c["share_of_risk"] for c in data["contributions"]) == pytest.approx(1.0, abs=1e-3)


async def test_factor_betas_and_stress_are_coherent(services, registry):
    individual = await caller(services, INDIVIDUAL)
    ctx = context(services, individual)
    factors = (await registry.call("get_factor_exposures", {"lookback_days": 126}, ctx)).envelope
    assert factors["meta"]["applied"]["lookback_days"] == 126
    assert factors["data"]["observations"] == 126
    market = next(f for f in factors["data"]["factors"] if f["factor"] == "Market")
    assert 0.3 < market["beta"] < 1.5
    stress = (
        await registry.call(
            "get_stress_test_results",
            {"scenarios": ["market_down_10", "market_down_20"], "custom_market_move_pct": -15},
            ctx,
        )
    ).envelope
    pnl = {s["id"]: s["pnl"] for s in stress["data"]["scenarios"]}
    assert list(pnl) == ["market_down_10", "market_down_20", "custom_market"]
    assert (
        pnl["market_down_20"] < pnl["custom_market"] < pnl["market_down_10"] < 0
    )  # a long-only book loses more the more it falls
    for s in stress["data"]["scenarios"]:
        assert s["pnl"] == pytest.approx(sum(p["pnl"] for p in s["positions"]), abs=1.0)


@pytest.mark.parametrize(
    ("tool", "args", "field"),
    [
        ("get_prices_historical", {"lookback_days": 365}, "lookback_days"),
        ("get_factor_etf_prices", {"lookback_days": 0}, "lookback_days"),
        ("get_factor_exposures", {"lookback_days": 5000}, "lookback_days"),
        ("get_correlation_matrix", {"top_n": 1}, "top_n"),
        ("get_current_quotes", {"symbols": ["A", "B", "C", "D", "E", "F"]}, "symbols"),
        ("get_current_quotes", {}, "symbols"),
        ("get_daily_movers", {"threshold_pct": -1}, "threshold_pct"),
        ("get_stress_test_results", {"custom_market_move_pct": 80}, "custom_market_move_pct"),
        ("get_stress_test_results", {"scenarios": ["asteroid"]}, "scenarios"),
        ("get_factor_etf_prices", {"factors": ["Beauty"]}, "factors"),
        ("get_positions_details", {"include_closed": "perhaps"}, "include_closed"),
        ("get_analytics_overview", {"verbose": True}, "verbose"),
    ],
)
async def test_out_of_range_arguments_are_validation_errors_naming_the_field(services, registry, tool, args, field):
    hnw = await caller(services, HNW)
    result = await registry.call(tool, args, context(services, hnw))
    assert not result.ok
    error = result.envelope["error"]
    assert error["type"] == "validation_error" and error["retryable"] is False
    assert field in error["message"]
    assert result.envelope["data"] is None
    json.loads(result.model_text)


async def test_bad_calls_never_raise(services, registry):
    hnw = await caller(services, HNW)
    ctx = context(services, hnw)
    unknown = await registry.call("get_horoscope", {}, ctx)
    assert (
        unknown.envelope["error"]["type"] == "validation_error"
        and "get_horoscope" in unknown.envelope["error"]["message"]
    )
    garbled = await registry.call("get_analytics_overview", '{"portfolio_id": ', ctx)
    assert garbled.envelope["error"]["type"] == "validation_error" and "JSON" in garbled.envelope["error"]["message"]
    as_text = await registry.call("get_factor_exposures", '{"lookback_days": 60}', ctx)
    assert as_text.ok and as_text.envelope["meta"]["applied"]["lookback_days"] == 60
    nulls = await registry.call("get_factor_exposures", {"portfolio_id": None, "lookback_days": None}, ctx)
    assert nulls.ok and nulls.envelope["meta"]["applied"]["lookback_days"] == 252
    no_portfolio = await registry.call("get_analytics_overview", {}, context(services, hnw, None))
    assert no_portfolio.envelope["error"]["type"] == "validation_error"
    assert "list_user_portfolios" in no_portfolio.envelope["error"]["message"]
    quotes = await registry.call("get_current_quotes", {"symbols": ["NOPE1", "NOPE2"]}, ctx)
    assert quotes.envelope["error"]["type"] == "not_found"
    profile = await registry.call("get_company_profile", {"symbol": "NOPE1"}, ctx)
    assert profile.envelope["error"]["type"] == "not_found"


PORTFOLIO_TOOLS = [
    "get_portfolio_complete", "get_positions_details", "get_portfolio_data_quality", "get_prices_historical",
    "get_analytics_overview", "get_factor_exposures", "get_sector_exposure", "get_correlation_matrix",
    "get_stress_test_results", "get_concentration_metrics", "get_volatility_analysis", "get_daily_movers",
    "get_benchmark_comparison",
]  # fmt: skip


@pytest.mark.parametrize("tool", PORTFOLIO_TOOLS)
async def test_another_users_portfolio_is_not_found_exactly_like_an_unknown_id(services, registry, tool):
    hnw, hedge = await caller(services, HNW), await caller(services, HEDGE)
    assert {s.name for s in registry.specs() if s.portfolio_scoped} == set(PORTFOLIO_TOOLS)
    ctx = context(services, hnw, None)
    # Warm the cache with the owner's call first: isolation must not depend on a cold cache.
    assert (await registry.call(tool, {}, context(services, hedge))).ok
    foreign = await registry.call(tool, {"portfolio_id": hedge.portfolio_id}, ctx)
    unknown = await registry.call(tool, {"portfolio_id": str(uuid.uuid4())}, ctx)
    assert foreign.envelope["error"] == unknown.envelope["error"]
    assert foreign.envelope["error"]["type"] == "not_found"
    assert foreign.envelope["data"] is None

    def without_ids_and_timing(env):
        return {
            **env,
            "meta": {k: v for k, v in env["meta"].items() if k not in ("requested", "applied", "duration_ms")},
        }

    assert without_ids_and_timing(foreign.envelope) == without_ids_and_timing(unknown.envelope)
    # Nor through the conversation's portfolio.
    injected = await registry.call(tool, {}, context(services, hnw, hedge.portfolio_id))
    assert injected.envelope["error"] == unknown.envelope["error"]


async def test_list_user_portfolios_lists_only_the_callers(services, registry):
    family = await caller(services, FAMILY)
    data = (await registry.call("list_user_portfolios", {}, context(services, family))).envelope["data"]
    assert sorted(p["id"] for p in data["portfolios"]) == sorted(family.portfolio_ids)
    assert [p["is_conversation_portfolio"] for p in data["portfolios"]].count(True) == 1


async def test_truncated_model_text_is_valid_json_with_meta(services, registry):
    small = services.settings.model_copy(update={"tool_max_chars_portfolio": 2_000})
    hnw = await caller(services, HNW)
    result = await registry.call("get_portfolio_complete", {}, context(services, hnw, settings=small))
    assert result.ok and result.truncated
    assert len(result.model_text) <= 2_000
    parsed = json.loads(result.model_text)
    assert parsed["meta"]["truncated"] is True
    assert parsed["meta"]["original_count"] == 30
    assert parsed["meta"]["truncation"]["lists"][0]["path"] == "data.holdings"
    kept = parsed["data"]["holdings"]
    assert kept == result.envelope["data"]["holdings"][: len(kept)]  # the largest holdings survive
    assert len(result.envelope["data"]["holdings"]) == 30  # the full envelope is complete


async def test_positions_are_capped_at_200_rows(services, registry):
    import datetime as dt

    from sigmachat.auth.passwords import hash_password
    from sigmachat.db.models import Portfolio, Position, User

    async with services.db.session() as session:
        user = User(email="many@example.com", full_name="Many Lots", password_hash=hash_password("x" * 12))
        session.add(user)
        await session.flush()
        portfolio = Portfolio(owner_id=user.id, name="Many lots", equity_balance=1_000_000.0)
        session.add(portfolio)
        await session.flush()
        for i in range(205):
            session.add(Position(portfolio_id=portfolio.id, symbol="AAPL", quantity=1 + i, entry_price=200.0,
                                 entry_date=dt.date(2025, 6, 30), asset_class="PUBLIC"))  # fmt: skip
        await session.commit()
        ids = (user.id, portfolio.id)
    from sigmachat.tools.registry import ToolContext

    ctx = ToolContext(ids[0], ids[1], services.db.session, services.settings)
    result = await registry.call("get_positions_details", {}, ctx)
    env = result.envelope
    assert env["meta"]["truncated"] is True and env["meta"]["original_count"] == 205
    assert env["data"]["count"] == 205 and len(env["data"]["positions"]) == 200
    assert env["data"]["positions"][0]["quantity"] == 205  # largest first
    parsed = json.loads(result.model_text)
    assert parsed["meta"]["original_count"] == 205 and result.truncated
    # The largest position is the symbol, all lots aggregated.
    complete = (await registry.call("get_portfolio_complete", {}, ctx)).envelope["data"]
    assert complete["holding_count"] == 1 and complete["holdings"][0]["lots"] == 205


async def test_a_price_import_invalidates_the_cache(services, registry, tmp_path):
    from sigmachat.market.prices import import_csv

    hnw = await caller(services, HNW)
    ctx = context(services, hnw)
    before = (await registry.call("get_portfolio_complete", {}, ctx)).envelope
    aapl = next(h for h in before["data"]["holdings"] if h["symbol"] == "AAPL")
    csv = tmp_path / "prices.csv"
    csv.write_text(f"symbol,date,close\nAAPL,2025-07-11,{aapl['price'] * 2}\n")
    async with services.db.session() as session:
        await import_csv(session, csv)
        await session.commit()
    after = (await registry.call("get_portfolio_complete", {}, ctx)).envelope
    assert after["meta"]["price_source"] == "mixed"
    assert after["data"]["nav"] == pytest.approx(before["data"]["nav"] + aapl["market_value"], abs=0.05)


async def test_a_slow_tool_times_out_as_a_retryable_execution_error(services):
    async def slow(args, rt):
        await asyncio.sleep(5)

    registry = ToolRegistry(services.settings, [Tool("slow_tool", "Sleeps.", ToolArgs, slow, lambda d: "")])
    hnw = await caller(services, HNW)
    fast = services.settings.model_copy(update={"tool_timeout_s": 0.05})
    result = await registry.call("slow_tool", {}, context(services, hnw, settings=fast))
    assert result.envelope["error"]["type"] == "execution_error"
    assert result.envelope["error"]["retryable"] is True


async def test_a_cancel_landing_as_the_tool_returns_still_cancels_the_call(services):
    # The race the cluster test hit once: the tool's result and the user's stop in one loop turn.
    # Python 3.11's wait_for returned the result and dropped the cancel (gh-86296); the run went on.
    answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def quick(args, rt):
        await answer
        return ToolOutput(data={"ok": True})

    registry = ToolRegistry(services.settings, [Tool("quick_tool", "Returns.", ToolArgs, quick, lambda d: "")])
    hnw = await caller(services, HNW)
    call = asyncio.create_task(registry.call("quick_tool", {}, context(services, hnw)))
    await asyncio.sleep(0.01)  # the call waits in the tool
    answer.set_result(None)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call


async def test_a_tool_bug_is_an_execution_error_without_internals(services):
    async def broken(args, rt):
        raise RuntimeError("secret internals at 0xdeadbeef")

    registry = ToolRegistry(services.settings, [Tool("broken_tool", "Breaks.", ToolArgs, broken, lambda d: "")])
    hnw = await caller(services, HNW)
    result = await registry.call("broken_tool", {}, context(services, hnw))
    assert result.envelope["error"] == {
        "type": "execution_error",
        "message": "broken_tool failed unexpectedly.",
        "retryable": False,
    }
    assert "deadbeef" not in result.model_text and result.summary.startswith("execution_error")


async def test_concurrent_calls_share_the_cache(services, registry):
    hedge = await caller(services, HEDGE)
    ctx = context(services, hedge)
    names = registry.read_only_names
    results = await asyncio.gather(*(registry.call(n, SAMPLE_ARGS.get(n, {}), ctx) for n in names))
    assert all(r.ok for r in results)


async def test_calls_arriving_together_on_a_cold_cache_build_each_snapshot_once(services, registry, monkeypatch):
    """Regression (the benchmark's tool cells): twenty runs asking at once after a start each
    built the same portfolio snapshot and loaded the same prices, a seventh of their CPU."""
    import sigmachat.tools.market_data as market_data

    loads: list[list[str]] = []
    real_load = market_data.load_close_and_source_frames

    async def counting_load(session, symbols=None, *, until=None):
        loads.append(list(symbols or []))
        return await real_load(session, symbols, until=until)

    monkeypatch.setattr(market_data, "load_close_and_source_frames", counting_load)
    builds = 0
    real_build = registry.portfolios._build

    async def counting_build(*args, **kwargs):
        nonlocal builds
        builds += 1
        return await real_build(*args, **kwargs)

    monkeypatch.setattr(registry.portfolios, "_build", counting_build)
    hedge, hnw = await caller(services, HEDGE), await caller(services, HNW)
    calls = [
        registry.call("get_portfolio_complete", {}, context(services, who)) for who in (hedge, hnw) for _ in range(8)
    ]
    results = await asyncio.gather(*calls)
    assert all(r.ok for r in results)
    assert builds == 2  # one snapshot per portfolio, however many asked at once
    loaded = [s for batch in loads for s in batch]
    assert len(loaded) == len(set(loaded))  # no symbol's prices loaded twice
    assert results[0].summary == results[7].summary and results[8].summary == results[15].summary
