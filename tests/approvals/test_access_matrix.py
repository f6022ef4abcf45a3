"""Who may see and do what, over every page, API endpoint and websocket.

Personas: a reviewer of the request's team, a reviewer of another team, a staff member, and an
anonymous visitor. Whatever the other team's reviewer tries answers 404 and changes nothing.
"""

import asyncio

import pytest
import websockets
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient
from websockets.exceptions import InvalidStatus

from approvals.models import ApprovalEvent, ApprovalRequest, Status
from tests.conftest import ReviewerSession
from tests.factories import (
    ApprovalRequestFactory,
    PolicyRuleFactory,
    TeamFactory,
    UserFactory,
    reviewer_api_token,
)
from tests.thread_connections import db_to_thread

# (url name, form data) for every page that changes something.
PAGE_ACTIONS = [
    ("approvals:approve", {"note": "ok", "confirmed": "issue_refund"}),
    ("approvals:approve-changes", {"arguments": '{"amount": 1}', "confirmed": "issue_refund"}),
    ("approvals:deny", {"reason": "no"}),
    ("approvals:escalate", {"team": "__ops__", "note": "over to you"}),
    ("approvals:comment", {"note": "looking"}),
    ("approvals:claim", {}),
    ("approvals:release", {}),
]
API_ACTIONS = [
    ("api-v1:reviewer-request-approve", {"note": "ok", "confirm": "issue_refund"}),
    ("api-v1:reviewer-request-deny", {"reason": "no"}),
    ("api-v1:reviewer-request-comment", {"note": "looking"}),
    ("api-v1:reviewer-request-escalate", {"team": "ops", "note": "over to you"}),
]


@pytest.fixture
def world(db):
    alice = UserFactory(username="alice")
    bob = UserFactory(username="bob")
    payments = TeamFactory(name="payments", members=[alice])
    ops = TeamFactory(name="ops", members=[bob])
    # Payments reviews refunds, so a changed refund stays with payments (a real routing rule).
    PolicyRuleFactory(tool_glob="issue_refund", team=payments)
    approval = ApprovalRequestFactory(team=payments, tool="issue_refund")
    return {"alice": alice, "bob": bob, "payments": payments, "ops": ops, "approval": approval}


def _client(user):
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def _history(approval: ApprovalRequest) -> list[tuple[str, str]]:
    return list(ApprovalEvent.objects.filter(approval=approval).values_list("kind", "note"))


def _data(data: dict[str, str], world) -> dict[str, str]:
    return {k: str(world["ops"].pk) if v == "__ops__" else v for k, v in data.items()}


@pytest.mark.django_db
class TestPages:
    def test_it_lists_a_request_only_for_its_team_and_staff(self, world) -> None:
        row = f'id="approval-{world["approval"].code}"'
        staff = UserFactory(username="sam", is_staff=True)
        for user, visible in ((world["alice"], True), (world["bob"], False), (staff, True)):
            html = _client(user).get(reverse("approvals:queue")).content.decode()
            assert (row in html) is visible, user
        anonymous = _client(None).get(reverse("approvals:queue"))
        assert anonymous.status_code == 302

    def test_it_shows_decided_requests_in_history_only_to_their_team(self, world) -> None:
        decided = ApprovalRequestFactory(team=world["payments"], status=Status.DENIED)
        row = f'id="approval-{decided.code}"'
        assert row in _client(world["alice"]).get(reverse("approvals:history")).content.decode()
        assert row not in _client(world["bob"]).get(reverse("approvals:history")).content.decode()
        assert _client(None).get(reverse("approvals:history")).status_code == 302

    def test_it_shows_the_detail_page_to_the_team_only(self, world) -> None:
        url = reverse("approvals:detail", args=[world["approval"].code])
        assert _client(world["alice"]).get(url).status_code == 200
        assert _client(world["bob"]).get(url).status_code == 404
        assert _client(None).get(url).status_code == 302

    def test_it_keeps_unrouted_requests_for_staff(self, world) -> None:
        unrouted = ApprovalRequestFactory(team=None)
        url = reverse("approvals:detail", args=[unrouted.code])
        assert _client(world["alice"]).get(url).status_code == 404
        assert _client(UserFactory(username="sam", is_staff=True)).get(url).status_code == 200

    @pytest.mark.parametrize(("name", "data"), PAGE_ACTIONS)
    def test_it_refuses_every_action_to_another_team(self, world, name, data) -> None:
        approval = world["approval"]
        before = _history(approval)
        response = _client(world["bob"]).post(
            reverse(name, args=[approval.code]), _data(data, world)
        )
        assert response.status_code == 404
        approval.refresh_from_db()
        assert approval.status == Status.PENDING and approval.team == world["payments"]
        assert _history(approval) == before

    @pytest.mark.parametrize(("name", "data"), PAGE_ACTIONS)
    def test_it_sends_anonymous_actions_to_log_in(self, world, name, data) -> None:
        approval = world["approval"]
        before = _history(approval)
        response = _client(None).post(reverse(name, args=[approval.code]), _data(data, world))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
        approval.refresh_from_db()
        assert approval.status == Status.PENDING
        assert _history(approval) == before

    @pytest.mark.parametrize(("name", "data"), PAGE_ACTIONS)
    def test_it_allows_every_action_to_the_team(self, world, name, data) -> None:
        approval = world["approval"]
        response = _client(world["alice"]).post(
            reverse(name, args=[approval.code]), _data(data, world), HTTP_HX_REQUEST="true"
        )
        assert response.status_code == 200, response.content.decode()[:500]


