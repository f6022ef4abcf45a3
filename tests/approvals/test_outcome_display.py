"""Where decisions are shown, what happened after them is shown too: the decision page, the
history row and the reviewer API. The agent's error and result are its words: escaped, their
invisible characters visible, framed as the agent's claim."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from approvals.models import Decision, OutcomeSource
from approvals.services import (
    OutcomeReport,
    approval_outcome_report,
    approval_outcomes_mark_not_reported,
    approval_request_approve,
)
from tests.factories import ApprovalRequestFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db

HOSTILE = "<script>alert(1)</script> card_declined\u202e"


@pytest.fixture
def ana(db):
    user = UserFactory(username="ana")
    TeamFactory(name="payments", members=[user])
    return user


@pytest.fixture
def failed(ana):
    approval = approval_request_approve(
        approval=ApprovalRequestFactory(team=ana.teams.get()), reviewer=ana
    )
    approval_outcome_report(
        approval=approval, report=OutcomeReport(status="failed", error=HOSTILE, duration_ms=40)
    )
    return approval


def _assert_shows_the_failure_as_the_agents_words(html: str) -> None:
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; card_declined⟨U+202E⟩" in html
    assert 'data-execution-status="failed"' in html
    assert '<span class="says">Agent says</span> <q class="agent-claim">&lt;script' in html
    assert "<strong>failed</strong>" in html and "reported by the agent" in html


def test_the_decision_page_says_what_happened_after_the_approval(client, ana, failed) -> None:
    client.force_login(ana)
    html = client.get(reverse("approvals:detail", args=[failed.code])).content.decode()
    assert "by ana" in html
    _assert_shows_the_failure_as_the_agents_words(html)
    # A sentence of its own, not the tail of one ("— executed ...") it no longer follows.
    line = html.split('data-execution-status="failed">', 1)[1].lstrip()
    assert line.startswith("Executed <time"), line[:80]


def test_the_history_row_says_what_happened(client, ana, failed) -> None:
    client.force_login(ana)
    html = client.get(reverse("approvals:history")).content.decode()
    _assert_shows_the_failure_as_the_agents_words(html)


def test_an_approval_nobody_reported_on_is_never_shown_as_a_success(client, ana) -> None:
    approval = approval_request_approve(
        approval=ApprovalRequestFactory(team=ana.teams.get()), reviewer=ana
    )
    Decision.objects.filter(approval=approval).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    approval_outcomes_mark_not_reported()
    client.force_login(ana)
    html = client.get(reverse("approvals:detail", args=[approval.code])).content.decode()
    assert "No outcome reported" in html and "marked by the console" in html
    assert "succeeded" not in html


def test_the_reviewer_api_carries_the_outcome(client, ana, failed) -> None:
    client.force_login(ana)
    data = client.get(f"/api/v1/reviewer/requests/{failed.code}").json()
    assert data["outcome"]["status"] == "failed" and data["outcome"]["error"] == HOSTILE
    assert data["outcome"]["source"] == OutcomeSource.AGENT
    listed = client.get("/api/v1/reviewer/requests?state=decided").json()["data"]
    assert [row["outcome"]["status"] for row in listed] == ["failed"]
