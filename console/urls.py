from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from agents.api import native, outcomes, questions, runs
from approvals import reviewer_api
from approvals.audit import api as audit_api
from approvals.insight import views as insight_views
from console import health

api_v1 = [
    path("requests", native.ApprovalRequestCreateApi.as_view(), name="request-create"),
    path("questions", questions.QuestionCreateApi.as_view(), name="question-create"),
    path("requests/<uuid:code>", native.ApprovalRequestDetailApi.as_view(), name="request-detail"),
    path(
        "requests/<uuid:code>/cancel",
        native.ApprovalRequestCancelApi.as_view(),
        name="request-cancel",
    ),
    path(
        "requests/<uuid:code>/outcome",
        outcomes.ApprovalRequestOutcomeApi.as_view(),
        name="request-outcome",
    ),
    path("runs", runs.RunOpenApi.as_view(), name="run-open"),
    path("runs/<uuid:code>", runs.RunDetailApi.as_view(), name="run-detail"),
    path("runs/<uuid:code>/events", runs.RunEventsApi.as_view(), name="run-events"),
    path("runs/<uuid:code>/close", runs.RunCloseApi.as_view(), name="run-close"),
    path("runs/<uuid:code>/export", runs.RunExportApi.as_view(), name="run-export"),
    path("audit/records", audit_api.AuditRecordExportApi.as_view(), name="audit-records"),
    path(
        "reviewer/requests",
        reviewer_api.ReviewerRequestListApi.as_view(),
        name="reviewer-request-list",
    ),
    path(
        "reviewer/requests/<uuid:code>",
        reviewer_api.ReviewerRequestDetailApi.as_view(),
        name="reviewer-request-detail",
    ),
    path(
        "reviewer/requests/<uuid:code>/approve",
        reviewer_api.ReviewerApproveApi.as_view(),
        name="reviewer-request-approve",
    ),
    path(
        "reviewer/requests/<uuid:code>/answer",
        reviewer_api.ReviewerAnswerApi.as_view(),
        name="reviewer-request-answer",
    ),
    path(
        "reviewer/requests/<uuid:code>/deny",
        reviewer_api.ReviewerDenyApi.as_view(),
        name="reviewer-request-deny",
    ),
    path(
        "reviewer/requests/<uuid:code>/comment",
        reviewer_api.ReviewerCommentApi.as_view(),
        name="reviewer-request-comment",
    ),
    path(
        "reviewer/requests/<uuid:code>/escalate",
        reviewer_api.ReviewerEscalateApi.as_view(),
        name="reviewer-request-escalate",
    ),
    path(
        "reviewer/requests/<uuid:code>/escalate-next",
        reviewer_api.ReviewerEscalateNextStepApi.as_view(),
        name="reviewer-request-escalate-next-step",
    ),
    path(
        "reviewer/runs/<uuid:code>/export",
        reviewer_api.ReviewerRunExportApi.as_view(),
        name="reviewer-run-export",
    ),
    path(
        "schema",
        SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[]),
        name="schema",
    ),
]

urlpatterns = [
    path("", include("approvals.urls")),
    path("", include("approvals.policies.urls")),
    path("accounts/", include("console.accounts")),
    path("admin/", admin.site.urls),
    path("api/v1/", include((api_v1, "api"), namespace="api-v1")),
    path("humanlayer/v1/", include("agents.humanlayer.urls")),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", insight_views.metrics, name="metrics"),
    path(f"{settings.AAP_BASE_PATH.strip('/')}/", include("agents.aap.urls")),
]

if settings.BENCH_ENDPOINTS:
    from console.bench import views as bench_views

    urlpatterns += [
        path("bench/bare", bench_views.bare, name="bench-bare"),
        path("bench/process", bench_views.process, name="bench-process"),
    ]

# A database gone away is a 503 dependency_unavailable, not a 500 (console/dependency_errors.py).
handler500 = "console.dependency_errors.server_error"
