"""The agent API's answer for an approval request, as its OpenAPI schema documents it.

approvals.agent_view renders the same shape directly on the hot path; a test compares the two
(tests/approvals/test_agent_view.py). Every view that answers with a request (the native API,
questions, outcomes, the reviewer API's superset) documents it with ApprovalRequestOutput.
"""

from functools import cached_property
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from agents.api.links import LinkOutput
from approvals.agent_view import approval_outcome
from approvals.models import ApprovalRequest, Kind, OutcomeSource, OutcomeStatus, Status
from console.api_fields import CostField


class DecisionOutput(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=[s for s in Status.choices if s[0] != Status.PENDING],
        help_text="Only `approved` allows the call.",
    )
    note = serializers.CharField(
        help_text="The reviewer's note, or for a denial the reason (from the console itself when "
        "`decided_by` is `system`, e.g. a halted run)."
    )
    decided_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(
        allow_null=True, help_text="Approved only: start the call before this time, or not at all."
    )
    decided_by = serializers.SerializerMethodField(
        help_text="`reviewer` for a person, `system` for the console (expiry, halted run)."
    )
    approved_arguments = serializers.SerializerMethodField(
        help_text="Approved only: the arguments to run. They differ from the submitted ones when "
        "the reviewer approved with changes (then `arguments_changed` is true)."
    )
    arguments_changed = serializers.SerializerMethodField(
        help_text="True when the reviewer approved with changes: run `approved_arguments`, "
        "not the submitted arguments."
    )

    answer = serializers.SerializerMethodField(
        help_text="Questions only: the reviewer's answer, valid against `answer_schema`; null "
        "when the question was declined (`denied`, the reason in `note`) or expired."
    )

    @extend_schema_field({"nullable": True})  # type: ignore[misc]
    def get_answer(self, decision: Any) -> Any:
        return decision.answer if decision.status == Status.APPROVED else None

    @extend_schema_field({"type": "object", "nullable": True, "additionalProperties": {}})  # type: ignore[misc]
    def get_approved_arguments(self, decision: Any) -> dict[str, Any] | None:
        if decision.status != Status.APPROVED:
            return None
        if decision.approved_arguments is not None:
            return decision.approved_arguments  # type: ignore[no-any-return]
        return decision.approval.arguments  # type: ignore[no-any-return]

    def get_arguments_changed(self, decision: Any) -> bool:
        return decision.approved_arguments is not None

    @extend_schema_field(serializers.ChoiceField(choices=["reviewer", "system"]))  # type: ignore[misc]
    def get_decided_by(self, decision: Any) -> str:
        return "reviewer" if decision.reviewer_id else "system"


class ShadowMatchOutput(serializers.Serializer):
    rule = serializers.CharField()
    outcome = serializers.CharField()
    reason = serializers.CharField()


class PolicyOutput(serializers.Serializer):
    """How the console's policy decided this request when it was created."""

    rule = serializers.CharField(
        source="rule_name", allow_null=True, help_text="The rule that decided; null by default."
    )
    outcome = serializers.ChoiceField(choices=["approve", "deny", "hold"])
    reason = serializers.CharField(
        help_text="Which rule decided and why, in words. Values the agent supplied (the tool, an "
        "argument's value, the run's name) appear as quoted JSON literals, cut to 120 characters."
    )
    decided_by = serializers.CharField(
        help_text="rule, default, error (a rule could not be evaluated), throttle, budget, "
        "halt (the agent is halted) or run (the run is closed)."
    )
    team = serializers.CharField(source="held_for_team.name", allow_null=True, default=None)
    required_approvals = serializers.IntegerField(source="approval.required_approvals")
    on_timeout = serializers.CharField(help_text="What happens if nobody decides: deny.")
    shadow_matches = ShadowMatchOutput(
        many=True, help_text="Shadow rules that matched: recorded, without effect."
    )

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["rule"] = data["rule"] or None
        return data


