"""Answer composers: factual markdown written from tool result envelopes.

Each tool has a composer that turns its envelope ``{"meta", "data", "error"}`` into a short
markdown section: the headline numbers first, then a small table where it helps. Composers are
defensive by construction: a missing key gives a shorter sentence, an error envelope gives a
sentence saying what could not be computed and why, and a composer that still fails falls
back to a generic summary. Nothing here raises.
"""

from __future__ import annotations

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
    tools: tuple[str, ...] = ()  # every tool whose result is in this answer
    rank: int | None = None  # "the second largest": 2
    top_n: int | None = None  # "my top 3 holdings": 3
    sectors: tuple[str, ...] = ()  # GICS sectors the question names
    short: bool = False  # the conversation is about the short side

    def has(self, *intents: str) -> bool:
        return any(i in self.intents for i in intents)

    @property
    def wants_short(self) -> bool:
        return self.short or bool(
            re.search(r"\bshorts?\b|\bshorted\b|\bshort (side|book|positions?)\b", self.question.lower())
        )


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
    """$1,234,567 (whole dollars; cents for prices or tiny amounts); negatives as -$1,234."""
    v = _num(value)
    if v is None:
        return "n/a"
    show_cents = cents if cents is not None else 0 < abs(v) < 10
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
        v = _num(row[key]) if key in row else None
        if v is not None:
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
    "get_benchmark_comparison": "the S&P 500 comparison",
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
    "get_benchmark_comparison": "Against the S&P 500",
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
    name = first(data, "portfolio.name", "portfolio_name") or meta.get("portfolio_name")
    return str(name) if isinstance(name, str) else ""


def _nav(data: Any) -> float | None:
    return _num(first(data, "nav", "portfolio.nav", "summary.nav", "total_value", "net_asset_value"))


def _holding_weight(row: dict[str, Any], nav: float | None) -> float | None:
    w = _weight(row, "weight", "weight_pct", "pct_of_nav", "weight_of_nav")
    if w is None and nav:
        return _mv(row) / nav
    return w


def _pnl(row: Any) -> float | None:
    return _num(first(row, "unrealized_pnl", "unrealised_pnl", "pnl"))


def _labelled(row: dict[str, Any]) -> str:
    return f"**{_symbol(row)}**" + (f" ({_name(row)})" if _name(row) else "")


def _option_terms(row: dict[str, Any]) -> str:
    if first(row, "strike") is None:
        return ""
    kind = {"C": "call", "P": "put"}.get(str(first(row, "option_type", default="")).upper(), "option")
    return (
        f"{first(row, 'underlying', default='')} {money(first(row, 'strike'), cents=True)} {kind}, "
        f"expiring {first(row, 'expiry', default='?')}"
    ).strip()


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
    count = _num(first(data, "holding_count")) or len(holdings)
    lines: list[str] = []
    held = {_symbol(r).upper(): r for r in holdings}
    asked = [s for s in focus.symbols if s.upper() in held or focus.has("holdings")]

    if focus.symbols and not focus.has("largest"):
        # A question about a ticker: what the user holds in it, first.
        for sym in focus.symbols:
            lines.append(_holding_sentence(sym, held.get(sym.upper()), nav, where))
        if not focus.has("summary") and not re.search(
            r"\b(show|list|all)\b.{0,20}\b(holdings|positions)\b", focus.question.lower()
        ):
            return " ".join(lines)
        asked = []
    if focus.has("largest") and (focus.top_n or 0) > 1 and not focus.rank:
        pool = [r for r in ordered if _mv(r) < 0] if focus.wants_short and any(_mv(r) < 0 for r in ordered) else ordered
        top_rows = pool[: focus.top_n]
        total_w = sum(_holding_weight(r, nav) or 0.0 for r in top_rows)
        names = [f"**{_symbol(r)}** ({money(_mv(r))})" for r in top_rows]
        listed = ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else names[0]
        lines.append(f"Your {len(top_rows)} largest positions{where} are {listed}: together {pct(total_w)} of NAV.")
    elif focus.has("largest") and focus.rank and focus.rank > 1:
        pool = [r for r in ordered if _mv(r) < 0] if focus.wants_short and any(_mv(r) < 0 for r in ordered) else ordered
        if focus.rank > len(pool):
            lines.append(
                f"You hold only {len(pool)} position{'s' if len(pool) != 1 else ''}{where}, "
                f"so there is no {ordinal(focus.rank)}-largest."
            )
        else:
            row = pool[focus.rank - 1]
            w = _holding_weight(row, nav)
            kind = "short position" if focus.wants_short and _mv(row) < 0 else "position"
            sentence = f"Your {ordinal(focus.rank)}-largest {kind}{where} is {_labelled(row)} at {money(_mv(row))}"
            sentence += f", {pct(abs(w) if _mv(row) < 0 else w)} of NAV." if w is not None else "."
            above = pool[focus.rank - 2]
            sentence += f" It comes after **{_symbol(above)}** ({money(_mv(above))})"
            if focus.rank < len(pool):
                nxt = pool[focus.rank]
                sentence += f" and before **{_symbol(nxt)}** ({money(_mv(nxt))})"
            lines.append(sentence + ".")
            pnl = _pnl(row)
            if pnl is not None:
                lines.append(f"Its unrealised P&L is {signed_money(pnl)}.")
    elif focus.has("largest"):
        pool = [r for r in ordered if _mv(r) < 0] if focus.wants_short else ordered
        if focus.wants_short and not pool:
            lines.append(f"You have no short positions{where}: every holding has a positive market value.")
            pool = ordered
        top = pool[0]
        w = _holding_weight(top, nav)
        kind = "largest short position" if focus.wants_short and _mv(top) < 0 else "largest position"
        sentence = f"Your {kind}{where} is {_labelled(top)} at {money(_mv(top))}"
        if w is not None:
            sentence += f", {pct(abs(w) if _mv(top) < 0 else w)} of NAV"
        sentence += "."
        lots = _num(first(top, "lots", "lot_count"))
        if lots and lots > 1:
            sentence += f" That is {int(lots)} lots of {_symbol(top)} added together."
        if _mv(top) < 0 and not focus.wants_short:
            sentence += (
                " It is a short position (negative market value): positions are ranked by absolute market value."
            )
        terms = _option_terms(top)
        if terms:
            sentence += f" It is an option: {terms}."
        pnl = _pnl(top)
        if pnl is not None:
            ret = _num(first(top, "unrealized_return"))
            sentence += f" Unrealised P&L is {signed_money(pnl)}" + (
                f" ({pct(ret, signed=True)} on cost)." if ret is not None else "."
            )
        lines.append(sentence)
        if len(pool) > 1:
            runners_up = pool[1:3]
            text = (
                "Next: "
                + "; ".join(f"**{_symbol(r)}** {money(_mv(r))} ({pct(_holding_weight(r, nav))})" for r in runners_up)
                + "."
            )
            gap = abs(_mv(top)) - abs(_mv(pool[1]))
            if abs(_mv(top)) and gap < 0.05 * abs(_mv(top)):
                text += (
                    f" The lead over {_symbol(pool[1])} is only {money(gap)}, so a small price move could swap them."
                )
            lines.append(text)

    for sym in asked:
        held_row = held.get(sym.upper())
        if held_row is None:
            lines.append(f"You do not hold **{sym}**{where}.")
            continue
        w = _holding_weight(held_row, nav)
        qty = first(held_row, "quantity", "shares")
        side = " short" if _mv(held_row) < 0 else ""
        bits = [
            f"**{sym}**: {_qty(qty)}{side} units" if qty is not None else f"**{sym}**",
            f"market value {money(_mv(held_row))}",
        ]
        if w is not None:
            bits.append(f"{pct(w)} of NAV")
        if _pnl(held_row) is not None:
            bits.append(f"unrealised P&L {signed_money(_pnl(held_row))}")
        lines.append(", ".join(bits) + ".")

    overview_too = "get_analytics_overview" in focus.tools
    if (focus.has("holdings", "summary") or not lines) and not (overview_too and lines):
        head = (f"**{name}**" if name else "The portfolio") + f" holds {int(count)} position{'s' if count != 1 else ''}"
        if nav is not None and not overview_too:
            head += f" with a NAV of {money(nav)}"
            if cash is not None:
                head += f" and cash of {money(cash)}"
        head += "."
        long_v, short_v = _num(first(data, "long_value")), _num(first(data, "short_value"))
        if long_v is not None and short_v:
            head += f" Long {money(long_v)}, short {money(short_v)}."
        lines.append(head)

    wants_pnl = bool(
        re.search(r"p&l|pnl|profit|gain|loss|winner|loser|made money|unreali|performance|doing", focus.question.lower())
    )
    if wants_pnl:
        total_pnl = _num(
            first(data, "unrealized_pnl", "unrealised_pnl", "portfolio.unrealized_pnl", "summary.unrealized_pnl")
        )
        pnls = [(r, p) for r in holdings if (p := _pnl(r)) is not None]
        if total_pnl is None and pnls:
            total_pnl = sum(p for _, p in pnls)
        if total_pnl is not None and not overview_too:
            lines.append(f"Total unrealised P&L is {signed_money(total_pnl)}.")
        if pnls:
            best = max(pnls, key=lambda x: x[1])
            worst = min(pnls, key=lambda x: x[1])
            lines.append(
                f"Biggest gain: **{_symbol(best[0])}** ({signed_money(best[1])}); "
                f"biggest loss: **{_symbol(worst[0])}** ({signed_money(worst[1])})."
            )

    missing = first(data, "missing_prices")
    if isinstance(missing, list) and missing:
        lines.append(f"No price for {', '.join(map(str, missing[:8]))}: those holdings are valued at zero here.")

    limit = 10 if focus.has("holdings") else max(5, focus.top_n or 0)
    shown = ordered
    if focus.wants_short and focus.has("largest") and any(_mv(r) < 0 for r in ordered):
        shown = [r for r in ordered if _mv(r) < 0]
        count = len(shown)
    rows = []
    for r in shown[:limit]:
        w = _holding_weight(r, nav)
        rows.append([_symbol(r), _name(r), money(_mv(r)), pct(w) if w is not None else "n/a", signed_money(_pnl(r))])
    text = (
        "\n\n".join(lines)
        + "\n\n"
        + table(["Symbol", "Name", "Market value", "% of NAV", "Unrealised P&L"], rows, ["l", "l", "r", "r", "r"])
    )
    if count > len(rows):
        kind = "short positions" if shown is not ordered else "holdings"
        text += f"\n\nTop {len(rows)} of {int(count)} {kind} by absolute market value; " + more(
            len(rows), int(count), kind
        )
    return text


