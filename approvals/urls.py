from django.urls import path

from approvals import insight_views, views

app_name = "approvals"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("requests/<uuid:code>/", views.detail, name="detail"),
    path("requests/<uuid:code>/approve", views.approve, name="approve"),
    path("requests/<uuid:code>/deny", views.deny, name="deny"),
    path("insight/", insight_views.dashboard, name="insight"),
]
