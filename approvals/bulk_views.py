"""Bulk decisions from the queue: a confirmation page listing the requests, then the results.

Two plain POSTs: the queue's ticked rows to the confirmation, the confirmation to the decision.
The rules (access, low impact only, one transaction per request) are in approvals/bulk.py.
"""

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

from approvals.bulk import (
    BULK_MAX,
    DENY,
    BulkRefused,
    approvals_bulk_approve,
    approvals_bulk_deny,
    bulk_codes_check,
    bulk_preview,
)
from console.http import AuthenticatedHttpRequest


def _refused(
    request: AuthenticatedHttpRequest, error: BulkRefused, **context: object
) -> HttpResponse:
    return render(request, "approvals/bulk.html", {"error": str(error), **context}, status=400)


@require_POST
@login_required
def bulk_confirm(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The list of ticked requests, each with whether the action takes it; nothing decided yet."""
    action = request.POST.get("action", "")
    try:
        codes = bulk_codes_check(action=action, raw_codes=request.POST.getlist("codes"))
    except BulkRefused as error:
        return _refused(request, error, action=action)
    items = bulk_preview(action=action, codes=codes, reviewer=request.user)
    return render(
        request,
        "approvals/bulk.html",
        {
            "action": action,
            "items": items,
            "included": [item for item in items if item.ok],
            "bulk_max": BULK_MAX,
        },
    )


@require_POST
@login_required
def bulk_decide(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Decide the confirmed requests one by one and report each one's outcome."""
    action = request.POST.get("action", "")
    reason = request.POST.get("reason", "")
    try:
        codes = bulk_codes_check(action=action, raw_codes=request.POST.getlist("codes"))
    except BulkRefused as error:
        return _refused(request, error, action=action)
    try:
        if action == DENY:
            results = approvals_bulk_deny(codes=codes, reviewer=request.user, reason=reason)
        else:
            results = approvals_bulk_approve(codes=codes, reviewer=request.user, note=reason)
    except BulkRefused as error:
        # The list again, with what was typed, so the reviewer can fix it and confirm.
        items = bulk_preview(action=action, codes=codes, reviewer=request.user)
        included = [item for item in items if item.ok]
        return _refused(
            request, error, action=action, items=items, included=included, reason=reason
        )
    done = sum(1 for item in results if item.ok)
    return render(
        request, "approvals/bulk.html", {"action": action, "results": results, "done": done}
    )
