import pytest
from django.urls import reverse

from approvals.models import Status
from approvals.services import approval_request_approve
from tests.factories import ApprovalRequestFactory, UserFactory
from tests.interleave import after_call

pytestmark = pytest.mark.django_db

HOSTILE = '<img src=x onerror="alert(1)"><script>alert(2)</script>'


@pytest.fixture
def logged_in(client, reviewer):
    client.force_login(reviewer)
    return client


@pytest.mark.parametrize("name", ["approvals:queue"])
def test_it_sends_anonymous_visitors_to_log_in(client, name) -> None:
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_it_requires_login_for_detail_and_decisions(client) -> None:
    approval = ApprovalRequestFactory()
    assert client.get(reverse("approvals:detail", args=[approval.code])).status_code == 302
    assert client.post(reverse("approvals:approve", args=[approval.code])).status_code == 302
    assert (
        client.post(reverse("approvals:deny", args=[approval.code]), {"reason": "x"}).status_code
        == 302
    )
    approval.refresh_from_db()
    assert approval.status == Status.PENDING


def test_it_lists_pending_requests_in_the_queue(logged_in) -> None:
    pending = ApprovalRequestFactory(tool="issue_refund")
    decided = ApprovalRequestFactory(tool="send_email")
    approval_request_approve(approval=decided, reviewer=UserFactory())
    response = logged_in.get(reverse("approvals:queue"))
    html = response.content.decode()
    assert f'id="approval-{pending.code}"' in html
    assert f'id="approval-{decided.code}"' not in html
    assert 'ws-connect="/ws/queue/"' in html


def test_it_escapes_agent_text_everywhere(logged_in) -> None:
    approval = ApprovalRequestFactory(
        tool=HOSTILE[:200], summary=HOSTILE, reasoning=HOSTILE, arguments={"note": HOSTILE}
    )
    for url in (reverse("approvals:queue"), reverse("approvals:detail", args=[approval.code])):
        html = logged_in.get(url).content.decode()
        assert "<script>alert(2)</script>" not in html
        assert '<img src=x onerror="alert(1)">' not in html
        assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html


def test_it_marks_the_agents_reasoning_as_a_claim(logged_in) -> None:
    approval = ApprovalRequestFactory(reasoning="Trust me.")
    html = logged_in.get(reverse("approvals:detail", args=[approval.code])).content.decode()
    assert "its claim, not verified" in html
    assert "Trust me." in html


def test_it_shows_the_exact_arguments(logged_in) -> None:
    approval = ApprovalRequestFactory(arguments={"amount": 4900, "payment_id": "pay_9"})
    html = logged_in.get(reverse("approvals:detail", args=[approval.code])).content.decode()
    assert "&quot;payment_id&quot;: &quot;pay_9&quot;" in html


def test_it_approves(logged_in, reviewer) -> None:
    approval = ApprovalRequestFactory()
    response = logged_in.post(
        reverse("approvals:approve", args=[approval.code]),
        {"note": "fine", "confirmed": approval.tool},  # high impact: the confirmed second step
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    assert "Approved" in response.content.decode()
    approval.refresh_from_db()
    assert approval.status == Status.APPROVED
    assert approval.decision.reviewer == reviewer


def test_it_requires_a_reason_to_deny(logged_in) -> None:
    approval = ApprovalRequestFactory()
    response = logged_in.post(
        reverse("approvals:deny", args=[approval.code]), {"reason": ""}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 400
    assert "Say why" in response.content.decode()
    approval.refresh_from_db()
    assert approval.status == Status.PENDING


def test_it_denies_with_a_reason(logged_in) -> None:
    approval = ApprovalRequestFactory()
    response = logged_in.post(
        reverse("approvals:deny", args=[approval.code]), {"reason": "No refunds on Sundays."}
    )
    assert response.status_code == 302
    approval.refresh_from_db()
    assert approval.status == Status.DENIED
    assert approval.decision.note == "No refunds on Sundays."


def test_it_answers_409_and_says_what_happened_when_someone_decided_first(logged_in) -> None:
    approval = ApprovalRequestFactory()
    approval_request_approve(approval=approval, reviewer=UserFactory(username="otto"))
    response = logged_in.post(
        reverse("approvals:deny", args=[approval.code]), {"reason": "No."}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 409
    html = response.content.decode()
    assert "someone else got there first" in html
    assert "otto" in html
    approval.refresh_from_db()
    assert approval.status == Status.APPROVED


def test_it_answers_404_for_an_unknown_request(logged_in) -> None:
    response = logged_in.get("/requests/00000000-0000-0000-0000-000000000000/")
    assert response.status_code == 404


def test_it_refuses_a_decision_without_csrf(reviewer) -> None:
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(reviewer)
    approval = ApprovalRequestFactory()
    response = client.post(reverse("approvals:approve", args=[approval.code]), {"note": ""})
    assert response.status_code == 403
    approval.refresh_from_db()
    assert approval.status == Status.PENDING


def test_it_sends_a_strict_content_security_policy(logged_in) -> None:
    csp = logged_in.get(reverse("approvals:queue"))["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("approvals:approve", {}),
        ("approvals:deny", {"reason": "No."}),
        ("approvals:comment", {"note": "Hm."}),
    ],
)
def test_a_reviewer_who_loses_sight_of_the_request_mid_call_gets_404(
    client, monkeypatch, name, data
) -> None:
    """The page read the request while the reviewer was in its team; they were removed before
    the action ran: 404 and nothing recorded, not a server error."""
    from approvals import views
    from tests.factories import TeamFactory

    member = UserFactory(username="mo")
    team = TeamFactory(name="payments", members=[member])
    approval = ApprovalRequestFactory(team=team)
    client.force_login(member)
    after_call(monkeypatch, views, "approval_get_for_reviewer", member.teams.clear)
    events_before = approval.events.count()

    response = client.post(reverse(name, args=[approval.code]), data)

    assert response.status_code == 404
    approval.refresh_from_db()
    assert approval.status == Status.PENDING
    assert approval.events.count() == events_before
