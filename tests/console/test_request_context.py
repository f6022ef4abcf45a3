"""One request id ties together the API call, the decision, audit records and later tasks."""

import io
import json
import logging
import time
from collections.abc import Iterator

import pytest
from celery.contrib.testing.worker import start_worker
from django.test import RequestFactory
from pythonjsonlogger.json import JsonFormatter

from approvals.audit import AuditAction, audit_record
from approvals.models import AuditRecord
from console.celery import app
from console.request_context import (
    RequestContext,
    bound_request_context,
    request_context_from_http,
)


@app.task(name="tests.audit_from_a_task", ignore_result=True)
def audit_from_a_task(marker: str) -> None:
    audit_record(action=AuditAction.NOTIFICATION_SENT, object_id=marker)


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The console's own JSON handler, writing into a buffer for the test."""
    handler = next(
        handler
        for handler in logging.getLogger().handlers
        if isinstance(handler.formatter, JsonFormatter)
    )
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    yield buffer
    handler.setStream(previous)


@pytest.mark.django_db
def test_it_logs_json_lines_carrying_the_request_id(
    agent_client, json_log, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = agent_client.post(
            "/api/v1/requests",
            {"tool": "send_email", "arguments": {}},
            format="json",
            HTTP_IDEMPOTENCY_KEY="k-log",
            HTTP_X_REQUEST_ID="req-trace-0001",
        )
    assert response.status_code == 201
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    by_logger = {line["logger"]: line for line in lines}
    assert by_logger["console.http"]["request_id"] == "req-trace-0001"
    assert by_logger["console.http"]["status"] == 201
    audit_lines = [line for line in lines if line["logger"] == "approvals.audit"]
    # The submission and the policy's verdict on it: both tied to the same API call.
    assert [line["audit_action"] for line in audit_lines] == ["request.submitted", "policy.decided"]
    assert {line["request_id"] for line in audit_lines} == {"req-trace-0001"}
    assert {"time", "level", "message"} <= set(by_logger["console.http"])


@pytest.mark.django_db
def test_it_generates_a_request_id_when_the_caller_sends_none_or_junk(agent_client) -> None:
    response = agent_client.get("/api/v1/requests/00000000-0000-0000-0000-000000000000")
    assert len(response["X-Request-ID"]) == 36
    junk = agent_client.get("/api/v1/requests/x", HTTP_X_REQUEST_ID="bad id\n")
    assert junk["X-Request-ID"] != "bad id\n"


@pytest.mark.django_db(transaction=True)
def test_a_task_carries_the_request_id_of_the_exchange_that_enqueued_it() -> None:
    with start_worker(app, perform_ping_check=False, pool="solo", shutdown_timeout=10):
        with bound_request_context(RequestContext(request_id="req-enqueued-42")):
            audit_from_a_task.delay("from-request")
        audit_from_a_task.delay("from-nowhere")
        deadline = time.monotonic() + 15
        # Its own two records, whatever else a worker on the shared broker may record meanwhile.
        mine = AuditRecord.objects.filter(object_id__in=["from-request", "from-nowhere"])
        while time.monotonic() < deadline and mine.count() < 2:
            time.sleep(0.1)
    records = {record.object_id: record for record in mine}
    assert records["from-request"].request_id == "req-enqueued-42"
    assert records["from-nowhere"].request_id == ""


def test_it_keeps_only_real_client_addresses() -> None:
    factory = RequestFactory()
    ipv6 = factory.get("/", REMOTE_ADDR="2001:0db8:0000:0000:0000:0000:0000:0001")
    assert request_context_from_http(ipv6, request_id="r").ip_address == "2001:db8::1"
    # A unix socket or a proxy misconfiguration gives no address: store none, not junk.
    junk = factory.get("/", REMOTE_ADDR="unix:/run/console.sock", HTTP_X_FORWARDED_FOR="1.2.3.4")
    assert request_context_from_http(junk, request_id="r").ip_address is None
