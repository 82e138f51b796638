"""Idempotent seeding of the demo users, portfolios, positions and demo prices.

Running it twice changes nothing: users are matched by email, portfolios by (owner, name),
lots by a stable seed key, and demo prices are only regenerated when the generator's
parameters (seed, as-of date, length) change.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sigmachat.auth.passwords import hash_password
from sigmachat.db.models import AppState, Portfolio, Position, User
from sigmachat.market.generator import DemoPriceGenerator, OptionSpec
from sigmachat.market.prices import SOURCE_DEMO, bump_price_version, write_closes
from sigmachat.market.security_master import load_security_master
from sigmachat.settings import Settings

ADMIN_EMAIL = "admin@sigmasight.com"
ADMIN_NAME = "SigmaSight Operator"
DEMO_PARAMS_KEY = "demo_prices_params"
FACTOR_AND_MARKET_SYMBOLS = (
    "SPY", "VTV", "VUG", "MTUM", "QUAL", "SLY", "USMV", "QQQ", "DIA", "VIX",
    "XLK", "XLF", "XLV", "XLE", "XLY", "XLP", "XLI", "XLU", "XLB", "XLRE", "XLC",
)  # fmt: skip


def load_demo_data() -> dict[str, Any]:
    return json.loads(resources.files("sigmachat.data").joinpath("demo_portfolios.json").read_text("utf-8"))


@dataclass
class SeedReport:
    users_created: int = 0
    portfolios_created: int = 0
    positions_created: int = 0
    price_rows_written: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any((self.users_created, self.portfolios_created, self.positions_created, self.price_rows_written))


def _option_spec(pos: dict[str, Any]) -> OptionSpec | None:
    if not pos.get("underlying"):
        return None
    return OptionSpec(
        symbol=pos["symbol"],
        underlying=pos["underlying"],
        strike=float(pos["strike"]),
        expiry=dt.date.fromisoformat(pos["expiry"]),
        option_type=pos["option_type"],
    )


async def seed_demo(session: AsyncSession, settings: Settings) -> SeedReport:
    report = SeedReport()
    data = load_demo_data()
    master = load_security_master()
    password = data["password_for_all_demo_users"]

    # Users (the demo users plus one operator/admin).
    existing = {u.email: u for u in (await session.execute(select(User))).scalars()}
    wanted = [(u["email"], u["full_name"], "user") for u in data["users"]] + [(ADMIN_EMAIL, ADMIN_NAME, "admin")]
    users: dict[str, User] = {}
    for email, name, role in wanted:
        user = existing.get(email)
        if user is None:
            user = User(email=email, full_name=name, password_hash=hash_password(password), role=role)
            session.add(user)
            report.users_created += 1
        users[email] = user
    await session.flush()

    # Prices first: option lots need a model premium at their entry date.
    all_positions = [p for pf in data["portfolios"] for p in pf["positions"]]
    options = {spec.symbol: spec for spec in filter(None, map(_option_spec, all_positions))}
    series = await _ensure_demo_prices(session, settings, all_positions, options, report)

    for pf in data["portfolios"]:
        owner = users[pf["user_email"]]
        portfolio = (
            await session.execute(
                select(Portfolio).where(Portfolio.owner_id == owner.id, Portfolio.name == pf["portfolio_name"])
            )
        ).scalar_one_or_none()
        if portfolio is None:
            portfolio = Portfolio(
                owner_id=owner.id,
                name=pf["portfolio_name"],
                description=pf.get("description", ""),
                equity_balance=float(pf.get("equity_balance", 0.0)),
            )
            session.add(portfolio)
            await session.flush()
            report.portfolios_created += 1
        have = set(
            (await session.execute(select(Position.seed_key).where(Position.portfolio_id == portfolio.id))).scalars()
        )
        for idx, pos in enumerate(pf["positions"]):
            key = f"{idx:03d}:{pos['symbol']}"
            if key in have:
                continue
            spec = options.get(pos["symbol"]) if pos.get("underlying") else None
            entry_date = dt.date.fromisoformat(pos["entry_date"])
            entry_price = float(pos["entry_price"])
            if spec is not None and entry_price <= 0:
                entry_price = _close_on(series, spec.symbol, entry_date) or 0.0
            session.add(
                Position(
                    portfolio_id=portfolio.id,
                    symbol=pos["symbol"],
                    quantity=float(pos["quantity"]),
                    entry_price=entry_price,
                    entry_date=entry_date,
                    asset_class=master.asset_class_for(pos["symbol"], has_option_fields=spec is not None),
                    underlying=spec.underlying if spec else None,
                    strike=spec.strike if spec else None,
                    expiry=spec.expiry if spec else None,
                    option_type=spec.option_type if spec else None,
                    seed_key=key,
                )
            )
            report.positions_created += 1
    await session.commit()
    return report


def _close_on(series: dict[str, tuple[list[dt.date], Any]], symbol: str, day: dt.date) -> float | None:
    if symbol not in series:
        return None
    dates, values = series[symbol]
    best = None
    for d, v in zip(dates, values, strict=True):
        if d <= day:
            best = float(v)
    return best


async def _ensure_demo_prices(
    session: AsyncSession,
    settings: Settings,
    positions: list[dict[str, Any]],
    options: dict[str, OptionSpec],
    report: SeedReport,
) -> dict[str, tuple[list[dt.date], Any]]:
    params = json.dumps(
        {"seed": settings.price_seed, "as_of": settings.as_of_date.isoformat(), "days": settings.price_history_days},
        sort_keys=True,
    )
    generator = DemoPriceGenerator(
        load_security_master(), seed=settings.price_seed, as_of=settings.as_of_date, days=settings.price_history_days
    )
    symbols = {p["symbol"] for p in positions if not p.get("underlying")} | set(FACTOR_AND_MARKET_SYMBOLS)
    master = load_security_master()
    symbols |= set(master.securities)  # every symbol of the security master gets a series
    entry_prices = {p["symbol"]: float(p["entry_price"]) for p in positions if float(p["entry_price"]) > 0}
    series = generator.generate(symbols, entry_prices, options.values())

    state = await session.get(AppState, DEMO_PARAMS_KEY)
    if state is not None and state.value == params:
        return series
    rows = [(sym, d, float(v)) for sym, (dates, values) in series.items() for d, v in zip(dates, values, strict=True)]
    report.price_rows_written = await write_closes(session, rows, SOURCE_DEMO, replace=True)
    if state is None:
        session.add(AppState(key=DEMO_PARAMS_KEY, value=params))
    else:
        state.value = params
    await bump_price_version(session)
    report.notes.append(f"generated {len(series)} demo price series ending {generator.dates[-1].isoformat()}")
    return series
