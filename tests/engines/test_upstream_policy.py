"""The upstream policy itself, table by table: each exception or turn end → failure code and
retryability, the retry decision, the delay (Retry-After in seconds, in ms, as an HTTP-date,
or jittered backoff) and the terminal RunFailed it builds. The engines' side of the same
rules is in test_policy_parity.py."""

from __future__ import annotations

import email.utils
import json
import time

import httpx2
import openai
import pytest
from agents.exceptions import MaxTurnsExceeded, ModelBehaviorError, ModelTimeoutError

from sigmachat.agent.events import EventFactory, ToolCallRecord, Usage
from sigmachat.agent.failures import kind
from sigmachat.engines.upstream_policy import (
    ModelCalls,
    Retry,
    UpstreamFailure,
    UpstreamPolicy,
    classify_exception,
    retry_after_ms,
)
from tests.conftest import make_settings

URL = "https://api.openai.com/v1/responses"
NOW = 1_800_000_000.0  # a fixed "now" for HTTP-dates


def _status(status: int, headers: dict[str, str] | None = None, body: object | None = None) -> openai.APIStatusError:
    """The SDK's own exception for an HTTP status, built the way the client builds it."""
    body = body if body is not None else {"error": {"message": "x", "type": "server_error"}}
    response = httpx2.Response(
        status,
        headers={"content-type": "application/json", **(headers or {})},
        content=json.dumps(body).encode(),
        request=httpx2.Request("POST", URL),
    )
    client = openai.AsyncOpenAI(api_key="sk-test")
    return client._make_status_error_from_response(response)


REQUEST = httpx2.Request("POST", URL)

# exception -> (code, retryable, retry_after_ms: an exact value, None, or a (low, high) range)
CLASSIFICATION = [
    ("429 Retry-After seconds", _status(429, {"retry-after": "2"}), "rate_limited", True, 2000),
    ("429 Retry-After fraction", _status(429, {"retry-after": "0.05"}), "rate_limited", True, 50),
    ("429 Retry-After-ms", _status(429, {"retry-after-ms": "150"}), "rate_limited", True, 150),
    (
        "429 ms wins over seconds",
        _status(429, {"retry-after-ms": "150", "retry-after": "9"}),
        "rate_limited",
        True,
        150,
    ),
    (
        "429 Retry-After HTTP-date",  # built when the test runs: its wait is measured from now
        lambda: _status(429, {"retry-after": email.utils.formatdate(time.time() + 30, usegmt=True)}),
        "rate_limited",
        True,
        (25_000, 30_000),
    ),
    ("429 Retry-After garbage", _status(429, {"retry-after": "soon"}), "rate_limited", True, None),
    ("429 Retry-After-ms not finite", _status(429, {"retry-after-ms": "1e400"}), "rate_limited", True, None),
    ("429 Retry-After NaN", _status(429, {"retry-after": "nan"}), "rate_limited", True, None),
    ("429 without Retry-After", _status(429), "rate_limited", True, None),
    ("401", _status(401), "upstream_auth", False, None),
    ("403", _status(403), "upstream_auth", False, None),
    ("500 with Retry-After", _status(500, {"retry-after": "1"}), "upstream_error", True, 1000),
    ("502", _status(502), "upstream_error", True, None),
    ("503", _status(503, {"retry-after": "3"}), "upstream_overloaded", True, 3000),
    ("529", _status(529), "upstream_overloaded", True, None),
    ("408", _status(408, {"retry-after": "3"}), "timeout", True, None),
    ("400", _status(400), "bad_request", False, None),
    ("404", _status(404), "bad_request", False, None),
    ("422", _status(422), "bad_request", False, None),
    ("timeout", openai.APITimeoutError(request=REQUEST), "timeout", True, None),
    ("connection", openai.APIConnectionError(request=REQUEST), "network_error", True, None),
    ("SSE error payload", openai.APIError("boom", REQUEST, body={"code": "x"}), "response_failed", True, None),
    ("undecodable event", json.JSONDecodeError("Expecting value", "{not", 1), "malformed_event", True, None),
    ("invalid event", ValueError("bad event"), "malformed_event", True, None),
    ("our bug", RuntimeError("oops"), "internal_error", True, None),
    ("Agents: too many turns", MaxTurnsExceeded("Max turns (8) exceeded"), "max_tool_iterations", False, None),
    ("Agents: model timeout", ModelTimeoutError(30), "timeout", True, None),
    (
        "Agents: chat stream without finish_reason",
        ModelBehaviorError("Chat Completions stream ended before receiving a finish_reason for choice 0."),
        "stream_incomplete",
        True,
        None,
    ),
    (
        "Agents: chat stream cut by length",
        ModelBehaviorError("Chat Completions stream terminated with finish_reason='length' before any output"),
        "response_incomplete",
        False,
        None,
    ),
    ("Agents: other model behaviour", ModelBehaviorError("tool output invalid"), "internal_error", True, None),
]


