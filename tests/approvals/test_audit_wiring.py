"""Every action with an effect leaves exactly one audit record naming who acted, and on what.

One test per call site: each fails if that site stops calling `audit_record`.
"""

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from agents.models import Agent, ProvisionerToken, Run, RunStatus, WebhookNotification
from agents.services import provisioner_token_create, run_close, run_open
from approvals.audit import AuditAction
from approvals.escalations import approval_request_escalate_next_step, escalations_fire_due
from approvals.models import (
    AuditActorType,
    AuditRecord,
    Channel,
    EscalationChain,
    EscalationStep,
    Notification,
    NotificationStatus,
    Status,
)
from approvals.notifications import notifications_create
from approvals.outbox import KIND_AAP_WEBHOOK, KIND_NOTIFICATION, outbox_deliver
from approvals.policies.halts import agent_halt, agent_resume, run_halt
from approvals.reviews import (
    approval_claim_release,
    approval_claim_take,
    check_approval_request_approve,
    check_approval_request_comment,
    check_approval_request_escalate,
)
from approvals.services import Submission, approval_request_create
from tests.agents.aap.conftest import BASE, bearer, key
from tests.agents.aap.receiver import Receiver, serve
from tests.factories import (
    AgentFactory,
    ApprovalRequestFactory,
    PolicyRuleFactory,
    TeamFactory,
    UserFactory,
)
from tests.notify_servers import smtp_server  # noqa: F401

pytestmark = pytest.mark.django_db


def _only(action: str) -> AuditRecord:
    [record] = AuditRecord.objects.filter(action=action)
    return record


def _reviewer_id(user) -> tuple[str, str]:
    return AuditActorType.REVIEWER, str(user.pk)


@pytest.fixture
def team(db):
    return TeamFactory(name="payments", members=[UserFactory(username=n) for n in ("ann", "ben")])


# --- Policy decisions at creation -------------------------------------------------------------


def test_it_records_which_rule_decided_at_creation() -> None:
    rule = PolicyRuleFactory(name="small refunds", outcome="approve", tool_glob="issue_*")
    agent = AgentFactory()
    approval, _ = approval_request_create(
        agent=agent,
        idempotency_key="k1",
        submission=Submission(tool="issue_refund", arguments={}, timeout="30m"),
    )
    assert approval.status == Status.APPROVED
    record = _only(AuditAction.POLICY_DECIDED)
    assert (record.actor_type, record.object_id) == (AuditActorType.SYSTEM, str(approval.code))
    assert record.after["outcome"] == "approve"
    assert (record.after["rule_id"], record.after["rule_name"]) == (rule.pk, "small refunds")
    # The decision it led to follows the policy's record in the chain.
    approved = _only(AuditAction.REQUEST_APPROVED)
    assert approved.sequence > record.sequence


def test_it_records_a_hold_by_default_too() -> None:
    approval, _ = approval_request_create(
        agent=AgentFactory(),
        idempotency_key="k1",
        submission=Submission(tool="wire_money", arguments={}, timeout="30m"),
    )
    assert approval.status == Status.PENDING
    record = _only(AuditAction.POLICY_DECIDED)
    assert record.object_id == str(approval.code)
    assert (record.after["outcome"], record.after["decided_by"]) == ("hold", "default")


# --- Reviewers: claims, comments, votes, escalation to a team --------------------------------


def test_it_records_claims_and_releases(team) -> None:
    ann = team.members.get(username="ann")
    approval = ApprovalRequestFactory(team=team)
    approval_claim_take(approval=approval, reviewer=ann)
    claimed = _only(AuditAction.REQUEST_CLAIMED)
    assert (claimed.actor_type, claimed.actor_id) == _reviewer_id(ann)
    assert claimed.object_id == str(approval.code)
    assert claimed.after["holder"] == "ann"

    approval_claim_release(approval=approval, reviewer=ann)
    released = _only(AuditAction.REQUEST_UNCLAIMED)
    assert (released.actor_type, released.actor_id) == _reviewer_id(ann)
    assert released.object_id == str(approval.code)


