"""Escalating by hand along the chain, from the decision page and from the reviewer API."""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from approvals.models import (
    ApprovalEvent,
    EscalationChain,
    EscalationFiring,
    EscalationStep,
    EscalationTrigger,
)
from tests.factories import ApprovalRequestFactory, TeamFactory, UserFactory, reviewer_api_token

pytestmark = pytest.mark.django_db

NEXT_STEP_BUTTON = "Escalate to the next step now"


@pytest.fixture
def team(db):
    return TeamFactory(name="payments", members=[UserFactory(username="ann")])


@pytest.fixture
def chain(team):
    """Step 1 tells the payments leads; step 2 hands the request to security."""
    leads = TeamFactory(name="payments-leads", members=[UserFactory(username="lea")])
    security = TeamFactory(name="security", members=[UserFactory(username="sara")])
    chain = EscalationChain.objects.create(name="payments")
    EscalationStep.objects.create(chain=chain, position=1, after_minutes=10, notify_team=leads)
    EscalationStep.objects.create(chain=chain, position=2, after_minutes=20, reassign_to=security)
    return chain


def _fired(approval) -> list[tuple[int, str]]:
    return list(
        EscalationFiring.objects.filter(approval=approval)
        .order_by("id")
        .values_list("step__position", "trigger")
    )


def _detail(client, approval) -> str:
    return client.get(reverse("approvals:detail", args=[approval.code])).content.decode()


def test_it_shows_the_control_only_while_a_step_is_left(client, team, chain) -> None:
    client.force_login(team.members.get())
    without_chain = ApprovalRequestFactory(team=team)
    approval = ApprovalRequestFactory(team=team, escalation_chain=chain)

    assert NEXT_STEP_BUTTON not in _detail(client, without_chain)
    html = _detail(client, approval)
    assert NEXT_STEP_BUTTON in html
    assert "Next escalation step (1): notifies payments-leads." in html


def test_it_fires_the_next_step_and_answers_htmx_with_the_panel(client, team, chain) -> None:
    client.force_login(team.members.get())
    approval = ApprovalRequestFactory(team=team, escalation_chain=chain)

    response = client.post(
        reverse("approvals:escalate-next-step", args=[approval.code]),
        {"note": "Nobody on payments answers."},
        HTTP_HX_REQUEST="true",
    )

    assert response.status_code == 200
    html = response.content.decode()
    assert f'id="decision-{approval.code}"' in html
    assert "Escalated: step 1 of the chain fired." in html
    # The panel already offers the step after it.
    assert "Next escalation step (2): notifies security and hands the request to security." in html
    assert _fired(approval) == [(1, EscalationTrigger.MANUAL)]
    event = ApprovalEvent.objects.get(approval=approval, kind="escalated")
    assert event.actor_user == team.members.get()
    assert event.note.endswith("Nobody on payments answers.")


def test_it_redirects_without_htmx_and_leaves_when_the_step_hands_it_away(
    client, team, chain
) -> None:
    client.force_login(team.members.get())
    approval = ApprovalRequestFactory(team=team, escalation_chain=chain)
    url = reverse("approvals:escalate-next-step", args=[approval.code])

    first = client.post(url, {})
    assert (first.status_code, first["Location"]) == (302, f"/requests/{approval.code}/")
    second = client.post(url, {}, HTTP_HX_REQUEST="true")

    assert second.status_code == 200
    assert "Escalated to security. It has left your queue." in second.content.decode()
    assert _fired(approval) == [(1, EscalationTrigger.MANUAL), (2, EscalationTrigger.MANUAL)]
    approval.refresh_from_db()
    assert approval.team.name == "security"


def test_it_answers_409_in_the_panel_when_no_step_is_left(client, team, chain) -> None:
    client.force_login(team.members.get())
    approval = ApprovalRequestFactory(team=team)

    response = client.post(
        reverse("approvals:escalate-next-step", args=[approval.code]), {}, HTTP_HX_REQUEST="true"
    )

    assert response.status_code == 409
    assert "No escalation chain applies to this request." in response.content.decode()
    assert _fired(approval) == []


def test_it_refuses_a_note_that_is_too_long(client, team, chain) -> None:
    client.force_login(team.members.get())
    approval = ApprovalRequestFactory(team=team, escalation_chain=chain)

    response = client.post(
        reverse("approvals:escalate-next-step", args=[approval.code]),
        {"note": "x" * 5001},
        HTTP_HX_REQUEST="true",
    )

    assert response.status_code == 400
    assert _fired(approval) == []


@pytest.fixture
def api(team) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {reviewer_api_token(team.members.get())}")
    return client


def _api_url(approval) -> str:
    return reverse("api-v1:reviewer-request-escalate-next-step", args=[approval.code])


def test_the_api_fires_the_next_step(api, team, chain) -> None:
    approval = ApprovalRequestFactory(team=team, escalation_chain=chain)

    first = api.post(_api_url(approval), {"note": "Paging the leads."}, format="json")
    second = api.post(_api_url(approval), {}, format="json")

    assert first.status_code == 200
    assert first.json() == {"id": str(approval.code), "step": 1, "team": "payments"}
    assert second.json() == {"id": str(approval.code), "step": 2, "team": "security"}
    assert _fired(approval) == [(1, EscalationTrigger.MANUAL), (2, EscalationTrigger.MANUAL)]


def test_the_api_answers_409_when_no_step_is_left_and_400_on_bad_input(api, team, chain) -> None:
    approval = ApprovalRequestFactory(team=team)
    response = api.post(_api_url(approval), {}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "escalation_unavailable"

    chained = ApprovalRequestFactory(team=team, escalation_chain=chain)
    bad = api.post(_api_url(chained), {"note": 5, "extra": True}, format="json")
    assert bad.status_code == 400
    assert _fired(chained) == []


def test_the_api_hides_requests_of_other_teams(team, chain) -> None:
    outsider = APIClient()
    outsider.force_authenticate(UserFactory(username="olga"))
    approval = ApprovalRequestFactory(team=team, escalation_chain=chain)

    assert outsider.post(_api_url(approval), {}, format="json").status_code == 404
    assert _fired(approval) == []
