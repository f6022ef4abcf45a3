"""A run's record for replay: one JSON Lines export of a run's requests, verdicts, decisions,
outcomes and trace events, in order, with the audit records that vouch for them, so it verifies
offline. Through the agent API, the reviewer API, the admin action and `manage.py run_export`,
each refusing whoever may not see the run."""

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from agents.models import Run
from approvals.audit import AuditAction, SignedLinesProblem
from approvals.models import ApprovalRequest, AuditRecord
from approvals.policies.models import Outcome
from approvals.run_export import run_export_verify
from approvals.services import approval_request_approve, approval_request_deny
from tests.factories import (
    ApprovalRequestFactory,
    PolicyRuleFactory,
    TeamFactory,
    UserFactory,
    agent_with_token,
    reviewer_api_token,
)

pytestmark = pytest.mark.django_db


def _client(**credentials: str) -> APIClient:
    client = APIClient()
    client.credentials(**credentials)
    return client


@pytest.fixture
def billing():
    return TeamFactory(name="billing")


@pytest.fixture
def run_id(agent_client, billing) -> str:
    """A run of refund-bot's: a refund a billing reviewer approved and that failed, an email
    the policy approved that worked, a deletion denied, and the trace events around them."""
    PolicyRuleFactory(
        name="emails", position=1, tool_glob="send_email", outcome=Outcome.APPROVE, team=billing
    )
    PolicyRuleFactory(name="the rest", position=2, tool_glob="*", team=billing)
    run_id = agent_client.post("/api/v1/runs", {"name": "ticket 4711"}, format="json").json()["id"]

    def event(*events: dict[str, Any]) -> None:
        response = agent_client.post(
            f"/api/v1/runs/{run_id}/events", {"events": list(events)}, format="json"
        )
        assert response.status_code == 201, response.content

    def ask(tool: str, key: str, **arguments: Any) -> ApprovalRequest:
        body = {"tool": tool, "arguments": arguments, "run": run_id, "confidence": 0.7}
        response = agent_client.post(
            "/api/v1/requests", body, format="json", HTTP_IDEMPOTENCY_KEY=key
        )
        assert response.status_code == 201, response.content
        return ApprovalRequest.objects.get(code=response.json()["id"])

    def report(approval: ApprovalRequest, **body: Any) -> None:
        response = agent_client.post(f"/api/v1/requests/{approval.code}/outcome", body, "json")
        assert response.status_code == 201, response.content

    ana = UserFactory(username="ana")
    billing.members.add(ana)
    event({"type": "message", "role": "user", "content": "Refund my duplicate charge"})
    refund = ask("issue_refund", "k1", payment_id="pay_7", amount=4900)
    approval_request_approve(approval=refund, reviewer=ana, note="Checked the ledger.")
    report(refund, status="failed", error="card_declined", duration_ms=412, cost="0.02")
    email = ask("send_email", "k2", to="customer@example.com")
    event({"type": "note", "text": "told the customer"})
    report(email, status="succeeded", result={"message_id": "m1"})
    deletion = ask("delete_records", "k3", table="orders")
    approval_request_deny(approval=deletion, reviewer=ana, reason="Legal hold.")
    agent_client.post(f"/api/v1/runs/{run_id}/close", {"status": "completed"}, format="json")
    return run_id


def _entries(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in body.splitlines()]


def _body(response: Any) -> bytes:
    # Streamed through an async iterator (what the ASGI server consumes), batch by batch.
    assert response.is_async

    async def collect() -> bytes:
        return b"".join([chunk async for chunk in response.streaming_content])

    return async_to_sync(collect)()


def _export(client: APIClient, url: str) -> bytes:
    response = client.get(url)
    assert response.status_code == 200, response.content if not response.streaming else ""
    assert response["Content-Type"] == "application/x-ndjson"
    assert response["Content-Disposition"].endswith('.jsonl"')
    return _body(response)


