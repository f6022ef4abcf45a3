"""AAP wire objects: strict input validation and the output documents.

Inputs are parsed with console.exact_json (numbers exact, key order kept) and validated here;
protocol objects reject unknown fields, while `arguments` and `context` stay open. Outputs are
plain dicts in which the agent's own JSON is RawJSON, echoed as it was sent.
"""

import base64
import binascii
from typing import Any

from django.conf import settings
from django.utils.translation import gettext_lazy as _
from rest_framework import renderers, serializers

from agents.aap.services import UNCHANGED, DeliveryInput
from agents.aap.webhooks import UnsafeWebhookURL, timestamp, url_check_syntax
from approvals.models import ApprovalRequest, Status
from approvals.services import DURATION_PATTERN, Submission
from console import api_limits, exact_json
from console.api_errors import ApiError

MAX_TEXT = 20_000
SECRET_PATTERN = r"^whsec_[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$"  # noqa: S105 (a format)


class ExactJSONRenderer(renderers.BaseRenderer):
    """Writes RawJSON values verbatim, so the agent's arguments come back digit for digit."""

    media_type = "application/json"
    format = "json"
    charset = None

    def render(
        self, data: Any, accepted_media_type: Any = None, renderer_context: Any = None
    ) -> bytes:
        if data is None:
            return b""
        return exact_json.dumps(data).encode()


class StrictStringField(serializers.CharField):
    """A JSON string and nothing else: DRF's CharField would quietly turn 42 into "42"."""

    def __init__(self, **kwargs: Any) -> None:
        # Protocol strings are kept as sent: " x" is a valid name, not "x".
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)  # type: ignore[no-any-return]


class StrictRegexField(serializers.RegexField):
    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)  # type: ignore[no-any-return]


class OpenObjectField(serializers.Field):
    """A JSON object whose contents belong to the tool or adapter; kept exactly as parsed."""

    default_error_messages = {"invalid": _("Must be a JSON object.")}

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            self.fail("invalid")
        return data


class AnyJSONField(serializers.Field):
    def to_internal_value(self, data: Any) -> Any:
        return data


