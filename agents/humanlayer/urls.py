from django.urls import path

from agents.humanlayer import api

app_name = "humanlayer"

urlpatterns = [
    path("function_calls", api.FunctionCallCreateApi.as_view(), name="function-call-create"),
    path(
        "function_calls/<str:call_id>",
        api.FunctionCallDetailApi.as_view(),
        name="function-call-detail",
    ),
    path("contact_requests", api.HumanContactCreateApi.as_view(), name="contact-create"),
    path(
        "contact_requests/<str:call_id>",
        api.HumanContactDetailApi.as_view(),
        name="contact-detail",
    ),
    path(
        "agent/function_calls/<str:call_id>/respond",
        api.AgentRespondApi.as_view(),
        name="function-call-respond",
    ),
    path(
        "agent/function_calls/<str:call_id>/escalate_email",
        api.AgentEscalateEmailApi.as_view(),
        name="function-call-escalate",
    ),
    path(
        "agent/human_contacts/<str:call_id>/respond",
        api.AgentRespondApi.as_view(),
        name="contact-respond",
    ),
    path(
        "agent/human_contacts/<str:call_id>/escalate_email",
        api.AgentEscalateEmailApi.as_view(),
        name="contact-escalate",
    ),
]
