"""Questions: an approval request of kind `question`, answered against its JSON Schema."""

import threading
import time

import httpx
import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from approvals.models import ApprovalRequest, Decision, Kind, Status
from approvals.services import approval_request_approve, approval_requests_expire_overdue
from tests.factories import (
    PolicyRuleFactory,
    TeamFactory,
    UserFactory,
    agent_with_token,
    reviewer_api_token,
)
from tests.waits import wait_until_parked

SCHEMA = {
    "type": "object",
    "properties": {
        "region": {"type": "string", "enum": ["eu-west-1", "us-east-1"]},
        "replicas": {"type": "integer", "minimum": 1},
        "dry_run": {"type": "boolean"},
    },
    "required": ["region", "replicas"],
    "additionalProperties": False,
}
QUESTION = {
    "question": "Which region should the new cluster go to?",
    "answer_schema": SCHEMA,
    "timeout": "30m",
}


def _ask(client, body: dict | None = None, key: str = "q-1"):
    return client.post(
        "/api/v1/questions",
        QUESTION if body is None else body,
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
    )


@pytest.fixture
def reviewer_api(db) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {_rita_token()}")
    return client


def _rita_token() -> str:
    return reviewer_api_token(UserFactory(username="rita", is_staff=True))


def _reviewer_url(action: str, code: str) -> str:
    return reverse(f"api-v1:reviewer-request-{action}", args=[code])


@pytest.mark.django_db
def test_it_creates_a_question_held_for_a_person(agent_client) -> None:
    response = _ask(agent_client)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["kind"] == "question" and body["status"] == "pending"
    assert body["summary"] == QUESTION["question"]
    assert body["answer_schema"] == SCHEMA
    stored = ApprovalRequest.objects.get(code=body["id"])
    assert stored.kind == Kind.QUESTION and stored.tool == "ask_human"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("schema", "words"),
    [
        ({"type": "no-such-type"}, "Not a valid JSON Schema"),
        ({"$ref": "https://example.test/schema.json"}, "Only references within the schema"),
        ({"enum": ["x" * 100] * 300}, "At most 20000 characters"),
    ],
)
def test_it_refuses_a_bad_answer_schema_naming_the_field(agent_client, schema, words) -> None:
    response = _ask(agent_client, {**QUESTION, "answer_schema": schema})
    assert response.status_code == 400
    assert words in response.content.decode()
    assert "answer_schema" in response.content.decode()
    assert not ApprovalRequest.objects.exists()


@pytest.mark.django_db
def test_it_refuses_a_blank_question(agent_client) -> None:
    response = _ask(agent_client, {**QUESTION, "question": "  "})
    assert response.status_code == 400 and "question" in response.content.decode()
    assert not ApprovalRequest.objects.exists()


@pytest.mark.django_db
def test_it_refuses_an_answer_that_breaks_the_schema_and_stores_nothing(
    agent_client, reviewer_api
) -> None:
    code = _ask(agent_client).json()["id"]
    response = reviewer_api.post(
        _reviewer_url("answer", code),
        {"answer": {"region": "mars-1", "replicas": 2}},
        format="json",
    )
    assert response.status_code == 400
    assert "$.region" in response.content.decode()
    assert ApprovalRequest.objects.get(code=code).status == Status.PENDING
    assert not Decision.objects.exists()


@pytest.mark.django_db
def test_it_stores_a_valid_answer_and_the_agent_reads_it(agent_client, reviewer_api) -> None:
    code = _ask(agent_client).json()["id"]
    answer = {"region": "eu-west-1", "replicas": 3, "dry_run": False}
    response = reviewer_api.post(
        _reviewer_url("answer", code), {"answer": answer, "note": "EU data."}, format="json"
    )
    assert response.status_code == 200, response.content
    read = agent_client.get(f"/api/v1/requests/{code}").json()
    assert read["status"] == "approved"
    assert read["decision"]["answer"] == answer
    assert read["decision"]["note"] == "EU data." and read["decision"]["decided_by"] == "reviewer"


@pytest.mark.django_db
def test_it_refuses_to_approve_a_question(agent_client, reviewer_api) -> None:
    code = _ask(agent_client).json()["id"]
    response = reviewer_api.post(_reviewer_url("approve", code), {}, format="json")
    assert response.status_code == 400
    assert "is_question" in response.content.decode()
    assert ApprovalRequest.objects.get(code=code).status == Status.PENDING


