"""The operator page (/admin) in a real browser: rollout controls, the kill switch behind its
confirmation dialog, the audit log, live counters and the report.

It runs against its own server: turning the kill switch on would change which path the chat
tests of the shared server get.
"""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import ARTIFACTS, sign_in, start_live_server
from tests.conftest import ADMIN, HNW

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def admin_server(tmp_path_factory, template_db):
    server, thread = start_live_server(tmp_path_factory.mktemp("live-admin"), template_db)
    try:
        yield server
    finally:
        thread.stop()


def _flag(page) -> dict:
    resp = page.request.get("/api/v1/admin/rollout")
    assert resp.ok, resp.text()
    return resp.json()


def test_operator_changes_the_rollout_and_reads_the_report(admin_server, page_for):
    from playwright.sync_api import expect

    page = page_for(admin_server, height=1000)
    sign_in(page, ADMIN)
    link = page.locator("#admin-link")
    expect(link).to_be_visible()
    link.click()
    page.wait_for_url("**/admin")
    page.wait_for_selector("#admin[data-ready=true]")

    # Percentage: saved, shown in the state and as the newest audit row.
    page.locator("#percent-input").fill("25")
    page.locator("#percent-form").get_by_role("button", name="Save").click()
    expect(page.get_by_test_id("percent-value")).to_have_text("25%")
    first_row = page.locator("#audit-table tbody tr").first
    expect(first_row).to_contain_text("percent")
    expect(first_row).to_contain_text("0 → 25")
    expect(first_row).to_contain_text(f"user:{ADMIN}")
    assert _flag(page)["percent"] == 25

    # Allowlist: add an email, see the chip, remove it again.
    users = page.locator("[data-list=allow_users]")
    users.get_by_role("textbox").fill("demo_hnw@sigmasight.com")
    users.get_by_role("button", name="Add").click()
    expect(users.locator(".chip")).to_have_text([re.compile("demo_hnw@sigmasight.com")])
    assert _flag(page)["allow_users"] == ["demo_hnw@sigmasight.com"]
    users.get_by_role("button", name=re.compile("Remove demo_hnw")).click()
    expect(users.locator(".chip")).to_have_count(0)

    # Kill switch: cancelling the dialog changes nothing; confirming turns it on.
    page.locator("#kill-toggle").click()
    dialog = page.locator("#kill-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    assert _flag(page)["kill_switch"] is False
    page.locator("#kill-toggle").click()
    expect(dialog).to_contain_text("Turn the kill switch on?")
    page.locator("#kill-confirm").click()
    expect(page.get_by_test_id("kill-state")).to_contain_text("ON")
    expect(page.locator("#kill-toggle")).to_have_text("Turn kill switch off")
    expect(page.locator("#audit-table tbody tr").first).to_contain_text("kill_switch")
    assert _flag(page)["kill_switch"] is True

    # Live counters and the report (no runs yet: NO-GO with the reasons of the failed checks).
    expect(page.locator("#live-table tbody tr")).to_have_count(2)
    expect(page.locator("#live-body")).to_contain_text("kill switch ON")
    expect(page.locator("#verdict")).to_have_text("Verdict: NO-GO")
    expect(page.locator("#report-table")).to_contain_text("TTFB p50 / p95")
    expect(page.locator(".check-fail .check-reason").first).to_contain_text("Too few")
    assert page.locator("#report-link").get_attribute("href") == "/api/v1/admin/report.html?since=24h"

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "admin-page-full.png"), full_page=True)


def test_a_non_admin_sees_no_operator_link_and_is_refused(admin_server, page_for):
    from playwright.sync_api import expect

    page = page_for(admin_server)
    sign_in(page, HNW)
    expect(page.locator("#admin-link")).to_be_hidden()
    page.goto("/admin")
    expect(page.get_by_role("heading", name="Administrators only")).to_be_visible()