def test_it_records_a_take_over_with_the_previous_holder(team) -> None:
    ann, ben = team.members.get(username="ann"), team.members.get(username="ben")
    approval = ApprovalRequestFactory(team=team)
    approval_claim_take(approval=approval, reviewer=ann)
    approval_claim_take(approval=approval, reviewer=ben, take_over=True)
    last = AuditRecord.objects.filter(action=AuditAction.REQUEST_CLAIMED).latest("sequence")
    assert (last.actor_id, last.before, last.after["holder"]) == (
        str(ben.pk),
        {"holder": "ann"},
        "ben",
    )


def test_it_records_comments(team) -> None:
    ann = team.members.get(username="ann")
    approval = ApprovalRequestFactory(team=team)
    check_approval_request_comment(approval=approval, reviewer=ann, note="Checking with finance.")
    record = _only(AuditAction.COMMENT_ADDED)
    assert (record.actor_type, record.actor_id) == _reviewer_id(ann)
    assert record.object_id == str(approval.code)
    assert record.after == {"note": "Checking with finance."}


def test_it_records_each_quorum_vote_and_the_deciding_approval(team) -> None:
    ann, ben = team.members.get(username="ann"), team.members.get(username="ben")
    approval = ApprovalRequestFactory(team=team, required_approvals=2)
    check_approval_request_approve(
        approval=approval, reviewer=ann, note="fine by me", confirmed=approval.tool
    )
    vote = _only(AuditAction.VOTE_CAST)
    assert (vote.actor_type, vote.actor_id) == _reviewer_id(ann)
    assert vote.object_id == str(approval.code)
    assert (vote.after["votes"], vote.after["required"]) == (1, 2)

    check_approval_request_approve(approval=approval, reviewer=ben, confirmed=approval.tool)
    # The deciding vote is the approval itself: one record, not a vote and an approval.
    assert AuditRecord.objects.filter(action=AuditAction.VOTE_CAST).count() == 1
    assert _only(AuditAction.REQUEST_APPROVED).actor_id == str(ben.pk)


def test_it_records_an_escalation_to_another_team(team) -> None:
    ann = team.members.get(username="ann")
    security = TeamFactory(name="security")
    approval = ApprovalRequestFactory(team=team)
    check_approval_request_escalate(
        approval=approval, reviewer=ann, team=security, note="Looks odd."
    )
    record = _only(AuditAction.REQUEST_ESCALATED)
    assert (record.actor_type, record.actor_id) == _reviewer_id(ann)
    assert record.object_id == str(approval.code)
    assert record.before == {"team_id": team.pk}
    assert record.after == {"team_id": security.pk, "team": "security", "note": "Looks odd."}


# --- Escalation chains -----------------------------------------------------------------------


@pytest.fixture
def chain(team):
    second_line = TeamFactory(name="second-line")
    chain = EscalationChain.objects.create(name="payments")
    EscalationStep.objects.create(
        chain=chain, position=1, after_minutes=5, notify_team=team, notify_slack=False
    )
    EscalationStep.objects.create(
        chain=chain, position=2, after_minutes=10, reassign_to=second_line, notify_slack=False
    )
    return chain


def test_it_records_a_step_fired_by_the_schedule(chain, team) -> None:
    approval = ApprovalRequestFactory(team=team, escalation_chain=chain)
    fired = escalations_fire_due(now=approval.created_at + timedelta(minutes=6))
    assert fired == 1
    record = _only(AuditAction.ESCALATION_STEP_FIRED)
    assert (record.actor_type, record.object_id) == (AuditActorType.SYSTEM, str(approval.code))
    assert (record.context["step_position"], record.context["trigger"]) == (1, "schedule")


