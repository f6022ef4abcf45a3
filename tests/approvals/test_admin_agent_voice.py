"""The Django admin shows what an agent named (its own name, a tool's, a run's, a webhook's URL)
as the agent's words: quoted whole on one line, invisible and direction-changing characters
shown, escaped. Django shows an object by its string in titles, breadcrumbs, selects, filters,
delete confirmations and "recent actions", so those strings quote the agent's part too."""

import re
from html import escape

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client
from django.utils import timezone

from agents.models import AapInstance, Agent, ProvisionerToken, Run, WebhookReceiver
from approvals.audit.trail import audit_record
from approvals.models import ApprovalRequest, AuditRecord, Decision, Status
from approvals.services import approval_request_create
from tests.factories import AgentFactory, ApprovalRequestFactory, UserFactory, build_submission

pytestmark = pytest.mark.django_db

# A verdict the console might give, quotes and markup, a line break that would start a line of
# its own, and a right-to-left override that would reverse what follows it.
HOSTILE = 'Approved by admin\n"<b>ok</b>"\u202e'
# How it must read wherever the admin shows it: one line, every character visible, in quotes.
QUOTED = escape('\u201cApproved by admin "<b>ok</b>"\u27e8U+202E\u27e9\u201d')


def _marked(page: str) -> str:
    """`page` after checking that HOSTILE appears in it only quoted whole and escaped. Form
    values are left out: they are what an input edits or a select sends, not shown as words."""
    shown = re.sub(r' value="[^"]*"', "", page)
    assert "<b>ok</b>" not in shown
    assert "\u202e" not in shown
    assert shown.count(QUOTED) > 0
    assert shown.count("Approved by admin") == shown.count(QUOTED), "shown unquoted"
    return shown


