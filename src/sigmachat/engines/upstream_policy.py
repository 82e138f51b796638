"""The one upstream policy both engines follow.

It owns every decision about a model call that is not reading its stream:

- what a failure is: every exception either engine can see (the openai SDK's status, timeout
  and connection errors, undecodable events, the Agents SDK's own errors, our stream and
  output-bound failures) becomes an :class:`UpstreamFailure` with a code of
  ``agent/failures.py``;
- what the end of one model turn means (completed, failed, incomplete, an error event, cut by
  our output bound, or no end at all);
- whether a failed call is tried again (retryable code, no output yet, attempts left), after
  how long (the upstream's Retry-After, else jittered exponential backoff), and when the
  fallback model takes over (on the first retry);
- what the run's terminal ``RunFailed`` says: our words, the failure kind's retryability, the
  upstream's own code and message for the log and the runs table only.

The engines read streams and run tools; they call this module for each of those decisions
and keep no copy of them. Nothing here runs per text delta.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import math
import random
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import openai

from sigmachat.agent.events import EventFactory, RunFailed, ToolCallRecord, Usage
from sigmachat.agent.failures import incomplete_message, kind
from sigmachat.engines.responses_stream import error_fields
from sigmachat.logging import get_logger
from sigmachat.settings import Settings

log = get_logger("sigmachat.engines.upstream_policy")

# Failures worth retrying when no output has been produced yet (the contract): once a
# user has seen part of an answer, a second call would show a different one.
RETRYABLE_BEFORE_OUTPUT = frozenset(
    {"rate_limited", "upstream_error", "upstream_overloaded", "timeout", "network_error"}
)


class UpstreamFailure(Exception):
    """A classified failure of one model call. ``message`` is ours (safe to show); the
    upstream's own ``upstream_code`` / ``upstream_message`` go to logs and the runs table only.
    ``usage`` is what the failed turn used and the engine's own count does not have: what a
    failed or cut response reported, or, when our output bound cut the answer, the bound's
    estimate (the upstream never sent a report)."""

    def __init__(
        self,
        code: str,
        message: str | None = None,
        *,
        retry_after_ms: int | None = None,
        upstream_code: str | None = None,
        upstream_message: str | None = None,
        incomplete_reason: str | None = None,
        usage: Usage | None = None,
    ) -> None:
        message = message or kind(code).message
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after_ms = retry_after_ms
        self.upstream_code = upstream_code
        self.upstream_message = upstream_message
        self.incomplete_reason = incomplete_reason
        self.usage = usage


# ---- classification ------------------------------------------------------------------------


def retry_after_ms(headers: Mapping[str, str], *, now: float | None = None) -> int | None:
    """How long the upstream asked us to wait, in ms: ``retry-after-ms`` (OpenAI's), else
    ``retry-after`` in seconds or as an HTTP-date (RFC 9110 allows both). ``None`` when it
    said nothing usable (absent, unparsable, not finite): our own backoff decides then."""
    if (value := headers.get("retry-after-ms")) is not None and (ms := _finite(value)) is not None:
        return max(0, int(ms))
    value = headers.get("retry-after")
    if value is None:
        return None
    if (seconds := _finite(value)) is not None:
        return max(0, int(seconds * 1000))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": a date in UTC from a sender that does not know its zone
        when = when.replace(tzinfo=dt.UTC)
    wait_s = when.timestamp() - (time.time() if now is None else now)
    return max(0, int(wait_s * 1000))


def _finite(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _upstream_error(exc: openai.APIError) -> tuple[str | None, str | None]:
    """The upstream's own (code, message) of an SDK error: its JSON error body when it sent one."""
    body = exc.body if isinstance(exc.body, dict) else {}
    code, message = error_fields(body)
    return code or exc.code, (message or exc.message)[:500]


def _classify_api_error(exc: openai.APIError) -> UpstreamFailure:
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        wait = retry_after_ms(exc.response.headers) if exc.response is not None else None
        if isinstance(exc, openai.RateLimitError):
            return UpstreamFailure("rate_limited", "upstream rate limit (429)", retry_after_ms=wait)
        if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
            return UpstreamFailure("upstream_auth", f"upstream refused credentials ({status})")
        if status in (503, 529):
            return UpstreamFailure("upstream_overloaded", f"upstream overloaded ({status})", retry_after_ms=wait)
        if status >= 500:
            return UpstreamFailure("upstream_error", f"upstream error ({status})", retry_after_ms=wait)
        if status == 408:
            return UpstreamFailure("timeout", "upstream request timeout (408)")
        return UpstreamFailure("bad_request", f"upstream rejected the request ({status})")
    if isinstance(exc, openai.APITimeoutError):
        return UpstreamFailure("timeout", "upstream timed out")
    if isinstance(exc, openai.APIConnectionError):
        return UpstreamFailure("network_error", "connection to upstream failed")
    # An SSE error event inside the stream (the SDK raises it for a payload with an "error" key).
    return UpstreamFailure("response_failed", "upstream stream error")


def _agents_sdk_failure(exc: BaseException, limit: int | None) -> UpstreamFailure | None:
    """What only the Agents SDK raises, as the failure the Responses engine reports for the
    same upstream behaviour."""
    if "agents" not in sys.modules:
        # Only the Agents engine loads the SDK (a two-second import); before that, no
        # exception can be one of its own.
        return None
    from agents.exceptions import MaxTurnsExceeded, ModelBehaviorError, ModelTimeoutError

    if isinstance(exc, MaxTurnsExceeded):
        return UpstreamFailure("max_tool_iterations")
    if isinstance(exc, ModelTimeoutError):  # only with a model timeout set in ModelSettings
        return UpstreamFailure("timeout", "upstream timed out")
    if isinstance(exc, ModelBehaviorError):
        # The SDK's Chat Completions handler judges a stream itself: cut before any output,
        # or ended without a finish_reason.
        text = str(exc)
        if "finish_reason='length'" in text:
            return incomplete_failure("max_output_tokens", limit)
        if "before receiving a finish_reason" in text:
            return stream_incomplete()
    return None


def stream_incomplete() -> UpstreamFailure:
    return UpstreamFailure("stream_incomplete", "the upstream stream ended without a terminal event")


def incomplete_failure(reason: str | None, limit: int | None) -> UpstreamFailure:
    """The upstream ended the answer early (``incomplete_details.reason``, or a Chat
    Completions ``finish_reason`` mapped onto it)."""
    return UpstreamFailure(
        "response_incomplete", incomplete_message(reason, limit), incomplete_reason=reason or "unknown"
    )


def bounded_failure(limit: int, estimated_tokens: int) -> UpstreamFailure:
    """The run's end when our output bound cut the answer (the upstream ignored the bound)."""
    log.warning("output_bound_enforced", limit=limit, estimated_tokens=estimated_tokens)
    failure = incomplete_failure("max_output_tokens", limit)
    failure.usage = Usage(output_tokens=estimated_tokens)
    return failure


def classify_exception(exc: BaseException, *, output_limit: int | None = None) -> UpstreamFailure:
    """Any exception a model call or an SDK run raised, as a failure of the shared taxonomy.
    An exception we did not expect is logged here, with its traceback, once."""
    if isinstance(exc, UpstreamFailure):
        return exc
    if isinstance(exc, openai.APIError):
        failure = _classify_api_error(exc)
        failure.upstream_code, failure.upstream_message = _upstream_error(exc)
        return failure
    if (sdk := _agents_sdk_failure(exc, output_limit)) is not None:
        return sdk
    if isinstance(exc, ValueError):  # json.JSONDecodeError and pydantic errors are ValueErrors
        return UpstreamFailure("malformed_event", "upstream sent an event that is not valid JSON")
    log.error("engine_unexpected_error", error=type(exc).__name__, exc_info=exc)
    return UpstreamFailure("internal_error", type(exc).__name__)


# ---- retries -------------------------------------------------------------------------------


@dataclass(slots=True)
class ModelCalls:
    """One run's model calls as the policy counts them: the model now in use, the attempts made
    (tool turns and retries included), the retries, and whether the fallback took over."""

    model: str
    attempts: int = 0
    retries: int = 0
    fallback_used: bool = False


@dataclass(frozen=True, slots=True)
class Retry:
    """The decision to try a failed model call again: attempt number ``attempt`` after
    ``delay_ms``, on ``to_model`` when the fallback takes over."""

    attempt: int
    delay_ms: int
    reason: str  # the failure code
    from_model: str
    to_model: str | None = None

    def notices(self) -> list[dict[str, Any]]:
        """The fields of the ``Info`` events that announce this retry, in order."""
        out: list[dict[str, Any]] = [
            {"kind": "retry_scheduled", "attempt": self.attempt, "delay_ms": self.delay_ms, "reason": self.reason}
        ]
        if self.to_model is not None:
            out.append(
                {
                    "kind": "model_switch",
                    "from_model": self.from_model,
                    "to_model": self.to_model,
                    "reason": self.reason,
                }
            )
        return out


class UpstreamPolicy:
    """Classification, retry, fallback and the terminal failure, from the settings and the
    model client's fallback model. One per engine; it keeps no per-run state (that is
    :class:`ModelCalls`)."""

    def __init__(
        self,
        settings: Settings,
        fallback_model: str | None,
        *,
        uniform: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.settings = settings
        self.fallback_model = fallback_model
        self._uniform = uniform  # the backoff's jitter; a test can pin it

    @property
    def output_limit(self) -> int:
        return self.settings.max_output_tokens

    def classify(self, exc: BaseException) -> UpstreamFailure:
        """:func:`classify_exception` with this engine's output bound (it words a cut answer)."""
        return classify_exception(exc, output_limit=self.output_limit)

    def turn_failure(
        self,
        status: str | None,
        *,
        error_code: str | None = None,
        error_message: str | None = None,
        incomplete_reason: str | None = None,
        usage: Usage | None = None,
        estimated_tokens: int = 0,
    ) -> UpstreamFailure | None:
        """What the end of one model turn means: ``None`` for a completed turn, else its failure.

        ``status`` is how the turn ended, as both engines report it: the upstream's terminal
        status (``completed`` / ``failed`` / ``incomplete``), ``error`` (an error event),
        ``bounded`` (our output bound cut it; ``estimated_tokens`` is the bound's count), or
        ``None`` (the stream ended without any of these). ``usage`` is what the turn's end
        reported; a failed turn carries it to the run's end (``run_failed`` counts it)."""
        if status == "completed":
            return None
        if status is None:
            return stream_incomplete()
        if status == "bounded":
            return bounded_failure(self.output_limit, estimated_tokens)
        if status == "incomplete":
            failure = incomplete_failure(incomplete_reason, self.output_limit)
        else:  # failed, an error event, or an end we do not know: never an answer
            failure = UpstreamFailure("response_failed", upstream_code=error_code, upstream_message=error_message)
        failure.usage = usage
        return failure

    def backoff_ms(self, attempt: int, retry_after: int | None) -> int:
        """The wait before attempt ``attempt + 1``: jittered exponential backoff, capped; a
        Retry-After from the upstream wins when it is longer (:meth:`decide` never waits
        one longer than the cap)."""
        cap = self.settings.retry_max_delay_ms
        base = self.settings.retry_base_delay_ms * (2 ** (attempt - 1))
        delay = self._uniform(base / 2, base) if base else 0  # jitter spreads synchronized clients
        if retry_after is not None:
            delay = max(delay, retry_after)
        return int(min(delay, max(cap, retry_after or 0)))

    def decide(self, failure: UpstreamFailure, *, attempt: int, produced: bool, model: str) -> Retry | None:
        """Whether attempt ``attempt`` of a model call, which failed with ``failure`` after
        producing output or not, is tried again; and how.

        An upstream that asks for a wait longer than ``retry_max_delay_ms`` is not waited for
        with the user watching a silent answer: the run fails at once with that
        ``retry_after_ms``, so the client can say when to try again; unless the fallback model
        can be tried now (the wait was asked of the primary model, not of the fallback)."""
        if failure.code not in RETRYABLE_BEFORE_OUTPUT or produced or attempt >= self.settings.retry_max_attempts:
            return None
        fallback = self.fallback_model
        switch = attempt == 1 and bool(fallback) and fallback != model
        wait = failure.retry_after_ms
        if wait is not None and wait > self.settings.retry_max_delay_ms:
            if not switch:
                return None
            wait = None  # the fallback was not asked to wait: our own backoff
        return Retry(
            attempt=attempt + 1,
            delay_ms=self.backoff_ms(attempt, wait),
            reason=failure.code,
            from_model=model,
            to_model=fallback if switch else None,
        )

    def retry(self, failure: UpstreamFailure, *, attempt: int, produced: bool, calls: ModelCalls) -> Retry | None:
        """:meth:`decide`, counted on the run's ``calls`` (a retry, the fallback in use)."""
        decision = self.decide(failure, attempt=attempt, produced=produced, model=calls.model)
        if decision is not None:
            calls.retries += 1
            if decision.to_model is not None:
                calls.model = decision.to_model
                calls.fallback_used = True
        return decision

    def run_failed(
        self,
        ev: EventFactory,
        failure: UpstreamFailure,
        calls: ModelCalls,
        *,
        partial_text: str,
        usage: Usage,
        ttfb_ms: float | None,
        duration_ms: float,
        tool_calls: list[ToolCallRecord],
    ) -> RunFailed:
        """The run's terminal event for ``failure``; the upstream's own words go to the log."""
        if failure.upstream_code or failure.upstream_message:
            log.warning(
                "upstream_failure", run_id=ev.run_id, code=failure.code,
                upstream_code=failure.upstream_code, upstream_message=failure.upstream_message,
            )  # fmt: skip
        if failure.usage is not None:
            usage = usage + failure.usage
        k = kind(failure.code)
        event: RunFailed = ev.make(
            RunFailed,
            code=failure.code,
            # Our own words only; the one failure whose message carries detail says why an
            # answer was cut.
            message=failure.message if failure.code == "response_incomplete" else k.message,
            retryable=k.retryable,
            retry_after_ms=failure.retry_after_ms,
            partial_text=partial_text,
            usage=usage,
            ttfb_ms=ttfb_ms,
            duration_ms=duration_ms,
            tool_calls=tool_calls,
            model=calls.model,
            attempts=max(calls.attempts, 1),
            retries=calls.retries,
            fallback_used=calls.fallback_used,
            incomplete_reason=failure.incomplete_reason,
            upstream_code=failure.upstream_code,
            upstream_message=failure.upstream_message,
        )
        return event
