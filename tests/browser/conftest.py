"""Browser test harness: the real app in a real uvicorn server, driven by Debian's Chromium.

Playwright cannot download its own browsers here (no internet), so it launches the system
Chromium (`apt-get install chromium`; `.ci/run` installs it). On a developer machine without
it the browser tests skip with the reason; in CI (CI=true) a missing browser is a failure,
never a silent skip.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import DEMO_PASSWORD, make_settings

CHROMIUM = Path(os.environ.get("SIGMACHAT_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _browser_unavailable() -> str | None:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install -e '.[test]')"
    if not CHROMIUM.exists():
        return f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
    return None


def pytest_collection_modifyitems(config, items):
    reason = _browser_unavailable()
    if reason is None or IN_CI:
        return  # in CI the `browser` fixture fails instead: never a silent skip there
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=f"browser tests skipped: {reason}"))


def _require_browser() -> None:
    reason = _browser_unavailable()
    if reason and IN_CI:
        pytest.fail(
            f"CI=true but the browser tests cannot run: {reason}. .ci/run must install Chromium.", pytrace=False
        )
    if reason:
        pytest.skip(f"browser tests skipped: {reason}")


# ---- the live server -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveServer:
    url: str
    app: object
    settings: object
    thread: _ServerThread | None = None

    def services(self):
        return self.app.state.services

    def run(self, coro, timeout: float = 10.0):
        """Run a coroutine on the server's event loop (its services live there) and wait."""
        return asyncio.run_coroutine_threadsafe(coro, self.thread.loop).result(timeout)


class _ServerThread(threading.Thread):
    def __init__(self, app, port: int) -> None:
        super().__init__(daemon=True, name=f"uvicorn:{port}")
        import uvicorn

        self.server = uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", timeout_graceful_shutdown=3
            )
        )
        self.error: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def run(self) -> None:
        async def serve() -> None:
            self.loop = asyncio.get_running_loop()
            await self.server.serve()

        try:
            asyncio.run(serve())
        except BaseException as exc:  # surfaced by start()
            self.error = exc

    def start_and_wait(self, timeout: float = 30.0) -> None:
        self.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if self.error or not self.is_alive():
                raise RuntimeError(f"the test server did not start: {self.error!r}")
            if time.monotonic() > deadline:
                raise RuntimeError("the test server did not start in time")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.join(timeout=15)


def start_live_server(tmp: Path, template_db: Path, **overrides) -> tuple[LiveServer, _ServerThread]:
    from sigmachat.api.app import create_app

    shutil.copy(template_db, tmp / "sigmachat.db")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    values = dict(
        allowed_origins=[url],
        # The offline model streams at a visible pace so progressive rendering can be seen.
        offline_ttfb_ms=150,
        offline_tokens_per_s=400.0,
        allow_fault_injection=True,
        retry_max_attempts=1,  # surface upstream faults at once instead of retrying them away
        send_rate_limit="",
        sse_heartbeat_s=5.0,
    )
    values.update(overrides)
    settings = make_settings(tmp, **values)
    app = create_app(settings)
    thread = _ServerThread(app, port)
    thread.start_and_wait()
    return LiveServer(url=url, app=app, settings=settings, thread=thread), thread


def _live_server_fixture(backend: str):
    @pytest.fixture(scope="session")
    def fixture(tmp_path_factory, template_db) -> Iterator[LiveServer]:
        _require_browser()
        server, thread = start_live_server(
            tmp_path_factory.mktemp(f"live-{backend}"), template_db, chat_backend=backend
        )
        try:
            yield server
        finally:
            thread.stop()

    return fixture


live_server = _live_server_fixture("responses")
chatkit_server = _live_server_fixture("chatkit")


# ---- the browser -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(template_db):
    # Module scope, not session: Playwright's sync API keeps an event loop running on the main
    # thread while it is open, and the async tests of other folders need that thread free.
    # template_db first, for the same reason (its builder calls asyncio.run()).
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page_for(browser, request):
    """page_for(server, width=1280, height=860) → a fresh page in its own context (own cookies).

    Console errors and uncaught page errors fail the test; a screenshot of the final state is
    saved under test-artifacts/browser/ (also on failure).
    """
    contexts = []
    problems: list[str] = []

    def make(server: LiveServer, width: int = 1280, height: int = 860, color_scheme: str = "light"):
        # Reduced motion (which the UI honours): screenshots show end states, not mid-transition.
        ctx = browser.new_context(
            viewport={"width": width, "height": height},
            base_url=server.url,
            color_scheme=color_scheme,
            reduced_motion="reduce",
        )
        ctx.set_default_timeout(15_000)
        page = ctx.new_page()
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        page.on(
            "console",
            lambda msg: (
                problems.append(f"console {msg.type}: {msg.text}")
                if msg.type == "error" and not _expected_console_error(msg.text)
                else None
            ),
        )
        contexts.append((ctx, page))
        return page

    yield make
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for i, (ctx, page) in enumerate(contexts):
        suffix = "" if i == 0 else f"-{i}"
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)[:120]
        try:
            page.screenshot(path=str(ARTIFACTS / f"{name}{suffix}.png"), full_page=False)
        except Exception:
            pass
        ctx.close()
    assert not problems, "browser reported errors:\n" + "\n".join(problems)


def _expected_console_error(text: str) -> bool:
    # Chromium logs every non-2xx fetch as a console error; the tests provoke some on purpose.
    return "Failed to load resource" in text or "net::ERR_" in text


def sign_in(page, email: str, password: str = DEMO_PASSWORD) -> None:
    """Sign in through the form and wait for the chat app to be ready."""
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url("**/")
    page.wait_for_selector("#app[data-ready=true]")


def open_chat_as(page, email: str, password: str = DEMO_PASSWORD, path: str = "/") -> None:
    """Sign in through the API (the form is covered by its own tests) and open the chat."""
    resp = page.request.post("/api/v1/auth/login", data={"email": email, "password": password})
    assert resp.ok, resp.text()
    page.goto(path)
    page.wait_for_selector("#app[data-ready=true]")