@pytest.mark.parametrize(
    ("exc", "code", "retryable", "wait"), [c[1:] for c in CLASSIFICATION], ids=[c[0] for c in CLASSIFICATION]
)
def test_every_exception_either_engine_sees_has_one_code(exc, code, retryable, wait):
    exc = exc if isinstance(exc, BaseException) else exc()
    failure = classify_exception(exc, output_limit=777)
    assert failure.code == code
    assert kind(failure.code).retryable is retryable
    if isinstance(wait, tuple):
        assert failure.retry_after_ms is not None and wait[0] <= failure.retry_after_ms <= wait[1]
    else:
        assert failure.retry_after_ms == wait
    if code == "response_incomplete":
        assert failure.incomplete_reason == "max_output_tokens" and "777 tokens" in failure.message


def test_an_sdk_error_keeps_the_upstreams_own_code_and_message_apart_from_ours():
    exc = _status(400, body={"error": {"code": "context_length_exceeded", "message": "too long (host gpu-7)"}})
    failure = classify_exception(exc)
    assert (failure.code, failure.upstream_code) == ("bad_request", "context_length_exceeded")
    assert "gpu-7" in failure.upstream_message and "gpu-7" not in failure.message


def test_a_classified_failure_stays_itself():
    failure = UpstreamFailure("stream_incomplete")
    assert classify_exception(failure) is failure
    assert failure.message == kind("stream_incomplete").message  # our words by default


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "2"}, 2000),
        ({"retry-after": " 2 "}, 2000),
        ({"retry-after-ms": "150"}, 150),
        ({"retry-after-ms": "abc", "retry-after": "1"}, 1000),  # an unusable ms header falls through
        ({"retry-after": "-5"}, 0),
        ({"retry-after": email.utils.formatdate(NOW + 7, usegmt=True)}, 7000),
        ({"retry-after": email.utils.formatdate(NOW - 60, usegmt=True)}, 0),  # a date already past: now
        ({"retry-after": email.utils.formatdate(NOW + 4)}, 4000),  # "-0000": a zone-less date is UTC
        ({"retry-after": "inf"}, None),
        ({"retry-after-ms": "1e400"}, None),
        ({"retry-after": "Wed, 99 Foo 2026"}, None),
        ({}, None),
    ],
)
def test_retry_after_in_seconds_ms_or_as_an_http_date(headers, expected):
    assert retry_after_ms(headers, now=NOW) == expected


def _policy(tmp_path, fallback="gpt-4.1-nano", **settings):
    values = {"retry_max_attempts": 3, "retry_base_delay_ms": 500, "retry_max_delay_ms": 8000, **settings}
    return UpstreamPolicy(make_settings(tmp_path, **values), fallback, uniform=lambda low, high: high)


