"""The audit trail's change list in real Chromium: it fits a 1400px desktop screen beside the
admin's menus, whatever its records hold, and its shortened values are whole on each record's
page. Screenshot in test-artifacts/."""

import uuid

import pytest
from playwright.sync_api import Page, expect

from approvals.audit import AuditAction
from approvals.audit.trail import AuditActor, AuditEntry, audit_records_append
from approvals.models import AuditRecord
from console.request_context import RequestContext
from tests.browser.live import log_in, off_loop
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DESKTOP = {"width": 1400, "height": 900}
LONG_USERNAME = "an-outsider-guessing-" + "x" * 120


def _records() -> str:
    code = str(uuid.uuid4())
    far = RequestContext(ip_address="2001:db8:85a3:1234:5678:8a2e:370:7334", user_agent="curl/8")
    audit_records_append(
        [
            # A failed sign-in names whatever username was typed.
            AuditEntry(
                action=AuditAction.AUTH_LOGIN_FAILED,
                actor=AuditActor.anonymous(LONG_USERNAME),
                object_type="auth.user",
                object_label=LONG_USERNAME,
                origin=far,
            ),
            AuditEntry(
                action=AuditAction.OUTCOME_REPORTED,
                actor=AuditActor.system(),
                object_type="approvals.approvalrequest",
                object_id=code,
                object_label=f"tool \u201csynchronise_customer_ledger_{'y' * 90}\u201d ({code})",
                origin=far,
            ),
        ]
    )
    return code


def test_the_audit_list_fits_a_desktop_screen(live_console, page: Page, artifacts) -> None:
    # Before, nine columns (a request's code twice, unbroken) made the table 1228px wide in the
    # 736px beside the admin's menus: the auditor scrolled sideways to see who acted.
    off_loop(UserFactory, username="ops", is_staff=True, is_superuser=True)
    code = off_loop(_records)
    page.set_viewport_size(DESKTOP)
    log_in(page, live_console.url, "ops")
    page.goto(f"{live_console.url}/admin/approvals/auditrecord/")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(3)  # and ops signing in

    results = page.locator(".results")
    assert results.evaluate("el => el.scrollWidth <= el.clientWidth"), results.evaluate(
        "el => [el.scrollWidth, el.clientWidth]"
    )
    assert page.evaluate("document.documentElement.scrollWidth") <= DESKTOP["width"]
    # What an auditor scans is there: when, what, who and from where, on what.
    outcome = rows.filter(has_text="request.outcome_reported")
    expect(outcome).to_contain_text("System console")
    expect(outcome).to_contain_text(f"approvals.approvalrequest {code[:8]}\u2026")
    expect(outcome).to_contain_text("approvals.approvalrequest")
    failed = rows.filter(has_text="auth.login_failed")
    expect(failed).to_contain_text("from 2001:db8:85a3:1234:5678:8a2e:370:7334")
    expect(failed.locator(f'[title="\u201c{LONG_USERNAME}\u201d"]').first).to_be_visible()
    page.screenshot(path=str(artifacts / "admin-audit-list-1400.png"))

    # The record's own page has every value whole.
    record = off_loop(lambda: AuditRecord.objects.get(object_id=code))
    page.goto(f"{live_console.url}/admin/approvals/auditrecord/{record.pk}/change/")
    expect(page.locator(".field-object_id .readonly")).to_have_text(code)
    expect(page.locator(".field-object_label_shown .readonly")).to_contain_text(f"({code})")
