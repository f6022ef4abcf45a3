"""Operations insight: the staff dashboard and the Prometheus endpoint."""

import hmac
import json

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from approvals.insight.dashboard import dashboard_build, dashboard_window
from approvals.insight.metrics import metrics_registry
from console.api_errors import error_body

DASHBOARD_WEEKS = (1, 4, 8, 12, 26)


@require_GET
@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    if not request.user.is_staff:
        raise PermissionDenied("The insight dashboard is for staff.")
    try:
        weeks = int(request.GET.get("weeks", "8"))
    except ValueError:
        weeks = 8
    if weeks not in DASHBOARD_WEEKS:
        weeks = 8
    context = dashboard_build(window=dashboard_window(weeks=weeks))
    context["week_choices"] = DASHBOARD_WEEKS
    return render(request, "approvals/insight.html", context)


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format behind `Authorization: Bearer <METRICS_TOKEN>`.

    Without a configured token the endpoint does not exist, so an unconfigured deployment never
    publishes its numbers.
    """
    expected = settings.METRICS_TOKEN
    if not expected:
        raise Http404("Metrics are disabled.")
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    # Bytes: compare_digest refuses non-ASCII str, and a header may carry any latin-1 text.
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), expected.encode()
    ):
        response = HttpResponse(
            json.dumps(
                error_body(
                    status_code=401,
                    code="invalid_credential",
                    message="Send 'Authorization: Bearer <METRICS_TOKEN>'.",
                    param=None,
                    request_id=getattr(request, "request_id", None),
                )
            ),
            status=401,
            content_type="application/json",
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(metrics_registry()), content_type=CONTENT_TYPE_LATEST)
