"""Price storage: writing generated or imported closes, reading them with import precedence."""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from sigmachat.db.models import AppState, DailyPrice, table_of

_DAILY_PRICE_TABLE = table_of(DailyPrice)

PRICE_VERSION_KEY = "price_data_version"
_PRICE_VERSION = select(AppState.value).where(AppState.key == PRICE_VERSION_KEY)
SOURCE_DEMO = "demo"
SOURCE_IMPORT = "import"
# Lower rank wins when both sources have a close for the same symbol and day.
SOURCE_RANK = {SOURCE_IMPORT: 0, SOURCE_DEMO: 1}


class PriceImportError(ValueError):
    """A CSV that cannot be imported; the message names the line and what was wrong."""


@dataclass(frozen=True, slots=True)
class ImportResult:
    rows: int
    symbols: int
    first_date: dt.date
    last_date: dt.date


async def bump_price_version(session: AsyncSession) -> int:
    """Price data changed: bump the version that analytics caches are keyed by."""
    row = await session.get(AppState, PRICE_VERSION_KEY)
    version = (int(row.value) if row else 0) + 1
    if row:
        row.value = str(version)
    else:
        session.add(AppState(key=PRICE_VERSION_KEY, value=str(version)))
    return version


async def price_version(session: AsyncSession) -> int:
    # A prebuilt column select, not session.get: read before every market tool call (another
    # instance may have imported prices), and the ORM's identity look-up cost three times more.
    value = (await session.execute(_PRICE_VERSION)).scalar_one_or_none()
    return int(value) if value is not None else 0


async def write_closes(
    session: AsyncSession, rows: Iterable[tuple[str, dt.date, float]], source: str, *, replace: bool
) -> int:
    """Upsert closes of one source. ``replace`` first deletes that source's rows for the symbols."""
    rows = list(rows)
    if not rows:
        return 0
    if replace:
        symbols = sorted({r[0] for r in rows})
        for i in range(0, len(symbols), 500):
            await session.execute(
                delete(DailyPrice).where(DailyPrice.source == source, DailyPrice.symbol.in_(symbols[i : i + 500]))
            )
    else:
        # Overwrite semantics for re-imports: delete exactly the (symbol, date) keys we write.
        by_symbol: dict[str, list[dt.date]] = {}
        for sym, day, _ in rows:
            by_symbol.setdefault(sym, []).append(day)
        for sym, days in by_symbol.items():
            for i in range(0, len(days), 500):
                await session.execute(
                    delete(DailyPrice).where(
                        DailyPrice.source == source, DailyPrice.symbol == sym, DailyPrice.date.in_(days[i : i + 500])
                    )
                )
    payload = [{"symbol": s, "date": d, "source": source, "close": float(c)} for s, d, c in rows]
    for i in range(0, len(payload), 5000):
        await session.execute(_DAILY_PRICE_TABLE.insert(), payload[i : i + 5000])
    return len(payload)