def test_it_records_the_next_step_fired_by_hand(chain, team) -> None:
    ann = team.members.get(username="ann")
    approval = ApprovalRequestFactory(team=team, escalation_chain=chain)
    approval_request_escalate_next_step(approval=approval, actor=ann, note="Urgent.")
    approval_request_escalate_next_step(approval=approval, actor=ann)
    first, second = AuditRecord.objects.filter(action=AuditAction.ESCALATION_STEP_FIRED).order_by(
        "sequence"
    )
    assert (first.actor_type, first.actor_id) == _reviewer_id(ann)
    assert (first.context["trigger"], first.context["note"]) == ("manual", "Urgent.")
    # The second step hands the request over: the trail shows from which team to which.
    assert second.before == {"team_id": team.pk}
    assert second.after == {"team_id": TeamFactory(name="second-line").pk}


# --- Notifications ---------------------------------------------------------------------------


def _email_to(user) -> Notification:
    with transaction.atomic():
        [row] = notifications_create(
            approval=ApprovalRequestFactory(),
            recipients=[user],
            channels=[Channel.EMAIL],
            reason="test",
        )
    return row


def test_it_records_a_notification_sent(smtp_server) -> None:  # noqa: F811
    row = _email_to(UserFactory(username="alice"))
    assert outbox_deliver(kind=KIND_NOTIFICATION, row_id=row.pk) is None
    record = _only(AuditAction.NOTIFICATION_SENT)
    assert (record.actor_type, record.object_type) == (
        AuditActorType.SYSTEM,
        "approvals.notification",
    )
    assert record.object_id == str(row.pk)
    assert (record.context["recipient"], record.context["channel"]) == ("alice", "email")


def test_it_records_a_notification_that_failed_for_good() -> None:
    alice = UserFactory(username="alice")
    row = _email_to(alice)
    # The address was removed after the row was queued: no retry can help.
    type(alice).objects.filter(pk=alice.pk).update(email="")
    assert outbox_deliver(kind=KIND_NOTIFICATION, row_id=row.pk) is None
    row.refresh_from_db()
    assert row.status == NotificationStatus.FAILED
    record = _only(AuditAction.NOTIFICATION_FAILED)
    assert (record.actor_type, record.object_id) == (AuditActorType.SYSTEM, str(row.pk))
    assert "no email address" in record.after["last_error"]
    assert not AuditRecord.objects.filter(action=AuditAction.NOTIFICATION_SENT).exists()


def test_it_records_the_admin_retry_of_a_failed_notification(client) -> None:
    ops = UserFactory(username="ops", is_staff=True, is_superuser=True)
    row = _email_to(UserFactory(username="alice"))
    Notification.objects.filter(pk=row.pk).update(
        status=NotificationStatus.FAILED, attempts=8, last_error="SMTP 550"
    )
    client.force_login(ops)
    response = client.post(
        "/admin/approvals/notification/",
        {"action": "retry_failed", "_selected_action": [row.pk]},
    )
    assert response.status_code == 302
    record = _only(AuditAction.NOTIFICATION_RETRIED)
    assert (record.actor_type, record.actor_id) == _reviewer_id(ops)
    assert record.object_id == str(row.pk)
    assert record.before == {"status": "failed", "attempts": 8, "last_error": "SMTP 550"}
    assert record.after == {"status": "pending", "attempts": 0}


# --- Halts -----------------------------------------------------------------------------------


def test_it_records_an_agent_halted_and_resumed() -> None:
    ops = UserFactory(username="ops")
    agent = AgentFactory()
    agent_halt(agent=agent, reason="Runaway refunds", halted_by=ops)
    halted = _only(AuditAction.AGENT_HALTED)
    assert (halted.actor_type, halted.actor_id) == _reviewer_id(ops)
    assert (halted.object_type, halted.object_id) == ("agents.agent", str(agent.code))
    assert halted.after["reason"] == "Runaway refunds"

    agent_resume(agent=agent, resumed_by=ops, reason="Fixed the prompt")
    resumed = _only(AuditAction.AGENT_RESUMED)
    assert (resumed.actor_id, resumed.object_id) == (str(ops.pk), str(agent.code))
    assert resumed.after["reason"] == "Fixed the prompt"


