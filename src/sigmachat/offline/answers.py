"""Answer composers: factual markdown written from tool result envelopes.

Each tool has a composer that turns its envelope ``{"meta", "data", "error"}`` into a short
markdown section: the headline numbers first, then a small table where it helps. Composers are
defensive by construction: a missing key gives a shorter sentence, an error envelope gives a
sentence saying what could not be computed and why, and a composer that still fails falls
back to a generic summary. Nothing here raises.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("sigmachat.offline.answers")

OFFLINE_LABEL = "SigmaSight offline analyst"


@dataclass(slots=True)
class ToolResult:
    """One tool call of the latest turn and the envelope it returned."""

    call_id: str
    name: str
    arguments: dict[str, Any]
    envelope: dict[str, Any] | None
    raw: str = ""

    @property
    def meta(self) -> dict[str, Any]:
        meta = (self.envelope or {}).get("meta")
        return meta if isinstance(meta, dict) else {}

    @property
    def data(self) -> Any:
        return (self.envelope or {}).get("data")

    @property
    def error(self) -> dict[str, Any] | None:
        if self.envelope is None:
            return {"type": "execution_error", "message": "the tool output was not a JSON envelope", "retryable": False}
        err = self.envelope.get("error")
        if err in (None, False, {}):
            return None
        return err if isinstance(err, dict) else {"type": "execution_error", "message": str(err), "retryable": False}


@dataclass(slots=True)
class Focus:
    """What the question is about, so composers lead with it."""

    question: str
    intents: tuple[str, ...]
    symbols: tuple[str, ...]

    def has(self, *intents: str) -> bool:
        return any(i in self.intents for i in intents)

    @property
    def wants_short(self) -> bool:
        return bool(re.search(r"\bshorts?\b|\bshorted\b|\bshort (side|book|positions?)\b", self.question.lower()))


# --------------------------------------------------------------------------- formatting


def _num(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = float(value.replace(",", "").replace("$", "").replace("%", ""))
        except ValueError:
            return None
        return parsed if math.isfinite(parsed) else None
    return None


def money(value: Any, *, cents: bool | None = None) -> str:
    """$1,234,567 for large amounts, $123.45 for prices; negatives as -$1,234."""
    v = _num(value)
    if v is None:
        return "n/a"
    show_cents = cents if cents is not None else abs(v) < 1000
    body = f"{abs(v):,.2f}" if show_cents else f"{abs(v):,.0f}"
    return f"-${body}" if v < 0 and round(abs(v), 2 if show_cents else 0) != 0 else f"${body}"


def signed_money(value: Any) -> str:
    v = _num(value)
    if v is None:
        return "n/a"
    return ("+" if v > 0 else "") + money(v)


def pct(value: Any, *, fraction: bool = True, signed: bool = False, digits: int = 1) -> str:
    """A percentage with one decimal. ``fraction``: the value is 0.123 for 12.3%."""
    v = _num(value)
    if v is None:
        return "n/a"
    v = v * 100 if fraction else v
    text = f"{v:,.{digits}f}%"
    if signed and v > 0:
        text = "+" + text
    return "0.0%" if text in ("-0.0%", "+0.0%") else text


def ratio(value: Any, digits: int = 2) -> str:
    v = _num(value)
    return "n/a" if v is None else f"{v:,.{digits}f}"


def _qty(value: Any) -> str:
    v = _num(value)
    if v is None:
        return "n/a"
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.2f}"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(headers: list[str], rows: Iterable[list[Any]], align: list[str] | None = None) -> str:
    """A small markdown table; ``align`` per column: 'l' or 'r'."""
    align = align or ["l"] + ["r"] * (len(headers) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(sep) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def first(mapping: Any, *keys: str, default: Any = None) -> Any:
    """The first present, non-null value among ``keys`` (dotted paths allowed)."""
    if not isinstance(mapping, dict):
        return default
    for key in keys:
        node: Any = mapping
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
            if node is None:
                break
        if node is not None:
            return node
    return default


def rows_of(data: Any, *keys: str) -> list[dict[str, Any]]:
    """A list of dict rows found under one of ``keys`` (or ``data`` itself when it is a list)."""
    value = data if isinstance(data, list) else first(data, *keys)
    if isinstance(value, dict):
        # {"AAPL": {...}, ...}: rows keyed by name.
        out = []
        for name, row in value.items():
            if isinstance(row, dict):
                out.append({"_key": name, **row})
            elif _num(row) is not None:
                out.append({"_key": name, "value": row})
        return out
    return [r for r in value if isinstance(r, dict)] if isinstance(value, list) else []


def _weight(row: dict[str, Any], *keys: str) -> float | None:
    """A weight as a fraction, whichever way the row states it (fraction or ``*_pct``)."""
    for key in keys:
        if key in row and _num(row[key]) is not None:
            v = _num(row[key])
            return v / 100 if key.endswith("_pct") or key.endswith("percent") else v
    return None


def _pct_field(mapping: Any, *keys: str) -> float | None:
    """A percentage-valued field as a fraction (``*_pct`` keys hold percent points)."""
    if not isinstance(mapping, dict):
        return None
    return _weight(mapping, *keys)


# --------------------------------------------------------------------------- per-tool sections

Composer = Callable[[ToolResult, Focus], str]

TOOL_LABELS = {
    "list_user_portfolios": "your portfolios",
    "get_portfolio_complete": "the portfolio holdings",
    "get_positions_details": "the position details",
    "get_portfolio_data_quality": "the data-quality check",
    "get_prices_historical": "historical prices",
    "get_current_quotes": "current quotes",
    "get_factor_etf_prices": "factor ETF prices",
    "get_analytics_overview": "the exposure overview",
    "get_factor_exposures": "factor exposures",
    "get_sector_exposure": "sector exposure",
    "get_correlation_matrix": "the correlation matrix",
    "get_stress_test_results": "the stress tests",
    "get_concentration_metrics": "concentration metrics",
    "get_volatility_analysis": "the volatility analysis",
    "get_company_profile": "the company profile",
    "get_daily_movers": "today's movers",
    "get_market_overview": "the market overview",
}
SECTION_TITLES = {
    "list_user_portfolios": "Portfolios",
    "get_portfolio_complete": "Holdings",
    "get_positions_details": "Positions",
    "get_portfolio_data_quality": "Data quality",
    "get_prices_historical": "Price history",
    "get_current_quotes": "Quotes",
    "get_factor_etf_prices": "Factor ETFs",
    "get_analytics_overview": "Exposure",
    "get_factor_exposures": "Factor exposures",
    "get_sector_exposure": "Sectors",
    "get_correlation_matrix": "Correlations",
    "get_stress_test_results": "Stress tests",
    "get_concentration_metrics": "Concentration",
    "get_volatility_analysis": "Risk and volatility",
    "get_company_profile": "Company profile",
    "get_daily_movers": "Today's movers",
    "get_market_overview": "Market",
}


def _holdings(data: Any) -> list[dict[str, Any]]:
    return rows_of(data, "holdings", "positions", "portfolio.holdings")


def _mv(row: dict[str, Any]) -> float:
    return _num(first(row, "market_value", "value", "exposure", "notional")) or 0.0


def _symbol(row: dict[str, Any]) -> str:
    return str(first(row, "symbol", "ticker", "_key", "name", default="?"))


def _name(row: dict[str, Any]) -> str:
    name = first(row, "name", "company_name", "security_name")
    return str(name) if name and name != _symbol(row) else ""


def _portfolio_name(data: Any, meta: dict[str, Any]) -> str:
    name = first(data, "portfolio.name", "portfolio_name", "name")
    return str(name) if isinstance(name, str) else ""


def _nav(data: Any) -> float | None:
    return _num(first(data, "nav", "portfolio.nav", "summary.nav", "total_value", "net_asset_value"))


def _holding_weight(row: dict[str, Any], nav: float | None) -> float | None:
    w = _weight(row, "weight", "weight_pct", "pct_of_nav", "weight_of_nav")
    if w is None and nav:
        return _mv(row) / nav
    return w


def compose_portfolio_complete(result: ToolResult, focus: Focus) -> str:
    data = result.data
    holdings = _holdings(data)
    nav = _nav(data)
    cash = _num(first(data, "cash", "portfolio.cash", "summary.cash"))
    name = _portfolio_name(data, result.meta)
    where = f" in **{name}**" if name else ""
    if not holdings:
        facts = [f"NAV is {money(nav)}" if nav is not None else "", f"cash {money(cash)}" if cash is not None else ""]
        facts = [f for f in facts if f]
        return (f"The portfolio{where} has no open holdings." + (" " + ", ".join(facts) + "." if facts else "")).strip()

    ordered = sorted(holdings, key=lambda r: (-abs(_mv(r)), _symbol(r)))
    lines: list[str] = []
    held = {_symbol(r).upper(): r for r in holdings}
    asked = [s for s in focus.symbols if s.upper() in held or not focus.has("largest", "summary")]

    if focus.has("largest"):
        pool = [r for r in ordered if _mv(r) < 0] if focus.wants_short else ordered
        if not pool:
            lines.append(f"You have no short positions{where}; every holding has a positive market value.")
            pool = ordered
        top = pool[0]
        w = _holding_weight(top, nav)
        label = f"**{_symbol(top)}**" + (f" ({_name(top)})" if _name(top) else "")
        kind = "largest short position" if focus.wants_short and _mv(top) < 0 else "largest position"
        sentence = f"Your {kind}{where} is {label} at {money(_mv(top))}"
        if w is not None:
            sentence += f", {pct(w)} of NAV"
        lots = _num(first(top, "lots", "lot_count"))
        sentence += "."
        if lots and lots > 1:
            sentence += f" That is {int(lots)} lots of the same symbol added together."
        if _mv(top) < 0 and not focus.wants_short:
            sentence += " It is a short position (negative market value); size is ranked by absolute market value."
        pnl = _num(first(top, "unrealized_pnl", "unrealised_pnl", "pnl"))
        if pnl is not None:
            sentence += f" Unrealised P&L on it is {signed_money(pnl)}."
        lines.append(sentence)
        if len(pool) > 1:
            second = pool[1]
            gap = abs(_mv(top)) - abs(_mv(second))
            lines.append(f"Next is **{_symbol(second)}** at {money(_mv(second))} ({money(gap)} smaller).")

    for sym in asked:
        row = held.get(sym.upper())
        if row is None:
            lines.append(f"You do not hold **{sym}**{where}.")
            continue
        w = _holding_weight(row, nav)
        qty = first(row, "quantity", "shares")
        bits = [f"**{sym}**: {_qty(qty)} units" if qty is not None else f"**{sym}**", f"market value {money(_mv(row))}"]
        if w is not None:
            bits.append(f"{pct(w)} of NAV")
        pnl = _num(first(row, "unrealized_pnl", "unrealised_pnl", "pnl"))
        if pnl is not None:
            bits.append(f"unrealised P&L {signed_money(pnl)}")
        lines.append(", ".join(bits) + ".")

    if focus.has("holdings", "summary") or not lines:
        count = len(holdings)
        head = f"The portfolio{where} holds {count} position{'s' if count != 1 else ''}"
        if nav is not None:
            head += f" with a NAV of {money(nav)}"
        if cash is not None:
            head += f" and cash of {money(cash)}"
        lines.append(head + ".")

    total_pnl = _num(first(data, "unrealized_pnl", "unrealised_pnl", "portfolio.unrealized_pnl", "summary.unrealized_pnl"))
    wants_pnl = bool(re.search(r"p&l|pnl|profit|gain|loss|winner|loser|made money|unreali", focus.question.lower()))
    if wants_pnl:
        pnls = [(r, _num(first(r, "unrealized_pnl", "unrealised_pnl", "pnl"))) for r in holdings]
        pnls = [(r, p) for r, p in pnls if p is not None]
        if total_pnl is None and pnls:
            total_pnl = sum(p for _, p in pnls)
        if total_pnl is not None:
            lines.append(f"Total unrealised P&L is {signed_money(total_pnl)}.")
        if pnls:
            best = max(pnls, key=lambda x: x[1])
            worst = min(pnls, key=lambda x: x[1])
            lines.append(
                f"Biggest gain: **{_symbol(best[0])}** ({signed_money(best[1])}); biggest loss: **{_symbol(worst[0])}** ({signed_money(worst[1])})."
            )

    limit = 10 if focus.has("holdings") else 5
    shown = ordered[:limit]
    rows = []
    for r in shown:
        w = _holding_weight(r, nav)
        rows.append([_symbol(r), _name(r) or "", money(_mv(r)), pct(w) if w is not None else "n/a",
                     signed_money(first(r, "unrealized_pnl", "unrealised_pnl", "pnl"))])
    text = "\n\n".join(lines) + "\n\n" + table(["Symbol", "Name", "Market value", "% of NAV", "Unrealised P&L"], rows, ["l", "l", "r", "r", "r"])
    if len(ordered) > limit:
        text += f"\n\nTop {limit} of {len(ordered)} holdings by absolute market value."
    return text


def compose_analytics_overview(result: ToolResult, focus: Focus) -> str:
    data = result.data if isinstance(result.data, dict) else {}
    nav = _num(first(data, "nav", "portfolio.nav", "summary.nav"))
    exp = first(data, "exposure", "exposures", default=data)
    lines: list[str] = []
    rows = []
    for label, keys in (
        ("Long", ("long", "long_exposure", "long_value")),
        ("Short", ("short", "short_exposure", "short_value")),
        ("Gross", ("gross", "gross_exposure")),
        ("Net", ("net", "net_exposure")),
    ):
        raw = first(exp, *keys)
        amount = _num(first(raw, "value", "amount", "usd", "dollars")) if isinstance(raw, dict) else _num(raw)
        share = _pct_field(raw, "pct_of_nav", "pct_nav", "percent_of_nav", "weight") if isinstance(raw, dict) else None
        if share is None:
            share = _pct_field(exp, *(f"{k}_pct_nav" for k in keys), *(f"{k}_pct" for k in keys), *(f"{k}_pct_of_nav" for k in keys))
        if share is None and amount is not None and nav:
            share = amount / nav
        if amount is not None:
            rows.append([label, money(amount), pct(share) if share is not None else "n/a"])
    if nav is not None:
        lines.append(f"NAV is {money(nav)}.")
    gross = next((r for r in rows if r[0] == "Gross"), None)
    net = next((r for r in rows if r[0] == "Net"), None)
    if gross and net:
        lines.append(f"Gross exposure is {gross[1]} ({gross[2]} of NAV) and net exposure is {net[1]} ({net[2]} of NAV).")
    pnl = _num(first(data, "unrealized_pnl", "pnl.unrealized", "pnl.unrealized_pnl", "unrealised_pnl", "total_pnl"))
    if pnl is not None:
        lines.append(f"Unrealised P&L is {signed_money(pnl)}.")
    text = " ".join(lines)
    if rows:
        text += "\n\n" + table(["Exposure", "Amount", "% of NAV"], rows)
    counts = first(data, "counts_by_asset_class", "asset_class_counts", "by_asset_class", "counts")
    if isinstance(counts, dict) and counts:
        parts = []
        for k, v in counts.items():
            n = _num(first(v, "count", "positions")) if isinstance(v, dict) else _num(v)
            if n is not None:
                parts.append(f"{k.title()}: {int(n)}")
        if parts:
            text += "\n\nPositions by asset class: " + ", ".join(parts) + "."
    return text.strip() or _generic(result, focus)


def compose_sector_exposure(result: ToolResult, focus: Focus) -> str:
    data = result.data
    sectors = rows_of(data, "sectors", "by_sector", "sector_exposure", "exposures")
    if not sectors:
        return _generic(result, focus)

    def w(r: dict[str, Any]) -> float:
        return _weight(r, "weight", "weight_pct", "pct_of_nav", "net_weight", "gross_weight", "pct") or 0.0

    ordered = sorted(sectors, key=lambda r: (-abs(w(r)), str(first(r, "sector", "_key", "name"))))
    top = ordered[0]
    top_name = first(top, "sector", "_key", "name", default="?")
    lines = [f"Your largest sector is **{top_name}** at {pct(w(top))} of the portfolio ({money(first(top, 'market_value', 'value', 'exposure'))})."]
    has_bench = any(first(r, "benchmark_weight", "benchmark_weight_pct", "spy_weight") is not None for r in sectors)
    headers = ["Sector", "Market value", "Weight"] + (["S&P 500", "Active"] if has_bench else [])
    rows = []
    for r in ordered[:11]:
        row = [first(r, "sector", "_key", "name", default="?"), money(first(r, "market_value", "value", "exposure")), pct(w(r))]
        if has_bench:
            bw = _weight(r, "benchmark_weight", "benchmark_weight_pct", "spy_weight")
            row += [pct(bw) if bw is not None else "n/a", pct(w(r) - bw, signed=True) if bw is not None else "n/a"]
        rows.append(row)
    return " ".join(lines) + "\n\n" + table(headers, rows)


def compose_volatility(result: ToolResult, focus: Focus) -> str:
    data = result.data if isinstance(result.data, dict) else {}
    lines = []
    realized = first(data, "realized", "realised", "realized_volatility", "realized_vol")
    vols = []
    for window in (21, 63, 252):
        v = None
        if isinstance(realized, dict):
            v = first(realized, f"{window}d", str(window), f"vol_{window}d", f"d{window}")
        if v is None:
            v = first(data, f"realized_vol_{window}d", f"vol_{window}d", f"realized_{window}d", f"volatility_{window}d")
        if _num(v) is not None:
            vols.append((window, _num(v)))
    port = _num(first(data, "portfolio_volatility", "portfolio_vol", "covariance_volatility", "annualized_volatility", "model_volatility"))
    if port is not None:
        lines.append(f"Annualised portfolio volatility from the covariance matrix is **{pct(port)}**.")
    if vols:
        lines.append("Realised volatility (annualised): " + ", ".join(f"{pct(v)} over {w} days" for w, v in vols) + ".")
    contributors = rows_of(data, "contributions", "risk_contributions", "contributors", "positions")
    if contributors:
        def c(r: dict[str, Any]) -> float:
            return _weight(r, "pct_of_risk", "contribution_pct", "risk_contribution_pct", "contribution", "share_of_risk") or 0.0

        ordered = sorted(contributors, key=lambda r: (-abs(c(r)), _symbol(r)))
        top = ordered[0]
        lines.append(f"**{_symbol(top)}** contributes the most risk: {pct(c(top))} of portfolio variance.")
        rows = [[_symbol(r), pct(_holding_weight(r, None)) if _holding_weight(r, None) is not None else "n/a",
                 pct(_num(first(r, "volatility", "vol", "annualized_vol"))), pct(c(r))] for r in ordered[:8]]
        lines.append(table(["Symbol", "Weight", "Volatility", "Share of risk"], rows))
    return "\n\n".join(lines) if lines else _generic(result, focus)


def compose_factor_exposures(result: ToolResult, focus: Focus) -> str:
    data = result.data if isinstance(result.data, dict) else {}
    factors = rows_of(data, "factors", "exposures", "betas")
    if not factors:
        return _generic(result, focus)
    rows = []
    market_beta = None
    for r in factors:
        fname = str(first(r, "factor", "_key", "name", default="?"))
        beta = _num(first(r, "beta", "exposure", "value", "loading"))
        etf = first(r, "etf", "symbol", "ticker", default="")
        if fname.lower() in ("market", "spy") and beta is not None:
            market_beta = beta
        rows.append([fname + (f" ({etf})" if etf and etf != fname else ""), ratio(beta), ratio(first(r, "t_stat", "tstat"), 1) if first(r, "t_stat", "tstat") is not None else ""])
    lines = []
    if market_beta is not None:
        move = market_beta * 10
        lines.append(f"Market beta is **{ratio(market_beta)}**: a 10% move in the S&P 500 has historically come with about a {move:.1f}% move in the portfolio.")
    r2 = _num(first(data, "r_squared", "r2", "rsquared"))
    obs = _num(first(data, "observations", "n_obs", "nobs", "observation_count"))
    look = _num(first(data, "lookback_days", default=first(result.meta, "applied.lookback_days", "applied_args.lookback_days")))
    stats = []
    if r2 is not None:
        stats.append(f"R² {ratio(r2)}")
    if obs is not None:
        stats.append(f"{int(obs)} daily observations")
    if look is not None:
        stats.append(f"{int(look)}-day lookback")
    if stats:
        lines.append("Regression on daily returns: " + ", ".join(stats) + ".")
    has_t = any(r[2] for r in rows)
    headers = ["Factor", "Beta"] + (["t-stat"] if has_t else [])
    lines.append(table(headers, [r if has_t else r[:2] for r in rows]))
    return "\n\n".join(lines)


def compose_stress(result: ToolResult, focus: Focus) -> str:
    data = result.data
    scenarios = rows_of(data, "scenarios", "results")
    if not scenarios:
        return _generic(result, focus)
    nav = _nav(data)

    def pnl(r: dict[str, Any]) -> float:
        return _num(first(r, "pnl", "total_pnl", "portfolio_pnl", "pnl_usd", "impact")) or 0.0

    def share(r: dict[str, Any]) -> float | None:
        s = _weight(r, "pnl_pct", "pct_of_nav", "pnl_pct_nav", "return_pct", "return")
        return s if s is not None else (pnl(r) / nav if nav else None)

    worst = min(scenarios, key=pnl)
    wname = first(worst, "name", "label", "scenario", "_key", default="?")
    lines = [f"The worst scenario is **{wname}**: {signed_money(pnl(worst))}" + (f" ({pct(share(worst), signed=True)} of NAV)." if share(worst) is not None else ".")]
    rows = [[first(r, "name", "label", "scenario", "_key", default="?"), signed_money(pnl(r)),
             pct(share(r), signed=True) if share(r) is not None else "n/a"] for r in scenarios]
    lines.append(table(["Scenario", "P&L", "% of NAV"], rows))
    drivers = rows_of(worst, "positions", "by_position", "contributors", "position_pnl")
    if drivers:
        ordered = sorted(drivers, key=lambda r: pnl(r))[:3]
        lines.append(f"Largest contributors in {wname}: " + ", ".join(f"{_symbol(r)} {signed_money(pnl(r))}" for r in ordered) + ".")
    return "\n\n".join(lines)


def compose_concentration(result: ToolResult, focus: Focus) -> str:
    data = result.data if isinstance(result.data, dict) else {}
    by_symbol = first(data, "by_symbol", "symbol", "positions", default=data)
    hhi = _num(first(by_symbol, "hhi", "herfindahl"))
    eff = _num(first(by_symbol, "effective_n", "effective_number", "effective_positions", "effective_number_of_positions"))
    lines = []
    if hhi is not None:
        level = "highly concentrated" if hhi > 0.25 else "moderately concentrated" if hhi > 0.15 else "diversified" if hhi < 0.10 else "moderately diversified"
        sentence = f"HHI by symbol is **{ratio(hhi, 3)}** ({level})"
        if eff is not None:
            sentence += f", equivalent to {eff:.1f} equally weighted positions"
        lines.append(sentence + ".")
    tops = []
    for n in (1, 5, 10):
        w = _weight(by_symbol if isinstance(by_symbol, dict) else {}, f"top{n}_weight", f"top_{n}_weight", f"top{n}", f"top_{n}", f"top{n}_weight_pct", f"top_{n}_weight_pct")
        if w is not None:
            tops.append(f"top {n}: {pct(w)}")
    if tops:
        lines.append("Weight held in the largest names: " + ", ".join(tops) + ".")
    by_sector = first(data, "by_sector", "sector")
    if isinstance(by_sector, dict):
        shhi = _num(first(by_sector, "hhi", "herfindahl"))
        top_sector = first(by_sector, "top_sector", "largest_sector")
        if shhi is not None:
            text = f"By sector, HHI is {ratio(shhi, 3)}"
            if isinstance(top_sector, dict):
                text += f"; the largest sector is {first(top_sector, 'sector', 'name', default='?')} at {pct(_weight(top_sector, 'weight', 'weight_pct'))}"
            elif isinstance(top_sector, str):
                text += f"; the largest sector is {top_sector}"
            lines.append(text + ".")
    return "\n\n".join(lines) if lines else _generic(result, focus)


def compose_correlation(result: ToolResult, focus: Focus) -> str:
    data = result.data if isinstance(result.data, dict) else {}
    pairs = rows_of(data, "pairs", "top_pairs", "highest_pairs")
    symbols = first(data, "symbols", "tickers")
    matrix = first(data, "matrix", "correlations", "correlation_matrix")
    if not pairs and isinstance(symbols, list) and isinstance(matrix, list):
        for i, a in enumerate(symbols):
            for j in range(i + 1, len(symbols)):
                try:
                    value = _num(matrix[i][j])
                except (IndexError, TypeError, KeyError):
                    value = None
                if value is not None:
                    pairs.append({"a": a, "b": symbols[j], "correlation": value})
    if not pairs:
        return _generic(result, focus)

    def corr(r: dict[str, Any]) -> float:
        return _num(first(r, "correlation", "corr", "value", "rho")) or 0.0

    def label(r: dict[str, Any]) -> str:
        a = first(r, "a", "symbol_a", "left", "x")
        b = first(r, "b", "symbol_b", "right", "y")
        if a is None and isinstance(first(r, "pair", "symbols"), list):
            a, b = (first(r, "pair", "symbols") + [None, None])[:2]
        return f"{a} / {b}"

    ordered = sorted(pairs, key=lambda r: -corr(r))
    high, low = ordered[0], ordered[-1]
    avg = _num(first(data, "average_correlation", "avg_correlation", "mean_correlation"))
    lines = [f"The most correlated pair among your largest holdings is **{label(high)}** ({ratio(high and corr(high))}); the least is **{label(low)}** ({ratio(corr(low))})."]
    if avg is not None:
        lines.append(f"Average pairwise correlation is {ratio(avg)}.")
    lines.append(table(["Pair", "Correlation"], [[label(r), ratio(corr(r))] for r in ordered[:5]]))
    return "\n\n".join(lines)


def compose_movers(result: ToolResult, focus: Focus) -> str:
    data = result.data if isinstance(result.data, dict) else {}
    gainers = rows_of(data, "gainers", "top_gainers", "up")
    losers = rows_of(data, "losers", "top_losers", "down")
    if not gainers and not losers:
        movers = rows_of(data, "movers")
        gainers = [m for m in movers if (_num(first(m, "change_pct", "day_change_pct", "pct_change")) or 0) > 0]
        losers = [m for m in movers if (_num(first(m, "change_pct", "day_change_pct", "pct_change")) or 0) < 0]
    date = first(data, "date", "as_of", default=result.meta.get("as_of"))
    threshold = first(data, "threshold_pct", default=first(result.meta, "applied.threshold_pct"))
    if not gainers and not losers:
        limit = f" by more than {pct(threshold, fraction=False)}" if _num(threshold) is not None else ""
        return f"None of your holdings moved{limit} on {date or 'the latest day'}."

    def chg(r: dict[str, Any]) -> str:
        w = _weight(r, "change_pct", "day_change_pct", "pct_change", "return_pct", "change", "return")
        return pct(w, signed=True)

    def impact(r: dict[str, Any]) -> str:
        return signed_money(first(r, "pnl_impact", "pnl", "impact", "pnl_usd", "dollar_change"))

    lines = []
    if gainers:
        g = gainers[0]
        lines.append(f"Top gainer{' on ' + str(date) if date else ''}: **{_symbol(g)}** {chg(g)} ({impact(g)}).")
    if losers:
        lo = losers[0]
        lines.append(f"Top loser: **{_symbol(lo)}** {chg(lo)} ({impact(lo)}).")
    rows = [[_symbol(r), chg(r), impact(r)] for r in (gainers[:5] + losers[:5])]
    total = _num(first(data, "total_pnl_impact", "total_impact", "day_pnl", "portfolio_day_pnl"))
    text = " ".join(lines) + "\n\n" + table(["Symbol", "Day change", "P&L impact"], rows)
    if total is not None:
        text += f"\n\nNet P&L impact of the day: {signed_money(total)}."
    return text


def compose_quotes(result: ToolResult, focus: Focus) -> str:
    quotes = rows_of(result.data, "quotes", "symbols", "results")
    if not quotes:
        return _generic(result, focus)
    rows = []
    sentences = []
    for q in quotes:
        sym = _symbol(q)
        if first(q, "error", "missing") and _num(first(q, "price", "close", "last")) is None:
            sentences.append(f"No price is available for **{sym}**.")
            continue
        price = first(q, "price", "close", "last", "last_close")
        change = _weight(q, "change_pct", "day_change_pct", "pct_change")
        low = first(q, "low_52w", "week_52_low", "fifty_two_week_low", "range_52w.low", "52w_low")
        high = first(q, "high_52w", "week_52_high", "fifty_two_week_high", "range_52w.high", "52w_high")
        rows.append([sym, money(price, cents=True), pct(change, signed=True) if change is not None else "n/a",
                     f"{money(low, cents=True)} – {money(high, cents=True)}" if low is not None and high is not None else "n/a"])
    if len(rows) == 1:
        sym, price, change, rng = rows[0]
        date = first(quotes[0], "date", "price_date", "as_of")
        sentences.insert(0, f"**{sym}** last closed at {price}" + (f" on {date}" if date else "") + (f", {change} on the day" if change != "n/a" else "") + (f"; 52-week range {rng}" if rng != "n/a" else "") + ".")
        return " ".join(sentences)
    return (" ".join(sentences) + "\n\n" if sentences else "") + table(["Symbol", "Last close", "Day change", "52-week range"], rows)


def compose_company_profile(result: ToolResult, focus: Focus) -> str:
    data = result.data if isinstance(result.data, dict) else {}
    profile = first(data, "profile", default=data)
    sym = first(profile, "symbol", "ticker", default=result.arguments.get("symbol", "?"))
    name = first(profile, "name", "company_name", default=sym)
    parts = [f"**{name}** ({sym})"]
    sector = first(profile, "sector")
    industry = first(profile, "industry")
    atype = first(profile, "asset_type", "type")
    desc = first(profile, "description", "summary", "business_summary")
    if sector or industry:
        parts.append("is in " + " / ".join(str(x) for x in (sector, industry) if x))
    sentence = " ".join(parts) + "."
    if atype:
        sentence += f" Asset type: {atype}."
    extras = []
    beta = _num(first(profile, "beta", "model_beta"))
    if beta is not None:
        extras.append(f"beta {ratio(beta)}")
    vol = _num(first(profile, "volatility", "model_vol", "annualized_volatility"))
    if vol is not None:
        extras.append(f"volatility {pct(vol)}")
    price = _num(first(profile, "price", "last_close", "close"))
    if price is not None:
        extras.append(f"last close {money(price, cents=True)}")
    held = first(profile, "held", "in_portfolio", "position")
    if extras:
        sentence += " " + ", ".join(extras).capitalize() + "."
    if desc:
        sentence += f"\n\n{desc}"
    if isinstance(held, dict):
        sentence += f"\n\nYou hold it: market value {money(first(held, 'market_value', 'value'))}."
    return sentence


def compose_market_overview(result: ToolResult, focus: Focus) -> str:
    data = result.data if isinstance(result.data, dict) else {}
    indices = rows_of(data, "indices", "benchmarks", "markets")
    sectors = rows_of(data, "sectors", "sector_etfs")
    vol = first(data, "volatility", "volatility_proxy", "vix", "vol_proxy")

    def chg(r: dict[str, Any], *keys: str) -> str:
        w = _weight(r, *keys) if keys else _weight(r, "change_pct", "day_change_pct", "pct_change", "return_1d", "return_1d_pct")
        return pct(w, signed=True) if w is not None else "n/a"

    lines = []
    if indices:
        spy = next((r for r in indices if _symbol(r).upper() == "SPY"), indices[0])
        lines.append(f"**{_symbol(spy)}** closed at {money(first(spy, 'price', 'close', 'last'), cents=True)} ({chg(spy)} on the day).")
        has_month = any(first(r, "change_21d_pct", "return_21d", "return_1m", "change_1m_pct") is not None for r in indices)
        rows = []
        for r in indices:
            row = [_symbol(r) + (f" ({_name(r)})" if _name(r) else ""), money(first(r, "price", "close", "last"), cents=True), chg(r)]
            if has_month:
                row.append(chg(r, "change_21d_pct", "return_21d", "return_1m", "change_1m_pct"))
            rows.append(row)
        lines.append(table(["Index ETF", "Close", "Day"] + (["1 month"] if has_month else []), rows))
    if sectors:
        ordered = sorted(sectors, key=lambda r: -(_weight(r, "change_pct", "day_change_pct", "pct_change", "return_1d") or 0.0))
        best, worst = ordered[0], ordered[-1]
        lines.append(f"Best sector ETF: {_symbol(best)} ({chg(best)}); weakest: {_symbol(worst)} ({chg(worst)}).")
    if isinstance(vol, dict):
        level = _num(first(vol, "value", "level", "price", "close", "realized_vol_21d"))
        vname = first(vol, "symbol", "name", default="volatility proxy")
        if level is not None:
            lines.append(f"Volatility proxy ({vname}): {ratio(level)}.")
    elif _num(vol) is not None:
        lines.append(f"Volatility proxy: {ratio(vol)}.")
    return "\n\n".join(lines) if lines else _generic(result, focus)


def compose_data_quality(result: ToolResult, focus: Focus) -> str:
    data = result.data if isinstance(result.data, dict) else {}
    coverage = _weight(data, "coverage_ratio", "coverage", "price_coverage", "coverage_pct")
    missing = first(data, "missing_prices", "missing", "positions_missing_prices")
    stale = first(data, "stale_prices", "stale")
    short_hist = first(data, "insufficient_history", "short_history", "missing_history")
    lines = []
    if coverage is not None:
        lines.append(f"Price coverage is **{pct(coverage)}** of positions.")

    def names(value: Any) -> list[str]:
        if isinstance(value, list):
            return [str(first(v, "symbol", "ticker", default=v)) if isinstance(v, dict) else str(v) for v in value]
        return []

    for label, value in (("Missing prices", missing), ("Stale prices", stale), ("Too little history for risk models", short_hist)):
        items = names(value)
        if items:
            lines.append(f"{label}: {', '.join(items[:12])}" + (f" and {len(items) - 12} more" if len(items) > 12 else "") + ".")
    if not any(names(v) for v in (missing, stale, short_hist)) and coverage is not None:
        lines.append("No missing or stale prices.")
    source = first(data, "price_source", default=result.meta.get("price_source"))
    if source:
        lines.append(f"Price source: {source}.")
    return " ".join(lines) if lines else _generic(result, focus)


def compose_portfolios(result: ToolResult, focus: Focus) -> str:
    rows_in = rows_of(result.data, "portfolios")
    if not rows_in:
        return "You have no portfolios yet."
    rows = [[first(r, "name", default="?"), money(first(r, "nav", "total_value", "equity_balance")),
             _qty(first(r, "holding_count", "position_count", "positions")) if first(r, "holding_count", "position_count", "positions") is not None else "n/a"]
            for r in rows_in]
    head = f"You have {len(rows_in)} portfolio{'s' if len(rows_in) != 1 else ''}."
    return head + "\n\n" + table(["Portfolio", "NAV", "Positions"], rows, ["l", "r", "r"])


def _series_return(points: Any) -> tuple[float | None, Any, Any]:
    closes = []
    if isinstance(points, list):
        for p in points:
            if isinstance(p, dict):
                closes.append((first(p, "date", "d"), _num(first(p, "close", "price", "value", "c"))))
            elif isinstance(p, list | tuple) and len(p) >= 2:
                closes.append((p[0], _num(p[1])))
            else:
                closes.append((None, _num(p)))
    closes = [(d, c) for d, c in closes if c is not None]
    if len(closes) < 2 or not closes[0][1]:
        return None, None, None
    return closes[-1][1] / closes[0][1] - 1, closes[0][0], closes[-1][0]


def compose_prices_historical(result: ToolResult, focus: Focus) -> str:
    data = result.data if isinstance(result.data, dict) else {}
    series = first(data, "series", "prices", "symbols", "closes")
    returns = []
    start = end = None
    if isinstance(series, dict):
        for sym, pts in series.items():
            r, s, e = _series_return(pts if isinstance(pts, list) else first(pts, "closes", "prices", "points"))
            if r is not None:
                returns.append((sym, r))
                start, end = start or s, e or end
    elif isinstance(series, list):
        for row in series:
            if isinstance(row, dict):
                r, s, e = _series_return(first(row, "closes", "prices", "points", "data"))
                if r is not None:
                    returns.append((_symbol(row), r))
                    start, end = start or s, e or end
    if not returns:
        return _generic(result, focus)
    returns.sort(key=lambda x: -x[1])
    days = first(result.meta, "applied.lookback_days", "applied_args.lookback_days", default=result.arguments.get("lookback_days"))
    period = f"over the last {days} days" if days else "over the period"
    if start and end:
        period += f" ({start} to {end})"
    lines = [f"Price change {period}: best **{returns[0][0]}** {pct(returns[0][1], signed=True)}, worst **{returns[-1][0]}** {pct(returns[-1][1], signed=True)}."]
    shown = returns[:5] + [r for r in returns[-5:] if r not in returns[:5]]
    lines.append(table(["Symbol", "Change"], [[s, pct(r, signed=True)] for s, r in shown]))
    return "\n\n".join(lines)


def compose_factor_etf_prices(result: ToolResult, focus: Focus) -> str:
    return compose_prices_historical(result, focus)


def compose_positions(result: ToolResult, focus: Focus) -> str:
    rows_in = rows_of(result.data, "positions", "lots")
    if not rows_in:
        return "No positions match." if isinstance(result.data, dict | list) else _generic(result, focus)
    ordered = sorted(rows_in, key=lambda r: (-abs(_mv(r)), _symbol(r)))
    options = [r for r in rows_in if str(first(r, "asset_class", default="")).upper() == "OPTIONS"]
    shorts = [r for r in rows_in if (_num(first(r, "quantity")) or 0) < 0]
    lines = [f"{len(rows_in)} position lots" + (f", {len(options)} of them options" if options else "") + (f", {len(shorts)} short" if shorts else "") + "."]
    if focus.symbols:
        wanted = {s.upper() for s in focus.symbols}
        picked = [r for r in ordered if _symbol(r).upper() in wanted or str(first(r, "underlying", default="")).upper() in wanted]
        ordered = picked or ordered
    if re.search(r"\boptions?\b", focus.question.lower()) and options:
        ordered = sorted(options, key=lambda r: (-abs(_mv(r)), _symbol(r)))
    rows = []
    for r in ordered[:12]:
        detail = ""
        if first(r, "strike") is not None:
            detail = f"{first(r, 'option_type', default='')} {money(first(r, 'strike'), cents=True)} exp {first(r, 'expiry', default='?')}".strip()
        rows.append([_symbol(r), _qty(first(r, "quantity")), money(first(r, "entry_price"), cents=True), first(r, "entry_date", default="n/a"),
                     money(_mv(r)), signed_money(first(r, "unrealized_pnl", "unrealised_pnl", "pnl")), detail])
    has_detail = any(row[-1] for row in rows)
    headers = ["Symbol", "Quantity", "Entry price", "Entry date", "Market value", "Unrealised P&L"] + (["Option"] if has_detail else [])
    lines.append(table(headers, [row if has_detail else row[:-1] for row in rows]))
    if len(ordered) > 12:
        lines.append(f"Largest 12 of {len(ordered)} lots by absolute market value.")
    return "\n\n".join(lines)


COMPOSERS: dict[str, Composer] = {
    "list_user_portfolios": compose_portfolios,
    "get_portfolio_complete": compose_portfolio_complete,
    "get_positions_details": compose_positions,
    "get_portfolio_data_quality": compose_data_quality,
    "get_prices_historical": compose_prices_historical,
    "get_current_quotes": compose_quotes,
    "get_factor_etf_prices": compose_factor_etf_prices,
    "get_analytics_overview": compose_analytics_overview,
    "get_factor_exposures": compose_factor_exposures,
    "get_sector_exposure": compose_sector_exposure,
    "get_correlation_matrix": compose_correlation,
    "get_stress_test_results": compose_stress,
    "get_concentration_metrics": compose_concentration,
    "get_volatility_analysis": compose_volatility,
    "get_company_profile": compose_company_profile,
    "get_daily_movers": compose_movers,
    "get_market_overview": compose_market_overview,
}


def _generic(result: ToolResult, focus: Focus) -> str:
    """A plain summary of the scalar facts of a result whose shape no composer knows."""
    data = result.data
    facts = []
    if isinstance(data, dict):
        for key, value in list(data.items())[:12]:
            if isinstance(value, bool) or value is None:
                continue
            if isinstance(value, int | float):
                facts.append(f"- {key.replace('_', ' ')}: {ratio(value) if isinstance(value, float) else value}")
            elif isinstance(value, str) and len(value) <= 120:
                facts.append(f"- {key.replace('_', ' ')}: {value}")
            elif isinstance(value, list):
                facts.append(f"- {key.replace('_', ' ')}: {len(value)} items")
    elif isinstance(data, list):
        facts.append(f"- {len(data)} items returned")
    label = TOOL_LABELS.get(result.name, result.name)
    if not facts:
        return f"The call for {label} returned no data I can summarise."
    return f"From {label}:\n" + "\n".join(facts)


def error_sentence(result: ToolResult) -> str:
    err = result.error or {}
    label = TOOL_LABELS.get(result.name, f"`{result.name}`")
    etype = str(err.get("type") or "error")
    message = str(err.get("message") or "no details were given").strip().rstrip(".")
    if etype == "validation_error":
        return f"I could not get {label}: the request was rejected as invalid ({message}). I have not guessed the missing figures."
    if etype == "not_found":
        return f"I could not get {label}: {message}."
    retry = " It may work if you ask again." if err.get("retryable") else ""
    return f"I could not compute {label}: {message}.{retry}"


def _section(result: ToolResult, focus: Focus) -> str:
    if result.error is not None:
        return error_sentence(result)
    composer = COMPOSERS.get(result.name)
    if composer is None:
        return _generic(result, focus)
    try:
        text = composer(result, focus).strip()
    except Exception:  # a composer bug must not cost the user the whole answer
        log.exception("offline_composer_failed", extra={"tool": result.name})
        text = _generic(result, focus)
    meta = result.meta
    if meta.get("truncated"):
        original = meta.get("original_count")
        text += f"\n\n_The tool output was truncated{f' (from {original} items)' if original else ''}; figures cover what was returned._"
    return text


def _price_sources(results: list[ToolResult]) -> set[str]:
    sources = set()
    for r in results:
        for value in (r.meta.get("price_source"), first(r.data, "price_source", "portfolio.price_source", "meta.price_source") if isinstance(r.data, dict) else None):
            if isinstance(value, str):
                sources.add(value)
    return sources


def _as_of(results: list[ToolResult]) -> str | None:
    for r in results:
        value = r.meta.get("as_of") or (first(r.data, "as_of") if isinstance(r.data, dict) else None)
        if value:
            return str(value)
    return None


def footer(results: list[ToolResult]) -> str:
    bits = [f"Computed by the {OFFLINE_LABEL} (no AI service) from the tool results"]
    as_of = _as_of(results)
    if as_of:
        bits.append(f"as of {as_of}")
    sources = _price_sources(results)
    if "demo" in sources or "mixed" in sources:
        bits.append("prices are demo data, not market quotes" if sources <= {"demo"} else "some prices are demo data")
    return "_" + "; ".join(bits) + "._"


def compose_answer(question: str, results: list[ToolResult], *, intents: Iterable[str] = (), symbols: Iterable[str] = ()) -> str:
    """The markdown answer for a question, from the tool results of the latest turn."""
    focus = Focus(question=question, intents=tuple(intents), symbols=tuple(symbols))
    if not results:
        return "I have no tool results to answer from. Please ask again.\n\n" + footer(results)
    sections = []
    multi = len({r.name for r in results}) > 1 or len(results) > 1
    for result in results:
        body = _section(result, focus)
        if multi:
            title = SECTION_TITLES.get(result.name, result.name)
            if result.name == "get_company_profile" and result.arguments.get("symbol"):
                title += f": {result.arguments['symbol']}"
            body = f"**{title}**\n\n{body}"
        sections.append(body)
    if all(r.error is not None for r in results):
        sections.append("No figures could be computed for this question, so I am not giving any.")
    if re.search(r"\bshould i\b|\bbuy\b|\bsell\b|\brecommend", question.lower()):
        sections.append("I report what the data shows; I do not make buy or sell recommendations.")
    return "\n\n".join(sections) + "\n\n" + footer(results)


def greeting_answer() -> str:
    return (
        "Hello! I am SigmaSight's offline analyst. Ask me about your portfolio: your largest positions, "
        "exposure, sectors, risk and volatility, factor betas, stress tests, concentration, today's movers, "
        "quotes or a company profile."
    )


def help_answer(question: str) -> str:
    return (
        "I answer questions about your portfolio from SigmaSight's analytics. For example:\n\n"
        "- *What is my largest position?* or *Show my holdings*\n"
        "- *What is my gross and net exposure?* and *What is my sector exposure?*\n"
        "- *How volatile is my portfolio?* and *What are my factor betas?*\n"
        "- *Run a stress test* and *How concentrated am I?*\n"
        "- *What moved today?*, *Quote AAPL and MSFT*, *What does NVDA do?*\n\n"
        f"_This is the {OFFLINE_LABEL}: it runs without an AI service and answers only from tool results._"
    )


def no_tools_answer(tool_names: list[str]) -> str:
    names = ", ".join(f"`{n}`" for n in tool_names) or "the portfolio tools"
    return f"I need {names} to answer that, but this request offered no such tool, so I cannot compute an answer."


def dumps_compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