def _holding_sentence(sym: str, row: dict[str, Any] | None, nav: float | None, where: str) -> str:
    """'You hold 307.65 shares of **SPY** worth $194,199, 6.8% of NAV.'"""
    if row is None:
        return f"You do not hold **{sym}**{where}."
    qty = _num(first(row, "quantity", "shares"))
    w = _holding_weight(row, nav)
    asset = str(first(row, "asset_class", default="")).upper()
    unit = (
        "contracts"
        if asset == "OPTIONS" or first(row, "strike") is not None
        else "units"
        if asset == "PRIVATE"
        else "shares"
    )
    side = " short" if _mv(row) < 0 else ""
    amount = f"{_qty(abs(qty))}{side} {unit} of " if qty is not None else ""
    text = f"You hold {amount}{_labelled(row)}{where} worth {money(_mv(row))}"
    text += f", {pct(abs(w) if _mv(row) < 0 else w)} of NAV." if w is not None else "."
    if _pnl(row) is not None:
        text += f" Unrealised P&L is {signed_money(_pnl(row))}."
    return text


def _exposure_row(raw: Any, nav: float | None) -> tuple[float | None, float | None]:
    if isinstance(raw, dict):
        amount = _num(first(raw, "value", "amount", "usd"))
        share = _pct_field(raw, "pct_of_nav", "of_nav", "weight")
    else:
        amount, share = _num(raw), None
    if share is None and amount is not None and nav:
        share = amount / nav
    return amount, share


def compose_analytics_overview(result: ToolResult, focus: Focus) -> str:
    data = result.data if isinstance(result.data, dict) else {}
    nav = _nav(data)
    exp = first(data, "exposure", "exposures", default=data)
    delta = first(data, "delta_adjusted_exposure")
    options = first(data, "options") if isinstance(first(data, "options"), dict) else {}
    show_delta = isinstance(delta, dict) and (_num(first(options, "count")) or 0) > 0
    rows = []
    facts: dict[str, tuple[float | None, float | None]] = {}
    for label, keys in (
        ("Long", ("long", "long_exposure", "long_value")),
        ("Short", ("short", "short_exposure", "short_value")),
        ("Gross", ("gross", "gross_exposure")),
        ("Net", ("net", "net_exposure")),
    ):
        amount, share = _exposure_row(first(exp, *keys), nav)
        if amount is None:
            continue
        facts[label] = (amount, share)
        row = [label, money(amount), pct(share) if share is not None else "n/a"]
        if show_delta:
            d_amount, d_share = _exposure_row(first(delta, *keys), nav)
            row += [money(d_amount), pct(d_share) if d_share is not None else "n/a"]
        rows.append(row)
    lines = []
    name = _portfolio_name(data, result.meta)
    if nav is not None:
        cash = _num(first(data, "cash"))
        cash_text = "."
        if cash is not None:
            share = _pct_field(data, "cash_of_nav")
            share_text = f", {pct(share)} of NAV" if share is not None else ""
            cash_text = (
                f", with {money(cash)} in cash{share_text}."
                if cash >= 0
                else f", with a cash balance of {money(cash)}{share_text} (the positions are partly financed)."
            )
        lines.append(f"NAV{' of **' + name + '**' if name else ''} is {money(nav)}" + cash_text)
    if "Gross" in facts and "Net" in facts:
        (g, gs), (n, ns) = facts["Gross"], facts["Net"]
        lines.append(
            f"Gross exposure is **{money(g)}** ({pct(gs)} of NAV) "
            f"and net exposure is **{money(n)}** ({pct(ns)} of NAV)."
        )
    leverage = _num(first(data, "leverage"))
    if leverage is not None:
        lines.append(f"Gross leverage is {leverage:.2f}x.")
    pnl = _num(first(data, "unrealized_pnl", "unrealised_pnl"))
    day = _num(first(data, "day_pnl"))
    pnl_bits = []
    if pnl is not None:
        ret = _num(first(data, "unrealized_return_on_cost"))
        pnl_bits.append(
            f"unrealised P&L is {signed_money(pnl)}"
            + (f" ({pct(ret, signed=True)} on cost)" if ret is not None else "")
        )
    if day is not None:
        pnl_bits.append(
            f"the last day's P&L was {signed_money(day)}"
            + (
                f" ({pct(_pct_field(data, 'day_pnl_of_nav'), signed=True, digits=2)} of NAV)"
                if _pct_field(data, "day_pnl_of_nav") is not None
                else ""
            )
        )
    if pnl_bits:
        lines.append(("; ".join(pnl_bits) + ".")[0].upper() + ("; ".join(pnl_bits) + ".")[1:])
    text = " ".join(lines)
    if rows:
        headers = ["Exposure", "Market value", "% of NAV"] + (
            ["Delta-adjusted", "% of NAV (delta)"] if show_delta else []
        )
        text += "\n\n" + table(headers, rows)
    if show_delta:
        text += (
            f"\n\n{int(_num(first(options, 'count')) or 0)} option holdings: "
            "delta-adjusted exposure counts them by delta (a short put is long exposure)."
        )
    counts = first(data, "counts_by_asset_class", "asset_class_counts", "by_asset_class")
    if isinstance(counts, dict) and counts:
        parts = []
        for k, v in counts.items():
            n = _num(first(v, "holdings", "count", "positions")) if isinstance(v, dict) else _num(v)
            mv = _num(first(v, "market_value")) if isinstance(v, dict) else None
            if n is not None:
                parts.append(f"{str(k).title()} {int(n)}" + (f" ({money(mv)})" if mv is not None else ""))
        if parts:
            text += "\n\nHoldings by asset class: " + ", ".join(parts) + "."
    return text.strip() or _generic(result, focus)


