"""Streamed exports of the audit trail, and the staff API that serves them."""

import csv
import io
import json
from datetime import datetime, timedelta

import pytest
from asgiref.sync import async_to_sync
from django.core.management import call_command
from django.http import StreamingHttpResponse
from django.utils import timezone

from approvals.audit import AuditAction, AuditActor, audit_record, audit_record_digest
from approvals.audit.export import audit_export_response
from approvals.models import AuditRecord
from tests.conftest import ReviewerSession
from tests.factories import AgentFactory, UserFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/audit/records"


@pytest.fixture
def staff_client(client):
    client.force_login(UserFactory(username="auditor", is_staff=True))
    return client


def _records() -> list[AuditRecord]:
    rita = UserFactory(username="rita")
    agent = AgentFactory(name="refund-bot")
    return [
        audit_record(action=AuditAction.REQUEST_SUBMITTED, actor=agent, object_id="req-1"),
        audit_record(
            action=AuditAction.REQUEST_APPROVED,
            actor=rita,
            object_type="approvals.approvalrequest",
            object_id="req-1",
            before={"status": "pending"},
            after={"status": "approved", "note": "=cmd|' /C calc'!A0"},
        ),
        audit_record(action=AuditAction.REQUEST_SUBMITTED, actor=agent, object_id="req-2"),
    ]


def _body(response) -> str:
    # The export streams through an async iterator (what the ASGI server consumes).
    assert response.is_async

    async def collect() -> bytes:
        return b"".join([chunk async for chunk in response.streaming_content])

    return async_to_sync(collect)().decode()


def _lines(response) -> list[dict]:
    return [json.loads(line) for line in _body(response).splitlines()]


def test_it_streams_json_lines_for_a_time_range(staff_client) -> None:
    records = _records()
    until = (records[-1].created_at + timedelta(microseconds=1)).isoformat()
    response = staff_client.get(URL, {"since": records[0].created_at.isoformat(), "until": until})

    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "application/x-ndjson"
    assert "attachment" in response["Content-Disposition"]
    rows = _lines(response)
    assert [row["sequence"] for row in rows] == [record.sequence for record in records]
    assert rows[1]["actor_label"] == "rita"
    assert rows[1]["after"] == {"status": "approved", "note": "=cmd|' /C calc'!A0"}


def test_exported_lines_can_be_verified_offline(staff_client) -> None:
    _records()
    rows = _lines(staff_client.get(URL, {"action": AuditAction.REQUEST_APPROVED}))
    assert len(rows) == 1
    row = rows[0]
    recorded_hash = row.pop("hash")
    row["created_at"] = datetime.fromisoformat(row["created_at"])
    assert audit_record_digest(AuditRecord(**row)) == recorded_hash


def test_it_filters_by_actor_action_and_object(staff_client) -> None:
    _records()
    by_actor = _lines(staff_client.get(URL, {"actor": "refund-bot"}))
    assert [row["object_id"] for row in by_actor] == ["req-1", "req-2"]
    by_object = _lines(staff_client.get(URL, {"object_id": "req-1"}))
    assert [row["action"] for row in by_object] == ["request.submitted", "request.approved"]
    by_both = _lines(
        staff_client.get(URL, {"object_id": "req-1", "action": "request.approved", "actor": "rita"})
    )
    assert len(by_both) == 1


def test_it_streams_csv_with_formulas_defused(staff_client) -> None:
    _records()
    response = staff_client.get(URL, {"format": "csv", "action": AuditAction.REQUEST_APPROVED})
    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(_body(response))))
    assert len(rows) == 1
    assert rows[0]["actor_label"] == "rita"
    assert json.loads(rows[0]["before"]) == {"status": "pending"}

    audit_record(action=AuditAction.AUTH_LOGIN_FAILED, actor=AuditActor.anonymous("=HYPERLINK(1)"))
    response = staff_client.get(URL, {"format": "csv", "action": AuditAction.AUTH_LOGIN_FAILED})
    rows = list(csv.DictReader(io.StringIO(_body(response))))
    assert rows[0]["actor_label"] == "'=HYPERLINK(1)"


