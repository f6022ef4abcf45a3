from django.templatetags.static import static
from django.urls import path
from django.views.generic import RedirectView

from approvals import bulk_views, notification_views, views
from approvals.insight import views as insight_views

app_name = "approvals"

urlpatterns = [
    path("", views.queue, name="queue"),
    # Browsers and tools ask for /favicon.ico whatever the page says: point them at the icon.
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
    path("history/", views.history, name="history"),
    path("bulk/confirm", bulk_views.bulk_confirm, name="bulk-confirm"),
    path("bulk/decide", bulk_views.bulk_decide, name="bulk-decide"),
    path("requests/<uuid:code>/", views.detail, name="detail"),
    path("requests/<uuid:code>/approve", views.approve, name="approve"),
    path("requests/<uuid:code>/approve-changes", views.approve_changes, name="approve-changes"),
    path("requests/<uuid:code>/answer", views.answer, name="answer"),
    path("requests/<uuid:code>/deny", views.deny, name="deny"),
    path("insight/", insight_views.dashboard, name="insight"),
    path(
        "requests/<uuid:code>/escalate-next",
        views.escalate_next_step,
        name="escalate-next-step",
    ),
    path("notifications/", notification_views.notification_list, name="notifications"),
    path("notifications/read", notification_views.notifications_read, name="notifications-read"),
    path("notifications/feed", notification_views.notification_feed, name="notification-feed"),
    path(
        "notifications/preferences",
        notification_views.notification_preferences,
        name="notification-preferences",
    ),
    path(
        "notifications/slack-link/send-code",
        notification_views.slack_link_send_code,
        name="slack-link-send-code",
    ),
    path(
        "notifications/slack-link/check-code",
        notification_views.slack_link_check_code,
        name="slack-link-check-code",
    ),
    path(
        "notifications/slack-link/unlink",
        notification_views.slack_link_unlink,
        name="slack-link-unlink",
    ),
    path(
        "account/api-tokens/<str:token_key>/revoke",
        notification_views.api_token_revoke,
        name="api-token-revoke",
    ),
    path(
        "integrations/slack/interactions",
        notification_views.slack_interactions,
        name="slack-interactions",
    ),
    path("requests/<uuid:code>/escalate", views.escalate, name="escalate"),
    path("requests/<uuid:code>/comment", views.comment, name="comment"),
    path("requests/<uuid:code>/claim", views.claim, name="claim"),
    path("requests/<uuid:code>/release", views.release, name="release"),
    path("settings/decision-page", views.page_settings, name="page-settings"),
]
