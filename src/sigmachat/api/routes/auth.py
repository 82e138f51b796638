"""/api/v1/auth: login, logout, me."""

from __future__ import annotations

from typing import Literal, cast

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from sigmachat.api.deps import IdentityDep, ServicesDep, SessionDep, check_csrf
from sigmachat.auth.service import authenticate
from sigmachat.errors import InvalidCredentials

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=1024)


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


class UserOut(BaseModel):
    id: str
    email: str
    full_name: str
    role: str


@router.post("/login", response_model=TokenResponse)
async def login(
    body: LoginRequest, request: Request, response: Response, services: ServicesDep, session: SessionDep
) -> TokenResponse:
    throttle = services.login_throttle
    client = request.client.host if request.client else ""
    if throttle is not None:
        await throttle.check(body.email, client)
    try:
        user = await authenticate(session, body.email, body.password)
    except InvalidCredentials:
        if throttle is not None:
            await throttle.failed(body.email, client)
        raise
    token = services.tokens.issue(user.id, user.role)
    ttl = int(services.tokens.ttl.total_seconds())
    s = services.settings
    response.set_cookie(
        s.cookie_name,
        token,
        max_age=ttl,
        httponly=True,
        secure=s.cookie_secure,
        samesite=_samesite(s.cookie_samesite),
        path="/",
    )
    return TokenResponse(access_token=token, expires_in=ttl)


@router.post("/logout", status_code=204)
async def logout(request: Request, response: Response, services: ServicesDep) -> Response:
    # Logout only clears our cookie; still refuse cross-site requests that carry it.
    s = services.settings
    if request.cookies.get(s.cookie_name) and not request.headers.get("authorization"):
        check_csrf(request, services)
    response.delete_cookie(
        s.cookie_name, path="/", httponly=True, secure=s.cookie_secure, samesite=_samesite(s.cookie_samesite)
    )
    response.status_code = 204
    return response


@router.get("/me", response_model=UserOut)
async def me(identity: IdentityDep) -> UserOut:
    u = identity.user
    return UserOut(id=u.id, email=u.email, full_name=u.full_name, role=u.role)


def _samesite(value: str) -> Literal["lax", "strict", "none"]:
    # The setting is a plain string; Starlette itself checks it is one of these (case-insensitively).
    return cast(Literal["lax", "strict", "none"], value)
