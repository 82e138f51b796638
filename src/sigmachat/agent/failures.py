"""Run failure codes: one taxonomy shared by both engines and both protocols.

A code says what went wrong; from it follow whether a retry can help, the plain-language
message a user sees, and the legacy SSE ``error_type`` the original frontend understands.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FailureKind:
    code: str
    retryable: bool
    legacy_type: str  # AUTH_EXPIRED | RATE_LIMITED | NETWORK_ERROR | SERVER_ERROR | FATAL_ERROR
    message: str


KINDS: dict[str, FailureKind] = {
    k.code: k
    for k in (
        FailureKind("rate_limited", True, "RATE_LIMITED", "The AI service is busy right now. Try again in a moment."),
        FailureKind("upstream_error", True, "SERVER_ERROR", "The AI service had a problem answering. Try again."),
        FailureKind("upstream_overloaded", True, "SERVER_ERROR", "The AI service is overloaded. Try again shortly."),
        FailureKind("network_error", True, "NETWORK_ERROR", "The connection to the AI service dropped. Try again."),
        FailureKind("timeout", True, "NETWORK_ERROR", "The AI service took too long to answer. Try again."),
        FailureKind("stream_incomplete", True, "NETWORK_ERROR", "The answer was cut off before it finished. Try again."),
        FailureKind("malformed_event", True, "SERVER_ERROR", "The AI service sent a response we could not read. Try again."),
        FailureKind("response_failed", True, "SERVER_ERROR", "The AI service failed to produce an answer. Try again."),
        FailureKind("response_incomplete", False, "FATAL_ERROR", "The answer stopped early"),
        FailureKind("max_tool_iterations", False, "FATAL_ERROR", "The analysis needed too many steps and was stopped."),
        FailureKind("upstream_auth", False, "FATAL_ERROR", "The AI service rejected our credentials; contact the operator."),
        FailureKind("bad_request", False, "FATAL_ERROR", "The AI service rejected the request."),
        FailureKind("cancelled", False, "FATAL_ERROR", "The answer was stopped."),
        FailureKind("interrupted", True, "SERVER_ERROR", "The answer was interrupted by a server restart. Try again."),
        FailureKind("internal_error", True, "SERVER_ERROR", "Something went wrong on our side. Try again."),
    )
}


def kind(code: str) -> FailureKind:
    return KINDS.get(code, KINDS["internal_error"])


# Why an answer was cut (the Responses API's ``incomplete_details.reason``; Chat Completions'
# ``finish_reason`` mapped onto it), in words a user understands.
INCOMPLETE_REASONS: dict[str, str] = {
    "max_output_tokens": "it reached the answer length limit",
    "content_filter": "the AI service's content filter stopped it",
}


def incomplete_message(reason: str | None, limit: int | None = None) -> str:
    """The user-facing message of a cut answer: that it was cut, and why."""
    code = reason or "unknown reason"
    why = INCOMPLETE_REASONS.get(code)
    if code == "max_output_tokens" and limit:
        why = f"it reached the answer length limit of {limit} tokens"
    return f"{kind('response_incomplete').message} ({code})" + (f": {why}." if why else ".")
