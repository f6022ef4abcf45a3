"""Email through Django's mail framework (SMTP configured from the environment).

The message links to the decision page and nowhere else that acts: link scanners follow every
link in a mail, so an approve-by-link would approve whatever a scanner opened.

Agent text never starts a line of its own in the plain-text part: a summary with newlines could
otherwise print a fake "Impact: Low" or "Decide here: https://…" line. One-line fields (the tool,
the reason) have their line breaks collapsed, the summary comes after the console's own lines,
every line of it behind "| ", and invisible or bidi characters are shown as ⟨U+XXXX⟩.
"""

import smtplib
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.core.mail.utils import DNS_NAME
from django.template.loader import render_to_string
from django.urls import reverse

from approvals.agent_text import (
    QUOTE_MAX_CHARS,
    agent_text_cut,
    agent_text_in_quotes,
    agent_text_one_line,
    agent_text_quoted_block,
    agent_tool_name_quoted,
    agent_tool_quoted,
)
from approvals.models import (
    REASON_OUTCOME_FAILED,
    ApprovalRequest,
    Channel,
    EmailDigest,
    EmailMode,
    Notification,
)
from approvals.notifiers.base import Notifier, PermanentError, PostedMessage, RetryableError
from approvals.reasons import reason_from_stored
from console.outbox import Transport

# Mail clients drop stylesheets: the agent-claim style of the console (static/css), inline.
AGENT_VALUE_STYLE = "border: 1px dashed #b54708; background: #fff8ef; font-family: monospace;"


def decision_url(approval_code: object) -> str:
    return settings.SITE_URL + reverse("approvals:detail", kwargs={"code": approval_code})


def message_id(row_key: str) -> str:
    """The Message-ID of one outbox row's email: the same on every attempt to send it.

    The email's idempotency key: a worker that dies after the mail server accepted a message but
    before the row was marked sent sends it again once its lease runs out, and a receiver (a
    relay, a mailbox, a client) that de-duplicates on Message-ID sees one message, not two.
    """
    host = urlsplit(settings.SITE_URL).hostname or str(DNS_NAME)
    return f"<{row_key}@{host}>"


class EmailNotifier(Notifier):
    channel = Channel.EMAIL

    def notify(self, notification: Notification) -> PostedMessage | None:
        recipient = notification.recipient
        if not recipient.email:
            raise PermanentError("The reviewer has no email address.")
        if notification.reason == REASON_OUTCOME_FAILED:
            _send(outcome_failed_message(notification))
            return None
        approval = notification.approval
        hold_reason = reason_from_stored(approval.hold_reason, approval.hold_reason_parts)
        context = {
            "approval": approval,
            "notification": notification,
            "reason_text": reason_text(notification),
            "decision_url": decision_url(approval.code),
            "tool_line": agent_tool_name_quoted(approval.tool),
            "agent_line": agent_text_in_quotes(approval.agent.name),
            "hold_reason_line": agent_text_one_line(str(hold_reason)),
            "summary_quoted": agent_text_quoted_block(
                approval.summary or "(no summary given)", prefix="| "
            ),
            "agent_value_style": AGENT_VALUE_STYLE,
        }
        # Header injection: agent text must never carry a newline into the Subject.
        subject = agent_text_cut(approval_subject(approval), 200)
        message = EmailMultiAlternatives(
            subject=subject,
            body=render_to_string("emails/approval_notification.txt", context),
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[recipient.email],
            # The request's code makes it unique across consoles; the row's id, across its rows.
            headers={"Message-ID": message_id(f"{approval.code.hex}.n{notification.pk}")},
        )
        message.attach_alternative(
            render_to_string("emails/approval_notification.html", context), "text/html"
        )
        _send(message)
        return None


def approval_subject(approval: ApprovalRequest, *, failed: bool = False) -> str:
    """A mail's Subject: the console's words first, the agent's in quotes (agent_text_in_quotes
    is one line: no newline reaches the header). A tool named "Approved" or a summary "Denied by
    policy" must not read as the console's verdict in an inbox."""
    summary = agent_text_in_quotes(approval.summary, QUOTE_MAX_CHARS)
    tool = agent_tool_quoted(approval.tool)
    if failed:
        said = f", the agent said {summary}" if approval.summary else ""
        return f"[Failed after approval] {tool}{said}"
    if approval.is_question:
        return f"[Question] the agent asks {summary}" if approval.summary else f"[Question] {tool}"
    said = f", the agent says {summary}" if approval.summary else ""
    return f"[Approval needed] {tool}{said}"


