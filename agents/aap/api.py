"""The Agent Approval Protocol v1 HTTP API (../shared/aap/openapi.yaml), under AAP_BASE_PATH.

One view per path; parse -> one service call -> render. The long poll is async and holds no
thread: it sleeps on the request's channel-layer group, exactly like the native API's.
"""

import logging
import re
import uuid
from functools import partial
from typing import Any

from adrf.views import APIView as AsyncAPIView
from asgiref.sync import sync_to_async
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError
from django.utils import timezone
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.aap import services
from agents.aap.authentication import AapAuthentication, IsInstance, IsProvisioner
from agents.aap.serializers import (
    CreateApprovalRequestInput,
    ExactJSONRenderer,
    ProvisionInstanceInput,
    UpdateInstanceInput,
    approval_document,
)
from agents.api.long_poll import long_poll_document
from agents.api.native import idempotency_key_header, parse_wait
from agents.models import Agent, ProvisionerToken
from approvals.models import ApprovalRequest
from approvals.selectors import approval_get_for_agent
from approvals.services import (
    DURATION_PATTERN,
    approval_request_cancel,
    approval_request_expire_if_overdue,
)
from console import api_limits, exact_json
from console.api_errors import ApiError, error_body
from console.api_errors import exception_handler as api_exception_handler

logger = logging.getLogger(__name__)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """The console's envelope, and for anything unexpected the protocol's 500 or 503 too.

    Never Django's HTML error page: an adapter must be able to parse every error (and never
    mistake one for a decision). Details go to the log, not to the caller.
    """
    response = api_exception_handler(exc, context)
    if response is not None:
        return response
    request = context.get("request")
    request_id = getattr(request, "request_id", None)
    if isinstance(exc, DatabaseError):
        logger.exception("AAP dependency failure")
        body = error_body(
            status_code=503,
            code="unavailable",
            message="The console is temporarily unable to serve this; retry shortly.",
            param=None,
            request_id=request_id,
        )
        return Response(body, status=503, headers={"Retry-After": "5"})
    logger.exception("AAP internal error")
    body = error_body(
        status_code=500,
        code="internal_error",
        message="The console could not complete the operation.",
        param=None,
        request_id=request_id,
    )
    return Response(body, status=500)


class AapView(APIView):
    # Documented by the protocol's own contract (agents/aap/spec/openapi.yaml), which the
    # tests hold these views to, not by the console's schema.
    schema = None
    authentication_classes = [AapAuthentication]
    renderer_classes = [ExactJSONRenderer]
    parser_classes: list[Any] = []  # bodies are parsed exactly, from request.body

    def get_exception_handler(self) -> Any:
        return exception_handler


class AapAsyncView(AsyncAPIView):
    # Documented by the protocol's own contract (agents/aap/spec/openapi.yaml), which the
    # tests hold these views to, not by the console's schema.
    schema = None
    authentication_classes = [AapAuthentication]
    renderer_classes = [ExactJSONRenderer]
    parser_classes: list[Any] = []

    def get_exception_handler(self) -> Any:
        return exception_handler


def _body(request: Request) -> Any:
    """The body read exactly, within the agent APIs' limits (console.api_limits)."""
    try:
        raw = request.body
    except RequestDataTooBig:  # DATA_UPLOAD_MAX_MEMORY_SIZE set below API_MAX_BODY_BYTES
        raise api_limits.payload_too_large() from None
    try:
        body = exact_json.loads(raw)
    except RecursionError:
        body, too_deep = None, True
    except ValueError:
        raise ApiError(
            status_code=400, code="invalid_json", message="The body must be a JSON object."
        ) from None
    else:
        # Before anything walks it: validation, fingerprinting and echoing all recurse.
        too_deep = api_limits.json_depth_exceeds(body)
    if too_deep:
        raise ApiError(status_code=400, code="invalid_json", message=api_limits.too_deep_message())
    return body


def _validated[S: serializers.Serializer](serializer: S) -> S:
    serializer.is_valid(raise_exception=True)
    return serializer


def _idempotency_key(request: Request) -> str:
    # Taken as sent: AAP compares keys byte for byte.
    return idempotency_key_header(
        request, required="The Idempotency-Key header is required.", strip=False
    )


