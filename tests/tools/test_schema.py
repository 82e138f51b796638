"""The contract: tool names, strict JSON Schemas, argument validation."""

from __future__ import annotations

import copy

import pytest
from agents.strict_schema import ensure_strict_json_schema

from sigmachat.settings import Settings
from sigmachat.tools.envelope import ToolValidationError
from sigmachat.tools.registry import TOOL_ORDER, build_registry
from sigmachat.tools.risk import StressArgs
from sigmachat.tools.schema import parse_arguments, validate_arguments

CONTRACT = [
    "list_user_portfolios", "get_portfolio_complete", "get_positions_details", "get_portfolio_data_quality",
    "get_prices_historical", "get_current_quotes", "get_factor_etf_prices", "get_analytics_overview",
    "get_factor_exposures", "get_sector_exposure", "get_correlation_matrix", "get_stress_test_results",
    "get_concentration_metrics", "get_volatility_analysis", "get_company_profile", "get_daily_movers",
    "get_market_overview", "get_benchmark_comparison", "remember",  # the original contract's 17, then ours
]  # fmt: skip
NOT_PORTFOLIO_SCOPED = {
    "list_user_portfolios", "get_current_quotes", "get_factor_etf_prices", "get_company_profile", "get_market_overview",
    "remember",
}  # fmt: skip


@pytest.fixture(scope="module")
def registry():
    return build_registry(Settings(_env_file=None))


def test_tool_names_are_the_contract(registry):
    assert [s.name for s in registry.specs()] == CONTRACT == list(TOOL_ORDER)
    assert {s.name for s in registry.specs() if not s.portfolio_scoped} == NOT_PORTFOLIO_SCOPED


def test_parameters_are_strict_json_schema(registry):
    for tool in registry.openai_tools():
        assert tool["type"] == "function" and tool["strict"] is True and tool["description"]
        params = tool["parameters"]
        assert params["type"] == "object" and params["additionalProperties"] is False
        assert params["required"] == list(params["properties"])
        for name, prop in params["properties"].items():
            assert "default" not in prop and "title" not in prop, (tool["name"], name)
        # Already strict: the Agents SDK's converter has nothing to change.
        assert ensure_strict_json_schema(copy.deepcopy(params)) == params, tool["name"]


def test_optional_parameters_are_nullable_with_their_default_described(registry):
    specs = {s.name: s.parameters["properties"] for s in registry.specs()}
    assert specs["get_factor_exposures"]["lookback_days"]["type"] == ["integer", "null"]
    assert "Default 252" in specs["get_factor_exposures"]["lookback_days"]["description"]
    assert specs["get_prices_historical"]["lookback_days"]["maximum"] == 180
    assert specs["get_current_quotes"]["symbols"] == {
        "description": "Ticker symbols, 1 to 5.", "items": {"type": "string"},
        "maxItems": 5, "minItems": 1, "type": "array",
    }  # fmt: skip
    assert specs["get_company_profile"]["symbol"]["type"] == "string"  # required, not nullable
    for props in specs.values():
        if "portfolio_id" in props:
            assert props["portfolio_id"]["type"] == ["string", "null"]
    stress = specs["get_stress_test_results"]["scenarios"]
    assert stress["type"] == ["array", "null"]
    assert set(stress["items"]["enum"]) == {
        "market_down_10",
        "market_down_20",
        "tech_selloff",
        "rates_up_100bp",
        "volatility_spike",
    }


def test_null_means_default_and_errors_name_the_field():
    args = validate_arguments(StressArgs, {"portfolio_id": "p", "scenarios": None, "custom_market_move_pct": None})
    assert args.scenarios is None
    with pytest.raises(ToolValidationError) as exc:
        validate_arguments(StressArgs, {"portfolio_id": "p", "scenarios": ["meteor"]})
    assert "scenarios.0" in exc.value.message and "meteor" in exc.value.message
    with pytest.raises(ToolValidationError) as exc:
        validate_arguments(StressArgs, {"portfolio_id": "p", "colour": "red"})
    assert "colour: unknown parameter" in exc.value.message


def test_arguments_must_be_a_json_object():
    assert parse_arguments('{"a": 1}') == {"a": 1}
    assert parse_arguments("") == {}
    with pytest.raises(ToolValidationError, match="not valid JSON"):
        parse_arguments('{"a": ')
    with pytest.raises(ToolValidationError, match="JSON object"):
        parse_arguments("[1, 2]")
