"""Configuration changes through the admin land in the audit trail; the trail is read-only there."""

import pytest
from django.contrib import admin

from agents.models import Agent, AgentCredential
from approvals.audit import AuditAction, audit_record
from approvals.audit.admin import AuditedAdminMixin
from approvals.models import AuditRecord, Team
from console.admin_mixins import ReadOnlyAdminMixin
from tests.factories import AgentFactory, UserFactory

pytestmark = pytest.mark.django_db

OUR_APPS = {"agents", "approvals", "auth"}


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(username="ops", is_staff=True, is_superuser=True))
    return client


def _config_records() -> list[AuditRecord]:
    return list(AuditRecord.objects.filter(action__startswith="config."))


def test_every_admin_that_can_change_our_models_is_audited() -> None:
    unaudited = [
        model._meta.label
        for model, model_admin in admin.site._registry.items()
        if model._meta.app_label in OUR_APPS
        and not isinstance(model_admin, AuditedAdminMixin | ReadOnlyAdminMixin)
    ]
    assert unaudited == []


def test_it_records_an_added_team(admin_client) -> None:
    rita = UserFactory(username="rita")
    response = admin_client.post(
        "/admin/approvals/team/add/", {"name": "Payments", "members": [rita.pk]}
    )
    assert response.status_code == 302, response.content
    (record,) = _config_records()
    team = Team.objects.get()
    assert record.action == AuditAction.CONFIG_CREATED
    assert (record.object_type, record.object_id) == ("approvals.team", str(team.code))
    assert record.actor_label == "ops"
    assert record.before is None
    assert record.after["name"] == "Payments"
    assert record.after["members"] == [rita.pk]


def test_it_records_only_what_changed(admin_client) -> None:
    rita, sam = UserFactory(username="rita"), UserFactory(username="sam")
    team = Team.objects.create(name="Payments")
    team.members.add(rita)
    response = admin_client.post(
        f"/admin/approvals/team/{team.pk}/change/", {"name": "Refunds", "members": [sam.pk]}
    )
    assert response.status_code == 302, response.content
    (record,) = _config_records()
    assert record.action == AuditAction.CONFIG_CHANGED
    assert record.before == {"members": [rita.pk], "name": "Payments"}
    assert record.after == {"members": [sam.pk], "name": "Refunds"}


def test_it_records_deletions_one_by_one_and_in_bulk(admin_client) -> None:
    first, second, third = (Team.objects.create(name=name) for name in ("A", "B", "C"))
    admin_client.post(f"/admin/approvals/team/{first.pk}/delete/", {"post": "yes"})
    admin_client.post(
        "/admin/approvals/team/",
        {"action": "delete_selected", "_selected_action": [second.pk, third.pk], "post": "yes"},
    )
    assert not Team.objects.exists()
    records = _config_records()
    assert [record.action for record in records] == [AuditAction.CONFIG_DELETED] * 3
    assert [record.object_id for record in records] == [
        str(first.code),
        str(second.code),
        str(third.code),
    ]
    assert records[0].before["name"] == "A"


def test_it_keeps_password_hashes_out_of_the_trail(admin_client) -> None:
    user = UserFactory(username="rita")
    response = admin_client.post(
        f"/admin/auth/user/{user.pk}/change/",
        {
            "username": "rita",
            "email": "rita@example.test",
            "is_active": "on",
            "is_staff": "on",
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
        },
    )
    assert response.status_code == 302, response.content
    (record,) = _config_records()
    assert record.before["is_staff"] is False
    assert record.after["is_staff"] is True
    assert "password" not in record.before
    assert "password" not in record.after


def test_the_admin_credential_action_records_the_staff_member(admin_client) -> None:
    agent = AgentFactory(name="mailer")
    admin_client.post(
        "/admin/agents/agent/",
        {"action": "issue_credential", "_selected_action": [agent.pk]},
    )
    credential = AgentCredential.objects.get(agent=agent)
    record = AuditRecord.objects.get(action=AuditAction.CREDENTIAL_ISSUED)
    assert (record.actor_label, record.object_id) == ("ops", credential.prefix)

    admin_client.post(
        "/admin/agents/agentcredential/",
        {"action": "revoke", "_selected_action": [credential.pk]},
    )
    record = AuditRecord.objects.get(action=AuditAction.CREDENTIAL_REVOKED)
    assert record.actor_label == "ops"


def test_the_audit_log_is_read_only_and_searchable(admin_client) -> None:
    audit_record(action=AuditAction.REQUEST_APPROVED, object_id="needle-123")
    audit_record(action=AuditAction.REQUEST_DENIED, object_id="other-456")
    found = admin_client.get("/admin/approvals/auditrecord/", {"q": "needle-123"})
    assert found.status_code == 200
    assert b"needle-123" in found.content
    assert b"other-456" not in found.content
    by_actor = admin_client.get("/admin/approvals/auditrecord/", {"q": "ops"})
    assert b"auth.login" in by_actor.content

    record = AuditRecord.objects.get(object_id="needle-123")
    assert admin_client.get("/admin/approvals/auditrecord/add/").status_code == 403
    change = admin_client.post(f"/admin/approvals/auditrecord/{record.pk}/change/", {"action": "x"})
    assert change.status_code == 403
    assert (
        admin_client.post(
            f"/admin/approvals/auditrecord/{record.pk}/delete/", {"post": "yes"}
        ).status_code
        == 403
    )
    assert AuditRecord.objects.get(pk=record.pk).action == AuditAction.REQUEST_APPROVED


def test_agents_edited_in_the_admin_are_recorded(admin_client) -> None:
    agent = AgentFactory(name="mailer", description="old")
    admin_client.post(
        f"/admin/agents/agent/{agent.pk}/change/",
        {
            "name": "mailer",
            "description": "new",
            "credentials-TOTAL_FORMS": "0",
            "credentials-INITIAL_FORMS": "0",
            "aap_instance-TOTAL_FORMS": "0",
            "aap_instance-INITIAL_FORMS": "0",
            "webhook_receiver-TOTAL_FORMS": "0",
            "webhook_receiver-INITIAL_FORMS": "0",
        },
    )
    (record,) = _config_records()
    assert (record.object_type, record.before, record.after) == (
        "agents.agent",
        {"description": "old"},
        {"description": "new"},
    )
    assert Agent.objects.get().description == "new"