def compose_sector_exposure(result: ToolResult, focus: Focus) -> str:
    data = result.data
    sectors = rows_of(data, "sectors", "by_sector", "sector_exposure", "exposures")
    if not sectors:
        return (
            "There are no holdings to group by sector."
            if isinstance(data, dict) and "sectors" in data
            else _generic(result, focus)
        )

    def w(r: dict[str, Any]) -> float:
        return _weight(r, "weight", "weight_pct", "pct_of_nav", "net_weight") or 0.0

    ordered = sorted(sectors, key=lambda r: (-abs(w(r)), str(first(r, "sector", "_key", "name"))))
    top = ordered[0]
    top_name = first(top, "sector", "_key", "name", default="?")
    lines = [
        f"Your largest sector is **{top_name}** at {pct(w(top))} of NAV "
        f"({money(first(top, 'market_value', 'value', 'exposure'))})."
    ]
    named = [r for name in focus.sectors for r in ordered if first(r, "sector") == name]
    if focus.rank and focus.rank > 1:
        if focus.rank <= len(ordered):
            r = ordered[focus.rank - 1]
            lines = [
                f"Your {ordinal(focus.rank)}-largest sector is **{first(r, 'sector', default='?')}** "
                f"at {pct(w(r))} of NAV "
                f"({money(first(r, 'market_value'))}), after {first(ordered[focus.rank - 2], 'sector', default='?')}."
            ]
        else:
            lines = [f"You have only {len(ordered)} sectors, so there is no {ordinal(focus.rank)}-largest."]
    elif focus.sectors:
        lines = [
            f"**{first(r, 'sector')}** is {pct(w(r))} of NAV ({money(first(r, 'market_value'))})." for r in named[:2]
        ]
        lines += [
            f"You have no {name} exposure."
            for name in focus.sectors[:2]
            if name not in {first(r, "sector") for r in named}
        ]
        lines.append(f"Your largest sector is {top_name} at {pct(w(top))}.")
    elif len(ordered) > 1:
        second = ordered[1]
        lines[0] += f" Next is {first(second, 'sector', '_key', 'name', default='?')} at {pct(w(second))}."
    shorts = [r for r in ordered if (_num(first(r, "short")) or 0) < 0]
    if shorts:
        lines.append(
            "Short exposure sits in "
            + ", ".join(f"{first(r, 'sector', default='?')} ({money(first(r, 'short'))})" for r in shorts[:4])
            + "."
        )
    asked = (
        []
        if focus.sectors
        else re.findall(
            r"\b(tech\w*|financ\w*|energy|health ?care|industrials?|utilities|materials|real estate|"
            r"consumer \w+|communication \w+)\b",
            focus.question.lower(),
        )
    )
    for word in asked[:2]:
        key = "information technology" if word.startswith("tech") else word
        match = next((r for r in ordered if key.split()[0][:6] in str(first(r, "sector", default="")).lower()), None)
        if match is not None and match is not top:
            lines.append(f"{first(match, 'sector')}: {pct(w(match))} of NAV ({money(first(match, 'market_value'))}).")
        elif match is None:
            lines.append(f"You have no {word} exposure.")
    has_delta = any(
        _weight(r, "delta_adjusted_weight") is not None
        and abs((_weight(r, "delta_adjusted_weight") or 0) - w(r)) > 0.0005
        for r in ordered
    )
    headers = (
        ["Sector", "Net market value", "% of NAV"]
        + (["Delta-adj. % of NAV"] if has_delta else [])
        + ["Largest holdings"]
    )
    rows = []
    for r in ordered[:12]:
        row = [
            first(r, "sector", "_key", "name", default="?"),
            money(first(r, "market_value", "value", "exposure")),
            pct(w(r)),
        ]
        if has_delta:
            row.append(pct(_weight(r, "delta_adjusted_weight")))
        tops = first(r, "top_symbols")
        row.append(", ".join(map(str, tops[:3])) if isinstance(tops, list) else "")
        rows.append(row)
    align = ["l", "r", "r"] + (["r"] if has_delta else []) + ["l"]
    text = " ".join(lines) + "\n\n" + table(headers, rows, align)
    if len(ordered) > len(rows):
        rest = ordered[len(rows) :]
        text += (
            "\n\n"
            + more(len(rows), len(ordered), "sectors")
            + " The rest: "
            + ", ".join(f"{first(r, 'sector', default='?')} {pct(w(r))}" for r in rest)
            + "."
        )
    cash_share = _pct_field(data, "cash_of_nav")
    if cash_share is not None and abs(cash_share) >= 0.005:
        text += f"\n\nCash is {pct(cash_share)} of NAV."
    return text


def compose_volatility(result: ToolResult, focus: Focus) -> str:
    data = result.data if isinstance(result.data, dict) else {}
    lines = []
    realized = first(data, "realized", "realised", "realized_volatility")
    vols = []
    for window in (21, 63, 252):
        v = first(realized, f"{window}d", str(window)) if isinstance(realized, dict) else None
        if v is None:
            v = first(data, f"realized_vol_{window}d", f"vol_{window}d")
        if _num(v) is not None:
            vols.append((window, _num(v)))
    port = _num(first(data, "portfolio_volatility", "portfolio_vol", "annualized_volatility"))
    dollar = _num(first(data, "dollar_volatility"))
    if port is not None:
        lines.append(
            f"Annualised portfolio volatility from the covariance matrix is **{pct(port)}**"
            + (f" (about {money(dollar)} a year, one standard deviation)." if dollar is not None else ".")
        )
    if vols:
        lines.append("Realised volatility, annualised: " + ", ".join(f"{pct(v)} over {w} days" for w, v in vols) + ".")
    var = first(data, "value_at_risk_95_1d")
    if isinstance(var, dict):
        para, hist = _num(first(var, "parametric")), _num(first(var, "historical"))
        if para is not None or hist is not None:
            bits = [
                f"{money(abs(x))} {label}" for x, label in ((para, "parametric"), (hist, "historical")) if x is not None
            ]
            lines.append("One-day 95% value at risk: " + " / ".join(bits) + ".")
    contributors = rows_of(data, "contributions", "risk_contributions", "contributors")
    if contributors:

        def share(r: dict[str, Any]) -> float:
            return _weight(r, "share_of_risk", "pct_of_risk", "contribution_pct", "contribution") or 0.0

        ordered = sorted(contributors, key=lambda r: (-share(r), _symbol(r)))
        top = ordered[0]
        lines.append(
            f"**{_symbol(top)}** contributes the most risk: {pct(share(top))} of portfolio variance"
            + (f" from a {pct(_weight(top, 'weight'))} weight." if _weight(top, "weight") is not None else ".")
        )
        hedges = [r for r in ordered if share(r) < 0]
        if hedges:
            lines.append(
                "Risk reducers (negative contribution, acting as hedges): "
                + ", ".join(f"{_symbol(r)} ({pct(share(r))})" for r in hedges[:3])
                + "."
            )
        rows = [
            [_symbol(r), pct(_weight(r, "weight")), pct(_num(first(r, "volatility", "vol"))), pct(share(r))]
            for r in ordered[:8]
        ]
        lines.append(table(["Symbol", "Weight", "Volatility", "Share of risk"], rows))
        if len(ordered) > 8:
            lines.append("Largest risk contributors shown; " + more(8, len(ordered), "holdings"))
    excluded = first(data, "excluded_holdings")
    if isinstance(excluded, list) and excluded:
        names = [str(first(x, "symbol", default=x)) if isinstance(x, dict) else str(x) for x in excluded]
        lines.append(
            f"Left out for lack of price history: {', '.join(names[:8])}"
            + (f"; {more(8, len(names), 'holdings')}" if len(names) > 8 else ".")
        )
    return "\n\n".join(lines) if lines else _generic(result, focus)