def _replay(entries: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(kind, what) of the replay lines, in export order."""
    replay = [e for e in entries if "at" in e]
    described = []
    for entry in replay:
        data = entry["data"]
        what = data.get("tool") or data.get("status") or data.get("type") or data.get("outcome")
        described.append((entry["kind"], str(what)))
    return described


def test_the_agent_exports_its_run_in_order_and_it_verifies_offline(
    agent_client, run_id, django_assert_num_queries
) -> None:
    body = _export(agent_client, f"/api/v1/runs/{run_id}/export")
    entries = _entries(body)

    assert entries[0]["kind"] == "export"
    assert entries[0]["data"]["format"] == "console-run-export/1"
    assert entries[0]["data"]["run"]["id"] == run_id
    assert entries[0]["data"]["run"]["agent"]["name"] == "refund-bot"
    assert _replay(entries) == [
        ("opened", "None"),
        ("trace", "message"),
        ("request", "issue_refund"),
        ("policy", "hold"),
        ("decision", "approved"),
        ("outcome", "failed"),
        ("request", "send_email"),
        ("policy", "approve"),
        ("decision", "approved"),
        ("trace", "note"),
        ("outcome", "succeeded"),
        ("request", "delete_records"),
        ("policy", "hold"),
        ("decision", "denied"),
        ("closed", "completed"),
    ]
    stamps = [e["at"] for e in entries if "at" in e]
    assert stamps == sorted(stamps)
    decision = next(e["data"] for e in entries if e["kind"] == "decision")
    assert (decision["reviewer"], decision["note"]) == ("ana", "Checked the ledger.")
    failed = next(e["data"] for e in entries if e["kind"] == "outcome")
    assert (failed["error"], failed["duration_ms"], failed["cost"]) == (
        "card_declined",
        412,
        "0.02000000",
    )
    audited = [e["data"]["action"] for e in entries if e["kind"] == "audit"]
    assert audited.count("request.submitted") == 3
    assert "run.exported" in audited  # the export records itself, and carries that record
    assert [e["kind"] for e in entries[-2:]] == ["anchor", "end"]

    # Offline: the console's audit keys, no database.
    with django_assert_num_queries(0):
        summary = run_export_verify(body.splitlines(keepends=True))
    assert summary.startswith("3 request, 3 decision, 2 outcome, 2 trace lines")
    exported = AuditRecord.objects.get(action=AuditAction.RUN_EXPORTED)
    assert (exported.object_id, exported.actor_label) == (run_id, "refund-bot")


def test_another_agent_cannot_export_the_run(run_id) -> None:
    _, token = agent_with_token(name="other-bot")
    response = _client(HTTP_AUTHORIZATION=f"Bearer {token}").get(f"/api/v1/runs/{run_id}/export")
    assert response.status_code == 404
    assert not AuditRecord.objects.filter(action=AuditAction.RUN_EXPORTED).exists()


def test_a_reviewer_who_sees_every_request_exports_it(run_id, billing) -> None:
    # Every request is billing's: the email the policy approved by billing's rule too.
    assert not ApprovalRequest.objects.filter(team=None).exists()
    reviewer = UserFactory(username="bea")
    billing.members.add(reviewer)
    token = reviewer_api_token(reviewer)
    client = _client(HTTP_AUTHORIZATION=f"Token {token}")

    body = _export(client, f"/api/v1/reviewer/runs/{run_id}/export")

    run_export_verify(body.splitlines(keepends=True))
    exported = AuditRecord.objects.get(action=AuditAction.RUN_EXPORTED)
    assert exported.actor_label == "bea" and exported.context == {"via": "reviewer_api"}


def test_another_teams_reviewer_and_an_agent_credential_are_refused(run_id) -> None:
    outsider = UserFactory(username="otto")
    TeamFactory(name="support").members.add(outsider)
    url = f"/api/v1/reviewer/runs/{run_id}/export"

    refused = _client(HTTP_AUTHORIZATION=f"Token {reviewer_api_token(outsider)}").get(url)
    assert refused.status_code == 404
    assert refused.json()["error"]["code"] == "not_found"
    _, agent_token = agent_with_token(name="sneaky-bot")
    assert _client(HTTP_AUTHORIZATION=f"Bearer {agent_token}").get(url).status_code == 401
    assert not AuditRecord.objects.filter(action=AuditAction.RUN_EXPORTED).exists()


def _reviewer_client(user: Any) -> APIClient:
    return _client(HTTP_AUTHORIZATION=f"Token {reviewer_api_token(user)}")


def _exported_tools(body: bytes) -> list[str]:
    return [e["data"]["tool"] for e in _entries(body) if e["kind"] == "request"]


def test_a_team_reviewer_exports_what_the_policy_approved_for_their_team(run_id, billing) -> None:
    # The email the policy approved at once, by billing's rule: billing's, for its reviewers to
    # check what the policy did in their place, as the refund and the deletion they decided.
    pia = UserFactory(username="pia")
    billing.members.add(pia)
    email = ApprovalRequest.objects.get(tool="send_email")
    assert email.team == billing and email.status == "approved"

    body = _export(_reviewer_client(pia), f"/api/v1/reviewer/runs/{run_id}/export")

    summary = run_export_verify(body.splitlines(keepends=True))
    assert summary.startswith("3 request, 3 decision, 2 outcome, 2 trace lines")
    assert _exported_tools(body) == ["issue_refund", "send_email", "delete_records"]
    entries = _entries(body)
    request = next(e["data"] for e in entries if e["data"].get("id") == str(email.code))
    policy = next(e["data"] for e in entries if e["data"].get("request") == str(email.code))
    assert request["team"] == "billing" and request["status"] == "approved"
    assert (policy["outcome"], policy["rule"]) == ("approve", "emails")
    assert _entries(body)[0]["data"]["requests_withheld"] == 0
    exported = AuditRecord.objects.get(action=AuditAction.RUN_EXPORTED)
    assert exported.context == {"via": "reviewer_api"}


def test_a_team_reviewer_exports_their_run_without_what_a_rule_naming_no_team_approved(
    run_id, billing
) -> None:
    # A rule naming no team approved the email: staff's alone to see. Billing's reviewer sees
    # the run (its refund and deletion are billing's) and exports it, without it.
    email = ApprovalRequest.objects.get(tool="send_email")
    email.team = None
    email.save(update_fields=["team"])
    pia = UserFactory(username="pia")
    billing.members.add(pia)

    body = _export(_reviewer_client(pia), f"/api/v1/reviewer/runs/{run_id}/export")

    summary = run_export_verify(body.splitlines(keepends=True))
    assert summary.startswith("2 request, 2 decision, 1 outcome, 2 trace lines")
    assert _exported_tools(body) == ["issue_refund", "delete_records"]
    assert str(email.code).encode() not in body
    assert b"customer@example.com" not in body and b"message_id" not in body
    assert _entries(body)[0]["data"]["requests_withheld"] == 1
    exported = AuditRecord.objects.get(action=AuditAction.RUN_EXPORTED)
    assert exported.context == {"via": "reviewer_api", "requests_withheld": 1}


def test_each_teams_reviewer_exports_only_the_requests_routed_to_their_teams(
    run_id, billing
) -> None:
    pia, otto = UserFactory(username="pia"), UserFactory(username="otto")
    billing.members.add(pia)
    TeamFactory(name="support", members=[otto])
    url = f"/api/v1/reviewer/runs/{run_id}/export"
    # Nothing of the run is support's: for otto the run does not exist.
    refused = _reviewer_client(otto).get(url)
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "not_found"
    assert not AuditRecord.objects.filter(action=AuditAction.RUN_EXPORTED).exists()

    refund = ApprovalRequest.objects.get(tool="issue_refund")
    refund.team = otto.teams.get()
    refund.save(update_fields=["team"])
    deletion = ApprovalRequest.objects.get(tool="delete_records")

    for_otto = _export(_reviewer_client(otto), url)
    run_export_verify(for_otto.splitlines(keepends=True))
    assert _exported_tools(for_otto) == ["issue_refund"]
    assert str(deletion.code).encode() not in for_otto and b"Legal hold." not in for_otto
    # Nor what the policy approved for billing.
    assert b"customer@example.com" not in for_otto

    for_pia = _export(_reviewer_client(pia), url)
    run_export_verify(for_pia.splitlines(keepends=True))
    assert _exported_tools(for_pia) == ["send_email", "delete_records"]
    assert str(refund.code).encode() not in for_pia and b"card_declined" not in for_pia

    staff = UserFactory(username="sam", is_staff=True)
    everything = _export(_reviewer_client(staff), url)
    assert _exported_tools(everything) == ["issue_refund", "send_email", "delete_records"]
    assert _entries(everything)[0]["data"]["requests_withheld"] == 0


@pytest.fixture
def gated_run(agent_client, billing) -> str:
    """A run with a refund routed to billing and a payout routed to support, each followed by
    the gated tool call the SDK records for it (naming its request), and a note naming none."""
    support = TeamFactory(name="support")
    PolicyRuleFactory(name="refunds", position=1, tool_glob="issue_refund", team=billing)
    PolicyRuleFactory(name="payouts", position=2, tool_glob="wire_payout", team=support)
    run_id = agent_client.post("/api/v1/runs", {"name": "ticket 4712"}, format="json").json()["id"]
    for key, (tool, arguments, ending) in enumerate(
        [
            ("issue_refund", {"payment_id": "pay_7"}, {"result": {"refund_id": "re_1"}}),
            ("wire_payout", {"iban": "DE00-PAYOUT-IBAN"}, {"error": "payout account frozen"}),
        ]
    ):
        body = {"tool": tool, "arguments": arguments, "run": run_id}
        asked = agent_client.post("/api/v1/requests", body, "json", HTTP_IDEMPOTENCY_KEY=f"g{key}")
        assert asked.status_code == 201, asked.content
        called = {"type": "tool_call", "tool": tool, "arguments": arguments, **ending}
        events = [called | {"approval": asked.json()["id"]}]
        response = agent_client.post(f"/api/v1/runs/{run_id}/events", {"events": events}, "json")
        assert response.status_code == 201, response.content
    note = {"type": "note", "text": "both calls made"}
    response = agent_client.post(f"/api/v1/runs/{run_id}/events", {"events": [note]}, "json")
    assert response.status_code == 201, response.content
    return run_id


def _trace(body: bytes) -> list[str]:
    return [
        e["data"]["event"].get("tool") or e["data"]["type"]
        for e in _entries(body)
        if e["kind"] == "trace"
    ]


def test_a_team_reviewer_exports_no_trace_event_about_another_teams_request(
    gated_run, billing
) -> None:
    pia, otto = UserFactory(username="pia"), UserFactory(username="otto")
    billing.members.add(pia)
    TeamFactory(name="support").members.add(otto)
    refund = ApprovalRequest.objects.get(tool="issue_refund")
    payout = ApprovalRequest.objects.get(tool="wire_payout")
    url = f"/api/v1/reviewer/runs/{gated_run}/export"

    for_pia = _export(_reviewer_client(pia), url)
    assert _trace(for_pia) == ["issue_refund", "note"]
    for hidden in (b"wire_payout", str(payout.code).encode(), b"DE00-PAYOUT", b"frozen"):
        assert hidden not in for_pia
    header = _entries(for_pia)[0]["data"]
    assert (header["requests_withheld"], header["trace_events_withheld"]) == (1, 1)
    run_export_verify(for_pia.splitlines(keepends=True))

    for_otto = _export(_reviewer_client(otto), url)
    assert _trace(for_otto) == ["wire_payout", "note"]
    for hidden in (str(refund.code).encode(), b"pay_7", b"re_1"):
        assert hidden not in for_otto
    records = AuditRecord.objects.filter(action=AuditAction.RUN_EXPORTED).order_by("sequence")
    assert [record.context for record in records] == [
        {"via": "reviewer_api", "requests_withheld": 1, "trace_events_withheld": 1}
    ] * 2

    staff = UserFactory(username="sam", is_staff=True)
    everything = _export(_reviewer_client(staff), url)
    assert _trace(everything) == ["issue_refund", "wire_payout", "note"]
    assert _entries(everything)[0]["data"]["trace_events_withheld"] == 0


def test_a_trace_event_naming_a_request_outside_the_run_goes_with_that_request(
    gated_run, agent_and_token, billing
) -> None:
    # The agent names, in this run's trace, a request of its own made in no run and routed
    # to support: billing's reviewer sees the run but not that request, so not the event.
    agent, _ = agent_and_token
    elsewhere = ApprovalRequestFactory(agent=agent, team=TeamFactory(name="support"))
    nowhere = "00000000-0000-4000-8000-000000000000"  # names no request: the run's own
    run = Run.objects.get(code=gated_run)
    run.status = "open"
    run.save(update_fields=["status"])
    events = [
        {"type": "tool_call", "tool": "close_account", "approval": str(elsewhere.code)},
        {"type": "tool_call", "tool": "ping", "approval": nowhere},
    ]
    agent_client = _client(HTTP_AUTHORIZATION=f"Bearer {agent_and_token[1]}")
    response = agent_client.post(f"/api/v1/runs/{gated_run}/events", {"events": events}, "json")
    assert response.status_code == 201, response.content
    pia = UserFactory(username="pia")
    billing.members.add(pia)

    body = _export(_reviewer_client(pia), f"/api/v1/reviewer/runs/{gated_run}/export")

    assert _trace(body) == ["issue_refund", "note", "ping"]
    assert _entries(body)[0]["data"]["trace_events_withheld"] == 2


def test_the_admin_action_downloads_one_run(admin_client, run_id) -> None:
    run = Run.objects.get(code=run_id)
    response = admin_client.post(
        "/admin/agents/run/", {"action": "export_record", "_selected_action": [run.pk]}
    )
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="run-{run_id}.jsonl"'
    body = _body(response)
    run_export_verify(body.splitlines(keepends=True))
    assert AuditRecord.objects.get(action=AuditAction.RUN_EXPORTED).context == {"via": "admin"}


def test_the_admin_action_asks_for_one_run_at_a_time(admin_client, run_id, agent_and_token) -> None:
    agent, _ = agent_and_token
    other = Run.objects.create(agent=agent, name="another")
    both = [Run.objects.get(code=run_id).pk, other.pk]
    response = admin_client.post(
        "/admin/agents/run/", {"action": "export_record", "_selected_action": both}, follow=True
    )
    assert "Select one run to export." in response.content.decode()
    assert not AuditRecord.objects.filter(action=AuditAction.RUN_EXPORTED).exists()


def test_manage_py_run_export_writes_a_file_that_run_export_verify_accepts(
    run_id, tmp_path: Path, capsys
) -> None:
    output = tmp_path / "run.jsonl"
    call_command("run_export", run_id, "--output", str(output))
    call_command("run_export_verify", str(output))
    assert "Run record intact: 3 request, 3 decision, 2 outcome" in capsys.readouterr().out
    with pytest.raises(CommandError, match="never overwritten"):
        call_command("run_export", run_id, "--output", str(output))
    with pytest.raises(CommandError, match="No run"):
        call_command("run_export", "not-a-run")


def _resigned(lines: list[bytes]) -> list[bytes]:
    """The lines with a fresh closing checksum: what someone editing the export would write."""
    body = [line for line in lines if json.loads(line)["kind"] != "end"]
    digest = hashlib.sha256(b"".join(body)).hexdigest()
    return [*body, (json.dumps({"kind": "end", "data": {"sha256": digest}}) + "\n").encode()]


def _edited(lines: list[bytes], kind: str, change: Any) -> list[bytes]:
    """The lines with `change(data)` applied to those of `kind` (it says whether it changed)."""
    edited = []
    for line in lines:
        entry = json.loads(line)
        if entry["kind"] == kind and change(entry["data"]):
            line = (json.dumps(entry, sort_keys=True) + "\n").encode()
        edited.append(line)
    return edited


@pytest.fixture
def exported(agent_client, run_id) -> list[bytes]:
    return _export(agent_client, f"/api/v1/runs/{run_id}/export").splitlines(keepends=True)


def test_an_edited_line_fails_its_checksum(exported) -> None:
    edited = [line.replace(b"card_declined", b"card_approved") for line in exported]
    with pytest.raises(SignedLinesProblem, match="SHA-256 does not match"):
        run_export_verify(edited)
    with pytest.raises(SignedLinesProblem, match="cut short"):
        run_export_verify(exported[:-1])


def test_an_edited_outcome_fails_against_its_audit_record_even_resigned(exported) -> None:
    def succeed(data: dict[str, Any]) -> bool:
        if data["status"] != "failed":
            return False
        data["status"] = "succeeded"
        return True

    with pytest.raises(SignedLinesProblem, match="outcome line's status differs"):
        run_export_verify(_resigned(_edited(exported, "outcome", succeed)))


def test_a_dropped_or_added_request_fails_even_resigned(exported) -> None:
    dropped = [
        line
        for line in exported
        if not (json.loads(line)["kind"] == "decision" and b'"denied"' in line)
    ]
    with pytest.raises(SignedLinesProblem, match="has no decision line"):
        run_export_verify(_resigned(dropped))

    forged = json.loads(next(line for line in exported if json.loads(line)["kind"] == "request"))
    forged["data"]["id"] = "00000000-0000-0000-0000-000000000000"
    added = [exported[0], (json.dumps(forged) + "\n").encode(), *exported[1:]]
    with pytest.raises(SignedLinesProblem, match="its request line has no audit record"):
        run_export_verify(_resigned(added))


def test_a_forged_audit_record_fails_its_hmac(exported) -> None:
    def forge(data: dict[str, Any]) -> bool:
        if data["action"] != "request.outcome_reported" or data["after"]["status"] != "failed":
            return False
        data["after"]["status"] = "succeeded"
        return True

    def succeed(data: dict[str, Any]) -> bool:
        if data["status"] != "failed":
            return False
        data["status"] = "succeeded"
        return True

    forged = _edited(_edited(exported, "audit", forge), "outcome", succeed)
    with pytest.raises(SignedLinesProblem, match="does not match its hash"):
        run_export_verify(_resigned(forged))
