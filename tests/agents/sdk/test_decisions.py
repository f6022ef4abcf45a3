"""The SDK against the live console: each outcome a reviewer (or the clock) can give."""

from datetime import UTC, datetime, timedelta

import pytest
from approval_console import (
    ApprovalCancelled,
    ApprovalDenied,
    ApprovalExpired,
    Decision,
)

from approvals.models import ApprovalRequest
from approvals.services import approval_request_approve, approval_request_deny

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_returns_an_approval_with_the_reviewers_note(
    console, reviewer_session, reviewer_thread
) -> None:
    reviewer_thread.decide(
        lambda approval: reviewer_session.post(
            f"/requests/{approval.code}/approve",
            # High impact: the page's confirmation step names the tool.
            {"note": "fine, duplicate charge", "confirmed": "issue_refund"},
        )
    )
    decision = console.request_approval(
        "issue_refund",
        {"payment_id": "pay_1", "amount": 4900},
        summary="Refund a duplicate charge.",
        reasoning="Two identical charges.",
        confidence=0.8,
        impact="high",
        context={"ticket": "SUP-1"},
        labels=["billing"],
        timeout="10m",
    )
    reviewer_thread.join()

    assert isinstance(decision, Decision)
    assert decision.status == "approved"
    assert decision.note == "fine, duplicate charge"
    assert decision.decided_by == "reviewer"
    assert decision.approved_arguments == {"payment_id": "pay_1", "amount": 4900}
    assert decision.arguments_changed is False
    assert decision.expires_at is not None and decision.expires_at > datetime.now(UTC)
    assert decision.is_usable()
    stored = ApprovalRequest.objects.get(code=decision.request_id)
    assert (stored.summary, stored.impact, stored.confidence, stored.labels) == (
        "Refund a duplicate charge.",
        "high",
        0.8,
        ["billing"],
    )


def test_it_runs_the_gated_function_only_after_approval(
    console, reviewer_session, reviewer_thread
) -> None:
    calls: list[tuple[str, int, str]] = []

    @console.requires_approval(
        impact="high", summary=lambda payment_id, amount, **_: f"Refund {amount} on {payment_id}"
    )
    def issue_refund(payment_id: str, amount: int, currency: str = "EUR") -> str:
        calls.append((payment_id, amount, currency))
        return "refunded"

    def approve(approval: ApprovalRequest) -> None:
        assert calls == []  # nothing ran before the decision
        reviewer_session.post(
            f"/requests/{approval.code}/approve", {"note": "", "confirmed": "issue_refund"}
        )

    reviewer_thread.decide(approve)
    assert issue_refund("pay_9", amount=1299) == "refunded"
    reviewer_thread.join()

    assert calls == [("pay_9", 1299, "EUR")]
    stored = ApprovalRequest.objects.get()
    # The reviewer saw every bound argument, defaults included, and the computed summary.
    assert stored.arguments == {"payment_id": "pay_9", "amount": 1299, "currency": "EUR"}
    assert stored.summary == "Refund 1299 on pay_9"
    assert stored.tool == "issue_refund"


def test_the_summary_callable_gets_the_bound_arguments_with_defaults(
    console, reviewer_session, reviewer_thread
) -> None:
    # Issue 20: the summary callable was given the caller's raw arguments, so a default the
    # caller left out was missing and the SDK raised TypeError before anything was submitted.
    @console.requires_approval(summary=lambda payment_id, amount: f"Refund {amount}")
    def issue_refund(payment_id: str, amount: int = 500) -> str:
        return f"refunded {amount}"

    reviewer_thread.decide(
        lambda approval: reviewer_session.post(f"/requests/{approval.code}/approve", {"note": ""})
    )
    assert issue_refund("pay_2") == "refunded 500"
    reviewer_thread.join()

    assert ApprovalRequest.objects.get().summary == "Refund 500"


