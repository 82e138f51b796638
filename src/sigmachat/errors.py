"""One error taxonomy for the whole service, mapped once at each edge.

Every error a client sees has a stable ``code``, a plain-language ``message`` and, where it
helps, ``details``; both protocols (REST/legacy SSE and ChatKit) reuse these codes.
:func:`error_body` is the one shape of an error response body.
"""

from __future__ import annotations

from typing import Any


def error_body(
    code: str, message: str, /, *, details: Any = None, request_id: str | None = None, **extra: Any
) -> dict[str, Any]:
    """The JSON body of every error response: ``{"error": {code, message, …}, "detail": message}``.

    ``detail`` repeats the message at the top level because that is where the original SigmaSight
    frontend reads an error's text (FastAPI's own shape); without it, its users see a generic
    "Failed to …" instead of what went wrong. ``extra`` adds top-level fields (e.g. the saved
    message of an expired run).
    """
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    if request_id:
        error["request_id"] = request_id
    return {"error": error, "detail": message, **extra}


class AppError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, details: Any = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = headers or {}

    def to_body(self, request_id: str | None = None) -> dict[str, Any]:
        return error_body(self.code, self.message, details=self.details, request_id=request_id)


class ValidationFailed(AppError):
    status_code = 422
    code = "validation_error"


class NotAuthenticated(AppError):
    status_code = 401
    code = "not_authenticated"


class TokenExpired(AppError):
    status_code = 401
    code = "auth_expired"


class InvalidCredentials(AppError):
    status_code = 401
    code = "invalid_credentials"


class Forbidden(AppError):
    status_code = 403
    code = "forbidden"


class CsrfRejected(AppError):
    status_code = 403
    code = "csrf_rejected"


class NotFound(AppError):
    status_code = 404
    code = "not_found"


class Conflict(AppError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(AppError):
    status_code = 413
    code = "payload_too_large"


class RateLimited(AppError):
    status_code = 429
    code = "rate_limited"


class ServiceUnavailable(AppError):
    status_code = 503
    code = "service_unavailable"
