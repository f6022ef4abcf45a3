"""Every project template, rendered with realistic data, shows no template syntax as text.

Django's `{# … #}` comment is one line only: a multi-line one is printed as it stands (the
decision page once showed one above Claim). A tag or variable broken across lines does the same.
This renders every page, partial and mail the console sends, through the views and the notifier
where there is one, and checks both that the output is free of `{#`, `{%` and `{{` and that
every template file under templates/ was rendered (a new template joins the test or fails it).
"""

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core import mail
from django.db import transaction
from django.template.loader import render_to_string
from django.test import Client, RequestFactory
from django.test.signals import template_rendered
from django.urls import reverse
from django.utils import timezone

from agents.services import NewTraceEvent, run_events_append, run_open
from approvals.digests import email_digests_create
from approvals.models import (
    REASON_OUTCOME_FAILED,
    Channel,
    EmailMode,
    Impact,
    Notification,
    NotificationPreference,
    Status,
)
from approvals.notifications import notifications_create
from approvals.outbox import KIND_EMAIL_DIGEST, KIND_NOTIFICATION, outbox_deliver
from approvals.reviews import approval_claim_take, check_approval_request_comment
from approvals.services import (
    OutcomeReport,
    approval_outcome_report,
    approval_request_approve,
    approval_request_deny,
)
from tests.factories import (
    AgentFactory,
    ApprovalRequestFactory,
    PolicyRuleFactory,
    TeamFactory,
    UserFactory,
    decided_approval,
)

pytestmark = pytest.mark.django_db

TEMPLATES = Path(settings.BASE_DIR) / "templates"
RAW_SYNTAX = ("{#", "{%", "{{")


@pytest.fixture
def rendered() -> Iterator[set[str]]:
    """The names of the templates rendered while the test runs (partials as "file#name")."""
    names: set[str] = set()

    def record(sender, template, context, **kwargs):
        names.add(template.origin.template_name if template.origin else template.name)

    template_rendered.connect(record, dispatch_uid="test_templates_render")
    yield names
    template_rendered.disconnect(dispatch_uid="test_templates_render")


def _assert_clean(where: str, output: str) -> None:
    for syntax in RAW_SYNTAX:
        at = output.find(syntax)
        assert at < 0, f"{where} shows raw template syntax: …{output[max(0, at - 80) : at + 80]}…"


def _a_shift(staff, team):
    """Pending and decided requests of two agents, a claim, a comment, a policy rule."""
    support = AgentFactory(name="support-bot")
    ops = AgentFactory(name="deploy-bot", operators=[])
    pending = ApprovalRequestFactory(
        team=team,
        agent=support,
        tool="send_email",
        impact=Impact.LOW,
        summary="Reply to Ana that her refund was sent.\nSecond line.",
        arguments={"to": "ana@example.test", "subject": "Your refund", "body": "Hello,\nsent."},
        hold_reason="Matched rule: every outbound email needs a person",
        deadline_at=timezone.now() + timedelta(minutes=3),
    )
    # In a run with steps before it: the decision page shows the run's steps beside the decision.
    run, _ = run_open(agent=ops, name="release 4.12.1")
    run_events_append(
        run=run,
        events=[
            NewTraceEvent(type="message", data={"role": "user", "content": "Ship 4.12.1"}),
            NewTraceEvent(type="tool_call", data={"tool": "run_tests", "result": {"passed": 812}}),
        ],
    )
    critical = ApprovalRequestFactory(
        run=run,
        team=team,
        agent=ops,
        tool="deploy_service",
        impact=Impact.CRITICAL,
        summary="Deploy billing-api 4.12.1 to production.",
        arguments={"service": "billing-api", "version": "4.12.1", "meta": {"commits": [1, 2]}},
        context={"ticket": "https://tracker.example.test/T-1"},
    )
    approval_claim_take(approval=critical, reviewer=staff)
    check_approval_request_comment(
        approval=critical, reviewer=staff, note="Checking the changelog."
    )
    approved = ApprovalRequestFactory(team=team, agent=support, summary="Refund order 1.")
    approval_request_approve(approval=approved, reviewer=staff, note="Looks right.")
    denied = ApprovalRequestFactory(team=team, agent=ops, tool="drop_table")
    approval_request_deny(approval=denied, reviewer=staff, reason="Never in production.")
    now = timezone.now()
    for hours in range(1, 6):
        decided_approval(
            agent=support,
            status=Status.APPROVED,
            created_at=now - timedelta(hours=hours, minutes=5),
            decided_at=now - timedelta(hours=hours),
            reviewer=staff,
            hold_reason="Matched rule: refunds need a person",
        )
    rule = PolicyRuleFactory(name="Refunds need a person")
    return {"pending": pending, "critical": critical, "approved": approved, "rule": rule}