class OutcomeOutput(serializers.Serializer):
    """What happened after the decision: reported by the agent, read from its run's trace, or
    marked `not_reported` by the console when an approval's validity passed with no word."""

    status = serializers.ChoiceField(choices=OutcomeStatus.choices)
    result = serializers.JSONField(allow_null=True, help_text="The agent's own words: untrusted.")
    error = serializers.CharField(help_text="The agent's own words: untrusted.")
    duration_ms = serializers.IntegerField(allow_null=True)
    cost = CostField(allow_null=True)
    currency = serializers.CharField(allow_null=True, help_text="ISO 4217, when stated.")
    # A field named like Field.source: DRF's metaclass moves declared fields out of the class;
    # the stubs see a clashing attribute.
    source = serializers.ChoiceField(  # type: ignore[assignment]
        choices=OutcomeSource.choices,
        help_text="agent (reported), trace (a tool call in its run's trace), system (the console "
        "marked it not_reported).",
    )
    reported_at = serializers.DateTimeField()

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["currency"] = data["currency"] or None
        return data


@extend_schema_field(DecisionOutput)
class DecisionField(serializers.Field):
    """The outcome: absent while the request is pending, present once it is terminal."""

    # A plain (not read-only) optional field, so the schema does not list it as required.
    def to_representation(self, approval: ApprovalRequest) -> dict[str, Any] | None:
        if approval.status == Status.PENDING or not hasattr(approval, "decision"):
            return None
        return self._decision_output.to_representation(approval.decision)  # type: ignore[no-any-return]

    @cached_property
    def _decision_output(self) -> DecisionOutput:
        return DecisionOutput()


class ApprovalRequestOutput(serializers.Serializer):
    id = serializers.UUIDField(source="code")
    tool = serializers.CharField()
    arguments = serializers.JSONField()
    timeout = serializers.CharField()
    summary = serializers.CharField()
    reasoning = serializers.CharField()
    # A field named like Serializer.context: DRF's metaclass moves declared fields out of the
    # class, so self.context is untouched; the stubs see a clashing attribute.
    context = serializers.JSONField()  # type: ignore[assignment]
    confidence = serializers.FloatField(allow_null=True)
    impact = serializers.CharField()
    status = serializers.ChoiceField(choices=Status.choices)
    hold_reason = serializers.CharField(
        help_text="Why the console held this request for review; the agent's own values in it "
        "are quoted JSON literals."
    )
    run = serializers.UUIDField(source="run.code", allow_null=True)
    labels = serializers.ListField(child=serializers.CharField())
    links = LinkOutput(many=True)
    arguments_schema = serializers.JSONField(allow_null=True)
    kind = serializers.ChoiceField(
        choices=Kind.choices,
        help_text="`question`: created by POST /questions, answered rather than approved.",
    )
    answer_schema = serializers.JSONField(
        allow_null=True, help_text="Questions only: the JSON Schema the answer satisfies."
    )
    created_at = serializers.DateTimeField()
    deadline_at = serializers.DateTimeField()
    decision = DecisionField(source="*", required=False)
    policy = serializers.SerializerMethodField()
    outcome = serializers.SerializerMethodField(
        help_text="What happened after the decision; null until reported."
    )

    @extend_schema_field(OutcomeOutput(allow_null=True))
    def get_outcome(self, approval: ApprovalRequest) -> dict[str, Any] | None:
        outcome = approval_outcome(approval)
        return None if outcome is None else self._outcome_output.to_representation(outcome)

    @cached_property
    def _outcome_output(self) -> OutcomeOutput:
        return OutcomeOutput()

    @extend_schema_field(PolicyOutput(allow_null=True))
    def get_policy(self, approval: ApprovalRequest) -> dict[str, Any] | None:
        evaluation = getattr(approval, "policy_evaluation", None)
        return None if evaluation is None else self._policy_output.to_representation(evaluation)

    @cached_property
    def _policy_output(self) -> PolicyOutput:
        # One nested serializer per output serializer, reused: see _reusable().
        return PolicyOutput()

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        if data["decision"] is None:
            del data["decision"]
        return data
