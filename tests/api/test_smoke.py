from tests.conftest import login


async def test_login_and_list_portfolios(client):
    headers = await login(client)
    resp = await client.get("/api/v1/portfolios", headers=headers)
    assert resp.status_code == 200
    body = resp.json()
    assert [p["name"] for p in body] == ["Demo High Net Worth Investor Portfolio"]
    assert body[0]["nav"] > 2_000_000
