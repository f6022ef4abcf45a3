"""The demo agent, through the SDK, against the live console: it asks, waits, runs what was
approved, and tells the console how that went."""

import io
import threading

import pytest
from django.core.management import call_command

from approvals.models import ApprovalRequest, RequestOutcome, Status
from approvals.services import approval_request_approve, approval_request_deny

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_submits_requests_and_reports_each_decision(
    live_console, sdk_agent, rita, reviewer_thread, tmp_path
) -> None:
    _, token = sdk_agent
    credential = tmp_path / "demo.credential"
    credential.write_text(token)
    out = io.StringIO()

    def run_agent() -> None:
        call_command(
            "demo_agent",
            url=live_console.url,
            credential_file=str(credential),
            count=2,
            max_pending=1,
            stdout=out,
        )

    reviewer_thread.decide(
        lambda approval: approval_request_approve(approval=approval, reviewer=rita),
        lambda approval: approval_request_deny(approval=approval, reviewer=rita, reason="Not now."),
    )
    agent = threading.Thread(target=run_agent)
    agent.start()
    agent.join(timeout=60)
    reviewer_thread.join()

    lines = out.getvalue().splitlines()
    assert sum(line.startswith("asked: ") for line in lines) == 2
    assert any(
        line.startswith("approved: ") and (" ran" in line or " ran and failed: " in line)
        for line in lines
    )
    assert any(
        line.startswith("denied: ") and line.endswith("will not run (Not now.)") for line in lines
    )
    # The approved call's outcome reached the console; the denied one has none.
    approved = ApprovalRequest.objects.get(status=Status.APPROVED)
    outcome = RequestOutcome.objects.get(approval=approved)
    assert outcome.status in {"succeeded", "failed"}
    assert not RequestOutcome.objects.filter(approval__status=Status.DENIED).exists()
