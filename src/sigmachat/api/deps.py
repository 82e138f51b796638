"""FastAPI dependencies: services, DB sessions, the authenticated user (cookie or Bearer) and CSRF."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from sigmachat.auth.service import signed_in_user
from sigmachat.auth.tokens import InvalidToken
from sigmachat.db.models import User
from sigmachat.errors import CsrfRejected, Forbidden, NotAuthenticated, TokenExpired
from sigmachat.services import Services

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


async def get_services(request: Request) -> Services:
    # async although it awaits nothing: FastAPI runs a plain ``def`` dependency in a worker
    # thread, a thread switch on every request for one attribute read.
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_session(services: ServicesDep) -> AsyncIterator[AsyncSession]:
    async with services.db.session() as session:
        yield session


# scope="function": the session closes when the route function returns, not when the response
# ends. A streaming answer can last minutes; holding a pooled connection for all of it capped
# the service at pool-size concurrent streams (found by the benchmark at 15).
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


@dataclass(frozen=True, slots=True)
class Identity:
    user: User
    via: str  # "bearer" | "cookie"

    @property
    def id(self) -> str:
        return self.user.id


def _origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def check_csrf(request: Request, services: Services) -> None:
    """Origin/Referer check for cookie-authenticated state changes.

    A browser always sends Origin (or at least Referer) on cross-site POSTs and the page
    cannot forge it, so requiring it to be ours blocks CSRF without a token round-trip.
    Bearer-authenticated requests are exempt: a foreign site cannot attach our header.
    """
    allowed = {o.rstrip("/").lower() for o in services.settings.allowed_origins}
    host = request.headers.get("host")
    if host:
        allowed.add(f"{request.url.scheme}://{host}".lower())
    origin = request.headers.get("origin")
    source = origin if origin and origin != "null" else request.headers.get("referer")
    if not source:
        raise CsrfRejected("Missing Origin/Referer header on a cookie-authenticated request.")
    if _origin_of(source) not in allowed:
        raise CsrfRejected("Cross-site request rejected (Origin not allowed).")


async def get_identity(request: Request, services: ServicesDep) -> Identity:
    token, via = None, None
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        token, via = auth[7:].strip(), "bearer"
    elif cookie := request.cookies.get(services.settings.cookie_name):
        token, via = cookie, "cookie"
    if not token:
        raise NotAuthenticated("Sign in to continue.", headers={"WWW-Authenticate": "Bearer"})
    try:
        claims = services.tokens.verify(token)
    except InvalidToken as exc:
        if str(exc) == "expired":
            raise TokenExpired(
                "Your session has expired; sign in again.", headers={"WWW-Authenticate": "Bearer"}
            ) from exc
        raise NotAuthenticated("Invalid authentication token.", headers={"WWW-Authenticate": "Bearer"}) from exc
    # A short look-up of its own: identity must not pin a pooled connection while the route
    # waits on other work (a streaming send waits for the run manager, which needs one too).
    user = await signed_in_user(services.db.engine, claims.user_id)
    if user is None:
        raise NotAuthenticated("Invalid authentication token.", headers={"WWW-Authenticate": "Bearer"})
    assert via is not None  # set together with token, which is checked above
    if via == "cookie" and request.method in UNSAFE_METHODS:
        check_csrf(request, services)
    return Identity(user=user, via=via)


IdentityDep = Annotated[Identity, Depends(get_identity)]


async def require_admin(identity: IdentityDep) -> Identity:
    if identity.user.role != "admin":
        raise Forbidden("Administrator role required.")
    return identity


AdminDep = Annotated[Identity, Depends(require_admin)]