@pytest.mark.django_db
def test_it_refuses_to_answer_an_approval(agent_client, reviewer_api) -> None:
    created = agent_client.post(
        "/api/v1/requests",
        {"tool": "send_email", "arguments": {}, "timeout": "30m"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="a-1",
    ).json()
    response = reviewer_api.post(
        _reviewer_url("answer", created["id"]), {"answer": "yes"}, format="json"
    )
    assert response.status_code == 400
    assert ApprovalRequest.objects.get(code=created["id"]).status == Status.PENDING


@pytest.mark.django_db
def test_it_reads_a_declined_question_like_a_denial(agent_client, reviewer_api) -> None:
    code = _ask(agent_client).json()["id"]
    response = reviewer_api.post(
        _reviewer_url("deny", code), {"reason": "Ask the platform team."}, format="json"
    )
    assert response.status_code == 200
    decision = agent_client.get(f"/api/v1/requests/{code}").json()["decision"]
    assert decision["status"] == "denied"
    assert decision["note"] == "Ask the platform team."
    assert decision["answer"] is None


@pytest.mark.django_db
def test_it_expires_an_unanswered_question_with_no_answer(agent_client) -> None:
    code = _ask(agent_client, {**QUESTION, "timeout": "1s"}).json()["id"]
    ApprovalRequest.objects.filter(code=code).update(deadline_at=timezone.now())
    assert approval_requests_expire_overdue() == 1
    decision = agent_client.get(f"/api/v1/requests/{code}").json()["decision"]
    assert decision["status"] == "expired" and decision["answer"] is None


@pytest.mark.django_db
def test_it_holds_a_question_a_rule_would_approve(agent_client) -> None:
    team = TeamFactory(name="platform")
    PolicyRuleFactory(tool_glob="ask_*", outcome="approve", team=team)
    body = _ask(agent_client).json()
    assert body["status"] == "pending"
    assert "a question waits for a person's answer" in body["hold_reason"]


@pytest.mark.django_db(transaction=True)
def test_it_wakes_the_agents_long_poll_with_the_answer(live_console) -> None:
    _, token = agent_with_token()
    agent = httpx.Client(
        base_url=live_console.url, headers={"Authorization": f"Bearer {token}"}, timeout=40
    )
    reviewer = httpx.Client(
        base_url=live_console.url,
        headers={"Authorization": f"Token {_rita_token()}"},
        timeout=10,
    )
    created = agent.post("/api/v1/questions", json=QUESTION, headers={"Idempotency-Key": "q-live"})
    assert created.status_code == 201, created.text
    code = created.json()["id"]
    result: dict[str, object] = {}

    def wait() -> None:
        result["body"] = agent.get(f"/api/v1/requests/{code}", params={"wait": "30"}).json()
        result["returned_at"] = time.monotonic()

    waiter = threading.Thread(target=wait)
    waiter.start()
    wait_until_parked(code)
    answered_at = time.monotonic()
    response = reviewer.post(
        f"/api/v1/reviewer/requests/{code}/answer",
        json={"answer": {"region": "us-east-1", "replicas": 1}},
    )
    assert response.status_code == 200, response.text
    waiter.join(timeout=35)
    body = result["body"]
    assert body["decision"]["answer"] == {"region": "us-east-1", "replicas": 1}
    assert result["returned_at"] - answered_at < 2.0
    agent.close()
    reviewer.close()


@pytest.fixture
def rita_page(client, db):
    client.force_login(UserFactory(username="rita", is_staff=True))
    return client


@pytest.mark.django_db
def test_it_shows_a_form_generated_from_the_answer_schema(agent_client, rita_page) -> None:
    code = _ask(agent_client).json()["id"]
    page = rita_page.get(reverse("approvals:detail", args=[code])).content.decode()
    assert 'id="answer-form"' in page and 'id="approve-form"' not in page
    assert '<select name="answer_0"' in page and "eu-west-1" in page  # the enum, a select
    assert 'type="number" name="answer_1"' in page  # the integer
    assert '<select name="answer_2"' in page  # the boolean, yes or no
    assert "Decline to answer" in page and 'id="changes"' not in page
    assert "What the agent asks" in page and "What approving lets it do" not in page


@pytest.mark.django_db
def test_it_refuses_a_form_answer_that_breaks_the_schema(agent_client, rita_page) -> None:
    code = _ask(agent_client).json()["id"]
    response = rita_page.post(
        reverse("approvals:answer", args=[code]),
        {"answer_0": '"eu-west-1"', "answer_1": "0", "answer_2": ""},
    )
    assert response.status_code == 400
    assert "$.replicas" in response.content.decode()
    assert ApprovalRequest.objects.get(code=code).status == Status.PENDING
    assert not Decision.objects.exists()


@pytest.mark.django_db
def test_it_stores_a_form_answer_with_the_schemas_types(agent_client, rita_page) -> None:
    code = _ask(agent_client).json()["id"]
    response = rita_page.post(
        reverse("approvals:answer", args=[code]),
        {"answer_0": '"us-east-1"', "answer_1": "4", "answer_2": "true", "note": "Cheaper."},
    )
    assert response.status_code == 302
    decision = Decision.objects.get(approval__code=code)
    assert decision.answer == {"region": "us-east-1", "replicas": 4, "dry_run": True}
    page = rita_page.get(reverse("approvals:detail", args=[code])).content.decode()
    assert 'id="question-answer"' in page


@pytest.mark.django_db
def test_it_answers_a_schema_without_properties_as_raw_json(agent_client, rita_page) -> None:
    body = {**QUESTION, "answer_schema": {"type": "array", "items": {"type": "string"}}}
    code = _ask(agent_client, body).json()["id"]
    bad = rita_page.post(reverse("approvals:answer", args=[code]), {"answer_json": "[1"})
    assert bad.status_code == 400 and "Not valid JSON" in bad.content.decode()
    good = rita_page.post(reverse("approvals:answer", args=[code]), {"answer_json": '["a", "b"]'})
    assert good.status_code == 302
    assert Decision.objects.get(approval__code=code).answer == ["a", "b"]


@pytest.mark.django_db
def test_it_declines_a_question_from_the_page(agent_client, rita_page) -> None:
    code = _ask(agent_client).json()["id"]
    response = rita_page.post(reverse("approvals:deny", args=[code]), {"reason": "Not mine."})
    assert response.status_code == 302
    decision = agent_client.get(f"/api/v1/requests/{code}").json()["decision"]
    assert (decision["status"], decision["note"], decision["answer"]) == (
        "denied",
        "Not mine.",
        None,
    )


@pytest.mark.django_db
def test_it_never_approves_a_question_without_an_answer(agent_client) -> None:
    question = ApprovalRequest.objects.get(code=_ask(agent_client).json()["id"])
    with pytest.raises(ValueError, match="answered"):
        approval_request_approve(approval=question, reviewer=UserFactory())
    assert ApprovalRequest.objects.get(pk=question.pk).status == Status.PENDING