def parse_price_csv(text: str) -> list[tuple[str, dt.date, float]]:
    """Parse ``symbol,date,close`` (header required, ISO dates). Raises PriceImportError."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration as exc:
        raise PriceImportError("the file is empty; expected a header line 'symbol,date,close'") from exc
    try:
        i_sym, i_date, i_close = header.index("symbol"), header.index("date"), header.index("close")
    except ValueError as exc:
        raise PriceImportError(f"header must contain symbol,date,close (got: {','.join(header)})") from exc
    rows: list[tuple[str, dt.date, float]] = []
    for lineno, rec in enumerate(reader, start=2):
        if not rec or all(not c.strip() for c in rec):
            continue
        try:
            symbol = rec[i_sym].strip().upper()
            day = dt.date.fromisoformat(rec[i_date].strip())
            close = float(rec[i_close])
        except (IndexError, ValueError) as exc:
            raise PriceImportError(f"line {lineno}: expected symbol,date(YYYY-MM-DD),close: {exc}") from exc
        if not symbol:
            raise PriceImportError(f"line {lineno}: empty symbol")
        if not math.isfinite(close) or close <= 0:
            raise PriceImportError(f"line {lineno}: close must be a positive number (got {rec[i_close]!r})")
        rows.append((symbol, day, close))
    if not rows:
        raise PriceImportError("no price rows found after the header")
    return rows


async def import_csv(session: AsyncSession, path: Path) -> ImportResult:
    """Load real closes from a CSV; they take precedence over demo closes for the same days."""
    rows = parse_price_csv(path.read_text(encoding="utf-8-sig"))
    await write_closes(session, rows, SOURCE_IMPORT, replace=False)
    await bump_price_version(session)
    return ImportResult(
        rows=len(rows),
        symbols=len({r[0] for r in rows}),
        first_date=min(r[1] for r in rows),
        last_date=max(r[1] for r in rows),
    )


async def _load_ranked(session: AsyncSession, symbols: Iterable[str] | None, until: dt.date | None) -> pd.DataFrame:
    """One row per (symbol, date): the winning close and its source."""
    stmt = select(DailyPrice.symbol, DailyPrice.date, DailyPrice.source, DailyPrice.close)
    if symbols is not None:
        symbols = sorted(set(symbols))
        if not symbols:
            return pd.DataFrame(columns=["symbol", "date", "source", "close"])
        stmt = stmt.where(DailyPrice.symbol.in_(symbols))
    if until is not None:
        stmt = stmt.where(DailyPrice.date <= until)
    # Plain tuples: pandas inspects each Row object for namedtuple fields, ~10x slower.
    records = [tuple(r) for r in (await session.execute(stmt)).all()]
    df = pd.DataFrame(records, columns=["symbol", "date", "source", "close"])
    if df.empty:
        return df
    df["rank"] = df["source"].map(SOURCE_RANK).fillna(9)
    return df.sort_values("rank", kind="stable").drop_duplicates(["symbol", "date"], keep="first")


async def load_close_frame(
    session: AsyncSession, symbols: Iterable[str] | None = None, *, until: dt.date | None = None
) -> pd.DataFrame:
    """Closes as a DataFrame (index: date, columns: symbol), imported closes winning over demo."""
    df = await _load_ranked(session, symbols, until)
    if df.empty:
        return pd.DataFrame()
    frame = df.pivot(index="date", columns="symbol", values="close").sort_index()
    frame.index = pd.to_datetime(frame.index)
    return frame


async def load_close_and_source_frames(
    session: AsyncSession, symbols: Iterable[str] | None = None, *, until: dt.date | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Like :func:`load_close_frame`, plus a same-shaped frame naming each close's source.

    One query for both, so analytics can label every price they use (demo | import).
    """
    df = await _load_ranked(session, symbols, until)
    if df.empty:
        return pd.DataFrame(), pd.DataFrame()
    closes = df.pivot(index="date", columns="symbol", values="close").sort_index()
    sources = df.pivot(index="date", columns="symbol", values="source").reindex_like(closes)
    closes.index = sources.index = pd.to_datetime(closes.index)
    return closes, sources


@dataclass(frozen=True, slots=True)
class Quote:
    date: dt.date
    close: float
    source: str  # demo | import


async def latest_closes(
    session: AsyncSession, symbols: Iterable[str], *, until: dt.date | None = None
) -> dict[str, Quote]:
    """The last close on or before ``until`` for each symbol (import precedence applies)."""
    df = await _load_ranked(session, symbols, until)
    if df.empty:
        return {}
    last = df.sort_values("date").groupby("symbol", sort=False).tail(1)
    return {r.symbol: Quote(r.date, float(r.close), r.source) for r in last.itertuples(index=False)}


def describe_sources(sources: Iterable[str]) -> str:
    """How a set of prices was sourced, as shown to users: demo, import or mixed."""
    found = set(sources)
    if not found:
        return "none"
    return found.pop() if len(found) == 1 else "mixed"