def compose_factor_exposures(result: ToolResult, focus: Focus) -> str:
    data = result.data if isinstance(result.data, dict) else {}
    factors = rows_of(data, "factors", "exposures", "betas")
    if not factors:
        return _generic(result, focus)
    rows = []
    market_beta = None
    tilts = []
    has_t = any(first(r, "t_stat", "tstat") is not None for r in factors)
    has_dollars = any(first(r, "dollar_exposure") is not None for r in factors)
    for r in factors:
        fname = str(first(r, "factor", "_key", "name", default="?"))
        beta = _num(first(r, "beta", "exposure", "value", "loading"))
        t = _num(first(r, "t_stat", "tstat"))
        etf = first(r, "etf", "symbol", default="")
        if fname.lower() in ("market", "spy") and beta is not None:
            market_beta = beta
        elif beta is not None and t is not None and abs(t) >= 2:
            tilts.append((fname, beta))
        row = [fname + (f" ({etf})" if etf and etf != fname else ""), ratio(beta)]
        if has_t:
            row.append(ratio(t, 1) if t is not None else "n/a")
        if has_dollars:
            row.append(money(first(r, "dollar_exposure")))
        rows.append(row)
    lines = []
    if market_beta is not None:
        lines.append(
            f"Market beta is **{ratio(market_beta)}**: for each 1% move in the S&P 500 "
            f"the portfolio has moved about {market_beta:.2f}% in the same direction."
            if market_beta >= 0
            else f"Market beta is **{ratio(market_beta)}**: the portfolio has tended to move against the S&P 500, "
            f"about {abs(market_beta):.2f}% for each 1% market move."
        )
    if tilts:
        lines.append(
            "Style tilts beyond the market that are statistically meaningful (|t| ≥ 2): "
            + ", ".join(f"{n} {b:+.2f}" for n, b in tilts)
            + "."
        )
    elif has_t:
        lines.append("No style tilt beyond the market is statistically meaningful (every |t| < 2).")
    r2 = _num(first(data, "r_squared", "r2"))
    obs = _num(first(data, "observations", "n_obs"))
    stats = []
    if r2 is not None:
        stats.append(f"R² {ratio(r2)}")
    if obs is not None:
        stats.append(f"{int(obs)} daily observations")
    if first(data, "start") and first(data, "end"):
        stats.append(f"{first(data, 'start')} to {first(data, 'end')}")
    if stats:
        lines.append("Regression on daily returns: " + ", ".join(stats) + ".")
    headers = ["Factor", "Beta"] + (["t-stat"] if has_t else []) + (["Dollar exposure"] if has_dollars else [])
    lines.append(table(headers, rows))
    lines.append("Style betas are measured net of the market (each style ETF's return beyond SPY).")
    return "\n\n".join(lines)


def compose_stress(result: ToolResult, focus: Focus) -> str:
    data = result.data
    scenarios = rows_of(data, "scenarios", "results")
    if not scenarios:
        return _generic(result, focus)
    nav = _nav(data)

    def pnl(r: dict[str, Any]) -> float:
        return _num(first(r, "pnl", "total_pnl", "portfolio_pnl", "impact")) or 0.0

    def share(r: dict[str, Any]) -> float | None:
        s = _weight(r, "pct_of_nav", "pnl_pct")
        return s if s is not None else (pnl(r) / nav if nav else None)

    def label(r: dict[str, Any]) -> str:
        return str(first(r, "name", "label", "scenario", "id", "_key", default="?"))

    def result_text(r: dict[str, Any]) -> str:
        return signed_money(pnl(r)) + (f" ({pct(share(r), signed=True)} of NAV)" if share(r) is not None else "")

    worst = min(scenarios, key=pnl)
    custom = [r for r in scenarios if str(first(r, "id", default="")).startswith("custom")]

    def verb(r: dict[str, Any]) -> str:
        v = pnl(r)
        amount = money(abs(v)) + (f" ({pct(share(r), signed=True)} of NAV)" if share(r) is not None else "")
        return f"lose {amount}" if v < 0 else f"gain {amount}"

    lines = [f"In your scenario, **{label(r)}**, the portfolio would {verb(r)}." for r in custom]
    if not custom or worst is not custom[0]:
        lines.append(f"The worst {'standard ' if custom else ''}scenario is **{label(worst)}**: {result_text(worst)}.")
    rows = [
        [label(r), signed_money(pnl(r)), pct(share(r), signed=True) if share(r) is not None else "n/a"]
        for r in scenarios
    ]
    lines.append(table(["Scenario", "P&L", "% of NAV"], rows))
    drivers = rows_of(worst, "positions", "by_position", "contributors")
    if drivers:
        losers = sorted(drivers, key=pnl)[:3]
        lines.append(
            f"Largest losses in {label(worst)}: "
            + ", ".join(f"{_symbol(r)} {signed_money(pnl(r))}" for r in losers)
            + "."
        )
        floor = max(1.0, 0.01 * abs(pnl(worst)))  # offsets worth naming, not rounding noise
        gainers = [r for r in sorted(drivers, key=lambda r: -pnl(r)) if pnl(r) > floor][:3]
        if gainers:
            lines.append("Offsets: " + ", ".join(f"{_symbol(r)} {signed_money(pnl(r))}" for r in gainers) + ".")
    lines.append("Instantaneous shocks to today's holdings through each holding's betas; options are revalued in full.")
    return "\n\n".join(lines)


