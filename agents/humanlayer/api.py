"""HumanLayer 0.7 endpoints, under /humanlayer/v1/. Thin: parse -> one service -> shape.

Reviewers decide in the console; the agent-side `respond` and `escalate_email` calls of the
HumanLayer SDK have no counterpart here and answer with a clear error.
"""

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.humanlayer import serializers as wire
from agents.humanlayer.selectors import FUNCTION_CALL, HUMAN_CONTACT
from agents.humanlayer.services import (
    humanlayer_call_read,
    humanlayer_function_call_create,
    humanlayer_human_contact_create,
)
from agents.models import Agent
from console.api_errors import ApiError, error_responses

TAGS = ["humanlayer-compat"]

# HumanLayer's own shapes, documented by HumanLayer 0.7 (agents.humanlayer.serializers makes
# them): named here, not described again.
_FUNCTION_CALL = OpenApiResponse(
    OpenApiTypes.OBJECT, description="A FunctionCall of HumanLayer 0.7."
)
_HUMAN_CONTACT = OpenApiResponse(
    OpenApiTypes.OBJECT, description="A HumanContact of HumanLayer 0.7."
)


def _not_found() -> ApiError:
    return ApiError(status_code=404, code="not_found", message="No such call.")


class FunctionCallCreateApi(APIView):
    @extend_schema(
        operation_id="humanlayer_create_function_call",
        tags=TAGS,
        request=wire.FunctionCallInput,
        responses={201: _FUNCTION_CALL, 200: _FUNCTION_CALL, **error_responses(400, 401, 413)},
    )
    def post(self, request: Request) -> Response:
        payload = wire.FunctionCallInput(data=request.data)
        payload.is_valid(raise_exception=True)
        agent: Agent = request.user  # type: ignore[assignment]
        data: dict[str, Any] = payload.validated_data
        approval, created = humanlayer_function_call_create(
            agent=agent, run_id=data["run_id"], call_id=data["call_id"], spec=data["spec"]
        )
        return Response(
            wire.function_call_output(approval),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class FunctionCallDetailApi(APIView):
    @extend_schema(
        operation_id="humanlayer_get_function_call",
        tags=TAGS,
        responses={200: _FUNCTION_CALL, **error_responses(401, 404)},
    )
    def get(self, request: Request, call_id: str) -> Response:
        agent: Agent = request.user  # type: ignore[assignment]
        approval = humanlayer_call_read(agent=agent, kind=FUNCTION_CALL, call_id=call_id)
        if approval is None:
            raise _not_found()
        return Response(wire.function_call_output(approval))


class HumanContactCreateApi(APIView):
    @extend_schema(
        operation_id="humanlayer_create_human_contact",
        tags=TAGS,
        request=wire.HumanContactInput,
        responses={201: _HUMAN_CONTACT, 200: _HUMAN_CONTACT, **error_responses(400, 401, 413)},
    )
    def post(self, request: Request) -> Response:
        payload = wire.HumanContactInput(data=request.data)
        payload.is_valid(raise_exception=True)
        agent: Agent = request.user  # type: ignore[assignment]
        data: dict[str, Any] = payload.validated_data
        approval, created = humanlayer_human_contact_create(
            agent=agent, run_id=data["run_id"], call_id=data["call_id"], spec=data["spec"]
        )
        return Response(
            wire.human_contact_output(approval),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class HumanContactDetailApi(APIView):
    @extend_schema(
        operation_id="humanlayer_get_human_contact",
        tags=TAGS,
        responses={200: _HUMAN_CONTACT, **error_responses(401, 404)},
    )
    def get(self, request: Request, call_id: str) -> Response:
        agent: Agent = request.user  # type: ignore[assignment]
        approval = humanlayer_call_read(agent=agent, kind=HUMAN_CONTACT, call_id=call_id)
        if approval is None:
            raise _not_found()
        return Response(wire.human_contact_output(approval))


class AgentRespondApi(APIView):
    # No fixed operation id: this view serves the function call's path and the human contact's.
    @extend_schema(tags=TAGS, request=None, responses=error_responses(401, 403))
    def post(self, request: Request, call_id: str) -> Response:
        raise ApiError(
            status_code=403,
            code="reviewers_decide",
            message="Decisions are made by reviewers in the console, not through the agent API.",
        )


class AgentEscalateEmailApi(APIView):
    # No fixed operation id: this view serves the function call's path and the human contact's.
    @extend_schema(tags=TAGS, request=None, responses=error_responses(400, 401))
    def post(self, request: Request, call_id: str) -> Response:
        raise ApiError(
            status_code=400,
            code="not_supported",
            message="Escalation by email is not available: the request stays in the reviewers' "
            "queue until it is decided or expires.",
        )
