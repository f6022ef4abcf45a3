"""Bulk decisions from the queue (approvals/bulk.py and its two pages)."""

import uuid

import pytest
from django.urls import reverse

from approvals.bulk import (
    BULK_MAX,
    BulkRefused,
    approvals_bulk_approve,
    approvals_bulk_deny,
    bulk_codes_check,
)
from approvals.models import ApprovalRequest, Impact, Status
from approvals.services import approval_request_approve
from tests.factories import AgentFactory, ApprovalRequestFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice():
    return UserFactory(username="alice")


@pytest.fixture
def team(alice):
    return TeamFactory(name="payments", members=[alice])


def _status(approval: ApprovalRequest) -> str:
    return ApprovalRequest.objects.get(pk=approval.pk).status


def test_it_approves_low_impact_requests_and_refuses_every_other_impact(alice, team) -> None:
    low = ApprovalRequestFactory(team=team, impact=Impact.LOW)
    others = [
        ApprovalRequestFactory(team=team, impact=impact)
        for impact in (Impact.MEDIUM, Impact.HIGH, Impact.CRITICAL)
    ]

    results = approvals_bulk_approve(
        codes=[low.code] + [o.code for o in others], reviewer=alice, note="batch"
    )

    assert [(r.code, r.ok) for r in results] == [(low.code, True)] + [
        (o.code, False) for o in others
    ]
    assert results[0].message == "Approved."
    assert "low-impact requests only" in results[3].message
    assert _status(low) == Status.APPROVED
    assert [_status(o) for o in others] == [Status.PENDING] * 3
    assert ApprovalRequest.objects.get(pk=low.pk).decision.note == "batch"


def test_it_leaves_out_requests_the_reviewer_may_not_see(alice, team) -> None:
    theirs = ApprovalRequestFactory(team=TeamFactory(name="ops"), impact=Impact.LOW)
    mine = ApprovalRequestFactory(team=team, impact=Impact.LOW)

    results = approvals_bulk_deny(codes=[theirs.code, mine.code], reviewer=alice, reason="No.")

    assert [(r.ok, r.message) for r in results] == [
        (False, "Not found, or not yours to decide."),
        (True, "Denied."),
    ]
    assert results[0].approval is None  # nothing of it is shown
    assert _status(theirs) == Status.PENDING
    assert _status(mine) == Status.DENIED


def test_it_denies_each_with_the_one_reason_and_reports_one_decided_meanwhile(alice, team) -> None:
    first, decided, last = (ApprovalRequestFactory(team=team) for _ in range(3))
    approval_request_approve(approval=decided, reviewer=UserFactory(is_staff=True))

    results = approvals_bulk_deny(
        codes=[first.code, decided.code, last.code], reviewer=alice, reason="Change freeze."
    )

    assert [r.ok for r in results] == [True, False, True]
    assert results[1].message == "Already approved."
    for approval in (first, last):
        approval.refresh_from_db()
        assert approval.status == Status.DENIED
        assert approval.decision.note == "Change freeze."
    assert _status(decided) == Status.APPROVED


def test_it_refuses_a_bulk_deny_without_a_reason_and_decides_nothing(alice, team) -> None:
    approval = ApprovalRequestFactory(team=team)
    with pytest.raises(BulkRefused, match="Say why"):
        approvals_bulk_deny(codes=[approval.code], reviewer=alice, reason="  ")
    assert _status(approval) == Status.PENDING


def test_it_keeps_the_four_eyes_rule_for_the_reviewers_own_agent(alice, team) -> None:
    own = ApprovalRequestFactory(
        team=team, impact=Impact.LOW, agent=AgentFactory(operators=[alice])
    )
    [result] = approvals_bulk_approve(codes=[own.code], reviewer=alice)
    assert not result.ok and "another reviewer must approve it" in result.message
    assert _status(own) == Status.PENDING


def test_it_checks_the_codes_before_anything_runs() -> None:
    with pytest.raises(BulkRefused, match="approve or deny"):
        bulk_codes_check(action="escalate", raw_codes=[str(uuid.uuid4())])
    with pytest.raises(BulkRefused, match="Tick at least one"):
        bulk_codes_check(action="deny", raw_codes=["not-a-code"])
    with pytest.raises(BulkRefused, match=f"At most {BULK_MAX}"):
        bulk_codes_check(action="deny", raw_codes=[str(uuid.uuid4()) for _ in range(BULK_MAX + 1)])
    code = uuid.uuid4()
    assert bulk_codes_check(action="deny", raw_codes=[str(code), str(code)]) == [code]


def test_the_confirmation_lists_every_ticked_request_and_decides_nothing(
    client, alice, team
) -> None:
    low = ApprovalRequestFactory(team=team, impact=Impact.LOW, summary="Tag <b>ticket</b> 5521")
    high = ApprovalRequestFactory(team=team, impact=Impact.HIGH)
    client.force_login(alice)

    page = client.post(
        reverse("approvals:bulk-confirm"), {"action": "approve", "codes": [low.code, high.code]}
    )

    html = page.content.decode()
    assert page.status_code == 200
    assert html.count('class="bulk-item') == 2
    assert "Tag &lt;b&gt;ticket&lt;/b&gt; 5521" in html  # the agent's words, escaped
    assert "Approve 1 request" in html
    assert f'name="codes" value="{low.code}"' in html
    assert f'name="codes" value="{high.code}"' not in html  # not carried to the decision
    assert _status(low) == _status(high) == Status.PENDING


def test_the_decision_page_refuses_a_high_impact_request_sent_to_it_directly(
    client, alice, team
) -> None:
    high = ApprovalRequestFactory(team=team, impact=Impact.HIGH)
    client.force_login(alice)

    page = client.post(
        reverse("approvals:bulk-decide"), {"action": "approve", "codes": [high.code]}
    )

    assert page.status_code == 200
    assert "Approved: 0 of 1" in page.content.decode()
    assert _status(high) == Status.PENDING


def test_the_bulk_pages_need_a_login_and_a_reason(client, alice, team) -> None:
    approval = ApprovalRequestFactory(team=team)
    page = client.post(
        reverse("approvals:bulk-decide"), {"action": "deny", "codes": [approval.code]}
    )
    assert page.status_code == 302 and "/accounts/login/" in page["Location"]
    client.force_login(alice)
    page = client.post(
        reverse("approvals:bulk-decide"), {"action": "deny", "codes": [approval.code]}
    )
    assert page.status_code == 400
    assert "Say why" in page.content.decode()
    assert _status(approval) == Status.PENDING
