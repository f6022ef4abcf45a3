"""AAP v1 routes, mounted at settings.AAP_BASE_PATH by console/urls.py.

Ids are matched as plain strings and checked in the view, so a malformed id gets the protocol's
JSON 404 rather than the site's HTML one.
"""

from django.urls import path

from agents.aap import api

app_name = "aap"

urlpatterns = [
    path("v1/requests", api.RequestCreateApi.as_view(), name="request-create"),
    path("v1/requests/<str:id>", api.RequestDetailApi.as_view(), name="request-detail"),
    path("v1/instances", api.InstanceCreateApi.as_view(), name="instance-create"),
    path("v1/instances/<str:id>", api.InstanceDetailApi.as_view(), name="instance-detail"),
]
