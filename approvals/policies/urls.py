from django.urls import path

from approvals.policies import views

app_name = "policies"

urlpatterns = [
    path("agents/", views.agents, name="agents"),
    path("agents/<uuid:code>/halt", views.halt, name="halt"),
    path("agents/<uuid:code>/resume", views.resume, name="resume"),
    path("runs/<uuid:code>/halt", views.halt_run, name="halt-run"),
]
