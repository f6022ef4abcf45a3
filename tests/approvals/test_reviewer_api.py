"""The reviewer REST API: the same rules as the pages, for scripts and a team's own tools."""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from approvals.models import Status
from approvals.services import approval_request_approve
from tests.factories import (
    ApprovalRequestFactory,
    PolicyRuleFactory,
    TeamFactory,
    UserFactory,
    reviewer_api_token,
)
from tests.interleave import after_call

pytestmark = pytest.mark.django_db


@pytest.fixture
def ann(db):
    user = UserFactory(username="ann")
    payments = TeamFactory(name="payments", members=[user, UserFactory(username="ben")])
    PolicyRuleFactory(tool_glob="issue_refund", team=payments)  # payments reviews refunds
    return user


@pytest.fixture
def api(ann) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {reviewer_api_token(ann)}")
    return client


@pytest.fixture
def approval(ann):
    return ApprovalRequestFactory(team=ann.teams.get(), arguments={"amount": 4900})


def _url(name: str, approval) -> str:
    return reverse(f"api-v1:reviewer-request-{name}", args=[approval.code])


def test_it_lists_and_reads_with_review_fields(api, approval) -> None:
    listed = api.get(reverse("api-v1:reviewer-request-list"), {"tool": approval.tool}).json()
    assert [item["id"] for item in listed["data"]] == [str(approval.code)]
    body = api.get(_url("detail", approval)).json()
    assert body["team"] == "payments" and body["agent"] == approval.agent.name
    assert body["required_approvals"] == 1 and body["approved_by"] == []


def test_it_approves_with_changed_arguments(api, approval) -> None:
    response = api.post(
        _url("approve", approval),
        {"arguments": {"amount": 100}, "note": "Half.", "confirm": approval.tool},
        format="json",
    )
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "approved"
    assert body["decision"]["approved_arguments"] == {"amount": 100}
    assert body["decision"]["arguments_changed"] is True


def test_it_names_the_bad_field_and_stores_nothing(api, approval) -> None:
    bad_arguments = api.post(_url("approve", approval), {"arguments": [1]}, format="json")
    assert bad_arguments.status_code == 400
    assert bad_arguments.json()["error"]["param"] == "arguments"
    no_reason = api.post(_url("deny", approval), {}, format="json")
    assert no_reason.status_code == 400
    assert no_reason.json()["error"]["param"] == "reason"
    unknown = api.post(_url("approve", approval), {"aproved": True}, format="json")
    assert unknown.json()["error"]["param"] == "aproved"
    approval.refresh_from_db()
    assert approval.status == Status.PENDING
    assert not approval.events.exists()


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"note": "ok"},
        {"confirm": ""},
        {"confirm": "send_email"},
        {"arguments": {"amount": 100}},
    ],
)
def test_it_refuses_a_high_impact_approval_without_confirm_naming_the_tool(
    api, approval, body
) -> None:
    response = api.post(_url("approve", approval), body, format="json")

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("confirmation_required", "confirm")
    assert error["message"].startswith("confirm: ") and '"issue_refund"' in error["message"]
    approval.refresh_from_db()
    assert approval.status == Status.PENDING
    assert not approval.events.exists() and not approval.votes.exists()


def test_it_approves_a_high_impact_request_with_confirm_naming_the_tool(api, approval) -> None:
    response = api.post(
        _url("approve", approval), {"confirm": "issue_refund", "note": "Checked."}, format="json"
    )

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "approved"


