"""The staff API over the audit trail: GET /api/v1/audit/records, streamed.

Filters: since, until (ISO 8601), actor, action, object_type, object_id; format=jsonl (default)
or csv. Staff sign in to the console; the session authenticates the call.
"""

from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.views import APIView

from approvals.audit.export import (
    EXPORT_FORMATS,
    AuditFilter,
    audit_export_response,
    audit_export_start,
)


class AuditExportInput(serializers.Serializer):
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)
    actor = serializers.CharField(required=False, max_length=200)
    action = serializers.CharField(required=False, max_length=64)
    object_type = serializers.CharField(required=False, max_length=64)
    object_id = serializers.CharField(required=False, max_length=64)
    format = serializers.ChoiceField(choices=sorted(EXPORT_FORMATS), required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        since, until = attrs.get("since"), attrs.get("until")
        if since and until and since >= until:
            raise serializers.ValidationError({"until": ["Must be after since."]})
        return attrs


class _FormatIsOurs(DefaultContentNegotiation):
    """`?format=` picks the export format here, not a DRF renderer (errors stay JSON)."""

    def select_renderer(self, request: Request, renderers: Any, format_suffix: Any = None) -> Any:
        return renderers[0], renderers[0].media_type


class AuditRecordExportApi(APIView):
    authentication_classes = [SessionAuthentication]
    permission_classes = [IsAdminUser]
    content_negotiation_class = _FormatIsOurs

    @extend_schema(
        operation_id="export_audit_records",
        parameters=[AuditExportInput],
        responses={(200, "application/x-ndjson"): str, (200, "text/csv"): str},
    )
    def get(self, request: Request) -> StreamingHttpResponse:
        params = AuditExportInput(data=request.query_params)
        params.is_valid(raise_exception=True)
        data = dict(params.validated_data)
        export_format = data.pop("format", "jsonl")
        stream = audit_export_start(
            audit_filter=AuditFilter(**data), export_format=export_format, actor=request.user
        )
        return audit_export_response(stream=stream, export_format=export_format)