@pytest.mark.django_db
class TestApi:
    def _api(self, user):
        client = APIClient()
        if user is not None:
            client.credentials(HTTP_AUTHORIZATION=f"Token {reviewer_api_token(user)}")
        return client

    def test_it_lists_only_the_teams_requests(self, world) -> None:
        url = reverse("api-v1:reviewer-request-list")
        code = str(world["approval"].code)
        alice_ids = [r["id"] for r in self._api(world["alice"]).get(url).json()["data"]]
        bob = self._api(world["bob"]).get(url)
        assert code in alice_ids
        assert bob.status_code == 200 and code not in [r["id"] for r in bob.json()["data"]]
        anonymous = self._api(None).get(url)
        assert anonymous.status_code == 401
        assert anonymous.json()["error"]["type"] == "authentication"

    def test_it_reads_a_request_for_the_team_only(self, world) -> None:
        url = reverse("api-v1:reviewer-request-detail", args=[world["approval"].code])
        assert self._api(world["alice"]).get(url).status_code == 200
        hidden = self._api(world["bob"]).get(url)
        assert hidden.status_code == 404
        assert hidden.json()["error"]["code"] == "not_found"
        assert self._api(None).get(url).status_code == 401

    @pytest.mark.parametrize(("name", "data"), API_ACTIONS)
    def test_it_refuses_every_decision_to_another_team_and_anonymous(
        self, world, name, data
    ) -> None:
        approval = world["approval"]
        before = _history(approval)
        url = reverse(name, args=[approval.code])
        assert self._api(world["bob"]).post(url, data, format="json").status_code == 404
        assert self._api(None).post(url, data, format="json").status_code == 401
        approval.refresh_from_db()
        assert approval.status == Status.PENDING and approval.team == world["payments"]
        assert _history(approval) == before

    @pytest.mark.parametrize(("name", "data"), API_ACTIONS)
    def test_it_allows_every_decision_to_the_team(self, world, name, data) -> None:
        url = reverse(name, args=[world["approval"].code])
        response = self._api(world["alice"]).post(url, data, format="json")
        assert response.status_code in (200, 201), response.content

    def test_it_refuses_agent_credentials(self, world, agent_client) -> None:
        url = reverse("api-v1:reviewer-request-list")
        assert agent_client.get(url).status_code == 401


@pytest.mark.django_db(transaction=True)
def test_it_pushes_a_request_only_to_its_teams_sockets(live_console) -> None:
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    payments = TeamFactory(name="payments", members=[alice])
    ops = TeamFactory(name="ops", members=[bob])
    alice_session = ReviewerSession(live_console.url, "alice")
    bob_session = ReviewerSession(live_console.url, "bob")
    from approvals.reviews import check_approval_request_comment

    async def scenario() -> tuple[list[str], list[str]]:
        async with (
            alice_session.socket() as alice_ws,
            bob_session.socket() as bob_ws,
        ):
            secret = await db_to_thread(
                ApprovalRequestFactory, team=payments, tool="payments_secret_tool"
            )
            await db_to_thread(
                check_approval_request_comment, approval=secret, reviewer=alice, note="pushed"
            )
            # A request for bob's own team, pushed after: once it arrives, anything about the
            # payments request would have arrived before it (one socket, in order).
            marker = await db_to_thread(ApprovalRequestFactory, team=ops, tool="ops_marker")
            await db_to_thread(
                check_approval_request_comment, approval=marker, reviewer=bob, note="marker"
            )
            alice_got = [await asyncio.wait_for(alice_ws.recv(decode=True), 5)]
            bob_got = []
            while True:
                message = await asyncio.wait_for(bob_ws.recv(decode=True), 5)
                bob_got.append(message)
                if "ops_marker" in message:
                    break
            return alice_got, bob_got

    alice_got, bob_got = asyncio.run(scenario())
    assert "payments_secret_tool" in alice_got[0]
    assert not any("payments_secret_tool" in message for message in bob_got)
    alice_session.close()
    bob_session.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("who", ["other_team", "anonymous"])
def test_it_refuses_a_detail_socket_to_outsiders(live_console, who) -> None:
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    payments = TeamFactory(name="payments", members=[alice])
    TeamFactory(name="ops", members=[bob])
    approval = ApprovalRequestFactory(team=payments)
    headers = {}
    if who == "other_team":
        headers = {"Cookie": ReviewerSession(live_console.url, "bob").session_cookie}

    async def scenario() -> None:
        async with websockets.connect(
            f"{live_console.ws_url}/ws/queue/?approval={approval.code}",
            additional_headers=headers,
            origin=live_console.url,
        ):
            pass

    with pytest.raises(InvalidStatus) as refused:
        asyncio.run(scenario())
    assert refused.value.response.status_code == 403


@pytest.mark.django_db(transaction=True)
def test_it_lets_the_team_open_a_detail_socket_and_shows_presence(live_console) -> None:
    alice = UserFactory(username="alice")
    payments = TeamFactory(name="payments", members=[alice])
    approval = ApprovalRequestFactory(team=payments)
    session = ReviewerSession(live_console.url, "alice")

    async def scenario() -> str:
        async with session.socket(approval.code) as ws:
            return await asyncio.wait_for(ws.recv(), 5)

    presence = asyncio.run(scenario())
    assert f'id="presence-{approval.code}"' in presence
    assert "Looking now: alice" in presence
    session.close()