def compose_concentration(result: ToolResult, focus: Focus) -> str:
    data = result.data if isinstance(result.data, dict) else {}
    by_symbol = first(data, "by_symbol", default=data)
    by_symbol = by_symbol if isinstance(by_symbol, dict) else {}
    hhi = _num(first(by_symbol, "hhi", "herfindahl"))
    eff = _num(first(by_symbol, "effective_n", "effective_number"))
    count = _num(first(by_symbol, "count"))
    lines = []
    if hhi is not None:
        level = (
            "highly concentrated"
            if hhi > 0.25
            else "moderately concentrated"
            if hhi > 0.15
            else "moderately diversified"
            if hhi > 0.10
            else "well diversified"
        )
        sentence = f"By symbol the portfolio is **{level}**: HHI {ratio(hhi, 3)}"
        if eff is not None:
            sentence += f", the equivalent of {eff:.1f} equally sized positions" + (
                f" across {int(count)} holdings" if count else ""
            )
        lines.append(sentence + ".")
    tops = []
    for n in (1, 5, 10):
        w = _weight(by_symbol, f"top{n}_weight", f"top_{n}_weight")
        if w is not None:
            tops.append(f"top {n} {pct(w)}")
    if tops:
        lines.append("Share of gross exposure in the largest names: " + ", ".join(tops) + ".")
    largest = rows_of(by_symbol, "largest")
    if largest:
        lines.append(
            table(
                ["Symbol", "Share of gross", "Market value", "% of NAV"],
                [
                    [
                        _symbol(r),
                        pct(_weight(r, "share_of_gross")),
                        money(first(r, "market_value")),
                        pct(_weight(r, "weight")),
                    ]
                    for r in largest[:5]
                ],
            )
        )
    by_sector = first(data, "by_sector")
    if isinstance(by_sector, dict):
        shhi = _num(first(by_sector, "hhi"))
        top_sector = first(by_sector, "top_sector")
        if shhi is not None:
            text = f"By sector, HHI is {ratio(shhi, 3)}" + (
                f" (effective {_num(first(by_sector, 'effective_n')):.1f} sectors)"
                if _num(first(by_sector, "effective_n")) is not None
                else ""
            )
            if isinstance(top_sector, dict):
                text += (
                    f"; the largest is {first(top_sector, 'sector', 'name', default='?')} "
                    f"with {pct(_weight(top_sector, 'share_of_gross', 'weight'))} of gross exposure"
                )
            lines.append(text + ".")
    lines.append("Weights here are shares of gross exposure (long plus absolute short), lots of one symbol combined.")
    return "\n\n".join(lines) if len(lines) > 1 else _generic(result, focus)


def compose_correlation(result: ToolResult, focus: Focus) -> str:
    data = result.data if isinstance(result.data, dict) else {}
    pairs = rows_of(data, "pairs", "top_pairs")
    symbols = first(data, "symbols")
    matrix = first(data, "matrix")
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
        n = len(symbols) if isinstance(symbols, list) else 0
        return (
            f"Correlations need at least two holdings with enough price history; {n} qualified."
            if isinstance(data, dict) and data
            else _generic(result, focus)
        )

    def corr(r: dict[str, Any]) -> float:
        return _num(first(r, "correlation", "corr", "value")) or 0.0

    def label(r: dict[str, Any]) -> str:
        return f"{first(r, 'a', 'symbol_a', default='?')} / {first(r, 'b', 'symbol_b', default='?')}"

    ordered = sorted(pairs, key=lambda r: -corr(r))
    high, low = ordered[0], ordered[-1]
    n_held = len(symbols) if isinstance(symbols, list) else None
    lines = [
        f"Across your {n_held} largest holdings, the most correlated pair is **{label(high)}** ({ratio(corr(high))})"
        f" and the least correlated is **{label(low)}** ({ratio(corr(low))})."
        if n_held
        else f"The most correlated pair is **{label(high)}** ({ratio(corr(high))});"
        f" the least is **{label(low)}** ({ratio(corr(low))})."
    ]
    avg = _num(first(data, "average_correlation", "avg_correlation"))
    if avg is not None:
        lines.append(
            f"Average pairwise correlation is {ratio(avg)}"
            + (f" over {first(data, 'observations')} days of returns." if first(data, "observations") else ".")
        )
    sides = first(data, "sides")
    if isinstance(sides, list) and "short" in sides and isinstance(symbols, list):
        shorts = [s for s, side in zip(symbols, sides, strict=False) if side == "short"]
        lines.append(
            f"{', '.join(shorts)} {'is' if len(shorts) == 1 else 'are'} held short, "
            "so a high price correlation with a long holding is a hedge, not added risk."
        )
    lines.append(table(["Pair", "Correlation"], [[label(r), ratio(corr(r))] for r in ordered]))
    return "\n\n".join(lines)


def compose_movers(result: ToolResult, focus: Focus) -> str:
    data = result.data if isinstance(result.data, dict) else {}
    gainers = rows_of(data, "gainers", "top_gainers")
    losers = rows_of(data, "losers", "top_losers")
    date = first(data, "date", "as_of", default=result.meta.get("as_of"))
    threshold = _num(first(data, "threshold_pct", default=first(result.meta, "applied.threshold_pct")))
    total = _num(first(data, "total_pnl_impact", "total_impact", "day_pnl"))
    total_share = _pct_field(data, "total_pnl_impact_of_nav")
    day = f" on {date}" if date else ""
    total_text = (
        f"The day's P&L across all holdings was {signed_money(total)}"
        + (f" ({pct(total_share, signed=True, digits=2)} of NAV)." if total_share is not None else ".")
        if total is not None
        else ""
    )
    if not gainers and not losers:
        limit = f" by {threshold:g}% or more" if threshold is not None else ""
        return (f"None of your holdings moved{limit}{day}. " + total_text).strip()

    def chg(r: dict[str, Any]) -> str:
        return pct(_weight(r, "change_pct", "day_change_pct", "pct_change"), signed=True, digits=2)

    def impact(r: dict[str, Any]) -> float | None:
        return _num(first(r, "pnl_impact", "pnl", "impact"))

    lines = []
    if gainers:
        g = gainers[0]
        lines.append(f"Biggest gainer{day}: **{_symbol(g)}** {chg(g)} ({signed_money(impact(g))} P&L).")
    if losers:
        lo = losers[0]
        lines.append(f"Biggest decliner: **{_symbol(lo)}** {chg(lo)} ({signed_money(impact(lo))} P&L).")
    everyone = gainers + losers
    by_impact = min(everyone, key=lambda r: impact(r) or 0.0)
    if (impact(by_impact) or 0) < 0 and by_impact is not (losers[0] if losers else None):
        lines.append(f"The largest P&L hit came from **{_symbol(by_impact)}** ({signed_money(impact(by_impact))}).")
    if total_text:
        lines.append(total_text)
    counts = (first(data, "gainers_count"), first(data, "losers_count"))
    if all(isinstance(c, int) for c in counts) and threshold is not None:
        lines.append(f"{counts[0]} holdings rose and {counts[1]} fell by {threshold:g}% or more.")
    shown_g, shown_l = min(len(gainers), 5), min(len(losers), 5)
    total_g = counts[0] if isinstance(counts[0], int) else len(gainers)
    total_l = counts[1] if isinstance(counts[1], int) else len(losers)
    hidden = []
    if total_g > shown_g:
        hidden.append(f"+{total_g - shown_g} more of the {total_g} that rose")
    if total_l > shown_l:
        hidden.append(f"+{total_l - shown_l} more of the {total_l} that fell")
    has_side = any(first(r, "side") == "short" for r in everyone)
    rows = [
        [_symbol(r), chg(r), signed_money(impact(r))] + ([first(r, "side", default="")] if has_side else [])
        for r in gainers[:5] + losers[:5]
    ]
    text = (
        " ".join(lines)
        + "\n\n"
        + table(
            ["Symbol", "Day change", "P&L impact"] + (["Side"] if has_side else []),
            rows,
            ["l", "r", "r"] + (["l"] if has_side else []),
        )
    )
    if hidden:
        text += "\n\nThe table shows the five largest moves each way: " + "; ".join(hidden) + "."
    if has_side:
        text += "\n\nA short position loses money when its price rises."
    return text


