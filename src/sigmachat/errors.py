"""One error taxonomy for the whole service, mapped once at each edge.

Every error a client sees has a stable ``code``, a plain-language ``message`` and, where it
helps, ``details``; both protocols (REST/legacy SSE and ChatKit) reuse these codes.
"""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, details: Any = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = headers or {}

    def to_body(self, request_id: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        if request_id:
            body["request_id"] = request_id
        return {"error": body}


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