def test_it_records_who_exported(staff_client) -> None:
    staff_client.get(URL, {"format": "csv", "actor": "rita"})
    record = AuditRecord.objects.get(action=AuditAction.AUDIT_EXPORTED)
    assert record.actor_label == "auditor"
    assert record.context == {"format": "csv", "filters": {"actor": "rita"}}


@pytest.mark.parametrize(
    ("signed_in", "status", "error_type"),
    [(True, 403, "authorization"), (False, 401, "authentication")],
)
def test_it_is_for_staff_only(client, signed_in, status, error_type) -> None:
    if signed_in:
        client.force_login(UserFactory(username="rita", is_staff=False))
    response = client.get(URL)
    assert response.status_code == status
    assert response.json()["error"]["type"] == error_type
    assert not AuditRecord.objects.filter(action=AuditAction.AUDIT_EXPORTED).exists()


def test_agents_cannot_read_the_trail(agent_client) -> None:
    # The agent credential is not a session: to this endpoint the caller is nobody.
    assert agent_client.get(URL).status_code == 401


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"since": "yesterday"}, "since"),
        ({"format": "xml"}, "format"),
        ({"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "until"),
    ],
)
def test_it_names_the_bad_parameter(staff_client, params, param) -> None:
    response = staff_client.get(URL, params)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_the_benchmark_runs_and_leaves_the_trail_untouched(capsys) -> None:
    audit_record(action=AuditAction.CONFIG_CHANGED, object_id="real")
    call_command("bench_audit_export", records=300)
    out = capsys.readouterr().out
    assert "jsonl: 300 lines" in out
    assert "csv: 301 lines" in out  # the header line
    assert "peak traced memory" in out
    assert AuditRecord.objects.count() == 1


def test_the_time_filter_excludes_records_outside_the_range(staff_client) -> None:
    records = _records()
    rows = _lines(
        staff_client.get(
            URL,
            {
                "since": records[0].created_at.isoformat(),
                "until": records[1].created_at.isoformat(),
            },
        )
    )
    assert [row["sequence"] for row in rows] == [records[0].sequence]
    future = (timezone.now() + timedelta(days=1)).isoformat()
    assert _lines(staff_client.get(URL, {"since": future})) == []


def test_it_writes_the_stream_in_batches() -> None:
    lines = (f"{number}\n".encode() for number in range(5))
    response = audit_export_response(stream=lines, export_format="jsonl", lines_per_write=2)

    async def chunks() -> list[bytes]:
        return [chunk async for chunk in response.streaming_content]

    assert async_to_sync(chunks)() == [b"0\n1\n", b"2\n3\n", b"4\n"]


@pytest.mark.django_db(transaction=True)
def test_it_streams_through_the_real_asgi_server(live_console) -> None:
    UserFactory(username="auditor", is_staff=True)
    for number in range(600):  # more than one write batch
        audit_record(action=AuditAction.CONFIG_CHANGED, object_id=f"obj-{number}")
    session = ReviewerSession(live_console.url, "auditor")
    try:
        with session.client.stream(
            "GET", "/api/v1/audit/records", params={"action": "config.changed"}
        ) as response:
            assert response.status_code == 200
            assert "content-length" not in response.headers
            rows = [json.loads(line) for line in response.iter_lines() if line]
    finally:
        session.close()
    assert [row["object_id"] for row in rows] == [f"obj-{number}" for number in range(600)]


def test_the_export_command_writes_a_file(tmp_path) -> None:
    records = _records()
    target = tmp_path / "audit.jsonl"
    call_command("audit_export", object_id="req-1", output=str(target))
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert [row["sequence"] for row in rows] == [records[0].sequence, records[1].sequence]
    exported = AuditRecord.objects.get(action=AuditAction.AUDIT_EXPORTED)
    assert (exported.actor_type, exported.actor_label) == ("system", "manage.py audit_export")
