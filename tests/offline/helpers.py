"""Shared helpers for the offline model tests: tool schemas like the registry's, clients, SSE parsing."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import openai

from sigmachat.offline.server import OfflineModelServer, Pacing
from sigmachat.offline.transport import OFFLINE_BASE_URL, OfflineTransport

MODEL = "sigmasight-offline-analyst"

_NULLABLE_PID = {"type": ["string", "null"], "description": "Portfolio id; null for the conversation's portfolio."}
# Strict-mode parameter schemas of the tool contract (names and arguments as the registry defines them).
TOOL_PARAMS: dict[str, dict[str, Any]] = {
    "list_user_portfolios": {},
    "get_portfolio_complete": {
        "portfolio_id": _NULLABLE_PID,
        "include_holdings": {"type": ["boolean", "null"]},
        "include_timeseries": {"type": ["boolean", "null"]},
    },
    "get_positions_details": {
        "portfolio_id": _NULLABLE_PID,
        "position_ids": {"type": ["array", "null"], "items": {"type": "string"}},
        "include_closed": {"type": ["boolean", "null"]},
    },
    "get_portfolio_data_quality": {"portfolio_id": _NULLABLE_PID},
    "get_prices_historical": {
        "portfolio_id": _NULLABLE_PID,
        "lookback_days": {"type": ["integer", "null"], "maximum": 180},
        "include_factor_etfs": {"type": ["boolean", "null"]},
    },
    "get_current_quotes": {"symbols": {"type": "array", "items": {"type": "string"}, "maxItems": 5}},
    "get_factor_etf_prices": {
        "lookback_days": {"type": ["integer", "null"]},
        "factors": {"type": ["array", "null"], "items": {"type": "string"}},
    },
    "get_analytics_overview": {"portfolio_id": _NULLABLE_PID},
    "get_factor_exposures": {"portfolio_id": _NULLABLE_PID, "lookback_days": {"type": ["integer", "null"]}},
    "get_sector_exposure": {"portfolio_id": _NULLABLE_PID},
    "get_correlation_matrix": {"portfolio_id": _NULLABLE_PID, "top_n": {"type": ["integer", "null"]}},
    "get_stress_test_results": {
        "portfolio_id": _NULLABLE_PID,
        "scenarios": {"type": ["array", "null"], "items": {"type": "string"}},
    },
    "get_concentration_metrics": {"portfolio_id": _NULLABLE_PID},
    "get_volatility_analysis": {"portfolio_id": _NULLABLE_PID},
    "get_company_profile": {"symbol": {"type": "string"}},
    "get_daily_movers": {"portfolio_id": _NULLABLE_PID, "threshold_pct": {"type": ["number", "null"]}},
    "get_market_overview": {},
}


def tool_specs() -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "name": name,
            "description": f"{name} (test schema)",
            "parameters": {
                "type": "object",
                "properties": props,
                "required": list(props),
                "additionalProperties": False,
            },
            "strict": True,
        }
        for name, props in TOOL_PARAMS.items()
    ]


def request_body(
    input_items: Any, *, stream: bool = True, tools: list[dict[str, Any]] | None = None, **extra: Any
) -> dict[str, Any]:
    body = {"model": MODEL, "input": input_items, "tools": tool_specs() if tools is None else tools, "stream": stream}
    body.update(extra)
    return body


def offline_client(server: OfflineModelServer | None = None, **server_kwargs: Any) -> openai.AsyncOpenAI:
    if server is None:
        server_kwargs.setdefault("model_name", MODEL)
        server_kwargs.setdefault("pacing", Pacing(0, 0))
        server = OfflineModelServer(**server_kwargs)
    http = httpx2.AsyncClient(transport=OfflineTransport(server))
    return openai.AsyncOpenAI(api_key="offline", base_url=OFFLINE_BASE_URL, http_client=http, max_retries=0)


def parse_sse(body: bytes) -> list[dict[str, Any]]:
    out = []
    for block in body.decode().split("\n\n"):
        data = [line[len("data: ") :] for line in block.splitlines() if line.startswith("data: ")]
        if data:
            out.append(json.loads("\n".join(data)))
    return out


def envelope(tool: str, data: Any, *, error: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    return {"meta": {"tool": tool, "as_of": "2025-07-11", "truncated": False, **meta}, "data": data, "error": error}


def follow_up_input(question: str, calls: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> list[dict[str, Any]]:
    """A user question, then (name, arguments, envelope) tool calls with their outputs."""
    items: list[dict[str, Any]] = [{"role": "user", "content": question}]
    for i, (name, args, env) in enumerate(calls):
        call_id = f"call_test{i}"
        items.append({"type": "function_call", "call_id": call_id, "name": name, "arguments": json.dumps(args)})
        items.append({"type": "function_call_output", "call_id": call_id, "output": json.dumps(env)})
    return items
