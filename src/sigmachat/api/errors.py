"""Maps every failure to the JSON error taxonomy once, at the HTTP edge. No stack traces leak."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from sigmachat.errors import AppError, error_body
from sigmachat.logging import get_logger

log = get_logger("sigmachat.errors")

_HTTP_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    410: "gone",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


class ErrorInfo(BaseModel):
    code: str
    message: str
    details: Any = None
    request_id: str | None = None


class ErrorResponse(BaseModel):
    """The body of every 4xx/5xx answer (built by :func:`sigmachat.errors.error_body`)."""

    error: ErrorInfo
    detail: str  # the message again, where the original SigmaSight frontend reads it


# Declared on the app so the OpenAPI schema says what every error looks like (FastAPI would
# otherwise advertise its own 422 shape, which this service never sends).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorResponse, "description": "The request was refused; `error.code` says why."},
    "5XX": {"model": ErrorResponse, "description": "The service could not answer; nothing was changed."},
}


def _request_id(request: Request) -> str | None:
    return request.scope.get("state", {}).get("request_id")


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Only location, message and type: the raw input may be huge or sensitive (passwords).
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        out.append(
            {
                "loc": loc,
                "field": ".".join(loc[1:]) or loc[0] if loc else "",
                "message": err.get("msg", ""),
                "type": err.get("type", ""),
            }
        )
    return out


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> JSONResponse:
        return JSONResponse(exc.to_body(_request_id(request)), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = _field_errors(exc)
        summary = "; ".join(f"{d['field'] or 'body'}: {d['message']}" for d in details[:5])
        body = error_body(
            "validation_error", f"Invalid request: {summary}", details=details, request_id=_request_id(request)
        )
        return JSONResponse(body, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        if exc.status_code == 404 and message == "Not Found":
            message = "Not found."
        body = error_body(code, message, request_id=_request_id(request))
        return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    async def _database(request: Request, exc: Exception) -> JSONResponse:
        # The database is down, unreachable or saturated: a retryable 503, never SQL in the response.
        orig = getattr(exc, "orig", None)
        log.error("database_error", path=request.url.path, error=type(orig or exc).__name__)
        body = error_body(
            "service_unavailable",
            "The database is unavailable right now; nothing was changed. Try again shortly.",
            request_id=_request_id(request),
        )
        return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})

    app.add_exception_handler(DBAPIError, _database)
    app.add_exception_handler(PoolTimeout, _database)  # no free pooled connection in time

    async def _run_state(request: Request, exc: Exception) -> JSONResponse:
        # Redis (shared run state) is down: a retryable 503; nothing half-written (runs are
        # admitted in Redis before any database write).
        log.error("run_state_error", path=request.url.path, error=type(exc).__name__)
        body = error_body(
            "service_unavailable",
            "Live answers are unavailable right now; try again shortly.",
            request_id=_request_id(request),
        )
        return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})

    app.add_exception_handler(RedisError, _run_state)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled_error", path=request.url.path)
        body = error_body("internal_error", "Something went wrong on our side.", request_id=_request_id(request))
        return JSONResponse(body, status_code=500)