def test_it_records_a_halt_by_the_circuit_breaker_as_the_system() -> None:
    agent_halt(agent=AgentFactory(), reason="breaker", halted_by=None)
    assert _only(AuditAction.AGENT_HALTED).actor_type == AuditActorType.SYSTEM


def test_it_records_a_run_halted_from_the_console() -> None:
    ops = UserFactory(username="ops")
    run, _ = run_open(agent=AgentFactory(), name="nightly")
    run_halt(run=run, halted_by=ops, reason="stop")
    record = _only(AuditAction.RUN_HALTED)
    assert (record.actor_type, record.actor_id) == _reviewer_id(ops)
    assert (record.object_type, record.object_id) == ("agents.run", str(run.code))
    assert record.after["status"] == RunStatus.HALTED


def test_it_records_a_run_an_agent_closed_as_halted_with_the_agent_as_actor() -> None:
    agent = AgentFactory()
    run, _ = run_open(agent=agent, name="nightly")
    run_close(run=run, status=RunStatus.HALTED, reason="my own brake")
    record = _only(AuditAction.RUN_HALTED)
    assert (record.actor_type, record.actor_id) == (AuditActorType.AGENT, str(agent.code))
    # A completed run is routine, not an action anyone must answer for.
    other, _ = run_open(agent=agent, name="daily")
    run_close(run=other, status=RunStatus.COMPLETED)
    assert AuditRecord.objects.filter(action=AuditAction.RUN_HALTED).count() == 1
    assert Run.objects.get(pk=other.pk).status == RunStatus.COMPLETED


# --- Provisioner tokens ----------------------------------------------------------------------


def test_it_records_a_provisioner_token_created_without_its_secret() -> None:
    issued = provisioner_token_create(name="platform")
    record = _only(AuditAction.PROVISIONER_TOKEN_CREATED)
    assert (record.object_type, record.after) == (
        "agents.provisionertoken",
        {"name": "platform", "prefix": issued.token.prefix},
    )
    secret = issued.plaintext.split("_", 2)[2]  # the secret itself may contain "_"
    assert secret not in str(record.after) and secret not in str(record.context)


def test_it_records_the_admin_revoking_a_provisioner_token(client) -> None:
    ops = UserFactory(username="ops", is_staff=True, is_superuser=True)
    token = provisioner_token_create(name="platform").token
    client.force_login(ops)
    response = client.post(
        "/admin/agents/provisionertoken/",
        {"action": "revoke", "_selected_action": [token.pk]},
    )
    assert response.status_code == 302
    assert ProvisionerToken.objects.get(pk=token.pk).revoked_at is not None
    record = _only(AuditAction.PROVISIONER_TOKEN_REVOKED)
    assert (record.actor_type, record.actor_id) == _reviewer_id(ops)
    assert record.object_id == str(token.pk)
    # Revoking again changes nothing and records nothing.
    client.post(
        "/admin/agents/provisionertoken/", {"action": "revoke", "_selected_action": [token.pk]}
    )
    assert AuditRecord.objects.filter(action=AuditAction.PROVISIONER_TOKEN_REVOKED).count() == 1


# --- AAP instances and webhooks ----------------------------------------------------------------


@pytest.fixture
def receiver(settings) -> Iterator[Receiver]:
    settings.AAP_WEBHOOK_ALLOW_PRIVATE_RECEIVERS = True
    receiver = Receiver()
    server = serve(receiver)
    yield receiver
    server.shutdown()