def compose_quotes(result: ToolResult, focus: Focus) -> str:
    quotes = rows_of(result.data, "quotes", "results")
    if not quotes:
        return _generic(result, focus)
    rows = []
    sentences = []
    priced = []
    for q in quotes:
        sym = _symbol(q)
        price_value = _num(first(q, "close", "price", "last", "last_close"))
        if price_value is None:
            sentences.append(f"No price is available for **{sym}**.")
            continue
        priced.append(q)
        change = _weight(q, "change_pct", "day_change_pct")
        low, high = first(q, "low_52w"), first(q, "high_52w")
        rows.append(
            [
                sym,
                money(price_value, cents=True),
                pct(change, signed=True, digits=2) if change is not None else "n/a",
                f"{money(low, cents=True)} – {money(high, cents=True)}"
                if low is not None and high is not None
                else "n/a",
            ]
        )
    if len(priced) == 1:
        q = priced[0]
        sym, close, change_text, rng = rows[0]
        date = first(q, "date", "price_date")
        text = (
            f"{_labelled(q)} last closed at {close}"
            + (f" on {date}" if date else "")
            + (f", {change_text} on the day" if change_text != "n/a" else "")
            + "."
        )
        if rng != "n/a":
            low, high = _num(first(q, "low_52w")), _num(first(q, "high_52w"))
            last = _num(first(q, "close"))  # a quote priced from `price`/`last` alone has no close to place
            where = ""
            if low is not None and high is not None and last is not None and high > low:
                where = f", {pct((last - low) / (high - low))} of the way from the low to the high"
            text += f" 52-week range: {rng}{where}."
        return " ".join([text, *sentences])
    dates = {first(q, "date") for q in priced} - {None}
    intro = f"Latest closes ({dates.pop()}):" if len(dates) == 1 else "Latest closes:"
    return " ".join([intro, *sentences]) + "\n\n" + table(["Symbol", "Last close", "Day change", "52-week range"], rows)


def compose_company_profile(result: ToolResult, focus: Focus) -> str:
    data = result.data if isinstance(result.data, dict) else {}
    sym = first(data, "symbol", default=result.arguments.get("symbol", "?"))
    name = first(data, "name", default=sym)
    sector, industry = first(data, "sector"), first(data, "industry")
    atype = first(data, "asset_type")
    head = f"**{name}** ({sym})"
    known = [str(x) for x in (sector, industry) if x and x != "Unknown"]
    if known:
        head += " is in " + " / ".join(known)
    head += "."
    if atype and atype not in ("stock", "unknown"):
        head += f" Asset type: {str(atype).replace('_', ' ')}."
    option = first(data, "option")
    if isinstance(option, dict):
        kind = {"C": "call", "P": "put"}.get(str(first(option, "option_type")), "option")
        head += (
            f" It is a listed {kind} on {first(option, 'underlying')} "
            f"struck at {money(first(option, 'strike'), cents=True)}, expiring {first(option, 'expiry')}."
        )
    lines = [head]
    stats = []
    close = _num(first(data, "last_close", "close", "price"))
    if close is not None:
        stats.append(
            f"last close {money(close, cents=True)}" + (f" on {first(data, 'date')}" if first(data, "date") else "")
        )
    if _num(first(data, "return_1y")) is not None:
        stats.append(f"one-year return {pct(first(data, 'return_1y'), signed=True)}")
    if _num(first(data, "volatility_1y", "volatility")) is not None:
        stats.append(f"volatility {pct(first(data, 'volatility_1y', 'volatility'))} annualised")
    if _num(first(data, "beta_to_spy", "beta")) is not None:
        stats.append(f"beta to the S&P 500 {ratio(first(data, 'beta_to_spy', 'beta'))}")
    low, high = first(data, "low_52w"), first(data, "high_52w")
    if low is not None and high is not None:
        stats.append(f"52-week range {money(low, cents=True)} – {money(high, cents=True)}")
    if stats:
        lines.append("Statistics: " + "; ".join(stats) + ".")
    if first(data, "sector_etf"):
        lines.append(f"Its sector ETF is {first(data, 'sector_etf')}.")
    if first(data, "note") and "no business description" in str(first(data, "note")):
        lines.append("SigmaSight stores reference data and price statistics only, not a business description.")
    return " ".join(lines)


def compose_market_overview(result: ToolResult, focus: Focus) -> str:
    data = result.data if isinstance(result.data, dict) else {}
    indices = [r for r in rows_of(data, "indices") if _num(first(r, "close", "price")) is not None]
    sectors = [r for r in rows_of(data, "sectors") if _num(first(r, "change_pct")) is not None]
    vol = first(data, "volatility")

    def chg(r: dict[str, Any], key: str = "change_pct") -> str:
        w = _weight(r, key)
        return pct(w, signed=True, digits=2) if w is not None else "n/a"

    lines = []
    date = first(data, "date")
    if indices:
        spy = next((r for r in indices if _symbol(r).upper() == "SPY"), indices[0])
        lines.append(f"On {date}, " if date else "")
        lines[-1] += (
            f"**{_symbol(spy)}** closed at {money(first(spy, 'close', 'price'), cents=True)} "
            f"({chg(spy)} on the day, {chg(spy, 'change_21d_pct')} over 21 trading days)."
        )
        rows = [
            [_symbol(r), money(first(r, "close", "price"), cents=True), chg(r), chg(r, "change_21d_pct")]
            for r in indices
        ]
        lines.append(table(["Index ETF", "Close", "Day", "21 days"], rows))
    if sectors:
        ordered = sorted(sectors, key=lambda r: -(_num(first(r, "change_pct")) or 0.0))
        best, worst = ordered[0], ordered[-1]
        lines.append(
            f"Best sector: {first(best, 'sector', default=_symbol(best))} ({_symbol(best)}, {chg(best)}); "
            f"weakest: {first(worst, 'sector', default=_symbol(worst))} ({_symbol(worst)}, {chg(worst)})."
        )
    if isinstance(vol, dict):
        level = _num(first(vol, "level", "value", "close"))
        realised = _num(first(vol, "spy_realized_vol_21d"))
        bits = []
        if level is not None:
            bits.append(
                f"{first(vol, 'symbol', default='VIX')} at {level:.2f}"
                + (f" ({chg(vol)})" if _num(first(vol, "change_pct")) is not None else "")
            )
        if realised is not None:
            bits.append(f"S&P 500 realised volatility {pct(realised)} over 21 days")
        if bits:
            lines.append("Volatility: " + "; ".join(bits) + ".")
    return "\n\n".join(x for x in lines if x) if lines else _generic(result, focus)


def compose_data_quality(result: ToolResult, focus: Focus) -> str:
    data = result.data if isinstance(result.data, dict) else {}
    coverage = _weight(data, "coverage_ratio", "coverage")
    history = _weight(data, "history_coverage_ratio")
    lines = []
    if coverage is not None:
        checked = first(data, "positions_checked")
        lines.append(
            f"Price coverage is **{pct(coverage)}** of {checked} open positions"
            if checked is not None
            else f"Price coverage is **{pct(coverage)}**"
        )
        lines[-1] += f"; {pct(history)} have enough history for the risk models." if history is not None else "."

    def names(value: Any) -> list[str]:
        if not isinstance(value, list):
            return []
        out = []
        for v in value:
            if isinstance(v, dict):
                sym = str(first(v, "symbol", default="?"))
                extra = first(v, "last_price_date")
                obs = first(v, "observations")
                out.append(
                    f"{sym} (last price {extra})" if extra else f"{sym} ({obs} closes)" if obs is not None else sym
                )
            else:
                out.append(str(v))
        return out

    found_issue = False
    for label, key in (
        ("Missing prices", "missing_prices"),
        ("Stale prices", "stale_prices"),
        ("Too little history for risk models", "insufficient_history"),
        ("Short history", "short_history"),
        ("Option underlyings without history", "underlyings_without_history"),
    ):
        items = names(first(data, key))
        if items:
            found_issue = True
            lines.append(
                f"- {label}: {', '.join(items[:10])}" + (f" and {len(items) - 10} more" if len(items) > 10 else "")
            )
    if not found_issue and coverage is not None:
        lines.append("No missing or stale prices.")
    source = first(data, "price_source", default=result.meta.get("price_source"))
    if source:
        imported = first(data, "imported_symbols")
        lines.append(
            f"Price source: {source}"
            + (f" (imported closes for {', '.join(imported[:8])})." if isinstance(imported, list) and imported else ".")
        )
    text = "\n".join(lines) if any(line.startswith("- ") for line in lines) else " ".join(lines)
    return text if lines else _generic(result, focus)