def test_its_schema_documents_confirm(api) -> None:
    schema = api.get("/api/v1/schema", HTTP_ACCEPT="application/json").json()
    approve = schema["paths"]["/api/v1/reviewer/requests/{code}/approve"]["post"]
    assert "`confirmation_required`" in approve["description"]
    ref = approve["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body = schema["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    assert "`high` or `critical`" in body["properties"]["confirm"]["description"]


def test_it_answers_409_when_someone_decided_first(api, approval) -> None:
    approval_request_approve(approval=approval, reviewer=UserFactory(username="otto"))
    response = api.post(_url("deny", approval), {"reason": "No."}, format="json")
    assert response.status_code == 409
    assert response.json()["error"] == {
        "type": "conflict",
        "code": "already_terminal",
        "message": "The request is already approved.",
        "request_id": response["X-Request-ID"],
    }
    approval.refresh_from_db()
    assert approval.status == Status.APPROVED


def test_it_counts_votes_towards_a_quorum(api, ann) -> None:
    approval = ApprovalRequestFactory(team=ann.teams.get(), required_approvals=2)
    confirmed = {"confirm": approval.tool}  # high impact
    first = api.post(_url("approve", approval), confirmed, format="json").json()
    assert first["status"] == "pending" and first["approved_by"] == ["ann"]
    again = api.post(_url("approve", approval), confirmed, format="json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_voted"


def test_it_comments_without_deciding(api, approval) -> None:
    response = api.post(_url("comment", approval), {"note": "Asked finance."}, format="json")
    assert response.status_code == 201
    assert response.json()["status"] == "pending"
    assert approval.events.get(kind="commented").note == "Asked finance."


def test_it_checks_csrf_on_session_writes(ann, approval) -> None:
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(ann)
    assert client.get(_url("detail", approval)).status_code == 200
    refused = client.post(_url("deny", approval), {"reason": "No."}, format="json")
    assert refused.status_code == 403
    approval.refresh_from_db()
    assert approval.status == Status.PENDING


@pytest.mark.parametrize(
    ("action", "body"),
    [
        ("approve", {"note": "ok"}),
        ("deny", {"reason": "no"}),
        ("comment", {"note": "hm"}),
        ("escalate", {"team": "risk", "note": "bigger"}),
    ],
)
def test_a_reviewer_removed_from_the_team_mid_call_gets_404_and_changes_nothing(
    api, ann, approval, monkeypatch, action, body
) -> None:
    """Between the API's read of the request and the action, the caller leaves the request's
    team: the action refuses, as for any request the caller cannot see."""
    from approvals import reviewer_api

    TeamFactory(name="risk")
    after_call(monkeypatch, reviewer_api, "approval_get_for_reviewer", ann.teams.clear)
    events_before = approval.events.count()

    response = api.post(_url(action, approval), body, format="json")

    assert response.status_code == 404, response.content
    assert response.json()["error"]["code"] == "not_found"
    approval.refresh_from_db()
    assert approval.status == Status.PENDING
    assert approval.events.count() == events_before


def test_a_decision_on_a_request_escalated_away_meanwhile_answers_without_its_details(
    api, approval, monkeypatch
) -> None:
    """Escalated to another team just after the reviewer decided: the decision stands, and the
    answer names the request and its outcome, nothing the reviewer may no longer see."""
    from approvals import reviewer_api
    from approvals.models import ApprovalRequest

    elsewhere = TeamFactory(name="elsewhere")
    after_call(
        monkeypatch,
        reviewer_api,
        "check_approval_request_deny",
        lambda: ApprovalRequest.objects.filter(pk=approval.pk).update(team=elsewhere),
    )
    response = api.post(_url("deny", approval), {"reason": "no"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json() == {"id": str(approval.code), "status": Status.DENIED}


def _escalated_after_read(monkeypatch, approval, team) -> None:
    """Between the API's read of the request (and its access check) and the decision, the
    request is escalated to `team`."""
    from approvals import reviewer_api
    from approvals.models import ApprovalRequest

    after_call(
        monkeypatch,
        reviewer_api,
        "approval_get_for_reviewer",
        lambda: ApprovalRequest.objects.filter(pk=approval.pk).update(team=team),
    )


@pytest.mark.parametrize(
    ("action", "body"), [("approve", {"confirm": "issue_refund"}), ("deny", {"reason": "no"})]
)
def test_a_decision_on_a_request_escalated_away_before_it_lands_is_refused(
    api, approval, monkeypatch, action, body
) -> None:
    elsewhere = TeamFactory(name="elsewhere")
    _escalated_after_read(monkeypatch, approval, elsewhere)

    response = api.post(_url(action, approval), body, format="json")

    assert response.status_code == 404, response.content
    approval.refresh_from_db()
    assert (approval.status, approval.team) == (Status.PENDING, elsewhere)
    assert not approval.events.filter(kind__in=[Status.APPROVED, Status.DENIED]).exists()


def test_staff_decide_a_request_escalated_meanwhile_as_it_is_now(approval, monkeypatch) -> None:
    staff = UserFactory(username="sam", is_staff=True)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {reviewer_api_token(staff)}")
    elsewhere = TeamFactory(name="elsewhere")
    _escalated_after_read(monkeypatch, approval, elsewhere)

    body = {"note": "fine", "confirm": approval.tool}
    response = client.post(_url("approve", approval), body, format="json")

    assert response.status_code == 200, response.content
    approval.refresh_from_db()
    assert (approval.status, approval.team) == (Status.APPROVED, elsewhere)
