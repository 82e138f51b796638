"""Intent routing: which portfolio tools a question needs, decided deterministically from its text.

The offline analyst has no language model, so it reads a question the way a careful
keyword system would: a table of intent families, each a set of patterns and the tool call it
needs. Several intents can match one question ("largest position and sector exposure"), and
each becomes a call in the same model turn. Tickers are taken from upper-case words
(validated against the security master where possible) and from company names.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sigmachat.market.security_master import OPTION_SYMBOL, load_security_master
from sigmachat.offline.protocol import ToolCallPlan

# Upper-case words that are not tickers in a portfolio question.
_NOT_TICKERS = frozenset(
    """
    A I AM AN AND ARE AS AT BE BY DO FOR IF IN IS IT ME MY NO OF ON OR SO TO UP US WE
    NAV ETF ETFS PNL P L HHI USD EUR GBP CEO CFO AI OK YTD MTD QTD YOY PM AM VAR CVAR
    IPO ESG API UI TL DR TLDR FAQ LP GP PE VC REIT REITS BPS BP EPS PT ATH TWR IRR
    ROI ROE GDP CPI FOMC FED SEC US USA UK EU WHAT HOW WHY WHO WHEN WHICH THE TOP
    """.split()
)
_TICKER_RE = re.compile(r"(?<![\w$])\$?([A-Z][A-Z0-9]{0,5}(?:[.\-][A-Z0-9]{1,3})?|[A-Z]{1,6}\d{6}[CP]\d{8})(?![\w])")
_UUID_RE = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.IGNORECASE)
_LOOKBACK_RE = re.compile(
    r"\b(?:last|past|previous|over|for)\s+(\d{1,4}|a|one|two|three|six|twelve)\s+(day|week|month|year)s?\b"
)
_WORD_NUMBERS = {"a": 1, "one": 1, "two": 2, "three": 3, "six": 6, "twelve": 12}
# The tools' lookbacks count trading days.
_UNIT_DAYS = {"day": 1, "week": 5, "month": 21, "year": 252}
_GENERIC_NAME_WORDS = frozenset(
    "the vanguard fidelity ishares spdr invesco schwab select sector global first general american united".split()
)


@lru_cache(maxsize=1)
def _company_aliases() -> dict[str, str]:
    """Lower-case company name words that identify one listed stock ("apple" -> AAPL)."""
    seen: dict[str, list[str]] = {}
    for sec in load_security_master().securities.values():
        if sec.asset_type != "stock":
            continue
        first = re.sub(r"[^a-z]", "", sec.name.split()[0].lower()) if sec.name else ""
        if len(first) >= 4 and first not in _GENERIC_NAME_WORDS:
            seen.setdefault(first, []).append(sec.symbol)
    aliases = {word: syms[0] for word, syms in seen.items() if len(syms) == 1}
    if "GOOGL" in load_security_master().securities:
        aliases.setdefault("google", "GOOGL")
    return aliases


def extract_symbols(text: str) -> list[str]:
    """Tickers named in the text, in order of appearance, without duplicates."""
    master = load_security_master()
    found: list[str] = []
    for match in _TICKER_RE.finditer(text):
        raw = match.group(0)
        sym = match.group(1).upper()
        known = master.securities.get(sym) is not None or bool(OPTION_SYMBOL.match(sym))
        if sym in _NOT_TICKERS and not raw.startswith("$"):
            continue
        # A lone capital letter is a ticker only when it is one we know or a $cashtag.
        if len(sym) == 1 and not known and not raw.startswith("$"):
            continue
        if len(sym) == 1 and not raw.startswith("$") and not _single_letter_ticker(text, match.start()):
            continue
        if sym not in found:
            found.append(sym)
    # Lower-case tickers ("what about aapl?"): a known symbol of three or more letters that is
    # not an everyday word, or a shorter one right after a cue ("about hd").
    for match in re.finditer(r"(?<![\w$])([a-z][a-z0-9]{1,5}(?:[.\-][a-z]{1,2})?)(?![\w])", text):
        sym = match.group(1).upper()
        if sym in found or master.securities.get(sym) is None or sym in _NOT_TICKERS:
            continue
        if match.group(1) in _LOWER_CASE_WORDS:
            continue
        if len(sym) < 3 and not _BEFORE_SINGLE.search(text[: match.start()]):
            continue
        found.append(sym)
    lowered = text.lower()
    for word, sym in _company_aliases().items():
        if re.search(rf"\b{word}(?:'s)?\b", lowered) and sym not in found:
            found.append(sym)
    return found


# Everyday words that are also demo tickers: never read as tickers when written in lower case.
_LOWER_CASE_WORDS = frozenset({"cost", "shop", "sly", "nee", "dia", "qual", "f", "c", "v", "a", "hd", "pg", "ge"})
_BEFORE_SINGLE = re.compile(
    r"\b(about|in|of|is|on|own|hold|sell|buy|trim|add|price|quote|and|ticker)\s+$", re.IGNORECASE
)


def _single_letter_ticker(text: str, start: int) -> bool:
    """'What is V?' names Visa; 'Plan C for the weekend' names nothing."""
    return bool(_BEFORE_SINGLE.search(text[:start]))


def extract_portfolio_id(text: str) -> str | None:
    match = _UUID_RE.search(text)
    return match.group(0).lower() if match else None


def extract_lookback_days(text: str, *, default: int | None = None) -> int | None:
    match = _LOOKBACK_RE.search(text.lower())
    if not match:
        return default
    count_raw, unit = match.groups()
    count = _WORD_NUMBERS.get(count_raw) or int(count_raw)
    return count * _UNIT_DAYS[unit]


@dataclass(frozen=True, slots=True)
class Intent:
    """One family of questions and the tool call that answers it."""

    name: str
    patterns: tuple[str, ...]
    build: Callable[[QuestionContext], list[ToolCallPlan]]
    needs_symbols: bool = False

    def matches(self, text: str) -> bool:
        return any(re.search(p, text) for p in self.patterns)


@dataclass(slots=True)
class QuestionContext:
    text: str  # the user's words, lower-cased, with "sector/factor exposure" kept intact
    original: str
    symbols: list[str] = field(default_factory=list)
    portfolio_id: str | None = None
    rank: int | None = None  # "the second largest": 2
    top_n: int | None = None  # "my top 3 holdings": 3
    move_pct: float | None = None  # "a 30% drop": -30.0
    sectors: list[str] = field(default_factory=list)  # GICS sectors the question names
    other_portfolio: bool = False  # "and in the other portfolio?"
    short: bool = False  # about the short side ("my largest short")

    def pid(self) -> dict[str, Any]:
        return {"portfolio_id": self.portfolio_id}


def _complete(ctx: QuestionContext) -> list[ToolCallPlan]:
    return [
        ToolCallPlan("get_portfolio_complete", {**ctx.pid(), "include_holdings": True, "include_timeseries": False})
    ]


def _one(name: str, **extra: Any) -> Callable[[QuestionContext], list[ToolCallPlan]]:
    def build(ctx: QuestionContext) -> list[ToolCallPlan]:
        return [ToolCallPlan(name, {**ctx.pid(), **extra})]

    return build


def _no_portfolio(name: str, **extra: Any) -> Callable[[QuestionContext], list[ToolCallPlan]]:
    def build(ctx: QuestionContext) -> list[ToolCallPlan]:
        return [ToolCallPlan(name, dict(extra))]

    return build


def _quotes(ctx: QuestionContext) -> list[ToolCallPlan]:
    return [ToolCallPlan("get_current_quotes", {"symbols": ctx.symbols[:5]})]


def _profiles(ctx: QuestionContext) -> list[ToolCallPlan]:
    # One call per company, at most three: a profile question rarely names more.
    return [ToolCallPlan("get_company_profile", {"symbol": s}) for s in ctx.symbols[:3]]


def _history(ctx: QuestionContext) -> list[ToolCallPlan]:
    days = min(extract_lookback_days(ctx.text, default=30) or 30, 180)
    return [ToolCallPlan("get_prices_historical", {**ctx.pid(), "lookback_days": days, "include_factor_etfs": False})]


def _factor_etfs(ctx: QuestionContext) -> list[ToolCallPlan]:
    days = min(extract_lookback_days(ctx.text, default=30) or 30, 180)
    return [ToolCallPlan("get_factor_etf_prices", {"lookback_days": days, "factors": None})]


def _positions(ctx: QuestionContext) -> list[ToolCallPlan]:
    include_closed = bool(re.search(r"\bclosed\b|\bsold\b|\bexited\b", ctx.text))
    return [
        ToolCallPlan("get_positions_details", {**ctx.pid(), "position_ids": None, "include_closed": include_closed})
    ]


def _factors(ctx: QuestionContext) -> list[ToolCallPlan]:
    days = extract_lookback_days(ctx.text)
    return [ToolCallPlan("get_factor_exposures", {**ctx.pid(), "lookback_days": days if days and days >= 30 else 252})]


_MARKET_MOVE_RE = re.compile(
    r"\b(drop(?:s|ped)?|falls?|fell|declin(?:es?|ed)|tank(?:s|ed)?|crash(?:es|ed)?|sells? off|sold off|down|"
    r"rall(?:y|ies|ied)|"
    r"rises?|rose|jump(?:s|ed)?|up|gain(?:s|ed)?)\s+(?:by\s+|of\s+)?"
    r"(\d{1,2}(?:\.\d+)?)\s*(?:%|percent)"
    r"|(-|\+|minus |plus )(\d{1,2}(?:\.\d+)?)\s*(?:%|percent)"
    r"|\b(\d{1,2}(?:\.\d+)?)\s*(?:%|percent)\s+(?:(?:market|stock|equity|s&p|broad)\s+)?(drop|fall|decline|crash|sell-?off|"
    r"correction|downturn|rally|rise|gain|jump|move down|move up)"
)
_DOWN_WORDS = ("drop", "fall", "fell", "declin", "tank", "crash", "sell", "sold", "down", "correction", "move down")


def extract_market_move_pct(text: str) -> float | None:
    """'if the market drops 15%' -> -15.0; 'a 5% rally' is not parsed (direction first)."""
    match = _MARKET_MOVE_RE.search(text.lower())
    if not match:
        return None
    if match.group(2):
        size = float(match.group(2))
        down = match.group(1).startswith(_DOWN_WORDS)
    elif match.group(4):
        size = float(match.group(4))
        down = match.group(3).strip() in ("-", "minus")
    else:
        size = float(match.group(5))
        down = match.group(6).startswith(_DOWN_WORDS)
    if not 0 < size <= 50:
        return None
    return -size if down else size


def _stress(ctx: QuestionContext) -> list[ToolCallPlan]:
    args: dict[str, Any] = {**ctx.pid(), "scenarios": None}
    move = ctx.move_pct if ctx.move_pct is not None else extract_market_move_pct(ctx.text)
    if move is not None:
        args["custom_market_move_pct"] = move
    return [ToolCallPlan("get_stress_test_results", args)]


# Order matters only for the order of the calls (and so of the answer's sections).
INTENTS: tuple[Intent, ...] = (
    Intent(
        "portfolios",
        (r"\b(my|which|list|all|other|both) portfolios\b", r"portfolios do i have", r"how many portfolios"),
        _no_portfolio("list_user_portfolios"),
    ),
    Intent(
        "summary",
        (
            r"\bsummar(y|ise|ize)\b",
            r"\boverview of (my|the) portfolio",
            r"\bhow('s| is| has) (my|the) portfolio",
            r"\bportfolio (doing|look|performing)",
            r"\bsnapshot\b",
            r"\bnav\b",
            r"\bnet asset value\b",
            r"\bworth\b",
            r"\btotal value\b",
            r"\bhow much (is|am) (my|i)\b",
            r"\bcash\b",
        ),
        lambda ctx: _one("get_analytics_overview")(ctx) + _complete(ctx),
    ),
    Intent(
        "largest",
        (
            r"\b(largest|biggest|top|main|heaviest|major|greatest)\b[\w\s-]{0,20}\b(positions?|holdings?|stakes?|names?|bets?|investments?|shorts?|longs?)\b",
            r"\bwhat do i (own|hold) (the )?most\b",
            r"\bmost (money|capital) (in|into)\b",
        ),
        _complete,
    ),
    Intent(
        "holdings",
        (
            r"\bholdings?\b",
            r"\bpositions?\b",
            r"\bwhat do i (own|hold)\b",
            r"\bdo i (own|hold)\b",
            r"\bhow (much|many)\b.*\b(own|hold|shares)\b",
            r"\ballocation\b",
            r"\bin my portfolio\b",
            r"\bportfolio composition\b",
            r"\bmy (stocks|investments|assets)\b",
            r"\bweights?\b",
            r"\bunreali[sz]ed\b",
            r"\bp&l\b",
            r"\bpnl\b",
            r"\bprofits?\b",
            r"\b(gains?|losses?) (on|in)\b",
            r"\bwinners?\b",
            r"\blosers? in my\b",
            r"\bmade money\b",
        ),
        _complete,
    ),
    Intent(
        "position_details",
        (
            r"\blots?\b",
            r"\bentry (price|date)s?\b",
            r"\bcost basis\b",
            r"\bclosed positions?\b",
            r"\bwhen did i (buy|purchase)\b",
            r"\bpurchase price\b",
            r"\boptions? (positions?|contracts?|legs?)\b",
            r"\bexpir(y|ies|ation|ing)\b",
            r"\bstrikes?\b",
        ),
        _positions,
    ),
    Intent(
        "exposure",
        (
            r"\bexposures?\b",
            r"\bgross\b",
            r"\bleverage[d]?\b",
            r"\blong/short\b",
            r"\blong and short\b",
            r"\bnet (long|short)\b",
            r"\bshort (book|side|positions?)\b",
            r"\blong (book|side)\b",
            r"\basset class(es)?\b",
        ),
        _one("get_analytics_overview"),
    ),
    Intent(
        "sectors",
        (r"\bsectors?\b", r"\bindustr(y|ies)\b", r"\btech (weight|exposure|allocation|heavy)\b"),
        _one("get_sector_exposure"),
    ),
    Intent(
        "factors",
        (
            r"\bfactors?\b",
            r"\bbetas?\b",
            r"\bmomentum\b",
            r"\bvalue (vs\.?|versus|or) growth\b",
            r"\bstyle (tilt|exposure|bias)",
            r"\bsensitiv(e|ity) to (the )?market\b",
            r"\bquality factor\b",
            r"\bsize factor\b",
        ),
        _factors,
    ),
    Intent(
        "risk",
        (
            r"\brisk(y|iness)?\b",
            r"\bvolatil\w*",
            r"\bvol\b",
            r"\bvar\b",
            r"\bvalue at risk\b",
            r"\bstandard deviation\b",
            r"\bdrawdowns?\b",
            r"\bcontribut\w* to risk\b",
            r"\brisk contribution",
        ),
        _one("get_volatility_analysis"),
    ),
    Intent(
        "stress",
        (
            r"\bstress",
            r"\bscenarios?\b",
            r"\bwhat if\b",
            r"\bcrash(es)?\b",
            r"\bsell-?offs?\b",
            r"\bdownturn\b",
            r"\brecession\b",
            r"\bshocks?\b",
            r"\bmarket (drops?|falls?|declines?|tanks?)\b",
            r"\brates? (rise|rises|hike|hikes|go up|up)\b",
            r"\b(drops?|falls?) (by )?\d+ ?%",
            r"-\d+ ?%",
            r"\bbear market\b",
            r"\bhedged?\b",
            r"\d+ ?(%|percent) (market |stock |equity )?(drop|fall|decline|crash|sell-?off|correction|downturn|rally)",
        ),
        _stress,
    ),
    Intent(
        "concentration",
        (
            r"\bconcentrat\w*",
            r"\bdiversif\w*",
            r"\bhhi\b",
            r"\bherfindahl\b",
            r"\beffective number\b",
            r"\btop[- ]?(5|10|five|ten)\b",
            r"\bsingle[- ]name\b",
            r"\beggs in one basket\b",
        ),
        _one("get_concentration_metrics"),
    ),
    Intent(
        "correlation",
        (r"\bcorrelat\w*", r"\bmove together\b", r"\bco-?move"),
        lambda ctx: _one("get_correlation_matrix", top_n=ctx.top_n or 10)(ctx),
    ),
    Intent(
        "movers",
        (
            r"\bmovers?\b",
            r"\bgainers?\b",
            r"\blosers?\b",
            r"\bmoved (today|the most|most)\b",
            r"\btoday'?s (move|moves|change|performance)\b",
            r"\b(up|down) today\b",
            r"\bbiggest (move|moves|change|changes)\b",
            r"\bdaily (change|move)s?\b",
            r"\bwhat moved\b",
            r"\bmoving today\b",
            r"\bchanged today\b",
        ),
        _one("get_daily_movers", threshold_pct=0.5),
    ),
    Intent(
        "benchmark",
        (
            (
                r"\b(vs\.?|versus|compared?|comparison|relative|against|than)\b"
                r".{0,25}\b(s&p|sp ?500|spx|spy|benchmark|index|market)\b"
            ),
            r"\b(over|under)[- ]?weight(ed)?\b",
            r"\bbenchmark\b",
            r"\bactive weights?\b",
        ),
        _one("get_benchmark_comparison"),
    ),
    Intent(
        "market",
        (
            r"\bmarket (overview|today|conditions|summary|backdrop|context)\b",
            r"\bhow('s| is| was| did) the (overall |broad |stock )?market\b",
            r"\bs&p\b",
            r"\bnasdaq\b",
            r"\bdow\b",
            r"\bvix\b",
            r"\bbroad market\b",
            r"\bindices\b",
            r"\bindexes\b",
        ),
        _no_portfolio("get_market_overview"),
    ),
    Intent(
        "data_quality",
        (
            r"\bdata quality\b",
            r"\bmissing (prices?|data)\b",
            r"\bstale\b",
            r"\bcoverage\b",
            r"\bprice (source|quality)\b",
            r"\bdata (issues?|gaps?|problems?)\b",
            r"\bdemo (prices|data)\b",
        ),
        _one("get_portfolio_data_quality"),
    ),
    Intent(
        "history",
        (
            r"\bhistor(y|ical)\b",
            r"\bprice (chart|trend|series|history)\b",
            r"\btime series\b",
            r"\bperformance over\b",
            r"\breturns? over\b",
            r"\bover the (last|past)\b",
            r"\btrend\b",
        ),
        _history,
    ),
    Intent("factor_etfs", (r"\bfactor etfs?\b", r"\bfactor (prices|performance|returns)\b"), _factor_etfs),
    Intent(
        "quotes",
        (
            r"\bprices?\b",
            r"\bquotes?\b",
            r"\btrading\b",
            r"\bhow (is|are|did) \S+ (doing|trading|do)\b",
            r"\b52[- ]week\b",
            r"\blast close\b",
            r"\bclos(e|ed|ing)\b",
            r"\bday change\b",
            r"\bworth\b",
        ),
        _quotes,
        needs_symbols=True,
    ),
    Intent(
        "profile",
        (
            r"\bwhat does \S+ do\b",
            r"\btell me about\b",
            r"\bcompany\b",
            r"\bprofile\b",
            r"\bbusiness\b",
            r"\bwho is\b",
            r"\bwhat is \S+\??$",
            r"\bdescribe\b",
            r"\bwhat kind of company\b",
            r"\bsector is\b",
            r"\bindustry is\b",
        ),
        _profiles,
        needs_symbols=True,
    ),
)
INTENT_NAMES = tuple(i.name for i in INTENTS)

_GREETING = re.compile(
    r"^\s*(hi|hello|hey|hiya|yo|good (morning|afternoon|evening)|thanks|thank you|cheers|ok|okay)\b"
    r"[\s!.,]*\w{0,12}[\s!.]*$",
    re.IGNORECASE,
)
_HELP = re.compile(
    r"\bwhat can you (do|tell|answer)\b|\bhelp\b|\bhow do you work\b|\bwho are you\b|\bwhat are you\b|\bcapabilit",
    re.IGNORECASE,
)
_PORTFOLIO_WORDS = re.compile(r"\b(portfolio|my|i own|i hold|account|investments?|book|fund)\b")
_FOLLOW_UP = re.compile(
    r"^\s*(and|also|what about|how about|same|more|tell me more|why|explain|break (it|that) down|details?|go on|"
    r"and\b|then)\b"
    r"|\b(that|those|these|it|them)\b",
    re.IGNORECASE,
)
_HOLDINGS_EXPLICIT = re.compile(
    r"\b(show|list|what are|what's in|display|give me|see)\b.{0,20}\b(holdings|positions)\b|\bwhat do i (own|hold)\b"
    r"|p&l|pnl|unreali[sz]ed|profits?|\bweights?\b|\ballocation\b|\bhow (much|many)\b|\bdo i (own|hold)\b"
)
# Phrases whose words would trigger a broader intent than the user meant.
_SCOPED_PHRASES = (
    (re.compile(r"\b(sector|industry)\s+(exposures?|weights?|allocation|breakdown|mix)\b"), "sectors"),
    (re.compile(r"\b(factor|style)\s+(exposures?|betas?|loadings?|tilts?)\b"), "factors"),
    (re.compile(r"\brisk contributions?\b|\bcontributions? to risk\b"), "risk"),
    (re.compile(r"\bmarket value\b"), "holdings"),
    (re.compile(r"\btop (gainers|losers|movers)\b"), "movers"),
    (re.compile(r"\bstress[- ]?test\w*\b"), "stress"),
    (re.compile(r"\bfactor etfs?\b"), "factor_etfs"),
    (
        re.compile(
            r"\b(exposure|exposed|allocation|weight(ing)?)\s+(to|in)\s+"
            r"(tech|technology|financials?|energy|health ?care|"
            r"industrials?|utilities|materials|real estate|consumer \w+|communication \w+|staples|discretionary)\b"
        ),
        "sectors",
    ),
)


@dataclass(frozen=True, slots=True)
class Routing:
    """The decision for one question: the matched intents and the tool calls they need."""

    intents: tuple[str, ...]
    calls: tuple[ToolCallPlan, ...]
    symbols: tuple[str, ...] = ()
    kind: str = "tools"  # tools | greeting | help | out_of_scope | ambiguous
    rank: int | None = None
    top_n: int | None = None
    sectors: tuple[str, ...] = ()
    other_portfolio: bool = False
    short: bool = False


_ORDINALS = {"second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4, "fifth": 5, "5th": 5}
_ORDINAL_RE = re.compile(r"\b(second|2nd|third|3rd|fourth|4th|fifth|5th)\b")
_TOP_N_RE = re.compile(
    r"\btop[- ]?(\d{1,2}|three|four|five|six|seven|eight|ten)\b|\b(\d{1,2}|three|four|five|six|seven|eight|ten) "
    r"(largest|biggest|top)\b"
)
_COUNT_WORDS = {"three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "ten": 10}
OTHER_PORTFOLIO_RE = re.compile(
    r"\b(other|another|second|2nd) (portfolio|one|sleeve|book|account)\b|\bin the other\b|\bthe other\b\W*$"
)
# GICS sector names by the words people use for them.
SECTOR_WORDS = (
    (r"\b(information technology|tech|technology)\b", "Information Technology"),
    (r"\bfinancials?\b|\bbanks?\b", "Financials"),
    (r"\bconsumer discretionary\b|\bdiscretionary\b", "Consumer Discretionary"),
    (r"\bconsumer staples\b|\bstaples\b", "Consumer Staples"),
    (r"\bcommunication services?\b|\btelecom\w*\b|\bcommunications\b", "Communication Services"),
    (r"\bhealth ?care\b", "Health Care"),
    (r"\bindustrials?\b", "Industrials"),
    (r"\benergy\b", "Energy"),
    (r"\butilit(y|ies)\b", "Utilities"),
    (r"\breal estate\b", "Real Estate"),
    (r"\bmaterials\b", "Materials"),
)


def extract_rank(text: str) -> int | None:
    """'the second largest' -> 2 (not 'my second portfolio')."""
    if OTHER_PORTFOLIO_RE.search(text):
        return None
    match = _ORDINAL_RE.search(text.lower())
    return _ORDINALS[match.group(1)] if match else None


def extract_top_n(text: str) -> int | None:
    """'top 3 holdings' / 'my five largest positions' -> 3 / 5 (1 to 20)."""
    match = _TOP_N_RE.search(text.lower())
    if not match:
        return None
    raw = match.group(1) or match.group(2)
    n = _COUNT_WORDS.get(raw) or int(raw)
    return n if 1 <= n <= 20 else None


def extract_sectors(text: str) -> list[str]:
    lowered = text.lower()
    return [name for pattern, name in SECTOR_WORDS if re.search(pattern, lowered)]


def classify(text: str, *, symbols: list[str] | None = None) -> tuple[list[str], QuestionContext]:
    """The intent names a question matches, in table order, and its context. ``symbols``: the
    tickers the question refers to when it names none itself ("how has it done?")."""
    lowered = " ".join(text.lower().split())
    ctx = QuestionContext(
        text=lowered,
        original=text,
        symbols=extract_symbols(text) or list(symbols or ()),
        portfolio_id=extract_portfolio_id(text),
    )
    ctx.rank = extract_rank(lowered)
    ctx.top_n = extract_top_n(lowered)
    ctx.move_pct = extract_market_move_pct(lowered)
    ctx.sectors = extract_sectors(lowered)
    ctx.other_portfolio = bool(OTHER_PORTFOLIO_RE.search(lowered))
    ctx.short = bool(re.search(r"\bshorts?\b|\bshorted\b", lowered))
    forced: list[str] = []
    scrubbed = lowered
    for pattern, scoped_intent in _SCOPED_PHRASES:
        if pattern.search(scrubbed):
            forced.append(scoped_intent)
            scrubbed = pattern.sub(" ", scrubbed)
    names = []
    for intent in INTENTS:
        if intent.needs_symbols and not ctx.symbols:
            continue
        if intent.name in forced or intent.matches(scrubbed):
            names.append(intent.name)
    # A question about a ticker with no other intent ("what about aapl?"): what the user holds
    # in it first, then its quote.
    ticker_only = bool(ctx.symbols) and not names
    if ticker_only:
        names = ["holdings", "quotes"]
    # Prices of "my" holdings without tickers are a holdings question.
    if (
        ctx.symbols
        and "holdings" in names
        and "quotes" in names
        and not ticker_only
        and not re.search(r"\bquotes?\b|\bprices?\b", lowered)
    ):
        names.remove("quotes")
    # "holdings" as the subject of another question ("which of my holdings move together")
    # is not a request for the holdings table.
    specific = set(names) - {"holdings", "largest", "summary", "portfolios"}
    if "holdings" in names and specific and not ticker_only and not _HOLDINGS_EXPLICIT.search(lowered):
        names.remove("holdings")
    # Lot-level detail answers a positions question more precisely than the holdings table.
    if "position_details" in names and "holdings" in names:
        names.remove("holdings")
    # "largest" already brings the holdings table.
    if "largest" in names and "holdings" in names:
        names.remove("holdings")
    # A stress "what if" that names the market needs no market overview.
    if "stress" in names and "market" in names and not re.search(r"\bmarket (overview|today|conditions)\b", lowered):
        names.remove("market")
    # A comparison with the S&P 500 is answered by the benchmark tool alone (SPY is the yardstick, not a question).
    if "benchmark" in names:
        names = [n for n in names if n not in ("market", "sectors", "quotes", "profile", "holdings", "exposure")]
        ctx.symbols = [s for s in ctx.symbols if s != "SPY"]
    # A question about a ticker also says what the user holds in it.
    if (
        ctx.symbols
        and ({"quotes", "profile"} & set(names))
        and not ({"holdings", "largest", "position_details"} & set(names))
    ):
        names.append("holdings")
    # "My second largest sector" ranks sectors, not positions.
    if (
        "largest" in names
        and "sectors" in names
        and re.search(r"\b(largest|biggest|top|main)\b[\w\s-]{0,12}\bsectors?\b", lowered)
    ):
        names.remove("largest")
    return names, ctx


def route(text: str, *, previous_user_texts: list[str] | None = None) -> Routing:
    """Tool calls for the user's latest message; earlier messages resolve follow-ups."""
    from sigmachat.offline.dialogue import PastTurn, route_conversation

    return route_conversation([PastTurn(t, "") for t in previous_user_texts or []], text)


def build_calls(names: list[str], ctx: QuestionContext) -> tuple[ToolCallPlan, ...]:
    """The tool calls of the intents, in order, without duplicates."""
    calls: list[ToolCallPlan] = []
    seen: set[str] = set()
    by_name = {i.name: i for i in INTENTS}
    for name in names:
        for call in by_name[name].build(ctx):
            key = call.name + call.arguments_json
            if key not in seen:
                seen.add(key)
                calls.append(call)
    return tuple(calls)
