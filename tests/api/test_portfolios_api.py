"""Portfolio API: scoping to the caller, market values, 404 for foreign ids, error hygiene."""

from __future__ import annotations

from tests.conftest import FAMILY, HEDGE, HNW, login


async def test_portfolio_detail_has_positions_with_market_values(client):
    headers = await login(client, HNW)
    [summary] = (await client.get("/api/v1/portfolios", headers=headers)).json()
    detail = (await client.get(f"/api/v1/portfolios/{summary['id']}", headers=headers)).json()
    assert detail["price_source"] == "demo"
    assert len(detail["positions"]) == 39
    for pos in detail["positions"]:
        assert (
            pos["market_value"] == round(pos["quantity"] * pos["price"], 2)
            or abs(pos["market_value"] - pos["quantity"] * pos["price"]) < 0.01
        )
    # Lots are aggregated into holdings, largest absolute market value first.
    values = [abs(h["market_value"]) for h in detail["holdings"]]
    assert values == sorted(values, reverse=True)
    googl = next(h for h in detail["holdings"] if h["symbol"] == "GOOGL")
    assert googl["lots"] == 4
    # NAV = cash + long + short.
    assert abs(detail["nav"] - (detail["cash"] + detail["long_value"] + detail["short_value"])) < 0.05


async def test_hedge_fund_portfolio_signs_shorts_and_values_options_with_multiplier(client):
    headers = await login(client, HEDGE)
    [summary] = (await client.get("/api/v1/portfolios", headers=headers)).json()
    detail = (await client.get(f"/api/v1/portfolios/{summary['id']}", headers=headers)).json()
    assert detail["short_value"] < 0 < detail["long_value"]
    nflx = next(p for p in detail["positions"] if p["symbol"] == "NFLX")
    assert nflx["side"] == "short" and nflx["market_value"] < 0
    option = next(p for p in detail["positions"] if p["asset_class"] == "OPTIONS" and p["quantity"] > 0)
    assert abs(option["market_value"] - option["quantity"] * option["price"] * 100) < 0.05


async def test_family_office_has_two_portfolios(client):
    headers = await login(client, FAMILY)
    names = sorted(p["name"] for p in (await client.get("/api/v1/portfolios", headers=headers)).json())
    assert names == ["Demo Family Office Private Opportunities", "Demo Family Office Public Growth"]


async def test_other_users_portfolio_is_404_exactly_like_unknown(client):
    hedge_headers = await login(client, HEDGE)
    [hedge_pf] = (await client.get("/api/v1/portfolios", headers=hedge_headers)).json()
    headers = await login(client, HNW)
    foreign = await client.get(f"/api/v1/portfolios/{hedge_pf['id']}", headers=headers)
    unknown = await client.get("/api/v1/portfolios/00000000-0000-0000-0000-000000000000", headers=headers)
    assert foreign.status_code == unknown.status_code == 404
    strip = lambda body: {k: v for k, v in body["error"].items() if k != "request_id"}  # noqa: E731
    assert strip(foreign.json()) == strip(unknown.json())


async def test_unknown_route_is_json_404_with_request_id(client):
    resp = await client.get("/api/v1/nope")
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "not_found"
    assert resp.headers["x-request-id"] == resp.json()["error"]["request_id"]


async def test_request_id_is_echoed_when_supplied(client):
    resp = await client.get("/healthz", headers={"X-Request-Id": "abc123def456"})
    assert resp.headers["x-request-id"] == "abc123def456"


async def test_health_and_readiness(client):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "migrations": "ok"}


async def test_unexpected_errors_never_leak_internals(client, app):
    from fastapi import APIRouter

    router = APIRouter()

    @router.get("/api/v1/_boom")
    async def _boom() -> dict:
        raise RuntimeError("SELECT secret FROM users -- traceback here")

    app.include_router(router)
    from httpx import ASGITransport, AsyncClient

    async with AsyncClient(transport=ASGITransport(app=app, raise_app_exceptions=False), base_url="http://t") as c:
        resp = await c.get("/api/v1/_boom")
    assert resp.status_code == 500
    assert "SELECT" not in resp.text and "Traceback" not in resp.text
    assert resp.json()["error"]["code"] == "internal_error"
