"""The market data cache: views of the same symbols are reused until the frames change."""

from __future__ import annotations

from sigmachat.market.prices import bump_price_version
from sigmachat.tools.market_data import MarketDataCache


async def test_a_view_is_reused_until_a_load_or_a_price_change(services):
    cache = MarketDataCache()
    as_of = services.settings.as_of_date
    async with services.db.session() as session:
        first = await cache.view(session, ["msft", "AAPL"], as_of)
        assert list(first.closes.columns) == ["AAPL", "MSFT"] and len(first.closes) > 20
        assert await cache.view(session, ["AAPL", "MSFT"], as_of) is first  # same symbols, any case or order

        # Another symbol loaded: the frames changed, so every view is built again (same data).
        await cache.view(session, ["NVDA"], as_of)
        again = await cache.view(session, ["AAPL", "MSFT"], as_of)
        assert again is not first and again.closes.equals(first.closes) and again.returns.equals(first.returns)

        # Prices changed (an import bumps the version): a fresh view at the new version.
        await bump_price_version(session)
        await session.commit()
        bumped = await cache.view(session, ["AAPL", "MSFT"], as_of)
        assert bumped is not again and bumped.version == again.version + 1
