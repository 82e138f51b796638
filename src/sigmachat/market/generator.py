"""Deterministic demo price generator.

No market-data network is reachable, so the demo ships synthetic but structured prices:
a market factor with volatility regimes, sector co-movement, style factors behind the factor
ETFs, per-asset-class volatility, appraisal-smoothed private marks, a VIX level that rises
when the market falls, and listed options valued by Black-Scholes from their underlying.
Every series is labelled ``source='demo'``; imported real closes take precedence.
"""

from __future__ import annotations

import datetime as dt
import math
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from sigmachat.market.security_master import Security, SecurityMaster

TRADING_DAYS = 252
RISK_FREE_RATE = 0.045
ANCHOR_DATE = dt.date(2025, 6, 30)  # the demo seed's entry date: generated closes match entry prices

STYLE_FACTORS = ("value", "growth", "momentum", "quality", "size", "low_vol")
# Which style factor drives which factor ETF (beyond the market).
ETF_STYLE = {"VTV": "value", "VUG": "growth", "MTUM": "momentum", "QUAL": "quality", "SLY": "size", "USMV": "low_vol"}
GROWTH_INDUSTRIES = ("Semiconductors", "Internet", "Software", "Interactive Media", "Automobiles", "Entertainment")
VALUE_SECTORS = ("Financials", "Energy", "Consumer Staples", "Utilities", "Health Care")


@dataclass(frozen=True, slots=True)
class OptionSpec:
    symbol: str
    underlying: str
    strike: float
    expiry: dt.date
    option_type: str  # C | P


def trading_days(end: dt.date, count: int) -> list[dt.date]:
    """The last ``count`` weekdays up to and including ``end`` (exchange holidays are ignored)."""
    end64: np.datetime64 = np.datetime64(end, "D")
    if not np.is_busday(end64):
        end64 = np.busday_offset(end64, 0, roll="backward")
    start64 = np.busday_offset(end64, -(count - 1), roll="backward")
    days = np.arange(start64, end64 + 1, dtype="datetime64[D]")
    days = days[np.is_busday(days)]
    return [d.astype(dt.date) for d in days]


def _rng(seed: int, name: str) -> np.random.Generator:
    # A stream per component so adding a symbol never changes any other series.
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


_erf = np.vectorize(math.erf, otypes=[float])


def norm_cdf(x: np.ndarray | float) -> np.ndarray:
    return 0.5 * (1.0 + _erf(np.asarray(x, dtype=float) / math.sqrt(2.0)))


def black_scholes(
    spot: np.ndarray | float, strike: float, t_years: np.ndarray | float, vol: float, rate: float, kind: str
) -> np.ndarray:
    """European Black-Scholes price per share; at or past expiry, the intrinsic value."""
    spot, t = np.broadcast_arrays(np.asarray(spot, dtype=float), np.asarray(t_years, dtype=float))
    t = np.maximum(t, 0.0)
    intrinsic = np.maximum(spot - strike, 0.0) if kind == "C" else np.maximum(strike - spot, 0.0)
    live = t > 1e-9
    out = np.array(intrinsic, dtype=float)
    if np.any(live):
        s, tt = spot[live], t[live]
        sig = vol * np.sqrt(tt)
        d1 = (np.log(s / strike) + (rate + 0.5 * vol * vol) * tt) / sig
        d2 = d1 - sig
        if kind == "C":
            val = s * norm_cdf(d1) - strike * np.exp(-rate * tt) * norm_cdf(d2)
        else:
            val = strike * np.exp(-rate * tt) * norm_cdf(-d2) - s * norm_cdf(-d1)
        out[live] = val
    return out


