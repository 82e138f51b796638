"""CSV import of real closes: validation, precedence over demo prices, price version bump."""

from __future__ import annotations

import datetime as dt

import pytest
from typer.testing import CliRunner

from sigmachat.market.prices import PriceImportError, import_csv, latest_closes, parse_price_csv, price_version


async def test_imported_closes_take_precedence_over_demo(services, tmp_path):
    as_of = services.settings.as_of_date
    async with services.db.session() as session:
        before = await latest_closes(session, ["AAPL", "MSFT"], until=as_of)
        version = await price_version(session)
    assert before["AAPL"].source == "demo"
    csv_file = tmp_path / "closes.csv"
    csv_file.write_text(
        f"symbol,date,close\nAAPL,{as_of.isoformat()},999.5\naapl,{(as_of - dt.timedelta(days=1)).isoformat()},990\n"
    )
    async with services.db.session() as session:
        result = await import_csv(session, csv_file)
        await session.commit()
    assert result.rows == 2 and result.symbols == 1
    async with services.db.session() as session:
        after = await latest_closes(session, ["AAPL", "MSFT"], until=as_of)
        assert await price_version(session) == version + 1
    assert after["AAPL"].close == 999.5 and after["AAPL"].source == "import"
    assert after["MSFT"] == before["MSFT"]  # untouched symbols keep their demo closes


async def test_portfolio_api_reflects_imported_price(client, services, tmp_path):
    from tests.conftest import login

    headers = await login(client)
    [pf] = (await client.get("/api/v1/portfolios", headers=headers)).json()
    as_of = services.settings.as_of_date
    csv_file = tmp_path / "closes.csv"
    csv_file.write_text(f"symbol,date,close\nSPY,{as_of.isoformat()},1000\n")
    async with services.db.session() as session:
        await import_csv(session, csv_file)
        await session.commit()
    detail = (await client.get(f"/api/v1/portfolios/{pf['id']}", headers=headers)).json()
    spy = next(p for p in detail["positions"] if p["symbol"] == "SPY")
    assert spy["price"] == 1000 and detail["price_source"] == "mixed"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("sym,day,px\nAAPL,2025-01-01,1\n", "header"),
        ("symbol,date,close\nAAPL,01/02/2025,1\n", "line 2"),
        ("symbol,date,close\nAAPL,2025-01-02,-5\n", "positive"),
        ("symbol,date,close\nAAPL,2025-01-02,nan\n", "positive"),
        ("symbol,date,close\n", "no price rows"),
    ],
)
def test_bad_csv_is_rejected_with_a_clear_message(text, fragment):
    with pytest.raises(PriceImportError, match=fragment):
        parse_price_csv(text)


def test_cli_import_prices_reports_errors_without_importing(tmp_path, monkeypatch, template_db):
    import shutil

    from sigmachat.cli.main import app
    from sigmachat.settings import get_settings

    shutil.copy(template_db, tmp_path / "sigmachat.db")
    monkeypatch.setenv("SIGMACHAT_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'sigmachat.db'}")
    monkeypatch.setenv("SIGMACHAT_VAR_DIR", str(tmp_path))
    get_settings.cache_clear()
    bad = tmp_path / "bad.csv"
    bad.write_text("symbol,date,close\nAAPL,2025-07-11,abc\n")
    good = tmp_path / "good.csv"
    good.write_text("symbol,date,close\nAAPL,2025-07-11,250\n")
    runner = CliRunner()
    try:
        res = runner.invoke(app, ["data", "import-prices", str(bad)])
        assert res.exit_code == 2 and "line 2" in res.output
        res = runner.invoke(app, ["data", "import-prices", str(good)])
        assert res.exit_code == 0, res.output
        assert "Imported 1 closes for 1 symbols" in res.output
    finally:
        get_settings.cache_clear()