def _gross_pct(row: dict[str, Any]) -> str:
    """Gross exposure as a share of NAV, or "n/a" when either is missing (or NAV is zero)."""
    gross, nav = _num(first(row, "gross_exposure")), _num(first(row, "nav"))
    return pct(gross / nav) if gross is not None and nav else "n/a"


def compose_portfolios(result: ToolResult, focus: Focus) -> str:
    rows_in = rows_of(result.data, "portfolios")
    if not rows_in:
        return "You have no portfolios yet."
    rows = [
        [
            first(r, "name", default="?"),
            money(first(r, "nav", "total_value")),
            _qty(first(r, "holding_count")) if first(r, "holding_count") is not None else "n/a",
            _gross_pct(r),
        ]
        for r in rows_in
    ]
    total = sum(_num(first(r, "nav")) or 0.0 for r in rows_in)
    head = f"You have {len(rows_in)} portfolio{'s' if len(rows_in) != 1 else ''}"
    if total:
        head += f" with a combined NAV of {money(total)}." if len(rows_in) > 1 else f" with a NAV of {money(total)}."
    else:
        head += "."
    return head + "\n\n" + table(["Portfolio", "NAV", "Holdings", "Gross % of NAV"], rows, ["l", "r", "r", "r"])


def compose_prices_historical(result: ToolResult, focus: Focus) -> str:
    data = result.data if isinstance(result.data, dict) else {}
    rows_in = [r for r in rows_of(data, "symbols") if _num(first(r, "return")) is not None]
    if not rows_in:
        return _generic(result, focus)
    ordered = sorted(rows_in, key=lambda r: -(_num(first(r, "return")) or 0.0))
    days = first(data, "lookback_days", default=result.arguments.get("lookback_days"))
    period = f"over the last {days} trading days" if days else "over the period"
    if first(data, "start") and first(data, "end"):
        period += f" ({first(data, 'start')} to {first(data, 'end')})"
    best, worst = ordered[0], ordered[-1]

    def label(r: dict[str, Any]) -> str:
        factor = first(r, "factor")
        return f"{factor} ({_symbol(r)})" if factor else _symbol(r)

    lines = [
        f"Price change {period}: best **{label(best)}** {pct(first(best, 'return'), signed=True)}, "
        f"worst **{label(worst)}** {pct(first(worst, 'return'), signed=True)}."
    ]
    picked = [r for s in focus.symbols for r in ordered if _symbol(r).upper() == s.upper()]
    if picked:
        # A question about one holding ("how has it done?") leads with that holding.
        lines = [
            f"**{_symbol(r)}** moved {pct(first(r, 'return'), signed=True)} {period}, from "
            f"{money(first(r, 'first_close'), cents=True)} to {money(first(r, 'last_close'), cents=True)}."
            for r in picked[:3]
        ]
        lines.append(
            f"Across your holdings the best was {label(best)} ({pct(first(best, 'return'), signed=True)}) "
            "and the worst "
            f"{label(worst)} ({pct(first(worst, 'return'), signed=True)})."
        )
        lines = [" ".join(lines)]
    shown = ordered if len(ordered) <= 10 else ordered[:5] + ordered[-5:]
    rows = [
        [
            label(r),
            money(first(r, "first_close"), cents=True),
            money(first(r, "last_close"), cents=True),
            pct(first(r, "return"), signed=True),
            pct(first(r, "volatility")),
        ]
        for r in shown
    ]
    lines.append(table(["Symbol", "First close", "Last close", "Change", "Volatility"], rows))
    if len(ordered) > 10:
        lines.append(f"The five best and five worst of {len(ordered)} series.")
    missing = first(data, "missing_symbols")
    if isinstance(missing, list) and missing:
        lines.append(f"No price history for {', '.join(map(str, missing[:8]))}.")
    return "\n\n".join(lines)


def compose_factor_etf_prices(result: ToolResult, focus: Focus) -> str:
    return compose_prices_historical(result, focus)


def compose_positions(result: ToolResult, focus: Focus) -> str:
    rows_in = rows_of(result.data, "positions", "lots")
    if not rows_in:
        return "No positions match." if isinstance(result.data, dict | list) else _generic(result, focus)
    ordered = sorted(rows_in, key=lambda r: (bool(first(r, "closed")), -abs(_mv(r)), _symbol(r)))
    options = [
        r
        for r in rows_in
        if str(first(r, "asset_class", default="")).upper() == "OPTIONS" or first(r, "strike") is not None
    ]
    shorts = [r for r in rows_in if (_num(first(r, "quantity")) or 0) < 0]
    closed = [r for r in rows_in if first(r, "closed")]
    total = first(result.data, "count") if isinstance(result.data, dict) else None
    name = _portfolio_name(result.data, result.meta)
    head = f"{total if isinstance(total, int) else len(rows_in)} lots" + (f" in **{name}**" if name else "")
    extras = [
        f"{len(options)} options" if options else "",
        f"{len(shorts)} short" if shorts else "",
        f"{len(closed)} closed" if closed else "",
    ]
    extras = [e for e in extras if e]
    lines = [head + (f" ({', '.join(extras)})" if extras else "") + "."]
    if focus.symbols:
        wanted = {s.upper() for s in focus.symbols}
        picked = [
            r
            for r in ordered
            if _symbol(r).upper() in wanted or str(first(r, "underlying", default="")).upper() in wanted
        ]
        if picked:
            ordered = picked
    if re.search(r"\boptions?\b|\bstrikes?\b|\bexpir", focus.question.lower()) and options:
        ordered = sorted(options, key=lambda r: (str(first(r, "expiry", default="")), _symbol(r)))
        soonest = ordered[0]
        lines.append(f"The nearest expiry is {_symbol(soonest)} ({_option_terms(soonest)}).")
    rows = []
    for r in ordered[:12]:
        rows.append(
            [
                _symbol(r),
                _qty(first(r, "quantity")),
                money(first(r, "entry_price"), cents=True),
                first(r, "entry_date", default="n/a"),
                "closed" if first(r, "closed") else money(_mv(r)),
                signed_money(_pnl(r)) if not first(r, "closed") else "n/a",
                _option_terms(r),
            ]
        )
    has_terms = any(row[-1] for row in rows)
    headers = ["Symbol", "Quantity", "Entry price", "Entry date", "Market value", "Unrealised P&L"] + (
        ["Option"] if has_terms else []
    )
    lines.append(
        table(
            headers,
            [row if has_terms else row[:-1] for row in rows],
            ["l", "r", "r", "l", "r", "r"] + (["l"] if has_terms else []),
        )
    )
    if len(ordered) > 12:
        lines.append(f"The first 12 of {len(ordered)} lots shown.")
    return "\n\n".join(lines)


def more(shown: int, total: int, noun: str) -> str:
    """'+3 more (15 sectors in all)': a list that stops early says so."""
    return f"+{total - shown} more ({total} {noun} in all)." if total > shown else ""


_ORDINAL_WORDS = {2: "second", 3: "third", 4: "fourth", 5: "fifth"}


def ordinal(n: int) -> str:
    return _ORDINAL_WORDS.get(n, f"{n}th")