def outcome_failed_message(notification: Notification) -> EmailMultiAlternatives:
    """ "Something you approved failed": what was approved, by whom and when, and the error in
    the agent's words (every line behind "| ", its invisible characters shown)."""
    approval = notification.approval
    outcome = approval.outcome
    context = {
        "approval": approval,
        "outcome": outcome,
        "decision": approval.decision,
        "decision_url": decision_url(approval.code),
        "tool_line": agent_tool_name_quoted(approval.tool),
        "agent_line": agent_text_in_quotes(approval.agent.name),
        "error_quoted": agent_text_quoted_block(outcome.error or "(no error given)", prefix="| "),
        "summary_quoted": agent_text_quoted_block(
            approval.summary or "(no summary given)", prefix="| "
        ),
        "agent_value_style": AGENT_VALUE_STYLE,
    }
    message = EmailMultiAlternatives(
        # Header injection: agent text must never carry a newline into the Subject.
        subject=agent_text_cut(approval_subject(approval, failed=True), 200),
        body=render_to_string("emails/outcome_failed.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[notification.recipient.email],
    )
    message.attach_alternative(render_to_string("emails/outcome_failed.html", context), "text/html")
    return message


def _send(message: EmailMultiAlternatives) -> None:
    """Send, and say whether a failure is worth retrying."""
    try:
        message.send()
    except smtplib.SMTPRecipientsRefused as error:
        raise PermanentError(f"recipient refused: {error.recipients}") from error
    except smtplib.SMTPResponseException as error:
        # 5xx is the server's final word; 4xx asks us to come back later.
        if 500 <= error.smtp_code < 600:
            raise PermanentError(f"SMTP {error.smtp_code}: {error.smtp_error!r}") from error
        raise RetryableError(f"SMTP {error.smtp_code}: {error.smtp_error!r}") from error
    except (smtplib.SMTPException, OSError) as error:
        raise RetryableError(f"SMTP unavailable: {error}") from error


class EmailDigestNotifier(Transport):
    """One email listing the pending requests a digest-mode reviewer was told of, riskiest
    first, each with its decision link. Agent text is treated as in the single email."""

    def notify(self, digest: EmailDigest) -> None:
        recipient = digest.recipient
        if not recipient.email:
            raise PermanentError("The reviewer has no email address.")
        entries = [
            {
                "approval": approval,
                "decision_url": decision_url(approval.code),
                "tool_line": agent_tool_name_quoted(approval.tool),
                "agent_line": agent_text_in_quotes(approval.agent.name),
                "summary_quoted": agent_text_quoted_block(
                    approval.summary or "(no summary given)", prefix="    | "
                ),
            }
            for approval in digest.pending_approvals()
        ]
        preference = getattr(recipient, "notification_preference", None)
        context = {
            "entries": entries,
            # Not their choice: a busy hour switched them, and the mail says so and how to undo it.
            "auto_switched": preference is None or preference.email_mode != EmailMode.DIGEST,
            "auto_after": settings.NOTIFICATION_AUTO_DIGEST_AFTER_EMAILS_PER_HOUR,
            "auto_minutes": settings.NOTIFICATION_AUTO_DIGEST_MINUTES,
            "preferences_url": settings.SITE_URL + reverse("approvals:notification-preferences"),
            "agent_value_style": AGENT_VALUE_STYLE,
        }
        count = len(entries)
        message = EmailMultiAlternatives(
            subject=f"[Approval needed] {count} request{'s' if count != 1 else ''} waiting",
            body=render_to_string("emails/approval_digest.txt", context),
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[recipient.email],
            # Row ids restart with a new database: the time it was written tells them apart.
            headers={
                "Message-ID": message_id(f"digest.{digest.pk}.{digest.created_at:%Y%m%d%H%M%S}")
            },
        )
        message.attach_alternative(
            render_to_string("emails/approval_digest.html", context), "text/html"
        )
        _send(message)


def reason_text(notification: Notification) -> str:
    escalated = notification.reason.startswith("escalation")
    if notification.approval.is_question:
        if escalated:
            return "Still unanswered: it was escalated to you."
        return "An agent's question routed to your team is waiting for an answer."
    if escalated:
        return "Still pending: it was escalated to you."
    return "A request routed to your team is waiting for a decision."
