"""The agent API's fast path (agents.api.fast_path): plain successes answered in front of Django,
everything else handed to Django unchanged, and the answers the same either way.

The fast path wraps a stand-in app that answers 599, so a test can tell which of the two
answered; the real console.asgi.application is then compared, call for call, with the
Django-only app (console.asgi.django_http).
"""

import asyncio
import json
import logging
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from django.db import connection

from agents.api import intake
from agents.api.fast_path import AgentApiFastPath
from agents.api.native import approval_request_representation
from agents.services import run_open
from approvals import realtime
from approvals.audit import AuditAction
from approvals.models import ApprovalRequest, AuditRecord, Status
from approvals.services import approval_request_approve
from tests.factories import PolicyRuleFactory, TeamFactory, UserFactory, agent_with_token
from tests.schema_changes import CREDENTIAL_LOOKUP, HALTS_READ, columns_retyped
from tests.waits import async_wait_until, parked_polls

pytestmark = pytest.mark.django_db(transaction=True)

FALLBACK_STATUS = 599

BODY: dict[str, Any] = {
    "tool": "issue_refund",
    "arguments": {"payment_id": "pay_1", "amount": 4900},
    "timeout": "30m",
    "summary": "Refund a duplicate charge.",
    "confidence": 0.42,
    "impact": "high",
}


