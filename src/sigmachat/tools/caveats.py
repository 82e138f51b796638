"""Sanity notes a portfolio's data warrant, attached to the tools' results (``data.caveats``).

The figures are computed correctly from the stored positions, yet some books make them
misleading, and an analyst should say so before anyone acts on them:

- ``style_mismatch``: the book's stated style (e.g. "market-neutral") against its measured
  market beta or leverage. The hedge-fund demo book's option lines hold hundreds of
  contracts at 100 shares each (as the original product stores them), so its beta is far
  from neutral.
- ``private_marks``: a large share of NAV valued at appraisal-smoothed private marks, whose
  smoothed prices understate volatility and beta.
- ``primary_residence``: the owner's home counted in NAV; the note gives NAV without it and
  the largest investable holding.

Each caveat is ``{"code", "message", ...figures}``; the message is plain language, ready to
show, and every figure in it is also a field.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

from sigmachat.tools.formatting import ratio, usd
from sigmachat.tools.portfolio_data import PortfolioData

NEUTRAL_STYLE = re.compile(r"market[- ]neutral", re.IGNORECASE)
RESIDENCE = re.compile(r"primary residence", re.IGNORECASE)
NEUTRAL_MAX_BETA = 0.5  # a market-neutral book's beta should sit well inside +/-0.5
LEVERAGE_WARN = 4.0  # gross exposure / NAV beyond which any book gets a note
PRIVATE_WARN = 0.25  # share of NAV in appraisal-marked private holdings
CASH_LIKE_SECTORS = frozenset({"Cash"})


def _money(value: float) -> str:
    return f"-${abs(value):,.0f}" if value < 0 else f"${value:,.0f}"


def market_beta(p: PortfolioData) -> float | None:
    """Dollar-weighted market beta of today's holdings (the stress tests' betas; options by delta)."""
    from sigmachat.tools.risk import _sensitivities  # the stress tests own these betas

    nav = p.valuation.nav
    book = p.book()
    if not nav or book.empty:
        return None
    sens = p.memo("stress_sensitivities", lambda: _sensitivities(p))
    betas = sens["market_beta"].reindex(book["risk_symbol"]).fillna(0.0).to_numpy()
    exposure = (
        pd.to_numeric(book["delta_exposure"], errors="coerce").fillna(book["market_value"].astype(float)).to_numpy()
    )
    return float((betas * exposure).sum() / nav)


def caveats(p: PortfolioData) -> list[dict[str, Any]]:
    return p.memo("caveats", lambda: _caveats(p))


def _caveats(p: PortfolioData) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    v = p.valuation
    nav = v.nav
    book = p.book()
    if not nav or book.empty:
        return out
    description = p.portfolio.description or ""
    gross = float(book["market_value"].astype(float).abs().sum())
    leverage = gross / nav
    if NEUTRAL_STYLE.search(description):
        beta = market_beta(p)
        if beta is not None and abs(beta) > NEUTRAL_MAX_BETA:
            options = book[book["is_option"]]
            contracts = float(options["quantity"].astype(float).abs().sum()) if len(options) else 0.0
            message = (
                f"This book is described as market-neutral, yet its market beta is {beta:.1f}: a 20% market drop would "
                f"move it by about {abs(beta) * 20:.0f}% of NAV."
            )
            if contracts:
                message += (
                    f" Its {len(options)} option lines hold {contracts:,.0f} contracts, each valued at 100 shares as "
                    "stored;"
                    " check those contract counts before relying on beta, exposure or stress figures."
                )
            out.append(
                {
                    "code": "style_mismatch",
                    "message": message,
                    "stated_style": "market-neutral",
                    "market_beta": ratio(beta, 2),
                    "leverage": ratio(leverage, 2),
                    "option_contracts": contracts,
                }
            )
    if leverage > LEVERAGE_WARN and not any(c["code"] == "style_mismatch" for c in out):
        out.append(
            {
                "code": "high_leverage",
                "leverage": ratio(leverage, 2),
                "message": f"Gross exposure is {leverage:.1f}x NAV, far above an unlevered book: check the positions' "
                "sizes.",
            }
        )
    private = book[(book["asset_class"] == "PRIVATE") & ~book["sector"].isin(CASH_LIKE_SECTORS)]
    private_value = float(private["market_value"].astype(float).sum())
    if private_value / nav >= PRIVATE_WARN:
        share = private_value / nav
        out.append({
            "code": "private_marks", "private_value": usd(private_value), "private_of_nav": ratio(share),
            "message": f"{share * 100:.0f}% of NAV ({_money(private_value)}) is private holdings valued at "
                       "appraisal-smoothed marks; smoothing understates their volatility and beta, so this book's risk "
                       "figures are understated.",
        })  # fmt: skip
    homes = [s for s, name in book["name"].items() if RESIDENCE.search(str(name or ""))]
    if homes:
        home_value = float(book.loc[homes, "market_value"].astype(float).sum())
        investable = book.drop(index=homes)
        largest = investable["market_value"].astype(float).abs().idxmax() if len(investable) else None
        message = (
            f"NAV counts your primary residence ({', '.join(homes)}, {_money(home_value)}). Without it NAV is "
            f"{_money(nav - home_value)}"
        )
        if largest is not None:
            message += (
                f", and your largest investable holding is {largest} "
                f"({_money(float(book.loc[largest, 'market_value']))})"
            )
        out.append(
            {
                "code": "primary_residence",
                "message": message + ".",
                "symbols": homes,
                "home_value": usd(home_value),
                "nav_without_home": usd(nav - home_value),
                "largest_investable": largest,
            }
        )
    return out