@pytest.fixture
def admin_client() -> Client:
    client = Client()
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def _page(client: Client, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, path
    return _marked(response.content.decode())


def test_it_quotes_the_agents_name_in_its_list_page_and_headings(admin_client: Client) -> None:
    agent = AgentFactory(name=HOSTILE)
    change = f"/admin/agents/agent/{agent.pk}/change/"

    listed = _page(admin_client, "/admin/agents/agent/")
    changed = _page(admin_client, change)
    deleting = _page(admin_client, f"/admin/agents/agent/{agent.pk}/delete/")

    assert f'<th class="field-name_shown"><a href="{change}">{QUOTED}</a></th>' in listed
    assert f"<title>{QUOTED} | Change agent |" in changed
    assert f"<h2>{QUOTED}</h2>" in changed
    assert f'<li aria-current="page">{QUOTED}</li>' in changed
    assert f'<li>Agent: <a href="{change}">{QUOTED}</a></li>' in deleting


def test_recent_actions_and_the_history_quote_the_agents_name(admin_client: Client) -> None:
    agent = AgentFactory(name=HOSTILE)
    change = f"/admin/agents/agent/{agent.pk}/change/"

    inlines = {
        f"{prefix}-{count}_FORMS": "0"
        for prefix in ("credentials", "aap_instance", "webhook_receiver")
        for count in ("TOTAL", "INITIAL")
    }
    response = admin_client.post(change, {"name": HOSTILE, "description": "changed", **inlines})

    assert response.status_code == 302
    assert Agent.objects.get().description == "changed"
    assert LogEntry.objects.get().object_repr == QUOTED.replace("&quot;", '"').replace(
        "&lt;", "<"
    ).replace("&gt;", ">")
    index = _page(admin_client, "/admin/")
    history = _page(admin_client, f"/admin/agents/agent/{agent.pk}/history/")
    assert f'<a href="{change}">{QUOTED}</a>' in index
    assert f"<title>Change history: {QUOTED} |" in history


def test_the_one_time_credential_page_quotes_the_agents_name(admin_client: Client) -> None:
    agent = AgentFactory(name=HOSTILE)

    response = admin_client.post(
        "/admin/agents/agent/", {"action": "issue_credential", "_selected_action": [agent.pk]}
    )

    assert f"<tr><td>{QUOTED}</td>" in _marked(response.content.decode())


def test_the_agents_inlines_quote_its_aap_instance_and_webhook(admin_client: Client) -> None:
    agent = AgentFactory(name="mailer")
    provisioner = ProvisionerToken.objects.create(name="fleet", prefix="p1", secret_digest="0")
    AapInstance.objects.create(agent=agent, provisioner=provisioner)
    WebhookReceiver.objects.create(
        agent=agent,
        url="https://example.test/Approved by admin/\u202e",
        registration_id="00000000-0000-0000-0000-000000000001",
        signing_secret="s",
        verified_at=timezone.now(),
    )

    page = admin_client.get(f"/admin/agents/agent/{agent.pk}/change/").content.decode()

    assert "AAP instance \u201cmailer\u201d" in page
    assert "\u201chttps://example.test/Approved by admin/\u27e8U+202E\u27e9\u201d" in page
    assert "\u202e" not in page


def test_the_request_pages_quote_the_agent_and_the_tool(admin_client: Client) -> None:
    approval = ApprovalRequestFactory(
        agent=AgentFactory(name=HOSTILE),
        tool=HOSTILE,
        summary="Approved.\n\u202eDone",
        arguments={"to": "Approved.\u202e"},
        status=Status.DENIED,
    )
    Decision.objects.create(approval=approval, status=Status.DENIED, decided_at=timezone.now())
    ApprovalRequestFactory(agent=AgentFactory(name="mailer"))  # so the agent filter shows
    change = f"/admin/approvals/approvalrequest/{approval.pk}/change/"

    listed = _page(admin_client, "/admin/approvals/approvalrequest/")
    shown = _page(admin_client, change)
    decisions = _page(admin_client, "/admin/approvals/decision/")

    assert f'<a href="{change}">{QUOTED}</a>' in listed  # the tool column
    assert f'<td class="field-agent nowrap">{QUOTED}</td>' in listed
    # The agent filter's choice.
    assert re.search(
        rf'<a href="\?agent__id__exact={approval.agent.pk}">\s*{re.escape(QUOTED)}</a>', listed
    )
    assert f"<h2>tool {QUOTED} ({approval.code})</h2>" in shown
    # The summary on its own lines, each behind the mark of a quote.
    assert '<div class="readonly">&gt; Approved.<br>&gt; \u27e8U+202E\u27e9Done</div>' in shown
    # JSON with the invisible character escaped: the same value, every character seen.
    assert "&quot;to&quot;: &quot;Approved.\\u202e&quot;" in shown
    assert f">tool {QUOTED} ({approval.code})</a></th>" in decisions  # the request column


def test_run_pages_quote_the_runs_and_the_agents_names(admin_client: Client) -> None:
    run = Run.objects.create(agent=AgentFactory(name=HOSTILE), name=HOSTILE)
    run.events.create(sequence=1, type="note", recorded_at=timezone.now(), data={"text": "hi"})

    listed = _page(admin_client, "/admin/agents/run/")
    events = _page(admin_client, "/admin/agents/traceevent/")
    shown = _page(admin_client, f"/admin/agents/run/{run.pk}/change/")

    assert f'<td class="field-agent nowrap">{QUOTED}</td>' in listed
    assert f">{QUOTED} ({run.code})</a></th>" in events  # the run column
    assert f"<h2>{QUOTED} ({run.code})</h2>" in shown


@pytest.mark.parametrize(
    "path",
    [
        "/admin/approvals/policyrule/add/",
        "/admin/agents/agentgroup/add/",
        "/admin/agents/agenthalt/add/",
    ],
)
def test_forms_offer_agents_by_their_quoted_names(admin_client: Client, path: str) -> None:
    AgentFactory(name=HOSTILE)

    assert re.search(rf"<option[^>]*>{re.escape(QUOTED)}</option>", _page(admin_client, path))


def test_the_audit_trail_quotes_what_agents_named(admin_client: Client) -> None:
    agent = AgentFactory(name=HOSTILE)
    approval, _ = approval_request_create(
        agent=agent, idempotency_key="k", submission=build_submission(tool=HOSTILE)
    )
    assert isinstance(approval, ApprovalRequest)

    listed = _page(admin_client, "/admin/approvals/auditrecord/")
    record = AuditRecord.objects.get(action="request.submitted")
    # (its JSON `after` holds the tool's name too, as JSON)
    shown = _page_plain(admin_client, f"/admin/approvals/auditrecord/{record.pk}/change/")

    assert f'<td class="field-actor_listed">Agent {QUOTED}</td>' in listed
    # The request's label quotes the tool already: one pair, not “tool “…” (…)”. The list
    # names the request by the start of its code, the record's page whole.
    assert (
        f'<td class="field-object_listed"><span title="tool {QUOTED} ({approval.code})">'
        f"tool {QUOTED} ({str(approval.code)[:8]}…)</span>"
    ) in listed
    assert f'<div class="readonly">tool {QUOTED} ({approval.code})</div>' in shown


def test_the_audit_trail_quotes_an_agents_label_once(admin_client: Client) -> None:
    agent = AgentFactory(name="bot")
    audit_record(action="agent.created", target=agent)
    # Recorded before agents' strings quoted their names: quoted whole when shown.
    audit_record(action="agent.created", object_type="agents.agent", object_label="old-bot")

    listed = _page_plain(admin_client, "/admin/approvals/auditrecord/")

    assert '<td class="field-object_listed">\u201cbot\u201d<span class="audit-sub">' in listed
    assert '<td class="field-object_listed">\u201cold-bot\u201d<span class="audit-sub">' in listed
    assert "\u201c\u201c" not in listed


def _page_plain(client: Client, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, path
    return response.content.decode()


_NO_INLINES = {
    f"{prefix}-{count}_FORMS": "0"
    for prefix in ("credentials", "aap_instance", "webhook_receiver")
    for count in ("TOTAL", "INITIAL")
}


def test_the_admins_messages_quote_the_agents_name_once(admin_client: Client) -> None:
    added = admin_client.post(
        "/admin/agents/agent/add/", {"name": HOSTILE, **_NO_INLINES}, follow=True
    )
    agent = Agent.objects.get()
    change = f"/admin/agents/agent/{agent.pk}/change/"
    changed = admin_client.post(
        change, {"name": HOSTILE, "description": "changed", **_NO_INLINES}, follow=True
    )
    confirming = _page(admin_client, f"/admin/agents/agent/{agent.pk}/delete/")
    deleted = admin_client.post(
        f"/admin/agents/agent/{agent.pk}/delete/", {"post": "yes"}, follow=True
    )

    link = f'<a href="{change}">{QUOTED}</a>'
    assert f"The agent {link} was added successfully." in _marked(added.content.decode())
    assert f"The agent {link} was changed successfully." in _marked(changed.content.decode())
    assert f"delete the agent {QUOTED}? All of the following" in confirming
    assert f"The agent {QUOTED} was deleted successfully." in _marked(deleted.content.decode())
    assert not Agent.objects.exists()
