from django.urls import path

from approvals import views

app_name = "approvals"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("history/", views.history, name="history"),
    path("requests/<uuid:code>/", views.detail, name="detail"),
    path("requests/<uuid:code>/approve", views.approve, name="approve"),
    path("requests/<uuid:code>/approve-changes", views.approve_changes, name="approve-changes"),
    path("requests/<uuid:code>/deny", views.deny, name="deny"),
    path("requests/<uuid:code>/escalate", views.escalate, name="escalate"),
    path("requests/<uuid:code>/comment", views.comment, name="comment"),
    path("requests/<uuid:code>/claim", views.claim, name="claim"),
    path("requests/<uuid:code>/release", views.release, name="release"),
]