class DemoPriceGenerator:
    """Generates closes for a set of symbols; same seed and inputs → identical series."""

    def __init__(self, master: SecurityMaster, *, seed: int, as_of: dt.date, days: int) -> None:
        self.master = master
        self.seed = seed
        self.dates = trading_days(as_of, days)
        self.n = len(self.dates)
        self._build_factors()

    def _build_factors(self) -> None:
        n, daily = self.n, 1.0 / math.sqrt(TRADING_DAYS)
        rng = _rng(self.seed, "regime")
        # Volatility regime: an AR(1) on log-vol, so calm and stressed stretches alternate.
        x = np.zeros(n)
        shocks = rng.normal(0.0, 0.12, n)
        for i in range(1, n):
            x[i] = 0.97 * x[i - 1] + shocks[i]
        self.vol_mult = np.exp(x - x.mean())
        mkt_rng = _rng(self.seed, "market")
        self.market = mkt_rng.standard_t(6, n) * math.sqrt(4 / 6) * 0.15 * daily * self.vol_mult + 0.08 / TRADING_DAYS
        self.sectors: dict[str, np.ndarray] = {}
        self.styles = {name: _rng(self.seed, f"style:{name}").normal(0.0, 0.06 * daily, n) for name in STYLE_FACTORS}

    def _sector(self, sector: str) -> np.ndarray:
        if sector not in self.sectors:
            self.sectors[sector] = (
                _rng(self.seed, f"sector:{sector}").normal(0.0, 0.10, self.n) / math.sqrt(TRADING_DAYS) * self.vol_mult
            )
        return self.sectors[sector]

    def _returns(self, sec: Security) -> np.ndarray:
        daily = 1.0 / math.sqrt(TRADING_DAYS)
        rng = _rng(self.seed, f"idio:{sec.symbol}")
        beta, vol = sec.model_beta, sec.model_vol
        r = beta * self.market
        systematic_var = (beta * 0.15) ** 2
        if sec.symbol in ETF_STYLE:
            r = r + self.styles[ETF_STYLE[sec.symbol]]
            systematic_var += 0.06**2
        elif sec.asset_type in ("stock", "etf") and sec.sector not in ("Diversified", "Commodities", "Cash"):
            r = r + self._sector(sec.sector)
            systematic_var += 0.10**2
            if any(k in sec.industry for k in GROWTH_INDUSTRIES):
                r = r + 0.6 * self.styles["growth"]
            elif sec.sector in VALUE_SECTORS:
                r = r + 0.6 * self.styles["value"]
        if sec.sector == "Commodities":
            r = r + _rng(self.seed, "commodity").normal(0.0, 0.12 * daily, self.n)
            systematic_var += 0.12**2
        # Idiosyncratic part tops the total up to the asset's target volatility.
        idio_vol = math.sqrt(max(vol**2 - systematic_var, (0.1 * vol) ** 2 + 1e-8))
        if sec.asset_type in ("etf", "mutual_fund") and sec.sector != "Commodities":
            # A fund holds hundreds of names: little idiosyncratic risk is left.
            idio_vol = min(idio_vol, 0.03)
        scale = self.vol_mult if sec.asset_type != "private" else 1.0
        r = r + rng.normal(0.0, idio_vol * daily, self.n) * scale
        if sec.asset_type == "private":
            # Appraisal smoothing: marks follow the model value slowly, like quarterly NAVs.
            r = self._smooth(sec.model_beta * 0.5 * self.market + rng.normal(0.0, vol * daily, self.n), 0.85)
        return r

    @staticmethod
    def _smooth(r: np.ndarray, alpha: float) -> np.ndarray:
        out = np.empty_like(r)
        acc = 0.0
        for i, v in enumerate(r):
            acc = alpha * acc + (1 - alpha) * v
            out[i] = acc
        # Smoothing lowers variance; rescale to the innovation's scale times a private discount.
        return out * math.sqrt((1 + alpha) / (1 - alpha)) * 0.5

    def _vix(self) -> np.ndarray:
        rng = _rng(self.seed, "vix")
        x = np.empty(self.n)
        x[0] = math.log(16.0)
        eps = rng.normal(0.0, 0.045, self.n)
        for i in range(1, self.n):
            x[i] = (
                x[i - 1]
                + 0.06 * (math.log(16.0) + 0.4 * math.log(self.vol_mult[i]) - x[i - 1])
                - 4.0 * (self.market[i] - 0.08 / TRADING_DAYS)
                + eps[i]
            )
        return np.exp(x)

    def _anchor_index(self) -> int | None:
        try:
            return self.dates.index(ANCHOR_DATE)
        except ValueError:
            return None

    def series(self, sec: Security, entry_price: float | None) -> np.ndarray:
        if sec.symbol == "VIX":
            return np.round(self._vix(), 2)
        path = np.exp(np.cumsum(self._returns(sec)))
        anchor = self._anchor_index()
        if entry_price and entry_price > 0 and anchor is not None:
            path = path * (entry_price / path[anchor])
        else:
            ref = sec.ref_price or 100.0
            path = path * (ref / path[-1])
        return np.round(path, 4)

    def option_series(
        self, spec: OptionSpec, underlying: np.ndarray, und_vol: float
    ) -> tuple[list[dt.date], np.ndarray]:
        """Model closes for a listed option from its underlying's closes, up to expiry."""
        keep = [i for i, d in enumerate(self.dates) if d <= spec.expiry]
        if not keep:
            return [], np.array([])
        idx = np.array(keep)
        t = np.array([(spec.expiry - self.dates[i]).days / 365.0 for i in keep])
        values = black_scholes(underlying[idx], spec.strike, t, und_vol, RISK_FREE_RATE, spec.option_type)
        return [self.dates[i] for i in keep], np.round(np.maximum(values, 0.01), 4)

    def generate(
        self, symbols: Iterable[str], entry_prices: dict[str, float], options: Iterable[OptionSpec]
    ) -> dict[str, tuple[list[dt.date], np.ndarray]]:
        """Closes for every symbol (unknown ones get a generic equity profile) and option."""
        out: dict[str, tuple[list[dt.date], np.ndarray]] = {}
        for sym in sorted(set(symbols)):
            sec = self.master.get(sym) or Security(sym, sym, "Unknown", "Unknown", "stock", 1.0, 0.3)
            out[sym] = (self.dates, self.series(sec, entry_prices.get(sym)))
        for spec in options:
            if spec.underlying not in out:
                und = self.master.get(spec.underlying) or Security(
                    spec.underlying, spec.underlying, "Unknown", "Unknown", "stock", 1.0, 0.3
                )
                out[spec.underlying] = (self.dates, self.series(und, entry_prices.get(spec.underlying)))
            und_sec = self.master.get(spec.underlying)
            vol = 0.9 if spec.underlying == "VIX" else (und_sec.model_vol if und_sec else 0.3)
            dates, values = self.option_series(spec, out[spec.underlying][1], vol)
            if dates:
                out[spec.symbol] = (dates, values)
        return out
