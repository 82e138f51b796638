"""Structure-aware truncation: valid JSON within budget, tail items dropped, meta records it."""

from __future__ import annotations

import json

from sigmachat.tools.envelope import dumps, fit_to_budget, make_envelope


def _env(data):
    return make_envelope({"tool": "t", "as_of": "2025-07-11", "truncated": False}, data)


def test_small_envelopes_pass_through_untouched():
    env = _env({"rows": [1, 2, 3]})
    fitted = fit_to_budget(env, 10_000)
    assert not fitted.truncated
    assert fitted.text == dumps(env)


def test_truncation_keeps_valid_json_and_records_what_was_dropped():
    rows = [{"symbol": f"S{i:03d}", "market_value": 1000.0 + i, "weight": 0.01} for i in range(300)]
    env = _env({"nav": 123.45, "holdings": rows, "sectors": [{"sector": "IT", "weight": 0.4}]})
    fitted = fit_to_budget(env, 2_000)
    assert fitted.truncated
    assert len(fitted.text) <= 2_000
    parsed = json.loads(fitted.text)  # always valid JSON
    kept = parsed["data"]["holdings"]
    assert 0 < len(kept) < 300
    assert kept == rows[: len(kept)]  # tail items dropped, order kept
    assert parsed["data"]["nav"] == 123.45 and parsed["data"]["sectors"] == [{"sector": "IT", "weight": 0.4}]
    meta = parsed["meta"]
    assert meta["truncated"] is True
    assert meta["original_count"] == 300
    assert meta["truncation"]["lists"] == [{"path": "data.holdings", "kept": len(kept), "original_count": 300}]
    # The untruncated envelope is left as it was.
    assert len(env["data"]["holdings"]) == 300 and env["meta"]["truncated"] is False


def test_nested_lists_are_trimmed_evenly_and_paired_lists_stay_aligned():
    scenarios = [{"id": f"s{i}", "positions": [{"symbol": f"P{j}", "pnl": -j} for j in range(40)]} for i in range(5)]
    symbols = [f"X{i}" for i in range(25)]
    matrix = [[0.5] * 25 for _ in range(25)]
    fitted = fit_to_budget(_env({"scenarios": scenarios, "symbols": symbols, "matrix": matrix}), 3_000)
    data = json.loads(fitted.text)["data"]
    assert len(data["scenarios"]) == 5  # the short list survives whole
    lengths = {len(s["positions"]) for s in data["scenarios"]}
    assert len(lengths) == 1 and lengths.pop() < 40
    assert len(data["matrix"]) == len(data["symbols"]) == len(data["matrix"][0])


def test_a_tool_set_original_count_is_kept():
    env = make_envelope({"tool": "t", "truncated": True, "original_count": 500}, {"positions": list(range(200))})
    parsed = json.loads(fit_to_budget(env, 600).text)
    assert parsed["meta"]["original_count"] == 500
    assert parsed["meta"]["truncation"]["lists"][0]["original_count"] == 200


def test_data_without_lists_that_cannot_fit_is_omitted_not_sliced():
    env = _env({"blob": "x" * 5_000})
    fitted = fit_to_budget(env, 800)
    parsed = json.loads(fitted.text)
    assert len(fitted.text) <= 800
    assert parsed["data"] is None
    assert parsed["meta"]["truncation"]["data_omitted"] is True
