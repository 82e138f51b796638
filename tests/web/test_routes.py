"""The page and static-asset routes of the browser UI (no browser needed)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from sigmachat.web.routes import STATIC_DIR
from tests.conftest import ADMIN, BASE_URL, HNW, login


async def _cookie_login(client) -> None:
    resp = await client.post("/api/v1/auth/login", json={"email": HNW, "password": "demo12345"})
    assert resp.status_code == 200
    assert client.cookies.get("auth_token")


async def test_chat_page_redirects_visitors_without_a_session_to_sign_in(client):
    resp = await client.get("/")
    assert resp.status_code == 303
    assert resp.headers["location"] == "/login"


async def test_chat_page_sends_an_expired_session_to_sign_in_with_a_reason(client, app):
    services = app.state.services
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    user_id = (await client.get("/api/v1/auth/me", headers=await login(client))).json()["id"]
    client.cookies.set("auth_token", services.tokens.issue(user_id, "user", now=past))
    resp = await client.get("/")
    assert resp.status_code == 303
    assert resp.headers["location"] == "/login?expired=1"


async def test_a_tampered_cookie_is_no_session(client):
    client.cookies.set("auth_token", "not-a-jwt")
    resp = await client.get("/")
    assert resp.status_code == 303
    assert resp.headers["location"] == "/login"


async def test_signed_in_user_gets_the_chat_page_with_a_strict_csp(client):
    await _cookie_login(client)
    resp = await client.get("/")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    csp = resp.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["cache-control"] == "no-store"
    assert '<script type="module" src="/static/js/app.js">' in resp.text


async def test_login_page_is_public_and_redirects_when_already_signed_in(client):
    resp = await client.get("/login")
    assert resp.status_code == 200
    assert "Demo accounts" in resp.text
    await _cookie_login(client)
    resp = await client.get("/login")
    assert resp.status_code == 303
    assert resp.headers["location"] == "/"


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/static/js/app.js", "text/javascript"),
        ("/static/js/markdown.js", "text/javascript"),
        ("/static/css/app.css", "text/css"),
        ("/static/favicon.svg", "image/svg+xml"),
    ],
)
async def test_static_assets_have_correct_content_types(client, path, content_type):
    resp = await client.get(path)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith(content_type)
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["cache-control"] == "no-cache"


async def test_static_assets_revalidate_with_etags(client):
    first = await client.get("/static/js/app.js")
    again = await client.get("/static/js/app.js", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304


@pytest.mark.parametrize(
    "path", ["/static/nope.js", "/static/js", "/static/js/", "/static/..%2Froutes.py", "/static/%2e%2e/routes.py"]
)
async def test_missing_files_directories_and_traversal_are_404(client, path):
    resp = await client.get(path)
    assert resp.status_code == 404


async def test_favicon_points_at_the_svg(client):
    resp = await client.get("/favicon.ico")
    assert resp.status_code == 308
    assert resp.headers["location"] == "/static/favicon.svg"


# ---- the client code itself (no build step, so check what a bundler would) -----------------

JS_FILES = sorted((STATIC_DIR / "js").glob("*.js"))


def test_every_relative_module_import_resolves():
    specs = [(path, spec) for path in JS_FILES for spec in re.findall(r'from\s+"(\./[^"]+)"', path.read_text())]
    # The chat page's entry module imports the others: a search that finds nothing checks nothing.
    assert any(path.name == "app.js" for path, _spec in specs), "no imports found: the search is broken"
    for path, spec in specs:
        assert (path.parent / spec).resolve().is_file(), f"{path.name} imports missing {spec}"


@pytest.mark.parametrize("page", ["index.html", "login.html", "admin.html", "forbidden.html"])
def test_every_asset_the_pages_reference_exists(page):
    refs = re.findall(r'(?:src|href)="(/static/[^"]+)"', (STATIC_DIR / page).read_text())
    assert refs, f"{page} references no static asset: the search is broken"
    for ref in refs:
        assert (STATIC_DIR / ref.removeprefix("/static/")).is_file(), f"{page} references missing {ref}"


@pytest.mark.parametrize("path", JS_FILES, ids=lambda p: p.name)
def test_client_code_never_turns_strings_into_html_or_code(path: Path):
    # The renderer builds DOM nodes; these sinks would let model or tool output become markup.
    source = path.read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in source, f"{path.name} uses {sink}"


def test_pages_have_no_inline_script_or_style():
    # The CSP forbids inline code; an inline block would silently not run.
    for page in ("index.html", "login.html", "admin.html", "forbidden.html"):
        html = (STATIC_DIR / page).read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), page
        assert "<style" not in html and " style=" not in html and " onclick=" not in html, page


async def test_the_pages_own_origin_may_post_with_the_cookie_and_another_may_not(client):
    # The browser tests (and the page) rely on a same-origin Origin header passing the CSRF check.
    await _cookie_login(client)
    same = await client.post("/api/v1/chat/conversations", json={}, headers={"Origin": BASE_URL})
    assert same.status_code == 201, same.text
    foreign = await client.post("/api/v1/chat/conversations", json={}, headers={"Origin": "http://evil.example"})
    assert foreign.status_code == 403


# ---- the operator page ---------------------------------------------------------------------


async def test_admin_page_redirects_visitors_without_a_session_to_sign_in(client):
    resp = await client.get("/admin")
    assert resp.status_code == 303
    assert resp.headers["location"] == "/login"


async def test_admin_page_refuses_a_signed_in_non_admin_with_a_readable_page(client):
    await _cookie_login(client)
    resp = await client.get("/admin")
    assert resp.status_code == 403
    assert resp.headers["content-type"].startswith("text/html")
    assert "Administrators only" in resp.text
    assert "admin.js" not in resp.text


async def test_admin_page_is_served_to_an_admin_with_the_strict_csp(client):
    resp = await client.post("/api/v1/auth/login", json={"email": ADMIN, "password": "demo12345"})
    assert resp.status_code == 200
    resp = await client.get("/admin")
    assert resp.status_code == 200
    assert "unsafe-inline" not in resp.headers["content-security-policy"]
    assert '<script type="module" src="/static/js/admin.js">' in resp.text


async def test_admin_script_is_served_as_javascript(client):
    resp = await client.get("/static/js/admin.js")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/javascript")