def test_it_raises_denied_with_the_reason_and_never_calls(
    console, reviewer_session, reviewer_thread
) -> None:
    calls: list[str] = []

    @console.requires_approval(impact="critical", summary="Delete old contacts.")
    def delete_records(table: str) -> None:
        calls.append(table)

    reviewer_thread.decide(
        lambda approval: reviewer_session.post(
            f"/requests/{approval.code}/deny", {"reason": "Legal hold on that table."}
        )
    )
    with pytest.raises(ApprovalDenied) as denied:
        delete_records("crm_contacts")
    reviewer_thread.join()

    assert denied.value.reason == "Legal hold on that table."
    assert denied.value.decision.status == "denied"
    assert calls == []


def test_it_runs_with_the_arguments_the_reviewer_approved(console, rita, reviewer_thread) -> None:
    calls: list[tuple[str, int]] = []

    @console.requires_approval(impact="high")
    def issue_refund(payment_id: str, amount: int) -> None:
        calls.append((payment_id, amount))

    reviewer_thread.decide(
        lambda approval: approval_request_approve(
            approval=approval,
            reviewer=rita,
            note="Half: the other half was already refunded.",
            arguments={"payment_id": "pay_1", "amount": 2450},
        )
    )
    issue_refund("pay_1", 4900)
    reviewer_thread.join()

    assert calls == [("pay_1", 2450)]


def test_it_reports_changed_arguments_on_the_decision(console, rita, reviewer_thread) -> None:
    reviewer_thread.decide(
        lambda approval: approval_request_approve(
            approval=approval, reviewer=rita, arguments={"to": "ops@example.test"}
        )
    )
    decision = console.request_approval("send_email", {"to": "all@example.test"})
    reviewer_thread.join()

    assert decision.arguments_changed is True
    assert decision.approved_arguments == {"to": "ops@example.test"}
    assert decision.submitted_arguments == {"to": "all@example.test"}


def test_it_raises_expired_when_nobody_decides(console) -> None:
    calls: list[str] = []

    @console.requires_approval(timeout="1s")
    def deploy(service: str) -> None:
        calls.append(service)

    with pytest.raises(ApprovalExpired) as expired:
        deploy("billing-api")

    assert expired.value.decision.status == "expired"
    assert calls == []


def test_it_does_not_use_an_approval_past_its_expires_at(
    console, rita, reviewer_thread, settings
) -> None:
    # The console grants no time to start the call: the approval is stale on arrival.
    settings.APPROVAL_VALIDITY_SECONDS = 0
    calls: list[str] = []

    @console.requires_approval()
    def deploy(service: str) -> None:
        calls.append(service)

    reviewer_thread.decide(
        lambda approval: approval_request_approve(approval=approval, reviewer=rita)
    )
    with pytest.raises(ApprovalExpired) as expired:
        deploy("web")
    reviewer_thread.join()

    assert expired.value.decision.status == "approved"
    assert calls == []


def test_it_raises_cancelled_when_the_request_is_withdrawn(console, reviewer_thread) -> None:
    calls: list[str] = []

    @console.requires_approval()
    def send_email(to: str) -> None:
        calls.append(to)

    # Another worker of the same agent withdraws the request while this one waits.
    reviewer_thread.decide(lambda approval: console.cancel(str(approval.code)))
    with pytest.raises(ApprovalCancelled):
        send_email("ada@example.test")
    reviewer_thread.join()

    assert calls == []


def test_it_treats_a_lapsed_approval_as_unusable() -> None:
    decision = Decision(
        request_id="r1",
        status="approved",
        approved_arguments={"a": 1},
        expires_at=datetime.now(UTC) - timedelta(seconds=1),
    )
    assert decision.is_usable() is False
    with pytest.raises(ApprovalExpired):
        decision.raise_unless_usable()


def test_it_cancels_and_reports_a_decided_request_unchanged(console, rita) -> None:
    approval = console.submit("send_email", {"to": "a@example.test"})
    assert approval.is_pending
    approval_request_deny(
        approval=ApprovalRequest.objects.get(code=approval.id), reviewer=rita, reason="No."
    )

    after = console.cancel(approval.id)

    assert after.status == "denied"
    assert after.decision is not None and after.decision.note == "No."