def test_it_renders_every_template_without_raw_syntax(rendered) -> None:
    staff = UserFactory(username="olga", is_staff=True, is_superuser=True, email="o@example.test")
    team = TeamFactory(name="payments", members=[staff])
    shift = _a_shift(staff, team)
    client = Client()

    # Signed out: the login page.
    page = client.get(reverse("login"))
    assert page.status_code == 200
    _assert_clean("login", page.content.decode())

    client.force_login(staff)
    with transaction.atomic():
        notifications_create(
            approval=shift["critical"],
            recipients=[staff],
            channels=[Channel.CONSOLE],
            reason="routed",
        )
    pages = {
        "queue": reverse("approvals:queue"),
        "queue, filtered": reverse("approvals:queue") + "?impact=low&q=refund",
        "decision page, pending": reverse("approvals:detail", args=[shift["critical"].code]),
        "decision page, low": reverse("approvals:detail", args=[shift["pending"].code]),
        "decision page, decided": reverse("approvals:detail", args=[shift["approved"].code]),
        "history": reverse("approvals:history"),
        "insight": reverse("approvals:insight"),
        "notifications": reverse("approvals:notifications"),
        "preferences": reverse("approvals:notification-preferences"),
        "agents": reverse("policies:agents"),
        "admin index": reverse("admin:index"),
        "admin backtest": reverse("admin:approvals_policyrule_backtest", args=[shift["rule"].pk]),
        "admin rule": reverse("admin:approvals_policyrule_change", args=[shift["rule"].pk]),
    }
    for name, url in pages.items():
        page = client.get(url)
        assert page.status_code == 200, (name, page.status_code)
        _assert_clean(name, page.content.decode())
    for fragment in ("rows", "counts"):
        page = client.get(reverse("approvals:queue"), {"fragment": fragment}, HTTP_HX_REQUEST="1")
        _assert_clean(f"queue fragment {fragment}", page.content.decode())
    page = client.get(reverse("approvals:history"), {"fragment": "rows"}, HTTP_HX_REQUEST="1")
    _assert_clean("history fragment", page.content.decode())

    # The typed confirmation a critical approval asks for, and its error (nothing recorded).
    approve = reverse("approvals:approve", args=[shift["critical"].code])
    for data in ({"note": ""}, {"note": "", "confirmed": "deploy", "confirm_step": "1"}):
        page = client.post(approve, data, HTTP_HX_REQUEST="1")
        _assert_clean("typed confirmation", page.content.decode())

    # Bulk: the confirmation list and the results.
    codes = [str(shift["pending"].code), str(shift["critical"].code)]
    page = client.post(reverse("approvals:bulk-confirm"), {"action": "approve", "codes": codes})
    _assert_clean("bulk confirmation", page.content.decode())
    page = client.post(reverse("approvals:bulk-decide"), {"action": "approve", "codes": codes})
    _assert_clean("bulk results", page.content.decode())

    # What the live pushes carry, for pending and decided requests.
    from approvals.selectors import approval_get_for_display

    for approval in (shift["critical"], shift["approved"]):
        shown = approval_get_for_display(approval_id=approval.pk)
        for partial in ("queue-oob", "queue-revoke", "presence-oob"):
            html = render_to_string(f"approvals/queue.html#{partial}", {"approval": shown})
            _assert_clean(partial, html)
        html = render_to_string("approvals/queue.html#queue-created", {"approvals": [shown]})
        _assert_clean("queue-created", html)

    # The mail the notifier sends.
    with transaction.atomic():
        [email] = notifications_create(
            approval=shift["critical"],
            recipients=[staff],
            channels=[Channel.EMAIL],
            reason="routed",
        )
    outbox_deliver(kind=KIND_NOTIFICATION, row_id=email.pk)
    [message] = mail.outbox
    _assert_clean("mail, text", message.body)
    _assert_clean("mail, html", message.alternatives[0][0])

    # The notice that something the reviewer approved failed when it ran.
    shift["approved"].refresh_from_db()
    with transaction.atomic():
        approval_outcome_report(
            approval=shift["approved"],
            report=OutcomeReport(status="failed", error="card_declined\nline two", duration_ms=9),
        )
    [failed] = Notification.objects.filter(
        approval=shift["approved"], reason=REASON_OUTCOME_FAILED, channel=Channel.EMAIL
    )
    outbox_deliver(kind=KIND_NOTIFICATION, row_id=failed.pk)
    failed_message = mail.outbox[-1]
    _assert_clean("failure notice, text", failed_message.body)
    _assert_clean("failure notice, html", failed_message.alternatives[0][0])

    # The digest, listing requests a digest-mode reviewer was told of.
    NotificationPreference.objects.update_or_create(
        user=staff, defaults={"email_mode": EmailMode.DIGEST}
    )
    with transaction.atomic():
        notifications_create(
            approval=ApprovalRequestFactory(summary="Send the\nweekly report"),
            recipients=[staff],
            channels=[Channel.EMAIL],
            reason="routed",
        )
    [digest] = email_digests_create()
    outbox_deliver(kind=KIND_EMAIL_DIGEST, row_id=digest.pk)
    digest_message = mail.outbox[-1]
    _assert_clean("digest, text", digest_message.body)
    _assert_clean("digest, html", digest_message.alternatives[0][0])

    # Pages only an event shows: the one-time secrets page and the lock-out page.
    request = RequestFactory().get("/")
    request.user = staff
    from console.admin_mixins import one_time_secrets_response

    secrets_page = one_time_secrets_response(
        request, title="New credential", secrets=[("token", "s3cr3t")], back_url="/admin/"
    )
    _assert_clean("one-time secrets", secrets_page.content.decode())
    _assert_clean("locked out", render_to_string("registration/locked_out.html", {}))

    files = {
        str(path.relative_to(TEMPLATES))
        for path in TEMPLATES.rglob("*")
        if path.suffix in {".html", ".txt"}
    }
    rendered_files = {name.split("#")[0] for name in rendered}
    assert files - rendered_files == set(), "templates this test never rendered"