class StandIn:
    """The app behind the fast path: answers 599 and keeps what reached it, body included."""

    def __init__(self) -> None:
        self.reached: list[tuple[str, str, bytes]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        self.reached.append((scope["method"], scope["path"], b"".join(chunks)))
        body = b'{"fallback": true}'
        await send(
            {
                "type": "http.response.start",
                "status": FALLBACK_STATUS,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _client(app: Any, token: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver",
        headers=headers,
        timeout=30,
    )


def _json_post(client: httpx.AsyncClient, body: Any, key: str | None, **headers: str) -> Any:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    all_headers = {"Content-Type": "application/json", **headers}
    if key is not None:
        all_headers["Idempotency-Key"] = key
    return client.post("/api/v1/requests", content=content, headers=all_headers)


@pytest_asyncio.fixture(autouse=True)
async def _pushes_finished() -> AsyncIterator[None]:
    """Let the intake's push to reviewers finish before the test's event loop closes.

    A server's loop lives as long as the process; a test's ends with the test, and a push
    still in flight would then run into a closed loop at interpreter exit.
    """
    yield
    batcher = intake._batchers.get(asyncio.get_running_loop())
    if batcher is not None:
        # The writer and the push: not the process-wide listeners, which live forever. Idle,
        # not just the tasks seen now done: a writer finishing its batch starts the push then.
        await async_wait_until(lambda: batcher.idle, what="the intake's writes and push done")


@pytest.fixture
def fast_path() -> tuple[AgentApiFastPath, StandIn]:
    stand_in = StandIn()
    return AgentApiFastPath(stand_in), stand_in


# --- What the fast path answers itself, and what it passes on ----------------------------


@pytest.mark.asyncio
async def test_it_answers_a_create_and_its_replay_itself(fast_path) -> None:
    app, stand_in = fast_path
    _, token = await sync_to_async(agent_with_token)()
    async with _client(app, token) as client:
        created = await _json_post(client, BODY, "k1")
        replayed = await _json_post(client, {**BODY}, "k1")
        read = await client.get(f"/api/v1/requests/{created.json()['id']}")

    assert created.status_code == 201, created.text
    assert created.json()["status"] == "pending"
    assert created.headers["x-request-id"]
    assert replayed.status_code == 200
    assert replayed.json()["id"] == created.json()["id"]
    assert read.status_code == 200
    assert read.json() == created.json()
    assert stand_in.reached == []
    assert await ApprovalRequest.objects.acount() == 1


@pytest.mark.asyncio
async def test_its_access_log_lines_carry_the_request_id(fast_path, caplog) -> None:
    app, _ = fast_path
    _, token = await sync_to_async(agent_with_token)()
    with caplog.at_level(logging.INFO, logger="console.http"):
        async with _client(app, token) as client:
            created = await _json_post(client, BODY, "k1", **{"X-Request-ID": "req-fast-0001"})
            read = await client.get(f"/api/v1/requests/{created.json()['id']}")
    lines = [record for record in caplog.records if record.name == "console.http"]
    assert [(line.getMessage(), line.request_id) for line in lines] == [
        ("POST /api/v1/requests 201", "req-fast-0001"),
        (f"GET /api/v1/requests/{created.json()['id']} 200", read.headers["x-request-id"]),
    ]


@pytest.mark.asyncio
async def test_a_created_request_reads_back_as_it_was_answered(fast_path) -> None:
    app, stand_in = fast_path

    def policy() -> None:
        team = TeamFactory(members=[UserFactory()])
        PolicyRuleFactory(
            outcome="hold", tool_glob="issue_*", team=team, required_approvals=2, reason="Two."
        )
        PolicyRuleFactory(outcome="approve", tool_glob="read_*", reason="Fine.")
        PolicyRuleFactory(outcome="deny", tool_glob="drop_*", reason="Never.")

    await sync_to_async(policy)()
    _, token = await sync_to_async(agent_with_token)()
    async with _client(app, token) as client:
        for number, tool in enumerate(["issue_refund", "read_file", "drop_table"]):
            created = await _json_post(client, {**BODY, "tool": tool}, f"k{number}")
            assert created.status_code == 201, created.text
            read = await client.get(f"/api/v1/requests/{created.json()['id']}")
            assert read.json() == created.json(), tool
    statuses = await sync_to_async(
        lambda: sorted(ApprovalRequest.objects.values_list("status", flat=True))
    )()
    assert statuses == [Status.APPROVED, Status.DENIED, Status.PENDING]
    assert stand_in.reached == []


def _oversize_body() -> bytes:
    from django.conf import settings

    padding = "x" * (settings.API_MAX_BODY_BYTES + 10)
    return json.dumps({**BODY, "summary": padding}).encode()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("case", "headers", "body", "key"),
    [
        ("conflict", {}, {**BODY, "arguments": {"amount": 1}}, "taken"),
        ("invalid field", {}, {**BODY, "confidence": 1.5}, "k-invalid"),
        ("unknown field", {}, {**BODY, "surprise": True}, "k-surprise"),
        ("unknown credential", {"Authorization": "Bearer aac_nope_nope"}, BODY, "k-cred"),
        ("not a bearer", {"Authorization": "Basic Zm9vOmJhcg=="}, BODY, "k-basic"),
        ("missing key", {}, BODY, None),
        ("blank key", {}, BODY, "   "),
        ("key too long", {}, BODY, "k" * 256),
        ("not JSON", {"Content-Type": "text/plain"}, BODY, "k-text"),
        ("malformed JSON", {}, b'{"tool": ', "k-malformed"),
        ("oversize", {}, "oversize", "k-big"),
        ("unknown run", {}, {**BODY, "run": str(uuid.uuid4())}, "k-run"),
    ],
)
async def test_it_passes_everything_but_plain_success_on_with_the_body_intact(
    fast_path, case: str, headers: dict[str, str], body: Any, key: str | None
) -> None:
    app, stand_in = fast_path
    _, token = await sync_to_async(agent_with_token)()
    content = _oversize_body() if body == "oversize" else body
    async with _client(app, token) as client:
        taken = await _json_post(client, BODY, "taken")
        assert taken.status_code == 201
        response = await _json_post(client, content, key, **headers)

    assert response.status_code == FALLBACK_STATUS, (case, response.text)
    sent = content if isinstance(content, bytes) else json.dumps(content).encode()
    assert stand_in.reached == [("POST", "/api/v1/requests", sent)]
    assert await ApprovalRequest.objects.acount() == 1


@pytest.mark.asyncio
async def test_it_passes_on_a_chunked_oversize_body_whole(fast_path) -> None:
    app, stand_in = fast_path
    _, token = await sync_to_async(agent_with_token)()
    body = _oversize_body()

    async def chunks():
        # No Content-Length: the fast path finds out by reading, then hands on what it read.
        for start in range(0, len(body), 50_000):
            yield body[start : start + 50_000]

    async with _client(app, token) as client:
        response = await client.post(
            "/api/v1/requests",
            content=chunks(),
            headers={"Content-Type": "application/json", "Idempotency-Key": "k"},
        )

    assert response.status_code == FALLBACK_STATUS
    assert stand_in.reached == [("POST", "/api/v1/requests", body)]


@pytest.mark.asyncio
async def test_it_reads_only_the_agents_own_requests_and_passes_the_rest_on(fast_path) -> None:
    app, stand_in = fast_path
    _, token = await sync_to_async(agent_with_token)()
    _, other_token = await sync_to_async(agent_with_token)()
    async with (
        _client(app, token) as client,
        _client(app, other_token) as other,
        _client(app) as anonymous,
    ):
        created = (await _json_post(client, BODY, "k")).json()
        path = f"/api/v1/requests/{created['id']}"
        own = await client.get(path)
        passed_on = {
            "unknown id": await client.get(f"/api/v1/requests/{uuid.uuid4()}"),
            "other agent's": await other.get(path),
            "bad wait": await client.get(path, params={"wait": "soon"}),
            "unknown credential": await client.get(
                path, headers={"Authorization": "Bearer aac_nope_nope"}
            ),
            "no credential": await anonymous.get(path),
        }

    assert own.status_code == 200 and own.json()["id"] == created["id"]
    assert {name: r.status_code for name, r in passed_on.items()} == dict.fromkeys(
        passed_on, FALLBACK_STATUS
    )
    assert [method for method, _, _ in stand_in.reached] == ["GET"] * len(passed_on)


# --- The same answers with and without the fast path -------------------------------------


def _without_volatile(value: Any) -> Any:
    """A response body without what differs between two equal exchanges: ids and times."""
    # The request's and its run's ids: each sequence has its own; request ids are per exchange.
    volatile_ids = {"id", "run", "request_id"}
    if isinstance(value, dict):
        return {
            key: _without_volatile(item)
            for key, item in value.items()
            if key not in volatile_ids and not key.endswith("_at")
        }
    if isinstance(value, list):
        return [_without_volatile(item) for item in value]
    return value


def _nested(depth: int) -> dict[str, Any]:
    arguments: Any = 1
    for _ in range(depth):
        arguments = {"a": arguments}
    return {**BODY, "arguments": arguments}


async def _exchange_sequence(app: Any) -> list[tuple[int, Any]]:
    """Every kind of call an agent makes, in one order, against `app`."""
    agent, token = await sync_to_async(agent_with_token)()
    _, other_token = await sync_to_async(agent_with_token)()
    run, _ = await sync_to_async(run_open)(agent=agent, name="nightly")
    answers: list[httpx.Response] = []
    call = 0

    def request_id() -> dict[str, str]:
        nonlocal call
        call += 1
        return {"X-Request-ID": f"call-{call:04d}"}

    async with (
        _client(app, token) as client,
        _client(app, other_token) as other,
        _client(app) as anonymous,
    ):
        created = await _json_post(client, BODY, "k1", **request_id())
        answers.append(created)
        code = created.json()["id"]
        answers += [
            await _json_post(client, BODY, "k1", **request_id()),
            await _json_post(client, {**BODY, "arguments": {"amount": 1}}, "k1", **request_id()),
            await _json_post(client, {**BODY, "confidence": 1.5}, "k2", **request_id()),
            await _json_post(client, {**BODY, "tool": ""}, "k2", **request_id()),
            await _json_post(client, {**BODY, "surprise": 1}, "k2", **request_id()),
            await _json_post(client, BODY, None, **request_id()),
            await _json_post(client, BODY, "k" * 256, **request_id()),
            await _json_post(client, b"[1, 2", "k2", **request_id()),
            await _json_post(client, BODY, "k2", **{"Content-Type": "text/plain"}, **request_id()),
            await _json_post(client, _oversize_body(), "k2", **request_id()),
            await _json_post(client, {**BODY, "run": str(uuid.uuid4())}, "k2", **request_id()),
            await _json_post(client, {**BODY, "run": str(run.code)}, "k3", **request_id()),
            # Policy-approved at birth: the body carries the decision.
            approved := await _json_post(
                client, {**BODY, "tool": "read_file"}, "k4", **request_id()
            ),
        ]
        approved_code = approved.json()["id"]
        answers += [
            # 401 before 400: an unknown credential with a body that is wrong too.
            await _json_post(
                client,
                {**BODY, "confidence": 7},
                None,
                Authorization="Bearer aac_nope_nope",
                **request_id(),
            ),
            await _json_post(anonymous, {**BODY, "confidence": 7}, None, **request_id()),
            await client.get(f"/api/v1/requests/{code}", headers=request_id()),
            await client.get(f"/api/v1/requests/{uuid.uuid4()}", headers=request_id()),
            await other.get(f"/api/v1/requests/{code}", headers=request_id()),
            await client.get(
                f"/api/v1/requests/{code}", params={"wait": "soon"}, headers=request_id()
            ),
            await client.get(
                f"/api/v1/requests/{code}",
                headers={"Authorization": "Bearer aac_nope_nope", **request_id()},
            ),
            # Decided already: a long poll answers at once, decision and all.
            await client.get(
                f"/api/v1/requests/{approved_code}", params={"wait": "5"}, headers=request_id()
            ),
            await _json_post(client, _nested(200), "k5", **request_id()),
        ]
    for number, answer in enumerate(answers, start=1):
        assert answer.headers["x-request-id"] == f"call-{number:04d}"
    return [(answer.status_code, _without_volatile(answer.json())) for answer in answers]


@pytest.mark.asyncio
async def test_it_answers_every_call_as_django_alone_does() -> None:
    from console.asgi import application, django_http

    assert isinstance(application.application_mapping["http"], AgentApiFastPath)
    await sync_to_async(PolicyRuleFactory)(outcome="approve", tool_glob="read_*", reason="Fine.")

    with_fast_path = await _exchange_sequence(application)
    django_only = await _exchange_sequence(django_http)

    assert [status for status, _ in with_fast_path] == [
        201, 200, 409, 400, 400, 400, 400, 400, 400, 415, 413, 400, 201, 201, 401, 401,
        200, 404, 404, 400, 401, 200, 400,
    ]  # fmt: skip
    for number, (fast, django) in enumerate(zip(with_fast_path, django_only, strict=True), 1):
        assert fast == django, f"call {number}"
    assert with_fast_path[12][1]["status"] == "pending"  # joined its open run
    approved = with_fast_path[13][1]
    assert with_fast_path[21][1] == approved
    assert approved["status"] == "approved" and approved["decision"]["decided_by"] == "system"


@pytest.mark.asyncio
async def test_a_key_used_on_one_path_replays_on_the_other() -> None:
    """Django re-runs what the fast path passes on: the two must agree on what "the same
    submission" is, or a retry would turn into a conflict."""
    from console.asgi import application, django_http

    agent, token = await sync_to_async(agent_with_token)()
    run, _ = await sync_to_async(run_open)(agent=agent, name="nightly")
    rich = {
        **BODY,
        "reasoning": "Charged twice.",
        "context": {"ticket": "T-1", "nested": {"x": [1, 2.5, None]}},
        "labels": ["billing", "urgent"],
        "run": str(run.code),
        "arguments_schema": {
            "type": "object",
            "properties": {"amount": {"type": "integer"}},
            "required": ["amount"],
        },
    }
    reordered = dict(reversed(list(rich.items())))
    async with _client(application, token) as fast, _client(django_http, token) as django:
        first_fast = await _json_post(fast, rich, "fast-first")
        then_django = await _json_post(django, reordered, "fast-first")
        first_django = await _json_post(django, rich, "django-first")
        then_fast = await _json_post(fast, reordered, "django-first")
        changed_on_django = await _json_post(django, {**rich, "labels": ["billing"]}, "fast-first")

    assert (first_fast.status_code, then_django.status_code) == (201, 200)
    assert then_django.json() == first_fast.json()
    assert (first_django.status_code, then_fast.status_code) == (201, 200)
    assert then_fast.json() == first_django.json()
    assert changed_on_django.status_code == 409


@pytest.mark.asyncio
async def test_it_treats_a_json_lookalike_content_type_as_django_does() -> None:
    from console.asgi import application, django_http

    answers = []
    for app in (application, django_http):
        _, token = await sync_to_async(agent_with_token)()
        async with _client(app, token) as client:
            response = await _json_post(
                client, BODY, "k", **{"Content-Type": "application/json-patch+json"}
            )
        answers.append((response.status_code, _without_volatile(response.json())))

    assert answers[0] == answers[1]


@pytest.mark.asyncio
async def test_it_reads_a_declared_charset_as_django_does() -> None:
    from console.asgi import application, django_http

    utf8_bytes = json.dumps({**BODY, "summary": "café"}, ensure_ascii=False).encode()
    summaries = []
    for app in (application, django_http):
        _, token = await sync_to_async(agent_with_token)()
        async with _client(app, token) as client:
            response = await _json_post(
                client, utf8_bytes, "k", **{"Content-Type": "application/json; charset=latin-1"}
            )
        summaries.append((response.status_code, response.json().get("summary")))

    assert summaries[0] == summaries[1]


@pytest.mark.asyncio
async def test_it_sends_the_headers_django_sends() -> None:
    from console.asgi import application, django_http

    # Allow is DRF's view listing its methods; it says nothing an agent acts on.
    ignored = {"allow", "x-request-id"}
    seen = []
    for app in (application, django_http):
        _, token = await sync_to_async(agent_with_token)()
        async with _client(app, token) as client:
            created = await _json_post(client, BODY, "k")
            read = await client.get(f"/api/v1/requests/{created.json()['id']}")
        seen.append(
            [
                {name: value for name, value in r.headers.items() if name not in ignored}
                for r in (created, read)
            ]
        )

    assert seen[0] == seen[1]
    assert seen[0][0]["x-content-type-options"] == "nosniff"


def _audit_trail_of(codes: list[str]) -> list[list[tuple[Any, ...]]]:
    trails = []
    for code in codes:
        records = AuditRecord.objects.filter(object_id=code).order_by("sequence")
        trails.append(
            [
                (
                    r.action,
                    r.actor_type,
                    r.request_id,
                    r.ip_address,
                    r.user_agent,
                    _without_volatile(r.after),
                )
                for r in records
            ]
        )
    return trails


@pytest.mark.asyncio
async def test_it_leaves_the_audit_trail_django_leaves() -> None:
    from console.asgi import application, django_http

    await sync_to_async(PolicyRuleFactory)(outcome="deny", tool_glob="drop_*", reason="Never.")
    trails = []
    for app in (application, django_http):
        _, token = await sync_to_async(agent_with_token)()
        codes = []
        async with _client(app, token) as client:
            for number, tool in enumerate(["issue_refund", "drop_table"], start=1):
                response = await _json_post(
                    client,
                    {**BODY, "tool": tool},
                    f"k{number}",
                    **{"X-Request-ID": f"audit-{number:04d}", "User-Agent": "refund-bot/1.0"},
                )
                assert response.status_code == 201
                codes.append(response.json()["id"])
        trails.append(await sync_to_async(_audit_trail_of)(codes))

    assert trails[0] == trails[1]
    assert [len(trail) for trail in trails[0]] == [2, 3]  # held; denied at birth
    assert trails[0][0][0][2:5] == ("audit-0001", "127.0.0.1", "refund-bot/1.0")


@pytest.mark.asyncio
async def test_it_pushes_new_requests_to_reviewers(fast_path) -> None:
    from channels.layers import get_channel_layer

    from approvals.realtime import EVENT_QUEUE_FRAGMENT, STAFF_GROUP

    app, _ = fast_path
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await realtime.reviewer_socket_opened()  # as a reviewer's socket does when it connects
    await layer.group_add(STAFF_GROUP, channel)
    try:
        _, token = await sync_to_async(agent_with_token)()
        async with _client(app, token) as client:
            created = await _json_post(client, BODY, "k")
        message = await asyncio.wait_for(layer.receive(channel), timeout=10)
    finally:
        await layer.group_discard(STAFF_GROUP, channel)
        realtime.reviewer_socket_closed()

    assert message["type"] == EVENT_QUEUE_FRAGMENT
    assert created.json()["id"] in message["html"]


def _with_nul(number: int) -> dict[str, Any]:
    # PostgreSQL's jsonb cannot hold U+0000; SQLite stores it.
    return {**BODY, "arguments": {"n": number, "note": "a\u0000b"}}


@pytest.mark.asyncio
async def test_a_nul_character_in_arguments_is_refused_in_the_error_envelope() -> None:
    from console.asgi import application, django_http

    answers = []
    for app in (application, django_http):
        _, token = await sync_to_async(agent_with_token)()
        async with _client(app, token) as client:
            answers.append(await _json_post(client, _with_nul(1), "k"))

    for response in answers:
        assert response.status_code == 400, response.status_code
        assert response.json()["error"]["param"] == "arguments"


@contextmanager
def _database_refuses_tool(tool: str) -> Iterator[None]:
    """A trigger that makes the database itself refuse requests for `tool`: a real failure at
    insert time, of the kind validation cannot foresee (a full disk, a constraint added later)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE FUNCTION test_refuse_tool() RETURNS trigger AS $$ BEGIN "
                f"IF NEW.tool = '{tool}' THEN RAISE EXCEPTION 'refused by the test'; END IF; "
                "RETURN NEW; END $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                "CREATE TRIGGER test_refuse_tool BEFORE INSERT ON approvals_approvalrequest "
                "FOR EACH ROW EXECUTE FUNCTION test_refuse_tool()"
            )
        else:
            cursor.execute(
                "CREATE TRIGGER test_refuse_tool BEFORE INSERT ON approvals_approvalrequest "
                f"WHEN NEW.tool = '{tool}' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("DROP TRIGGER test_refuse_tool ON approvals_approvalrequest")
                cursor.execute("DROP FUNCTION test_refuse_tool()")
            else:
                cursor.execute("DROP TRIGGER test_refuse_tool")
        connection.close()


@pytest.mark.asyncio
async def test_one_unstorable_request_costs_the_others_in_its_batch_nothing() -> None:
    from console.asgi import application

    _, token = await sync_to_async(agent_with_token)()
    tools = [("unstorable" if i == 3 else BODY["tool"]) for i in range(8)]
    refused = _database_refuses_tool("unstorable")
    await sync_to_async(refused.__enter__)()
    try:
        async with _client(application, token) as client:
            responses = await asyncio.gather(
                *(
                    _json_post(client, {**BODY, "tool": tools[i], "arguments": {"n": i}}, f"k{i}")
                    for i in range(8)
                )
            )
    finally:
        await sync_to_async(refused.__exit__)(None, None, None)

    assert responses[3].status_code == 500, [r.status_code for r in responses]
    others = [r for i, r in enumerate(responses) if i != 3]
    # The batch that held the bad one failed whole; its good requests went again through Django.
    assert [r.status_code for r in others] == [201] * 7
    assert len({r.json()["id"] for r in others}) == 7
    keys = await sync_to_async(
        lambda: sorted(ApprovalRequest.objects.values_list("idempotency_key", flat=True))
    )()
    assert set(keys) == {f"k{i}" for i in range(8) if i != 3}


@pytest.mark.asyncio
@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="prepared statements and ALTER TYPE of PostgreSQL"
)
@pytest.mark.parametrize(
    "retyped",
    [
        pytest.param(CREDENTIAL_LOOKUP, id="outside-a-transaction"),
        pytest.param(HALTS_READ, id="in-the-batchs-transaction"),
    ],
)
async def test_a_create_after_a_deploys_column_type_change_is_answered_itself(
    fast_path, retyped
) -> None:
    # A rolling deploy's migration changes a column under statements the intake's connections
    # prepared: the batch runs again (console.hot_statements), and the agent gets its 201 from
    # the fast path, not a failure, nor a second request.
    app, stand_in = fast_path
    _, token = await sync_to_async(agent_with_token)()
    async with _client(app, token) as client:
        # One after the other: the pool hands out its idle connections in turn, so each of
        # them prepares the statements.
        for n in range(8):
            assert (await _json_post(client, BODY, f"warm-{n}")).status_code == 201
        retyping = columns_retyped(retyped)
        await sync_to_async(retyping.__enter__)()
        try:
            created = await _json_post(client, BODY, "after")
        finally:
            await sync_to_async(retyping.__exit__)(None, None, None)

    assert created.status_code == 201, created.text
    assert stand_in.reached == []
    stored = await sync_to_async(
        lambda: list(ApprovalRequest.objects.filter(idempotency_key="after"))
    )()
    assert [str(approval.code) for approval in stored] == [created.json()["id"]]


# --- Batching, long polls ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_concurrent_creates_are_written_in_shared_batches(fast_path) -> None:
    app, stand_in = fast_path
    tokens = [(await sync_to_async(agent_with_token)())[1] for _ in range(3)]
    clients = [_client(app, token) for token in tokens]
    try:
        responses = await asyncio.gather(
            *(
                _json_post(
                    clients[i % 3],
                    {**BODY, "arguments": {"n": i}},
                    f"k{i}",
                    **{"X-Request-ID": f"burst-{i:04d}"},
                )
                for i in range(30)
            )
        )
    finally:
        for client in clients:
            await client.aclose()

    assert [r.status_code for r in responses] == [201] * 30
    ids = [r.json()["id"] for r in responses]
    assert len(set(ids)) == 30
    assert stand_in.reached == []

    def submitted() -> list[AuditRecord]:
        return list(AuditRecord.objects.filter(action=AuditAction.REQUEST_SUBMITTED))

    records = await sync_to_async(submitted)()
    assert len(records) == 30
    # Each record carries its own exchange's id, although one thread wrote them together.
    by_request = {record.object_id: record.request_id for record in records}
    assert by_request == {id_: f"burst-{i:04d}" for i, id_ in enumerate(ids)}
    # One audit_records_append call per batch, one timestamp per call: a shared timestamp
    # is a batch that held several requests.
    assert max(Counter(record.created_at for record in records).values()) > 1


@pytest.mark.asyncio
async def test_concurrent_uses_of_one_key_are_one_request(fast_path) -> None:
    app, stand_in = fast_path
    _, token = await sync_to_async(agent_with_token)()
    conflicting = {**BODY, "arguments": {"amount": 1}}
    async with _client(app, token) as client:
        responses = await asyncio.gather(
            *(_json_post(client, BODY, "same") for _ in range(4)),
            _json_post(client, conflicting, "same"),
        )

    statuses = [r.status_code for r in responses]
    assert sorted(statuses[:4]) == [200, 200, 200, 201]
    assert len({r.json()["id"] for r in responses[:4]}) == 1
    # The conflict is Django's to answer (409), with the body as sent.
    assert statuses[4] == FALLBACK_STATUS
    assert stand_in.reached == [("POST", "/api/v1/requests", json.dumps(conflicting).encode())]
    assert await ApprovalRequest.objects.acount() == 1


async def _create_pending(client: httpx.AsyncClient) -> str:
    created = await _json_post(client, BODY, str(uuid.uuid4()))
    assert created.status_code == 201, created.text
    return created.json()["id"]


@pytest.mark.asyncio
async def test_a_long_poll_returns_once_a_reviewer_decides(fast_path) -> None:
    app, stand_in = fast_path
    _, token = await sync_to_async(agent_with_token)()
    reviewer = await sync_to_async(UserFactory)(is_staff=True)
    loop = asyncio.get_running_loop()
    async with _client(app, token) as client:
        code = await _create_pending(client)
        poll = asyncio.create_task(client.get(f"/api/v1/requests/{code}", params={"wait": "5s"}))
        await async_wait_until(lambda: parked_polls(code) >= 1, what="the poll parking")
        assert not poll.done()

        def approve() -> None:
            approval = ApprovalRequest.objects.get(code=code)
            approval_request_approve(approval=approval, reviewer=reviewer, note="Go ahead.")

        decided_at = loop.time()
        await sync_to_async(approve)()  # on another thread, as a reviewer's request would be
        response = await poll
        returned_at = loop.time()

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == Status.APPROVED
    assert body["decision"]["note"] == "Go ahead."
    # Answered from the decision's message: exactly what a read gives now.
    fresh = await sync_to_async(
        lambda: approval_request_representation(ApprovalRequest.objects.get(code=code))
    )()
    assert body == json.loads(json.dumps(fresh, default=str))
    # Woken by the decision, not by the end of the 5 s wait.
    assert returned_at - decided_at < 3
    assert stand_in.reached == []


async def _poll_woken_by(app: Any, token: str, message_view: Any) -> tuple[str, Any]:
    """Park a long poll, then send its request's "resolved" message carrying `message_view`
    (a callable of the request's code); the poll's answer."""
    async with _client(app, token) as client:
        code = await _create_pending(client)
        poll = asyncio.create_task(client.get(f"/api/v1/requests/{code}", params={"wait": "5s"}))
        await async_wait_until(lambda: parked_polls(code) >= 1, what="the poll parking")
        layer = realtime.longpoll.get_channel_layer()
        await layer.group_send(
            realtime.RESOLVED_GROUP,
            {
                "type": realtime.EVENT_APPROVAL_RESOLVED,
                "code": code,
                "status": Status.APPROVED,
                "agent_view": message_view(code),
            },
        )
        response = await asyncio.wait_for(poll, timeout=4)
    assert response.status_code == 200
    return code, response.json()


@pytest.mark.asyncio
async def test_a_woken_long_poll_answers_with_the_view_its_message_carries(fast_path) -> None:
    app, _ = fast_path
    _, token = await sync_to_async(agent_with_token)()
    code, body = await _poll_woken_by(
        app, token, lambda code: {"id": code, "status": "approved", "marker": "from the message"}
    )
    # Nothing was decided in the database: only the message can have said so.
    assert body == {"id": code, "status": "approved", "marker": "from the message"}


@pytest.mark.asyncio
async def test_a_view_of_another_request_is_never_answered(fast_path) -> None:
    app, _ = fast_path
    _, token = await sync_to_async(agent_with_token)()
    other = str(uuid.uuid4())
    code, body = await _poll_woken_by(
        app, token, lambda code: {"id": other, "status": "approved", "marker": "wrong request"}
    )
    # The poll read the request itself instead: still pending, as the database says.
    assert (body["id"], body["status"]) == (code, Status.PENDING)
    assert "marker" not in body


@pytest.mark.asyncio
async def test_a_long_poll_returns_pending_when_its_wait_ends(fast_path) -> None:
    app, stand_in = fast_path
    _, token = await sync_to_async(agent_with_token)()
    loop = asyncio.get_running_loop()
    async with _client(app, token) as client:
        code = await _create_pending(client)
        started = loop.time()
        response = await client.get(f"/api/v1/requests/{code}", params={"wait": "1s"})
        elapsed = loop.time() - started

    assert response.status_code == 200
    assert response.json()["status"] == Status.PENDING
    assert elapsed >= 0.9
    assert stand_in.reached == []


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again on exit: nothing listens there


@pytest.mark.asyncio
async def test_a_long_poll_without_redis_still_hears_the_decision(fast_path, settings) -> None:
    """Redis is unreachable (a real refused connection): the poll cannot subscribe, so it asks
    the database about once a second instead of failing, and answers the decision."""
    app, stand_in = fast_path
    _, token = await sync_to_async(agent_with_token)()
    reviewer = await sync_to_async(UserFactory)(is_staff=True)
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [f"redis://127.0.0.1:{_closed_port()}/0"], "prefix": "down"},
        }
    }
    loop = asyncio.get_running_loop()
    async with _client(app, token) as client:
        code = await _create_pending(client)
        poll = asyncio.create_task(client.get(f"/api/v1/requests/{code}", params={"wait": "8s"}))
        # Kept: a poll asking the database holds no state a test could wait on; half a second
        # puts the decision after its first reads, which is what this test is about.
        await asyncio.sleep(0.5)
        assert not poll.done()

        def approve() -> None:
            approval = ApprovalRequest.objects.get(code=code)
            approval_request_approve(approval=approval, reviewer=reviewer)  # its push fails

        decided_at = loop.time()
        await sync_to_async(approve)()
        response = await asyncio.wait_for(poll, timeout=5)
        answered_after = loop.time() - decided_at

    assert response.status_code == 200
    assert response.json()["status"] == Status.APPROVED
    assert answered_after < 3  # the next database check, not the end of the 8 s wait
    assert stand_in.reached == []


# --- Hosts ------------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "host", ["evil.example", "localhost.evil.example", "testserver:http", "testserver/x"]
)
async def test_it_passes_a_host_django_refuses_on_to_django(fast_path, host: str) -> None:
    app, stand_in = fast_path
    _, token = await sync_to_async(agent_with_token)()
    async with _client(app, token) as client:
        created = await _json_post(client, BODY, "k1", Host=host)
        read = await client.get(f"/api/v1/requests/{uuid.uuid4()}", headers={"Host": host})
    assert (created.status_code, read.status_code) == (FALLBACK_STATUS, FALLBACK_STATUS)
    assert [(method, path) for method, path, _ in stand_in.reached] == [
        ("POST", "/api/v1/requests"),
        ("GET", read.url.path),
    ]
    assert await ApprovalRequest.objects.acount() == 0


@pytest.mark.asyncio
async def test_a_host_outside_allowed_hosts_is_answered_400_as_django_alone_does() -> None:
    from console.asgi import application, django_http

    _, token = await sync_to_async(agent_with_token)()
    answers = []
    for app in (application, django_http):
        async with _client(app, token) as client:
            answers.append(
                (
                    (await _json_post(client, BODY, "k1", Host="evil.example")).status_code,
                    (
                        await client.get(
                            f"/api/v1/requests/{uuid.uuid4()}", headers={"Host": "evil.example"}
                        )
                    ).status_code,
                )
            )
    assert answers == [(400, 400), (400, 400)]
    assert await ApprovalRequest.objects.acount() == 0


def _scope(*headers: tuple[bytes, bytes]) -> dict[str, Any]:
    return {
        "type": "http",
        "scheme": "http",
        "server": ("127.0.0.1", 8000),
        "headers": list(headers),
    }


def test_the_host_check_reads_the_headers_as_django_does(settings) -> None:
    from console.host_checks import host_is_allowed

    assert host_is_allowed(_scope((b"host", b"localhost:8000")))
    # Two Host headers are one joined value to Django, and no valid host.
    assert not host_is_allowed(_scope((b"host", b"evil.example"), (b"host", b"localhost")))
    assert not host_is_allowed(_scope((b"host", b"localhost"), (b"host", b"evil.example")))
    # No Host header: the server's own name and port, as PEP 3333 rebuilds it.
    assert host_is_allowed(_scope())
    forwarded = _scope((b"host", b"localhost"), (b"x-forwarded-host", b"evil.example"))
    assert host_is_allowed(forwarded)  # X-Forwarded-Host is ignored unless trusted...
    settings.USE_X_FORWARDED_HOST = True
    assert not host_is_allowed(forwarded)  # ...and checked when it is
    assert not host_is_allowed(
        _scope((b"host", b"localhost"), (b"x_forwarded_host", b"evil.example"))
    )
    settings.ALLOWED_HOSTS = [".evil.example"]
    assert host_is_allowed(forwarded)