@pytest.fixture
def platform(db):
    issued = provisioner_token_create(name="platform")
    return issued.token, bearer(issued.plaintext)


def _provisioned(provisioner, receiver: Receiver | None = None) -> dict:
    body: dict[str, object] = {"instance_name": "codex-laptop"}
    if receiver is not None:
        body["delivery"] = receiver.delivery()
    response = provisioner.post(
        f"{BASE}/instances", body, format="json", HTTP_IDEMPOTENCY_KEY=key()
    )
    assert response.status_code == 201, response.content
    return response.json()


def test_it_records_an_instance_provisioned_updated_and_deleted(platform) -> None:
    token, provisioner = platform
    instance_id = _provisioned(provisioner)["instance"]["id"]
    provisioned = _only(AuditAction.INSTANCE_PROVISIONED)
    assert (provisioned.actor_type, provisioned.actor_id) == (
        AuditActorType.SYSTEM,
        f"provisioner:{token.prefix}",
    )
    assert (provisioned.object_type, provisioned.object_id) == ("agents.agent", instance_id)
    assert provisioned.after == {"id": instance_id, "name": "codex-laptop"}

    response = provisioner.patch(
        f"{BASE}/instances/{instance_id}",
        {"instance_name": "codex-desktop"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key(),
    )
    assert response.status_code == 200, response.content
    updated = _only(AuditAction.INSTANCE_UPDATED)
    assert updated.actor_id == f"provisioner:{token.prefix}"
    assert (updated.before["name"], updated.after["name"]) == ("codex-laptop", "codex-desktop")

    assert provisioner.delete(f"{BASE}/instances/{instance_id}").status_code == 204
    deleted = _only(AuditAction.INSTANCE_DELETED)
    assert (deleted.actor_id, deleted.object_id) == (f"provisioner:{token.prefix}", instance_id)
    # Deleting again is a no-op, and records nothing.
    provisioner.delete(f"{BASE}/instances/{instance_id}")
    assert AuditRecord.objects.filter(action=AuditAction.INSTANCE_DELETED).count() == 1


def _resolved_event(provisioner, receiver: Receiver) -> WebhookNotification:
    body = _provisioned(provisioner, receiver)
    instance = bearer(body["credential"]["token"])
    created = instance.post(
        f"{BASE}/requests",
        {"tool": "t", "arguments": {}, "timeout": "10m"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key(),
    ).json()
    assert instance.delete(f"{BASE}/requests/{created['id']}").status_code in (200, 204)
    return WebhookNotification.objects.get(agent=Agent.objects.get(code=body["instance"]["id"]))


def test_it_records_a_webhook_delivered(platform, receiver) -> None:
    notification = _resolved_event(platform[1], receiver)
    assert outbox_deliver(kind=KIND_AAP_WEBHOOK, row_id=notification.pk) is None
    assert len(receiver.events) == 1
    record = _only(AuditAction.WEBHOOK_DELIVERED)
    assert (record.actor_type, record.object_type) == (
        AuditActorType.SYSTEM,
        "agents.webhooknotification",
    )
    assert record.object_id == str(notification.code)
    assert record.context["status_code"] == 204


def test_it_records_a_webhook_given_up_on(platform, receiver) -> None:
    notification = _resolved_event(platform[1], receiver)
    # The receiver was down for the whole retry window.
    WebhookNotification.objects.filter(pk=notification.pk).update(
        deliver_until=timezone.now() - timedelta(seconds=1)
    )
    assert outbox_deliver(kind=KIND_AAP_WEBHOOK, row_id=notification.pk) is None
    assert receiver.events == []
    record = _only(AuditAction.WEBHOOK_FAILED)
    assert (record.actor_type, record.object_id) == (AuditActorType.SYSTEM, str(notification.code))
    assert record.after["ended_reason"] == "retry window ended"
    assert not AuditRecord.objects.filter(action=AuditAction.WEBHOOK_DELIVERED).exists()
