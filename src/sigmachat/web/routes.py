"""The browser UI: the chat page at ``/``, the sign-in page at ``/login``, the operator page at
``/admin`` and their static assets.

The UI is plain ES modules with no build step, so the files under ``static/`` are served as
they are. Pages are only shells; everything the user sees about their data comes from the
JSON APIs, which do their own authentication. The page routes check the session cookie only
to decide which shell to send: a visitor without a valid session gets the sign-in page.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles

from sigmachat.auth.tokens import InvalidToken
from sigmachat.db.models import User
from sigmachat.services import Services

STATIC_DIR = Path(__file__).parent / "static"

router = APIRouter(include_in_schema=False)

# Explicit rather than the platform's mimetypes table: Python 3.11 and some /etc/mime.types
# still say application/javascript or nothing for .mjs/.map, and module scripts must be JS.
CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
}

# The pages load only our own scripts and styles and talk only to our own origin. This is the
# second line of defence behind the renderer building DOM nodes (never HTML) from model output.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    # Pages are tiny shells; never serve a stale one that points at old module code.
    "Cache-Control": "no-store",
}

_static = StaticFiles(directory=STATIC_DIR, check_dir=False)


async def _session(request: Request) -> tuple[str, User | None]:
    """(``"valid"`` | ``"expired"`` | ``"none"``, the user) for the request's session cookie."""
    services: Services = request.app.state.services  # the app's container (no import of the API layer)
    token = request.cookies.get(services.settings.cookie_name)
    if not token:
        return "none", None
    try:
        claims = services.tokens.verify(token)
    except InvalidToken as exc:
        return ("expired" if str(exc) == "expired" else "none"), None
    async with services.db.session() as session:
        user = await session.get(User, claims.user_id)
    return ("valid", user) if user is not None else ("none", None)


async def _session_state(request: Request) -> str:
    return (await _session(request))[0]


def _page(name: str, status_code: int = 200) -> FileResponse:
    return FileResponse(
        STATIC_DIR / name, status_code=status_code, media_type=CONTENT_TYPES[".html"], headers=PAGE_HEADERS
    )


def _to_login(state: str) -> RedirectResponse:
    target = "/login?expired=1" if state == "expired" else "/login"
    return RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})


@router.get("/")
async def chat_page(request: Request) -> Response:
    state = await _session_state(request)
    if state != "valid":
        return _to_login(state)
    return _page("index.html")


@router.get("/admin")
async def admin_page(request: Request) -> Response:
    """The operator page (rollout, audit, live counters, report). The role is checked here only
    to send a non-admin a readable refusal; the admin APIs enforce it for every call."""
    state, user = await _session(request)
    if state != "valid" or user is None:
        return _to_login(state)
    if user.role != "admin":
        return _page("forbidden.html", status_code=403)
    return _page("admin.html")


@router.get("/login")
async def login_page(request: Request) -> Response:
    if await _session_state(request) == "valid":
        return RedirectResponse("/", status_code=303, headers={"Cache-Control": "no-store"})
    return _page("login.html")


@router.get("/favicon.ico")
async def favicon() -> Response:
    return RedirectResponse("/static/favicon.svg", status_code=308)


@router.get("/static/{path:path}")
async def static_asset(path: str, request: Request) -> Response:
    """Static assets with explicit content types; StaticFiles does the safe path resolution and ETags."""
    try:
        response = await _static.get_response(path, request.scope)
    except StarletteHTTPException as exc:
        # Directory listings and traversal attempts look exactly like a missing file.
        raise StarletteHTTPException(
            status_code=404 if exc.status_code in (401, 403, 404) else exc.status_code
        ) from None
    suffix = Path(path).suffix.lower()
    if response.status_code == 200 and suffix in CONTENT_TYPES:
        response.headers["content-type"] = CONTENT_TYPES[suffix]
    response.headers["X-Content-Type-Options"] = "nosniff"
    # Revalidate every time (cheap 304s with the ETag): with no build step there are no
    # content-hashed file names, so a long max-age would pin users to old code.
    response.headers["Cache-Control"] = "no-cache"
    return response
