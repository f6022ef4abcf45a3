"""Notification pages and Slack's interactivity endpoint. Thin, as views are."""

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from approvals.forms import NotificationPreferenceForm
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
from console.http import AuthenticatedHttpRequest


@require_GET
@login_required
def notification_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    notifications = notifications_for_reviewer(user=request.user)
    return render(request, "approvals/notifications.html", {"notifications": notifications})


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
            "title": f"Approval needed: {notification.approval.tool}",
            "body": notification.approval.summary[:200],
            "url": reverse("approvals:detail", kwargs={"code": notification.approval.code}),
        }
        for notification in notifications_unread_after(user=request.user, after_id=after_id)
    ]
    return JsonResponse({"notifications": items})


@require_http_methods(["GET", "POST"])
@login_required
def notification_preferences(request: AuthenticatedHttpRequest) -> HttpResponse:
    preference = preference_for(request.user)
    form = NotificationPreferenceForm(request.POST or None, instance=preference)
    if request.method == "POST" and form.is_valid():
        notification_preference_update(user=request.user, values=form.cleaned_data)
        return redirect("approvals:notification-preferences")
    status = 400 if request.method == "POST" else 200
    context = {"form": form, "api_tokens": reviewer_tokens_live(user=request.user)}
    return render(request, "approvals/preferences.html", context, status=status)


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