def compose_benchmark(result: ToolResult, focus: Focus) -> str:
    data = result.data if isinstance(result.data, dict) else {}
    sectors = rows_of(data, "sectors")
    bench = first(data, "benchmark") if isinstance(first(data, "benchmark"), dict) else {}
    equity = _num(first(data, "equity_value"))
    if not sectors or not equity:
        return "You hold no equities (stocks or equity funds) to compare with the S&P 500."

    def w(r: dict[str, Any], key: str) -> float:
        return _weight(r, key) or 0.0

    def verdict(r: dict[str, Any]) -> str:
        gap = w(r, "active_weight") * 100
        if abs(gap) < 0.5:
            return "in line with the index"
        return f"{abs(gap):.1f} points {'overweight' if gap > 0 else 'underweight'}"

    asked = [r for name in focus.sectors for r in sectors if first(r, "sector") == name]
    lines = []
    for r in asked[:2] or []:
        lines.append(
            f"Your **{first(r, 'sector')}** exposure is {pct(w(r, 'portfolio_weight'))} of your equity holdings "
            f"({pct(w(r, 'portfolio_weight_of_nav'))} of NAV, funds looked through) "
            f"against {pct(w(r, 'benchmark_weight'))} "
            f"for the S&P 500: {verdict(r)}."
        )
    if not asked:
        big = max(sectors, key=lambda r: abs(w(r, "active_weight")))
        lines.append(
            f"Against the S&P 500 your largest difference is **{first(big, 'sector')}**: "
            f"{pct(w(big, 'portfolio_weight'))} of "
            f"your equity holdings against {pct(w(big, 'benchmark_weight'))} for the index, {verdict(big)}."
        )
    share = _weight(data, "equity_of_nav")
    if share is not None:
        lines.append(
            f"Equities (stocks and equity funds) are {pct(share)} of NAV; the rest is left out of the comparison."
        )
    rows = [
        [
            first(r, "sector"),
            pct(w(r, "portfolio_weight")),
            pct(w(r, "benchmark_weight")),
            pct(w(r, "active_weight"), signed=True),
            pct(w(r, "portfolio_weight_of_nav")),
        ]
        for r in sectors
    ]
    text = " ".join(lines) + "\n\n" + table(["Sector", "Your equities", "S&P 500", "Difference", "% of NAV"], rows)
    looked = [str(first(f, "symbol")) for f in rows_of(data, "looked_through")]
    if looked:
        text += f"\n\nLooked through: {', '.join(looked)}."
    skipped = rows_of(data, "not_compared")
    if skipped:
        text += " Not compared: " + ", ".join(f"{first(f, 'symbol')} ({first(f, 'reason')})" for f in skipped[:6])
        text += f" {more(6, len(skipped), 'holdings')}" if len(skipped) > 6 else "."
    if bench:
        text += (
            f"\n\nIndex and fund sector weights are approximate, as of {first(bench, 'weights_as_of')} "
            "(issuers' published fact sheets), not a live feed."
        )
    return text


COMPOSERS: dict[str, Composer] = {
    "get_benchmark_comparison": compose_benchmark,
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
        return (
            f"I could not get {label}: the request was rejected as invalid ({message}). "
            "I have not guessed the missing figures."
        )
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
        text += (
            f"\n\n_The tool output was truncated{f' (from {original} items)' if original else ''}; "
            "figures cover what was returned._"
        )
    return text


def _price_sources(results: list[ToolResult]) -> set[str]:
    sources = set()
    for r in results:
        for value in (
            r.meta.get("price_source"),
            first(r.data, "price_source", "portfolio.price_source", "meta.price_source")
            if isinstance(r.data, dict)
            else None,
        ):
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


def compose_answer(
    question: str,
    results: list[ToolResult],
    *,
    intents: Iterable[str] = (),
    symbols: Iterable[str] = (),
    rank: int | None = None,
    top_n: int | None = None,
    sectors: Iterable[str] = (),
    short: bool = False,
) -> str:
    """The markdown answer for a question, from the tool results of the latest turn: the answer
    in the first sentence (the first section has no heading), then the support, then any
    caveats the data warrant."""
    focus = Focus(
        question=question,
        intents=tuple(intents),
        symbols=tuple(symbols),
        tools=tuple(r.name for r in results),
        rank=rank,
        top_n=top_n,
        sectors=tuple(sectors),
        short=short,
    )
    if not results:
        return "I have no tool results to answer from. Please ask again.\n\n" + footer(results)
    sections = []
    lead = ""
    if (
        "portfolios" not in focus.intents
        and len(results) > 1
        and results[0].name == "list_user_portfolios"
        and results[0].error is None
    ):
        # Listing portfolios was a step towards the answer (no portfolio was selected), not the question.
        lead = _portfolio_choice_note(results[0], results[1:])
        results = results[1:]
    multi = len({r.name for r in results}) > 1 or len(results) > 1
    for i, result in enumerate(results):
        body = _section(result, focus)
        if multi and i > 0:
            title = SECTION_TITLES.get(result.name, result.name)
            if result.name == "get_company_profile" and result.arguments.get("symbol"):
                title += f": {result.arguments['symbol']}"
            body = f"**{title}**\n\n{body}"
        sections.append(body)
    if lead:
        sections.insert(1, lead)
    notes = caveat_notes(results)
    if notes:
        sections.append(notes)
    if all(r.error is not None for r in results):
        sections.append("No figures could be computed for this question, so I am not giving any.")
    if re.search(r"\bshould i\b|\bbuy\b|\bsell\b|\brecommend", question.lower()):
        sections.append("I report what the data shows; I do not make buy or sell recommendations.")
    return "\n\n".join(sections) + "\n\n" + footer(results)


def caveat_notes(results: list[ToolResult]) -> str:
    """The tools' sanity caveats (``data.caveats``), each once."""
    seen: dict[str, str] = {}
    for r in results:
        for c in (first(r.data, "caveats") or []) if isinstance(r.data, dict) else []:
            if isinstance(c, dict) and isinstance(c.get("message"), str) and c.get("code") not in seen:
                seen[str(c.get("code"))] = c["message"]
    return "\n\n".join(f"**Caution:** {m}" for m in seen.values())


def out_of_scope_answer() -> str:
    return (
        "That is outside what I can answer: I only answer questions about your portfolios, "
        "from SigmaSight's analytics. "
        "Ask me about your holdings, exposure, sectors (also against the S&P 500), risk, factor betas, stress tests, "
        f"concentration, today's movers, or a security you hold.\n\n_{OFFLINE_LABEL}._"
    )


def ambiguous_answer() -> str:
    return (
        "I am not sure what you are referring to. Name a holding (for example AAPL) or a topic (largest positions, "
        "sectors, risk, a stress test such as *a 30% market drop*) and I will answer from your portfolio."
        f"\n\n_{OFFLINE_LABEL}._"
    )


def _portfolio_choice_note(listing: ToolResult, rest: list[ToolResult]) -> str:
    rows = rows_of(listing.data, "portfolios")
    used = next((r.meta.get("portfolio_name") for r in rest if r.meta.get("portfolio_name")), None)
    if used is None:
        applied = next(
            (first(r.meta, "applied.portfolio_id") for r in rest if first(r.meta, "applied.portfolio_id")), None
        )
        used = next((first(p, "name") for p in rows if first(p, "id") == applied), None)
    if len(rows) <= 1:
        return f"This answer is for your portfolio **{used}**." if used else ""
    others = [str(first(p, "name")) for p in rows if first(p, "name") != used]
    note = (
        f"You have {len(rows)} portfolios; this answer is for **{used}**"
        if used
        else f"You have {len(rows)} portfolios"
    )
    if others:
        note += f". Ask about {', '.join(others[:3])} by name for {'that one' if len(others) == 1 else 'another'}"
    return note + "."


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
