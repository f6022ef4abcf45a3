"""Notification pages and Slack's interactivity endpoint. Thin, as views are."""

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from approvals.agent_text import agent_text_in_quotes, agent_tool_quoted
from approvals.forms import NotificationPreferenceForm, SlackLinkStartForm, SlackLinkVerifyForm
from approvals.models import REASON_OUTCOME_FAILED, ApprovalRequest, Notification
from approvals.notification_groups import notifications_grouped
from approvals.notifications import (
    notification_preference_update,
    notifications_mark_read,
    preference_for,
)
from approvals.notifiers.slack import slack_reply_ephemeral
from approvals.reviewer_tokens import reviewer_token_revoke_own, reviewer_tokens_live
from approvals.selectors import (
    notifications_for_reviewer,
    notifications_unread_after,
)
from approvals.slack_interactions import SlackRequestRefused, slack_interaction_handle
from approvals.slack_link import (
    SlackLinkRefused,
    slack_link_remove,
    slack_link_start,
    slack_link_state,
    slack_link_verify,
)
from console.http import AuthenticatedHttpRequest


@require_GET
@login_required
def notification_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    notifications = notifications_for_reviewer(user=request.user)
    groups = notifications_grouped(notifications)
    return render(request, "approvals/notifications.html", {"groups": groups})


@require_POST
@login_required
def notifications_read(request: AuthenticatedHttpRequest) -> HttpResponse:
    notifications_mark_read(user=request.user)
    return redirect("approvals:notifications")


@require_GET
@login_required
def notification_feed(request: AuthenticatedHttpRequest) -> JsonResponse:
    """New console notifications, for static/js/notifications.js to raise in the browser."""
    try:
        after_id = max(int(request.GET.get("after", "0")), 0)
    except ValueError:
        return JsonResponse({"error": {"code": "invalid", "param": "after"}}, status=400)
    items = [
        {
            "id": notification.pk,
            "title": _browser_title(notification),
            "body": _browser_body(notification.approval),
            "url": reverse("approvals:detail", kwargs={"code": notification.approval.code}),
        }
        for notification in notifications_unread_after(user=request.user, after_id=after_id)
    ]
    return JsonResponse({"notifications": items})


# A browser notification is raised as the console's: the agent's text in it quoted, on one line.
def _browser_title(notification: Notification) -> str:
    approval = notification.approval
    if notification.reason == REASON_OUTCOME_FAILED:
        return f"Failed after your approval: {agent_tool_quoted(approval.tool)}"
    if approval.is_question:
        # Nothing to approve: the reviewer answers it, or declines.
        return f"Question from agent {agent_text_in_quotes(approval.agent.name)}"
    return f"Approval needed: {agent_tool_quoted(approval.tool)}"


def _browser_body(approval: ApprovalRequest) -> str:
    if not approval.summary:
        return "(no summary given)"
    says = "asks" if approval.is_question else "says"
    return f"The agent {says} {agent_text_in_quotes(approval.summary, 200)}"


def _preferences_page(
    request: AuthenticatedHttpRequest, *, status: int = 200, **forms: Any
) -> HttpResponse:
    context = {
        "form": NotificationPreferenceForm(instance=preference_for(request.user)),
        "slack_start_form": SlackLinkStartForm(),
        "slack_verify_form": SlackLinkVerifyForm(),
        "slack": slack_link_state(user=request.user),
        "slack_configured": bool(settings.SLACK_BOT_TOKEN),
        "api_tokens": reviewer_tokens_live(user=request.user),
        "auto_digest_after": settings.NOTIFICATION_AUTO_DIGEST_AFTER_EMAILS_PER_HOUR,
        **forms,
    }
    return render(request, "approvals/preferences.html", context, status=status)


@require_http_methods(["GET", "POST"])
@login_required
def notification_preferences(request: AuthenticatedHttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _preferences_page(request)
    form = NotificationPreferenceForm(request.POST, instance=preference_for(request.user))
    if not form.is_valid():
        return _preferences_page(request, status=400, form=form)
    notification_preference_update(user=request.user, values=form.cleaned_data)
    return redirect("approvals:notification-preferences")


def _slack_link_step(
    request: AuthenticatedHttpRequest,
    form: SlackLinkStartForm | SlackLinkVerifyForm,
    step: Callable[[dict[str, str]], object],
    *,
    form_name: str,
) -> HttpResponse:
    """Validate the form, run the step; a refusal is shown on the form's field, with a 400."""
    if form.is_valid():
        try:
            step(form.cleaned_data)
        except SlackLinkRefused as refused:
            form.add_error(next(iter(form.fields)), str(refused))
    if not form.is_valid():
        return _preferences_page(request, status=400, **{form_name: form})
    return redirect("approvals:notification-preferences")


@require_POST
@login_required
def slack_link_send_code(request: AuthenticatedHttpRequest) -> HttpResponse:
    return _slack_link_step(
        request,
        SlackLinkStartForm(request.POST),
        lambda data: slack_link_start(user=request.user, slack_user_id=data["slack_user_id"]),
        form_name="slack_start_form",
    )


@require_POST
@login_required
def slack_link_check_code(request: AuthenticatedHttpRequest) -> HttpResponse:
    return _slack_link_step(
        request,
        SlackLinkVerifyForm(request.POST),
        lambda data: slack_link_verify(user=request.user, code=data["code"]),
        form_name="slack_verify_form",
    )


@require_POST
@login_required
def slack_link_unlink(request: AuthenticatedHttpRequest) -> HttpResponse:
    slack_link_remove(user=request.user)
    return redirect("approvals:notification-preferences")


@require_POST
@login_required
def api_token_revoke(request: AuthenticatedHttpRequest, token_key: str) -> HttpResponse:
    """A reviewer revokes one of their own API tokens; anyone else's is a 404."""
    if not reviewer_token_revoke_own(user=request.user, token_key=token_key):
        raise Http404("No such token of yours.")
    return redirect("approvals:notification-preferences")


@csrf_exempt  # Slack cannot send our CSRF token; its request signature is checked instead.
@require_POST
def slack_interactions(request: HttpRequest) -> HttpResponse:
    try:
        outcome = slack_interaction_handle(body=request.body, headers=request.headers)
    except SlackRequestRefused as refused:
        return HttpResponse(str(refused), status=401)
    if not outcome.decided and outcome.message and outcome.response_url:
        slack_reply_ephemeral(response_url=outcome.response_url, text=outcome.message)
    # Slack only needs a quick 200; the message is updated through the outbox.
    return HttpResponse(status=200)
