"""Reviewer web pages: parse, call one service or selector, render.

Pages render named partials of their own template; htmx requests get just the partial.
"""

import json

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST
from django_htmx.middleware import HtmxDetails

from approvals.exceptions import TransitionConflict
from approvals.forms import ApproveForm, DenyForm
from approvals.models import ApprovalRequest
from approvals.selectors import (
    approval_get_for_reviewer,
    approvals_pending_queue,
    approvals_recently_decided,
    run_timeline_for_approval,
)
from approvals.services import approval_request_approve, approval_request_deny


class HtmxHttpRequest(HttpRequest):
    """Typing aid: django-htmx's middleware sets `request.htmx`."""

    htmx: HtmxDetails


@require_GET
@login_required
def queue(request: HtmxHttpRequest) -> HttpResponse:
    context = {"pending": approvals_pending_queue(), "decided": approvals_recently_decided()}
    if request.htmx and request.GET.get("fragment") == "rows":
        return render(request, "approvals/queue.html#queue-rows", context)
    return render(request, "approvals/queue.html", context)


def _get_or_404(code: object) -> ApprovalRequest:
    approval = approval_get_for_reviewer(code=code)
    if approval is None:
        raise Http404("No such approval request.")
    return approval


def _detail_context(approval: ApprovalRequest, **extra: object) -> dict[str, object]:
    return {
        "approval": approval,
        "arguments_pretty": json.dumps(approval.arguments, indent=2, ensure_ascii=False),
        "context_pretty": json.dumps(approval.context, indent=2, ensure_ascii=False),
        "events": approval.events.select_related("actor_user", "actor_agent"),
        "approve_form": extra.pop("approve_form", None) or ApproveForm(),
        "deny_form": extra.pop("deny_form", None) or DenyForm(),
        **extra,
    }


@require_GET
@login_required
def detail(request: HtmxHttpRequest, code: object) -> HttpResponse:
    approval = _get_or_404(code)
    run_timeline = run_timeline_for_approval(approval=approval)
    return render(
        request, "approvals/detail.html", _detail_context(approval, run_timeline=run_timeline)
    )


def _decision_response(
    request: HtmxHttpRequest, approval: ApprovalRequest, *, status: int = 200, **extra: object
) -> HttpResponse:
    if request.htmx:
        return render(
            request,
            "approvals/detail.html#decision-panel",
            _detail_context(approval, **extra),
            status=status,
        )
    if status == 200:
        return redirect("approvals:detail", code=approval.code)
    return render(
        request, "approvals/detail.html", _detail_context(approval, **extra), status=status
    )


def _conflict(request: HtmxHttpRequest, code: object, conflict: TransitionConflict) -> HttpResponse:
    approval = _get_or_404(code)
    message = (
        f"Not recorded: someone else got there first. This request is {conflict.current_status}."
    )
    return _decision_response(request, approval, status=409, conflict_message=message)


@require_POST
@login_required
def approve(request: HtmxHttpRequest, code: object) -> HttpResponse:
    approval = _get_or_404(code)
    form = ApproveForm(request.POST)
    if not form.is_valid():
        return _decision_response(request, approval, status=400, approve_form=form)
    try:
        approval = approval_request_approve(
            approval=approval, reviewer=request.user, note=form.cleaned_data["note"]
        )
    except TransitionConflict as conflict:
        return _conflict(request, code, conflict)
    return _decision_response(request, approval)


@require_POST
@login_required
def deny(request: HtmxHttpRequest, code: object) -> HttpResponse:
    approval = _get_or_404(code)
    form = DenyForm(request.POST)
    if not form.is_valid():
        return _decision_response(request, approval, status=400, deny_form=form)
    try:
        approval = approval_request_deny(
            approval=approval, reviewer=request.user, reason=form.cleaned_data["reason"]
        )
    except TransitionConflict as conflict:
        return _conflict(request, code, conflict)
    return _decision_response(request, approval)


def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")
