"""Reference data for every demo symbol and factor/sector ETF, shipped as a package data file."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

# OCC-style option symbol: underlying, yymmdd, C/P, strike * 1000 (8 digits).
OPTION_SYMBOL = re.compile(r"^(?P<und>[A-Z.\-]{1,6})(?P<yymmdd>\d{6})(?P<cp>[CP])(?P<strike>\d{8})$")

OPTION_MULTIPLIER = 100.0


@dataclass(frozen=True, slots=True)
class Security:
    symbol: str
    name: str
    sector: str
    industry: str
    asset_type: str  # stock | etf | mutual_fund | bond_fund | private | index | option
    model_beta: float
    model_vol: float
    ref_price: float | None = None

    @property
    def is_private(self) -> bool:
        return self.asset_type == "private"


@dataclass(frozen=True, slots=True)
class SecurityMaster:
    securities: dict[str, Security]
    factor_etfs: dict[str, str]  # factor name -> ETF symbol
    sector_etfs: dict[str, str]  # sector -> ETF symbol

    def get(self, symbol: str) -> Security | None:
        sec = self.securities.get(symbol.upper())
        if sec is not None:
            return sec
        match = OPTION_SYMBOL.match(symbol.upper())
        if match:
            und = self.securities.get(match["und"])
            return Security(
                symbol=symbol.upper(),
                name=f"{match['und']} {'call' if match['cp'] == 'C' else 'put'} option",
                sector=und.sector if und else "Unknown",
                industry="Listed Option",
                asset_type="option",
                model_beta=und.model_beta if und else 1.0,
                model_vol=und.model_vol if und else 0.3,
            )
        return None

    def asset_class_for(self, symbol: str, *, has_option_fields: bool = False) -> str:
        """PUBLIC | OPTIONS | PRIVATE, the product's three asset classes."""
        if has_option_fields or OPTION_SYMBOL.match(symbol.upper()):
            return "OPTIONS"
        sec = self.securities.get(symbol.upper())
        if sec is not None and sec.is_private:
            return "PRIVATE"
        return "PUBLIC"

    def sector_of(self, symbol: str) -> str:
        sec = self.get(symbol)
        return sec.sector if sec else "Unknown"


@lru_cache(maxsize=1)
def load_security_master() -> SecurityMaster:
    raw = json.loads(resources.files("sigmachat.data").joinpath("security_master.json").read_text("utf-8"))
    secs = {
        sym: Security(
            symbol=sym,
            name=v["name"],
            sector=v["sector"],
            industry=v["industry"],
            asset_type=v["asset_type"],
            model_beta=float(v["model_beta"]),
            model_vol=float(v["model_vol"]),
            ref_price=v.get("ref_price"),
        )
        for sym, v in raw["securities"].items()
    }
    return SecurityMaster(secs, dict(raw["factor_etfs"]), dict(raw["sector_etfs"]))