# (code, attempt, produced output, fallback model) -> the retry, or None
RETRIES = [
    ("rate_limited", 1, False, "gpt-4.1-nano", Retry(2, 500, "rate_limited", "gpt-4.1-mini", "gpt-4.1-nano")),
    ("rate_limited", 2, False, "gpt-4.1-nano", Retry(3, 1000, "rate_limited", "gpt-4.1-mini")),
    ("rate_limited", 3, False, "gpt-4.1-nano", None),  # attempts used up
    ("upstream_error", 1, True, "gpt-4.1-nano", None),  # the user saw output: never again
    ("upstream_overloaded", 1, False, None, Retry(2, 500, "upstream_overloaded", "gpt-4.1-mini")),
    ("timeout", 1, False, "gpt-4.1-mini", Retry(2, 500, "timeout", "gpt-4.1-mini")),  # fallback is the model
    ("network_error", 2, False, "gpt-4.1-nano", Retry(3, 1000, "network_error", "gpt-4.1-mini")),
    ("stream_incomplete", 1, False, "gpt-4.1-nano", None),
    ("malformed_event", 1, False, "gpt-4.1-nano", None),
    ("response_failed", 1, False, "gpt-4.1-nano", None),
    ("response_incomplete", 1, False, "gpt-4.1-nano", None),
    ("upstream_auth", 1, False, "gpt-4.1-nano", None),
    ("bad_request", 1, False, "gpt-4.1-nano", None),
    ("internal_error", 1, False, "gpt-4.1-nano", None),
]


@pytest.mark.parametrize(("code", "attempt", "produced", "fallback", "expected"), RETRIES)
def test_the_retry_decision(tmp_path, code, attempt, produced, fallback, expected):
    policy = _policy(tmp_path, fallback)
    decision = policy.decide(UpstreamFailure(code), attempt=attempt, produced=produced, model="gpt-4.1-mini")
    assert decision == expected


@pytest.mark.parametrize(
    ("attempt", "retry_after", "expected"),
    [
        (1, None, 500),  # base, jitter pinned at its top
        (2, None, 1000),
        (5, None, 8000),  # 8000 = the cap
        (9, None, 8000),
        (1, 2000, 2000),  # the upstream's wait wins over ours...
        (1, 20_000, 20_000),  # ...even over the cap
        (3, 100, 2000),  # ...but never shortens ours
    ],
)
def test_the_delay_is_backoff_or_the_upstreams_retry_after(tmp_path, attempt, retry_after, expected):
    assert _policy(tmp_path).backoff_ms(attempt, retry_after) == expected


def test_backoff_jitter_stays_within_half_to_full_base(tmp_path):
    policy = UpstreamPolicy(make_settings(tmp_path, retry_base_delay_ms=400), None)
    assert all(100 <= policy.backoff_ms(2, None) <= 800 for _ in range(200))
    assert UpstreamPolicy(make_settings(tmp_path, retry_base_delay_ms=0), None).backoff_ms(3, None) == 0


def test_the_delay_of_a_retry_comes_from_the_failures_retry_after(tmp_path):
    failure = classify_exception(_status(429, {"retry-after": "3"}))
    decision = _policy(tmp_path).decide(failure, attempt=1, produced=False, model="gpt-4.1-mini")
    assert decision is not None and decision.delay_ms == 3000


def test_a_wait_longer_than_the_cap_fails_at_once_unless_the_fallback_can_answer(tmp_path):
    """An upstream asking for 20 s (cap 8 s) does not hold the run silent for 20 s."""
    failure = classify_exception(_status(429, {"retry-after": "20"}))
    assert failure.retry_after_ms == 20_000
    no_fallback = _policy(tmp_path, fallback=None)
    assert no_fallback.decide(failure, attempt=1, produced=False, model="gpt-4.1-mini") is None
    policy = _policy(tmp_path)
    switch = policy.decide(failure, attempt=1, produced=False, model="gpt-4.1-mini")
    assert switch is not None and switch.to_model == "gpt-4.1-nano" and switch.delay_ms == 500
    # Already on the fallback, the same answer ends the run (RunFailed carries retry_after_ms).
    assert policy.decide(failure, attempt=2, produced=False, model="gpt-4.1-nano") is None


