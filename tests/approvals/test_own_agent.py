"""Nobody approves a request they submitted: an agent's operators may deny it, not approve it."""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from approvals.audit import AuditAction
from approvals.exceptions import ReviewRejected
from approvals.models import ApprovalEvent, ApprovalVote, AuditRecord, Status
from approvals.reviews import (
    OWN_AGENT,
    check_approval_request_approve,
    check_approval_request_comment,
    check_approval_request_deny,
)
from tests.factories import (
    AgentFactory,
    ApprovalRequestFactory,
    TeamFactory,
    UserFactory,
    reviewer_api_token,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def ops(db):
    """ann runs the agent; ben is another reviewer in the same team."""
    ann, ben = UserFactory(username="ann"), UserFactory(username="ben")
    team = TeamFactory(name="payments", members=[ann, ben])
    agent = AgentFactory(name="refund-bot", operators=[ann])
    return ann, ben, team, agent


def _approval(ops, **kwargs):
    _, _, team, agent = ops
    return ApprovalRequestFactory(team=team, agent=agent, **kwargs)


# --- the service: the one place the rule lives ---------------------------------------------------


def test_it_refuses_an_operator_approving_their_agents_request(ops) -> None:
    ann, _, _, _ = ops
    approval = _approval(ops)
    with pytest.raises(ReviewRejected) as refused:
        check_approval_request_approve(approval=approval, reviewer=ann, confirmed=approval.tool)
    assert refused.value.code == OWN_AGENT
    approval.refresh_from_db()
    assert approval.status == Status.PENDING
    assert not ApprovalEvent.objects.filter(approval=approval, kind="approved").exists()


def test_it_refuses_an_operators_quorum_vote_and_changed_arguments(ops) -> None:
    ann, _, _, _ = ops
    approval = _approval(ops, required_approvals=2, arguments={"amount": 10})
    with pytest.raises(ReviewRejected):
        check_approval_request_approve(approval=approval, reviewer=ann, confirmed=approval.tool)
    with pytest.raises(ReviewRejected):
        check_approval_request_approve(
            approval=approval, reviewer=ann, arguments={"amount": 1}, confirmed=approval.tool
        )
    assert not ApprovalVote.objects.filter(approval=approval).exists()


def test_it_refuses_staff_who_operate_the_agent_too(ops) -> None:
    _, _, _, agent = ops
    admin = UserFactory(username="root", is_staff=True)
    agent.operators.add(admin)
    with pytest.raises(ReviewRejected):
        check_approval_request_approve(
            approval=_approval(ops), reviewer=admin, confirmed="issue_refund"
        )


def test_it_lets_an_operator_comment_and_deny(ops) -> None:
    ann, _, _, _ = ops
    approval = _approval(ops)
    check_approval_request_comment(approval=approval, reviewer=ann, note="Looks wrong to me.")
    denied = check_approval_request_deny(approval=approval, reviewer=ann, reason="Stop it.")
    assert denied.status == Status.DENIED


def test_it_lets_a_reviewer_who_does_not_operate_the_agent_approve(ops) -> None:
    _, ben, _, _ = ops
    outcome = check_approval_request_approve(
        approval=_approval(ops), reviewer=ben, confirmed="issue_refund"
    )
    assert outcome.decided


def test_it_lets_an_operator_approve_another_agents_request(ops) -> None:
    ann, _, team, _ = ops
    other = ApprovalRequestFactory(team=team, agent=AgentFactory(name="mail-bot"))
    assert check_approval_request_approve(
        approval=other, reviewer=ann, confirmed=other.tool
    ).decided


# --- the decision page -------------------------------------------------------------------------


def test_it_replaces_the_approve_controls_with_an_explanation(client, ops) -> None:
    ann, ben, _, _ = ops
    approval = _approval(ops)
    client.force_login(ann)
    page = client.get(reverse("approvals:detail", args=[approval.code])).content.decode()
    assert 'id="own-agent-note"' in page and "refund-bot" in page
    assert 'id="approve-button"' not in page and 'id="changes"' not in page
    assert 'class="danger deny"' in page  # denying stays possible
    client.force_login(ben)
    page = client.get(reverse("approvals:detail", args=[approval.code])).content.decode()
    assert 'id="approve-button"' in page and 'id="own-agent-note"' not in page


def test_it_refuses_a_posted_approval_from_an_operator(client, ops) -> None:
    ann, _, _, _ = ops
    approval = _approval(ops)
    client.force_login(ann)
    response = client.post(
        reverse("approvals:approve", args=[approval.code]), {}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 400
    assert "another reviewer must approve it" in response.content.decode()
    approval.refresh_from_db()
    assert approval.status == Status.PENDING


def test_it_lets_an_operator_deny_from_the_page(client, ops) -> None:
    ann, _, _, _ = ops
    approval = _approval(ops)
    client.force_login(ann)
    client.post(
        reverse("approvals:deny", args=[approval.code]),
        {"reason": "My agent is confused."},
        HTTP_HX_REQUEST="true",
    )
    approval.refresh_from_db()
    assert approval.status == Status.DENIED


# --- the reviewer API --------------------------------------------------------------------------


def _api(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {reviewer_api_token(user)}")
    return client


def _url(name: str, approval) -> str:
    return reverse(f"api-v1:reviewer-request-{name}", args=[approval.code])


def test_it_answers_403_own_agent_in_the_api(ops) -> None:
    ann, _, _, _ = ops
    approval = _approval(ops)
    response = _api(ann).post(_url("approve", approval), {}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == OWN_AGENT
    approval.refresh_from_db()
    assert approval.status == Status.PENDING


def test_it_lets_an_operator_deny_and_comment_in_the_api(ops) -> None:
    ann, _, _, _ = ops
    approval = _approval(ops)
    api = _api(ann)
    assert api.post(_url("comment", approval), {"note": "Hm."}, format="json").status_code == 201
    response = api.post(_url("deny", approval), {"reason": "No."}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "denied"


# --- the admin ---------------------------------------------------------------------------------


def test_it_records_operators_changed_in_the_admin(client, ops) -> None:
    ann, ben, _, agent = ops
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    url = reverse("admin:agents_agent_change", args=[agent.pk])
    form = client.get(url)
    data: dict[str, object] = {"name": agent.name, "description": "", "operators": [ben.pk]}
    for inline in form.context["inline_admin_formsets"]:
        prefix = inline.formset.prefix
        data |= {f"{prefix}-TOTAL_FORMS": 0, f"{prefix}-INITIAL_FORMS": 0}
    response = client.post(url, data)
    assert response.status_code == 302, response.content
    assert list(agent.operators.all()) == [ben]
    record = AuditRecord.objects.get(action=AuditAction.CONFIG_CHANGED)
    assert record.before == {"operators": [ann.pk]} and record.after == {"operators": [ben.pk]}