class StrictSerializer(serializers.Serializer):
    """Protocol objects reject unknown fields, naming the first one."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            raise serializers.ValidationError(
                {"non_field_errors": ["The body must be a JSON object."]}
            )
        unknown = [key for key in data if key not in self.fields]
        if unknown:
            raise serializers.ValidationError({unknown[0]: ["Unknown field."]})
        return super().to_internal_value(data)


def _duration_field(**kwargs: Any) -> StrictRegexField:
    return StrictRegexField(
        DURATION_PATTERN,
        # Any length: the spec's Duration has none, and a huge one is shortened, not refused.
        error_messages={"invalid": 'Must be a duration such as "30s", "30m" or "24h".'},
        **kwargs,
    )


class CreateApprovalRequestInput(StrictSerializer):
    tool = StrictStringField(max_length=200)
    arguments = OpenObjectField()
    timeout = _duration_field()
    agent_reasoning = StrictStringField(max_length=MAX_TEXT, required=False, allow_blank=True)
    context = OpenObjectField(required=False)  # type: ignore[assignment]
    # An extension, not in the OpenAPI contract (additionalProperties: false): the reference
    # client sends it on MCP calls, so it is accepted and echoed and that client works unchanged.
    # AAP_ACCEPT_SERVER_FIELD=false refuses it, for clients that validate strictly.
    server = AnyJSONField(required=False, allow_null=True)

    def validate_timeout(self, timeout: str) -> str:
        # Any number of digits is a valid Duration (shortened when granted); stored and echoed,
        # it is held to the field cap like any other agent-supplied field.
        api_limits.field_size_check(len(timeout))
        return timeout

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        if not settings.AAP_ACCEPT_SERVER_FIELD:
            del fields["server"]  # then an unknown field like any other
        return fields

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if exact_json.has_lone_surrogate(attrs):
            raise serializers.ValidationError(
                {"arguments": ["Strings must be valid Unicode (no lone surrogates)."]}
            )
        # The agent's JSON as stored and echoed, numbers as written: serialized once, here, and
        # held to the agent APIs' field cap (console.api_limits) at that size.
        raw = {
            name: exact_json.dumps(attrs[name])
            for name in ("arguments", "context", "server")
            if name in attrs
        }
        for name, text in raw.items():
            try:
                api_limits.field_size_check(len(text.encode()))
            except serializers.ValidationError as error:
                raise serializers.ValidationError({name: error.detail}) from None
        attrs["raw"] = raw
        return attrs

    def to_submission(self) -> Submission:
        data = self.validated_data
        context, raw = data.get("context"), data["raw"]
        return Submission(
            tool=data["tool"],
            arguments=exact_json.to_plain(data["arguments"]),
            timeout=data["timeout"],
            reasoning=data.get("agent_reasoning", ""),
            context=exact_json.to_plain(context) if context is not None else {},
            arguments_raw=raw["arguments"],
            context_raw=raw.get("context", ""),
            server_raw=raw.get("server", ""),
        )


def approval_document(approval: ApprovalRequest) -> dict[str, Any]:
    """The protocol's ApprovalRequest object, with the agent's JSON echoed as sent."""
    document: dict[str, Any] = {
        "id": str(approval.code),
        "tool": approval.tool,
        "arguments": exact_json.RawJSON(approval.arguments_raw)
        if approval.arguments_raw
        else approval.arguments,
        "timeout": approval.timeout,
    }
    if approval.reasoning:
        document["agent_reasoning"] = approval.reasoning
    if approval.context_raw:
        document["context"] = exact_json.RawJSON(approval.context_raw)
    # A strict provider echoes nothing outside the contract, even what was stored before.
    if approval.server_raw and settings.AAP_ACCEPT_SERVER_FIELD:
        document["server"] = exact_json.RawJSON(approval.server_raw)
    document |= {
        "status": approval.status,
        "created_at": timestamp(approval.created_at),
        "deadline_at": timestamp(approval.deadline_at),
    }
    if approval.status != Status.PENDING:
        decision = approval.decision
        decision_document: dict[str, Any] = {"status": decision.status}
        if decision.note:
            decision_document["note"] = decision.note
        decision_document["decided_at"] = timestamp(decision.decided_at)
        if decision.status == Status.APPROVED and decision.expires_at is not None:
            decision_document["expires_at"] = timestamp(decision.expires_at)
        document["decision"] = decision_document
    return document


class DeliveryInputSerializer(StrictSerializer):
    type = serializers.ChoiceField(choices=["webhook"])
    url = StrictStringField(max_length=2000)
    registration_id = serializers.UUIDField()
    signing_secret = StrictRegexField(SECRET_PATTERN)

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict) and data.get("type") not in (None, "webhook"):
            raise ApiError(
                status_code=400,
                code="unsupported_delivery_type",
                message="Only webhook delivery is supported.",
                param="delivery.type",
            )
        return super().to_internal_value(data)

    def validate_url(self, url: str) -> str:
        try:
            url_check_syntax(url)
        except UnsafeWebhookURL as unsafe:
            raise ApiError(
                status_code=400,
                code="invalid_webhook_url",
                message=str(unsafe),
                param="delivery.url",
            ) from None
        return url

    def validate_signing_secret(self, secret: str) -> str:
        try:
            key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except binascii.Error:
            raise serializers.ValidationError("Must be whsec_ and 32 bytes in base64.") from None
        if len(key) != 32:
            raise serializers.ValidationError("Must be whsec_ and 32 bytes in base64.")
        return secret

    def to_delivery(self) -> DeliveryInput:
        data = self.validated_data
        return DeliveryInput(data["url"], data["registration_id"], data["signing_secret"])


def _delivery(data: Any) -> DeliveryInput:
    serializer = DeliveryInputSerializer(data=data)
    if not serializer.is_valid():
        raise serializers.ValidationError(serializer.errors)
    return serializer.to_delivery()


class ProvisionInstanceInput(StrictSerializer):
    instance_name = StrictStringField(max_length=150, required=False)
    delivery = AnyJSONField(required=False)

    def validate_delivery(self, value: Any) -> DeliveryInput:
        return _delivery(value)


class UpdateInstanceInput(StrictSerializer):
    instance_name = StrictStringField(max_length=150, required=False)
    delivery = AnyJSONField(required=False, allow_null=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs:
            raise serializers.ValidationError(
                {"non_field_errors": ["Supply instance_name, delivery or both."]}
            )
        return attrs

    def validate_delivery(self, value: Any) -> DeliveryInput | None:
        return None if value is None else _delivery(value)

    @property
    def delivery_change(self) -> Any:
        return self.validated_data.get("delivery", UNCHANGED)