def test_a_retry_is_counted_on_the_run_and_switches_once(tmp_path):
    policy = _policy(tmp_path)
    calls = ModelCalls(model="gpt-4.1-mini", attempts=1)
    first = policy.retry(UpstreamFailure("rate_limited"), attempt=1, produced=False, calls=calls)
    assert first is not None and first.notices() == [
        {"kind": "retry_scheduled", "attempt": 2, "delay_ms": 500, "reason": "rate_limited"},
        {"kind": "model_switch", "from_model": "gpt-4.1-mini", "to_model": "gpt-4.1-nano", "reason": "rate_limited"},
    ]
    assert (calls.model, calls.retries, calls.fallback_used) == ("gpt-4.1-nano", 1, True)
    second = policy.retry(UpstreamFailure("rate_limited"), attempt=2, produced=False, calls=calls)
    assert second is not None and [n["kind"] for n in second.notices()] == ["retry_scheduled"]
    assert policy.retry(UpstreamFailure("rate_limited"), attempt=3, produced=False, calls=calls) is None
    assert (calls.model, calls.retries) == ("gpt-4.1-nano", 2)


# turn end -> (code or None, incomplete_reason, upstream_code)
TURN_ENDS = [
    (("completed", {}), (None, None, None)),
    ((None, {}), ("stream_incomplete", None, None)),
    (("failed", {"error_code": "server_error", "error_message": "boom"}), ("response_failed", None, "server_error")),
    (("error", {"error_code": "context_length_exceeded"}), ("response_failed", None, "context_length_exceeded")),
    (
        ("incomplete", {"incomplete_reason": "content_filter", "usage": Usage(output_tokens=7)}),
        ("response_incomplete", "content_filter", None),
    ),
    (("incomplete", {}), ("response_incomplete", "unknown", None)),
    (("bounded", {"estimated_tokens": 321}), ("response_incomplete", "max_output_tokens", None)),
    (("cancelled", {}), ("response_failed", None, None)),  # an end we do not know is no answer
]


@pytest.mark.parametrize(("end", "expected"), TURN_ENDS, ids=[str(e[0][0]) for e in TURN_ENDS])
def test_what_the_end_of_a_model_turn_means(tmp_path, end, expected):
    status, fields = end
    failure = _policy(tmp_path, max_output_tokens=640).turn_failure(status, **fields)
    if expected[0] is None:
        assert failure is None
        return
    assert failure is not None
    assert (failure.code, failure.incomplete_reason, failure.upstream_code) == expected
    if "usage" in fields:
        assert failure.usage == fields["usage"]  # the turn's own report travels to the run's end
    if status == "bounded":
        assert failure.usage == Usage(output_tokens=321) and "limit of 640 tokens" in failure.message


def test_run_failed_speaks_our_words_and_counts_the_bound_estimate(tmp_path):
    policy = _policy(tmp_path, max_output_tokens=640)
    calls = ModelCalls(model="gpt-4.1-nano", attempts=3, retries=2, fallback_used=True)
    record = ToolCallRecord(call_id="c1", name="search")
    ev = EventFactory("run_p")
    common = dict(partial_text="abc", usage=Usage(input_tokens=5, output_tokens=2), ttfb_ms=1.0, duration_ms=9.0)
    failed = policy.run_failed(
        ev,
        UpstreamFailure("upstream_overloaded", "upstream overloaded (503)", retry_after_ms=50, upstream_code="busy"),
        calls,
        tool_calls=[record],
        **common,
    )
    assert (failed.code, failed.message, failed.retryable) == (
        "upstream_overloaded",
        kind("upstream_overloaded").message,
        True,
    )
    assert (failed.retry_after_ms, failed.upstream_code, failed.seq) == (50, "busy", 1)
    assert (failed.model, failed.attempts, failed.retries, failed.fallback_used) == ("gpt-4.1-nano", 3, 2, True)
    assert (failed.partial_text, failed.tool_calls, failed.usage.output_tokens) == ("abc", [record], 2)

    cut = policy.run_failed(ev, policy.turn_failure("bounded", estimated_tokens=600), calls, tool_calls=[], **common)
    assert cut.code == "response_incomplete" and not cut.retryable and cut.incomplete_reason == "max_output_tokens"
    assert cut.message.startswith(kind("response_incomplete").message) and "640 tokens" in cut.message
    assert cut.usage.output_tokens == 602 and cut.usage.input_tokens == 5  # the estimate stands in
    assert cut.seq == 2

    none_yet = policy.run_failed(ev, UpstreamFailure("internal_error"), ModelCalls("m"), tool_calls=[], **common)
    assert none_yet.attempts == 1  # a run that failed before any model call still made one attempt