def _uuid(raw: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise ApiError(status_code=404, code="not_found", message=f"No such {what}.") from None


# --- Requests ---------------------------------------------------------------------------------


class RequestCreateApi(AapView):
    permission_classes = [IsInstance]

    def post(self, request: Request) -> Response:
        key = _idempotency_key(request)
        payload = _validated(CreateApprovalRequestInput(data=_body(request)))
        agent: Agent = request.user  # type: ignore[assignment]
        approval, created = services.aap_request_create(
            agent=agent, idempotency_key=key, submission=payload.to_submission()
        )
        return Response(
            approval_document(_reload(approval)),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


def _reload(approval: ApprovalRequest) -> ApprovalRequest:
    return ApprovalRequest.objects.select_related("decision").get(pk=approval.pk)


class RequestDetailApi(AapAsyncView):
    permission_classes = [IsInstance]

    async def get(self, request: Request, id: str) -> Response:
        code = _uuid(id, "approval request")
        raw_wait = request.query_params.get("wait")
        if raw_wait is not None and not _is_duration(raw_wait):
            raise ApiError(
                status_code=400,
                code="invalid_field",
                message='wait: must be a duration such as "30s".',
                param="wait",
            )
        wait = parse_wait(raw_wait)
        agent: Agent = request.user  # type: ignore[assignment]
        found = await sync_to_async(_read)(agent, code)
        read_again = partial(_document_for_agent, agent, code)
        answer = await long_poll_document(code=code, found=found, wait=wait, read_again=read_again)
        return Response(answer)

    async def delete(self, request: Request, id: str) -> Response:
        code = _uuid(id, "approval request")
        agent: Agent = request.user  # type: ignore[assignment]
        return Response(await sync_to_async(_cancel)(agent, code))


def _is_duration(raw: str) -> bool:
    return re.fullmatch(DURATION_PATTERN, raw) is not None


async def _document_for_agent(agent: Agent, code: uuid.UUID) -> dict[str, Any]:
    document, _ = await sync_to_async(_read)(agent, code)
    return document


def _read(agent: Agent, code: uuid.UUID) -> tuple[dict[str, Any], float]:
    approval = approval_get_for_agent(agent=agent, code=code)
    if approval is None:
        raise ApiError(status_code=404, code="not_found", message="No such approval request.")
    approval = _reload(approval_request_expire_if_overdue(approval=approval))
    deadline_in = (approval.deadline_at - timezone.now()).total_seconds()
    return approval_document(approval), deadline_in


def _cancel(agent: Agent, code: uuid.UUID) -> dict[str, Any]:
    approval = approval_get_for_agent(agent=agent, code=code)
    if approval is None:
        raise ApiError(status_code=404, code="not_found", message="No such approval request.")
    approval = approval_request_cancel(approval=approval, agent=agent)
    return approval_document(_reload(approval))


# --- Instances --------------------------------------------------------------------------------


class InstanceCreateApi(AapView):
    permission_classes = [IsProvisioner]

    def post(self, request: Request) -> Response:
        key = _idempotency_key(request)
        payload = _validated(ProvisionInstanceInput(data=_body(request)))
        provisioner: ProvisionerToken = request.user  # type: ignore[assignment]
        provisioned = services.instance_provision(
            provisioner=provisioner,
            provisioner_token=str(request.auth),  # AapAuthentication: the bearer token
            idempotency_key=key,
            name=payload.validated_data.get("instance_name"),
            delivery=payload.validated_data.get("delivery"),
        )
        return Response(
            {
                "instance": services.instance_document(provisioned.agent),
                "credential": {"token": provisioned.token},
            },
            status=status.HTTP_201_CREATED if provisioned.created else status.HTTP_200_OK,
        )


class InstanceDetailApi(AapView):
    permission_classes = [IsProvisioner]

    def get(self, request: Request, id: str) -> Response:
        provisioner: ProvisionerToken = request.user  # type: ignore[assignment]
        agent = services.instance_get(provisioner=provisioner, code=_uuid(id, "instance"))
        return Response(services.instance_document(agent))

    def patch(self, request: Request, id: str) -> Response:
        code = _uuid(id, "instance")
        key = _idempotency_key(request)
        payload = _validated(UpdateInstanceInput(data=_body(request)))
        provisioner: ProvisionerToken = request.user  # type: ignore[assignment]
        document = services.instance_update(
            provisioner=provisioner,
            code=code,
            idempotency_key=key,
            name=payload.validated_data.get("instance_name"),
            delivery=payload.delivery_change,
        )
        return Response(document)

    def delete(self, request: Request, id: str) -> Response:
        provisioner: ProvisionerToken = request.user  # type: ignore[assignment]
        services.instance_delete(provisioner=provisioner, code=_uuid(id, "instance"))
        return Response(status=status.HTTP_204_NO_CONTENT)
