"""What a decision does after its commit, in order: the push to the agents waiting on the request
comes first, and reads nothing (the view it carries was built in the decision's transaction).

Whatever else the commit sets off (the reviewers' row, queued notifications, the audit trail's log
line) waits behind it: each of those is work between a decision and the agent it unblocks.
"""

import logging

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from approvals.services import approval_request_approve, approval_request_deny
from approvals.subscribers import wake_waiting_agents
from tests.factories import ApprovalRequestFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def audit_logged(caplog: pytest.LogCaptureFixture) -> None:
    # As in production (LOG_LEVEL=INFO): the audit trail then logs each record after commit.
    caplog.set_level(logging.INFO, logger="approvals.audit")


@pytest.mark.usefixtures("audit_logged")
@pytest.mark.parametrize("decide", ["approve", "deny"])
def test_the_waiting_agents_are_pushed_to_before_anything_else_after_the_commit(
    django_capture_on_commit_callbacks, decide: str
) -> None:
    approval, reviewer = ApprovalRequestFactory(), UserFactory(is_staff=True)
    with django_capture_on_commit_callbacks() as callbacks:
        if decide == "approve":
            approval_request_approve(approval=approval, reviewer=reviewer)
        else:
            approval_request_deny(approval=approval, reviewer=reviewer, reason="No.")
    after_commit = [getattr(callback, "func", callback) for callback in callbacks]
    assert after_commit[0] is wake_waiting_agents
    assert after_commit.count(wake_waiting_agents) == 1
    assert len(after_commit) > 1  # the rest (reviewers' row, the audit log line) follows


def test_the_push_to_the_waiting_agents_reads_nothing(django_capture_on_commit_callbacks) -> None:
    approval = ApprovalRequestFactory()
    with django_capture_on_commit_callbacks() as callbacks:
        approval_request_approve(approval=approval, reviewer=UserFactory(is_staff=True))
    (push,) = [callback for callback in callbacks if callback.func is wake_waiting_agents]
    with CaptureQueriesContext(connection) as queries:
        push()
    assert [query["sql"] for query in queries.captured_queries] == []
