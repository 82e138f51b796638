"""Expected facts, computed from the tools at run time, and how an answer's text is checked for them.

A fact spec names *what* to compute (``{"fact": "holding", "symbol": "AAPL", "field":
"market_value"}``); :class:`FactSource` computes it by calling the same tool registry the
analyst uses, for the same user and portfolio, so the set never goes stale when prices or
positions change. Matching is tolerant of presentation: numbers are found whatever their
formatting ("$2,606,205", "$2.61M", "9.0%"), within a tolerance that still tells neighbours
apart; tickers match as whole words; phrases case-insensitively.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from sigmachat.tools.registry import ToolRegistry
from sigmachat.tools.runtime import ToolContext

_NUMBER_RE = re.compile(
    r"(?<![\w.])([-+−]?)(\$?)(\d[\d,]*(?:\.\d+)?)(\s?(?:%|percent\b|bn\b|[kKmMbB]\b|million\b|billion\b|thousand\b))?"
)
_SCALE = {
    "k": 1e3,
    "thousand": 1e3,
    "m": 1e6,
    "million": 1e6,
    "b": 1e9,
    "bn": 1e9,
    "billion": 1e9,
}
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z*_(\[])|\n")
_NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}


class FactError(Exception):
    """The fact cannot be computed (a tool failed or the spec names nothing)."""


@dataclass(frozen=True, slots=True)
class Expectation:
    """One thing the answer must contain: a number (with unit) or one of some phrases."""

    label: str
    kind: str  # usd | pct | qty | plain | words | symbol
    value: float | None = None
    phrases: tuple[str, ...] = ()
    first_sentence: bool = False

    def found_in(self, text: str) -> bool:
        if self.kind in ("words", "symbol"):
            return any(_has_phrase(text, p, exact=self.kind == "symbol") for p in self.phrases)
        assert self.value is not None
        for n, is_pct, is_usd in numbers_in(text):
            if (
                self.kind == "pct"
                and is_pct
                and abs(abs(n) - abs(self.value * 100)) <= max(0.15, 0.015 * abs(self.value * 100))
            ):
                return True
            if self.kind == "usd" and not is_pct and abs(abs(n) - abs(self.value)) <= max(1.0, 0.005 * abs(self.value)):
                return True
            if (
                self.kind == "qty"
                and not is_pct
                and abs(abs(n) - abs(self.value)) <= max(0.011, 0.001 * abs(self.value))
            ):
                return True
            if self.kind == "plain" and not is_pct and not is_usd:
                tol = max(0.011, 0.02 * abs(self.value)) if abs(self.value) >= 0.05 else 0.0015
                if abs(n - self.value) <= tol:
                    return True
        return False


def _has_phrase(text: str, phrase: str, *, exact: bool) -> bool:
    if exact:
        return re.search(rf"(?<![A-Za-z0-9_]){re.escape(phrase)}(?![A-Za-z0-9_])", text) is not None
    return phrase.lower() in text.lower()


def plain_text(text: str) -> str:
    return text.replace("**", "").replace("\\|", "|")


def first_sentence(text: str) -> str:
    body = plain_text(text).strip()
    return _SENTENCE_END.split(body, maxsplit=1)[0] if body else ""


def numbers_in(text: str) -> list[tuple[float, bool, bool]]:
    """Every number in the text as (value, is a percentage, is dollars), suffixes applied."""
    out = []
    for sign, dollar, digits, suffix in _NUMBER_RE.findall(plain_text(text)):
        try:
            value = float(digits.replace(",", ""))
        except ValueError:
            continue
        unit = (suffix or "").strip().lower()
        is_pct = unit in ("%", "percent")
        value *= _SCALE.get(unit, 1.0)
        out.append((-value if sign in ("-", "−") else value, is_pct, bool(dollar)))
    return out


class FactSource:
    """Computes facts for one user from the tool registry (results cached per run)."""

    def __init__(self, registry: ToolRegistry, ctx_for: Any) -> None:
        self.registry = registry
        self._ctx_for = ctx_for  # (portfolio_id | None) -> ToolContext
        self._cache: dict[str, Any] = {}

    async def tool(self, portfolio_id: str | None, name: str, **args: Any) -> Any:
        key = json.dumps([portfolio_id, name, args], sort_keys=True)
        if key not in self._cache:
            ctx: ToolContext = self._ctx_for(portfolio_id)
            result = await self.registry.call(
                name,
                {"portfolio_id": portfolio_id, **args} if portfolio_id else args,
                ctx,
            )
            if result.error:
                raise FactError(f"{name} failed: {result.error.get('message')}")
            self._cache[key] = result.envelope["data"]
        return self._cache[key]

    async def portfolio_id(self, fragment: str | None, default: str | None) -> str | None:
        if not fragment:
            return default
        rows = (await self.tool(None, "list_user_portfolios"))["portfolios"]
        match = next((r["id"] for r in rows if fragment.lower() in r["name"].lower()), None)
        if match is None:
            raise FactError(f"no portfolio named like {fragment!r}")
        return match

    async def expectations(self, spec: dict[str, Any], portfolio_id: str | None) -> list[Expectation]:
        pid = await self.portfolio_id(spec.get("portfolio"), portfolio_id)
        fs = bool(spec.get("first_sentence"))
        kind = spec["fact"]
        method = getattr(self, f"_fact_{kind}", None)
        if method is None:
            raise FactError(f"unknown fact {kind!r}")
        found = await method(spec, pid)
        return [
            Expectation(e.label, e.kind, e.value, e.phrases, fs)
            for e in (found if isinstance(found, list) else [found])
        ]

    # ---- holdings ---------------------------------------------------------------------------

    async def _ranked(self, pid: str | None, side: str | None = None) -> list[dict[str, Any]]:
        rows = (
            await self.tool(
                pid,
                "get_portfolio_complete",
                include_holdings=True,
                include_timeseries=False,
            )
        )["holdings"]
        if side == "short":
            rows = [r for r in rows if r["market_value"] < 0]
        return sorted(rows, key=lambda r: -abs(r["market_value"]))

    async def _holding_row(self, spec: dict[str, Any], pid: str | None) -> tuple[str, dict[str, Any] | None]:
        ranked = await self._ranked(pid, spec.get("side"))
        if "rank" in spec:
            if spec["rank"] > len(ranked):
                raise FactError(f"the portfolio has fewer than {spec['rank']} holdings")
            row = ranked[spec["rank"] - 1]
            return row["symbol"], row
        symbol = spec["symbol"]
        return symbol, next((r for r in ranked if r["symbol"] == symbol), None)

    async def _fact_holding_symbol(self, spec: dict[str, Any], pid: str | None) -> Expectation:
        symbol, _row = await self._holding_row(spec, pid)
        side = " short" if spec.get("side") == "short" else ""
        return Expectation(f"#{spec['rank']}{side} holding {symbol}", "symbol", phrases=(symbol,))

    async def _fact_holding(self, spec: dict[str, Any], pid: str | None) -> Expectation:
        symbol, row = await self._holding_row(spec, pid)
        field = spec.get("field", "market_value")
        if row is None:
            return Expectation(
                f"{symbol} not held",
                "words",
                phrases=("do not hold", "don't hold", "not hold", "no position"),
            )
        if field == "quantity":
            return Expectation(f"{symbol} quantity {row['quantity']}", "qty", float(row["quantity"]))
        if field == "weight":
            return Expectation(
                f"{symbol} {row['weight'] * 100:.1f}% of NAV",
                "pct",
                float(row["weight"]),
            )
        return Expectation(
            f"{symbol} market value ${row['market_value']:,.0f}",
            "usd",
            float(row["market_value"]),
        )

    async def _fact_nav(self, spec: dict[str, Any], pid: str | None) -> Expectation:
        nav = (
            await self.tool(
                pid,
                "get_portfolio_complete",
                include_holdings=True,
                include_timeseries=False,
            )
        )["nav"]
        return Expectation(f"NAV ${nav:,.0f}", "usd", float(nav))

    async def _fact_quote(self, spec: dict[str, Any], pid: str | None) -> Expectation:
        quotes = (await self.tool(None, "get_current_quotes", symbols=[spec["symbol"]]))["quotes"]
        close = next(q["close"] for q in quotes if q["symbol"] == spec["symbol"])
        return Expectation(f"{spec['symbol']} close ${close:,.2f}", "usd", float(close))

    async def _fact_price_change(self, spec: dict[str, Any], pid: str | None) -> Expectation:
        symbol = spec.get("symbol") or (await self._holding_row(spec, pid))[0]
        days = int(spec.get("lookback_days", 30))
        data = await self.tool(pid, "get_prices_historical", lookback_days=days, include_factor_etfs=False)
        row = next((r for r in data["symbols"] if r["symbol"] == symbol), None)
        if row is None or row.get("return") is None:
            raise FactError(f"no {days}-day price change for {symbol}")
        return Expectation(
            f"{symbol} {row['return'] * 100:+.1f}% over {days} days",
            "pct",
            float(row["return"]),
        )

    # ---- exposures and risk -----------------------------------------------------------------

    async def _sector_row(self, spec: dict[str, Any], pid: str | None) -> dict[str, Any]:
        rows = (await self.tool(pid, "get_sector_exposure"))["sectors"]
        ordered = sorted(rows, key=lambda r: (-abs(r["weight"] or 0.0), r["sector"]))
        return ordered[spec.get("rank", 1) - 1]

    async def _fact_sector_name(self, spec: dict[str, Any], pid: str | None) -> Expectation:
        row = await self._sector_row(spec, pid)
        return Expectation(
            f"sector #{spec.get('rank', 1)} {row['sector']}",
            "words",
            phrases=(row["sector"],),
        )

    async def _fact_sector_weight(self, spec: dict[str, Any], pid: str | None) -> Expectation:
        row = await self._sector_row(spec, pid)
        return Expectation(
            f"{row['sector']} {row['weight'] * 100:.1f}% of NAV",
            "pct",
            float(row["weight"]),
        )

    async def _fact_benchmark(self, spec: dict[str, Any], pid: str | None) -> list[Expectation]:
        rows = (await self.tool(pid, "get_benchmark_comparison"))["sectors"]
        if spec.get("largest_gap"):
            row = max(rows, key=lambda r: abs(r["active_weight"] or 0.0))
            out = [Expectation(f"largest gap {row['sector']}", "words", phrases=(row["sector"],))]
        else:
            row = next(r for r in rows if r["sector"] == spec["sector"])
            out = []
        field = spec.get("field", "portfolio_weight")
        label = "S&P 500" if field == "benchmark_weight" else "portfolio"
        out.append(
            Expectation(
                f"{row['sector']} {label} {row[field] * 100:.1f}%",
                "pct",
                float(row[field]),
            )
        )
        return out

    async def _fact_stress(self, spec: dict[str, Any], pid: str | None) -> Expectation:
        move = float(spec["move_pct"])
        data = await self.tool(
            pid,
            "get_stress_test_results",
            scenarios=["market_down_10"],
            custom_market_move_pct=move,
        )
        custom = next(s for s in data["scenarios"] if str(s["id"]).startswith("custom"))
        return Expectation(f"{move:+g}% market P&L ${custom['pnl']:,.0f}", "usd", float(custom["pnl"]))

    async def _fact_volatility(self, spec: dict[str, Any], pid: str | None) -> Expectation:
        vol = (await self.tool(pid, "get_volatility_analysis"))["portfolio_volatility"]
        return Expectation(f"volatility {vol * 100:.1f}%", "pct", float(vol))

    async def _fact_var(self, spec: dict[str, Any], pid: str | None) -> Expectation:
        var = (await self.tool(pid, "get_volatility_analysis"))["value_at_risk_95_1d"]["parametric"]
        return Expectation(f"1-day 95% VaR ${abs(var):,.0f}", "usd", float(var))

    async def _fact_beta(self, spec: dict[str, Any], pid: str | None) -> Expectation:
        factors = (await self.tool(pid, "get_factor_exposures", lookback_days=252))["factors"]
        beta = next(f["beta"] for f in factors if f["factor"].lower() == "market")
        return Expectation(f"market beta {beta:.2f}", "plain", float(beta))

    async def _fact_hhi(self, spec: dict[str, Any], pid: str | None) -> Expectation:
        hhi = (await self.tool(pid, "get_concentration_metrics"))["by_symbol"]["hhi"]
        return Expectation(f"HHI {hhi:.3f}", "plain", float(hhi))

    async def _fact_exposure(self, spec: dict[str, Any], pid: str | None) -> Expectation:
        side = spec.get("side", "gross")
        share = (await self.tool(pid, "get_analytics_overview"))["exposure"][side]["pct_of_nav"]
        return Expectation(f"{side} exposure {share * 100:.1f}% of NAV", "pct", float(share))

    async def _fact_top_gainer(self, spec: dict[str, Any], pid: str | None) -> Expectation:
        gainers = (await self.tool(pid, "get_daily_movers", threshold_pct=0.5))["gainers"]
        if not gainers:
            return Expectation("no gainers", "words", phrases=("none", "no holding", "did not move"))
        return Expectation(
            f"top gainer {gainers[0]['symbol']}",
            "symbol",
            phrases=(gainers[0]["symbol"],),
        )

    async def _fact_caveat(self, spec: dict[str, Any], pid: str | None) -> Expectation:
        data = await self.tool(
            pid,
            "get_portfolio_complete",
            include_holdings=True,
            include_timeseries=False,
        )
        caveat = next((c for c in data.get("caveats", []) if c["code"] == spec["code"]), None)
        if caveat is None:
            raise FactError(f"the tools report no {spec['code']} caveat for this portfolio")
        field = spec["field"]
        value = caveat[field]
        if field == "largest_investable":
            return Expectation(f"largest investable {value}", "symbol", phrases=(str(value),))
        if field in ("private_of_nav",):
            return Expectation(f"private marks {value * 100:.0f}% of NAV", "pct", float(value))
        if field == "market_beta":
            return Expectation(f"stress beta {value:.1f}", "plain", float(value))
        return Expectation(f"{field} ${value:,.0f}", "usd", float(value))

    # ---- portfolios and text ----------------------------------------------------------------

    async def _fact_portfolio_count(self, spec: dict[str, Any], pid: str | None) -> Expectation:
        n = len((await self.tool(None, "list_user_portfolios"))["portfolios"])
        return Expectation(
            f"{n} portfolios",
            "words",
            phrases=(f"{n} portfolio", f"{_NUMBER_WORDS.get(n, n)} portfolio"),
        )

    async def _fact_portfolio_names(self, spec: dict[str, Any], pid: str | None) -> list[Expectation]:
        rows = (await self.tool(None, "list_user_portfolios"))["portfolios"]
        return [Expectation(f"portfolio {r['name']}", "words", phrases=(r["name"],)) for r in rows]

    async def _fact_text(self, spec: dict[str, Any], pid: str | None) -> Expectation:
        return Expectation("one of: " + " / ".join(spec["any"]), "words", phrases=tuple(spec["any"]))
