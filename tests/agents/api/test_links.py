"""The native API's `links`: validated (http/https only, few and short), stored, echoed, and
shown on the decision page as marked external links."""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from agents.api.links import MAX_LINKS
from approvals.models import ApprovalRequest
from tests.factories import ApprovalRequestFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db

BODY = {"tool": "issue_refund", "arguments": {"payment_id": "pay_1", "amount": 4900}}
ORDER = {"label": "Order 88121", "url": "https://shop.example.test/orders/88121"}


def _create(client: APIClient, links: object, key: str = "key-1"):
    return client.post(
        "/api/v1/requests", {**BODY, "links": links}, format="json", HTTP_IDEMPOTENCY_KEY=key
    )


def test_it_stores_and_echoes_the_links(agent_client) -> None:
    response = _create(agent_client, [ORDER])
    assert response.status_code == 201, response.content
    assert response.json()["links"] == [ORDER]
    assert ApprovalRequest.objects.get(code=response.json()["id"]).links == [ORDER]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("javascript:alert(1)", "Only http and https links are allowed, not 'javascript'."),
        ("data:text/html,<b>x</b>", "Only http and https links are allowed, not 'data'."),
        ("ftp://files.example.test/x", "Only http and https links are allowed, not 'ftp'."),
        ("https://", "The URL names no host."),
        ("https://example.test/a b", "The URL contains spaces or invisible characters."),
        ("https://example.test/\u202eexe", "The URL contains spaces or invisible characters."),
    ],
)
def test_it_refuses_a_link_that_is_not_http_and_stores_nothing(agent_client, url, message) -> None:
    response = _create(agent_client, [ORDER, {"label": "Bad", "url": url}])
    assert response.status_code == 400
    assert message in response.content.decode()
    assert response.json()["error"]["param"].startswith("links")
    assert not ApprovalRequest.objects.exists()


def test_it_refuses_too_many_links_unknown_keys_and_long_labels(agent_client) -> None:
    too_many = _create(agent_client, [ORDER] * (MAX_LINKS + 1), key="k-many")
    unknown = _create(agent_client, [{**ORDER, "target": "_self"}], key="k-unknown")
    long_label = _create(agent_client, [{**ORDER, "label": "x" * 101}], key="k-long")
    for response in (too_many, unknown, long_label):
        assert response.status_code == 400, response.content
    assert "Unknown field" in unknown.content.decode()
    assert not ApprovalRequest.objects.exists()


def test_the_same_key_with_other_links_is_a_conflict(agent_client) -> None:
    assert _create(agent_client, [ORDER]).status_code == 201
    other = {"label": "Order 1", "url": "https://shop.example.test/orders/1"}
    assert _create(agent_client, [other]).status_code == 409


def test_the_decision_page_shows_them_as_marked_external_links(client) -> None:
    ann = UserFactory(username="ann")
    approval = ApprovalRequestFactory(
        team=TeamFactory(members=[ann]), links=[{**ORDER, "label": "<b>Order</b>"}]
    )
    client.force_login(ann)
    html = client.get(reverse("approvals:detail", args=[approval.code])).content.decode()
    assert (
        '<a class="external agent-text" href="https://shop.example.test/orders/88121" '
        'rel="noopener noreferrer nofollow" target="_blank">'
    ) in html
    assert "&lt;b&gt;Order&lt;/b&gt;" in html and "<b>Order</b>" not in html
