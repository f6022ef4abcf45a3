from datetime import UTC
from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from knox.models import AuthToken

from approvals.admin_agent_text import shows_agent_text
from approvals.agent_text import (
    agent_text_cut,
    agent_text_in_quotes,
    agent_text_one_line,
    agent_tool_name_quoted,
)
from approvals.audit.admin import AuditedAdminMixin
from approvals.audit.models import AuditActorType
from approvals.models import (
    ApprovalEvent,
    ApprovalRequest,
    AuditRecord,
    Decision,
    DenyReasonPreset,
    EscalationChain,
    EscalationFiring,
    EscalationStep,
    Notification,
    NotificationAttempt,
    NotificationPreference,
    NotificationStatus,
    ReviewerPageSettings,
    SlackMessage,
    Team,
)
from approvals.notifications import notifications_retry_failed
from approvals.reviewer_tokens import reviewer_token_issue, reviewer_token_revoke
from console.admin_mixins import ReadOnlyAdminMixin, one_time_secrets_response
from console.http import signed_in_user


class ApprovalEventInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = ApprovalEvent
    extra = 0
    fields = (
        "created_at",
        "kind",
        "from_status",
        "to_status",
        "actor_type",
        "actor_user",
        "actor_agent",
        "note",
    )
    readonly_fields = fields


@admin.register(ApprovalRequest)
@shows_agent_text(
    line=("timeout", "idempotency_key"),
    lines=("summary", "reasoning"),
    json=("arguments", "context", "labels", "links", "answer_schema", "arguments_schema"),
)
class ApprovalRequestAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "tool_shown",
        "agent",
        "status",
        "impact",
        "confidence",
        "created_at",
        "deadline_at",
    )
    list_filter = ("status", "impact", "agent")
    search_fields = ("code", "tool", "summary", "idempotency_key")
    date_hierarchy = "created_at"
    list_select_related = ("agent",)
    inlines = [ApprovalEventInline]
    # What the agent wrote, as its words (the exact JSON texts it sent are on the decision page);
    # the rest as stored.
    fields = readonly_fields = (
        "code",
        "agent",
        "run",
        "source",
        "kind",
        "tool_shown",
        "summary_shown",
        "reasoning_shown",
        "arguments_shown",
        "context_shown",
        "labels_shown",
        "links_shown",
        "answer_schema_shown",
        "arguments_schema_shown",
        "confidence",
        "impact",
        "timeout_shown",
        "timeout_seconds",
        "idempotency_key_shown",
        "fingerprint",
        "traceparent",
        "status",
        "team",
        "required_approvals",
        "hold_reason",
        "escalation_chain",
        "approved_as_suggested_on",
        "created_at",
        "deadline_at",
        "decided_at",
    )

    @admin.display(description="tool", ordering="tool")
    def tool_shown(self, approval: ApprovalRequest) -> str:
        return agent_tool_name_quoted(approval.tool)


@admin.register(Decision)
class DecisionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("approval", "status", "reviewer", "decided_at", "expires_at")
    list_filter = ("status",)
    list_select_related = ("approval", "reviewer")
    search_fields = ("approval__code", "note")


@admin.register(ApprovalEvent)
class ApprovalEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("approval", "kind", "actor_type", "actor_user", "actor_agent", "created_at")
    list_filter = ("kind", "actor_type")
    list_select_related = ("approval", "actor_user", "actor_agent")


@admin.register(Team)
class TeamAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ("name", "code")
    search_fields = ("name",)
    filter_horizontal = ("members",)


# Object types whose string quotes what the agent named (Agent, Run, ApprovalRequest): a label
# recorded from that string carries the quotes already. A label recorded before the strings
# quoted has none, and is quoted whole.
_LABELS_QUOTED_AT_RECORDING = frozenset({"agents.agent", "agents.run", "approvals.approvalrequest"})


# The change list shows enough of a label or an id to recognise a row at a glance, so the list
# fits a desktop screen; the whole value is in the cell's title and on the record's own page.
_LISTED_LABEL_CHARS = 60
_LISTED_ID_CHARS = 8


def _audit_actor_label(record: AuditRecord, *, limit: int | None = None) -> str:
    # The console's own label ("console") is its words; every other actor named themselves.
    if record.actor_type == AuditActorType.SYSTEM:
        return record.actor_label
    return agent_text_in_quotes(record.actor_label, limit) if record.actor_label else ""


def _audit_object_label(
    record: AuditRecord, *, limit: int | None = None, short_id: str = ""
) -> str:
    """The object's label as shown; with `short_id`, the object's id inside it (a request's
    label names its code) is replaced by that shorter form."""
    label = record.object_label
    if not label:
        return ""
    if short_id and record.object_id:
        label = label.replace(record.object_id, short_id)
    if record.object_type in _LABELS_QUOTED_AT_RECORDING and "\u201c" in label:
        shown = agent_text_one_line(label)  # quoted again, it would read ““bot””
        return shown if limit is None else agent_text_cut(shown, limit)
    return agent_text_in_quotes(label, limit)


def _shortened(shown: str, whole: str) -> SafeString:
    """`shown` escaped; when it is a shortened `whole`, with `whole` as its title."""
    if shown == whole:
        return format_html("{}", shown)
    return format_html('<span title="{}">{}</span>', whole, shown)


@admin.register(AuditRecord)
@shows_agent_text(line=("user_agent",), json=("before", "after", "context"))
class AuditRecordAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    # Who did what to what, when and from where, in five columns (the address under the actor,
    # the object's type and id under its label), labels and ids shortened (the record's page
    # has them whole): the list fits a 1400px screen beside the admin's two side panels.
    list_display = ("number", "when_listed", "action", "actor_listed", "object_listed")
    list_display_links = ("number",)
    list_filter = ("action", "actor_type", "object_type")
    # Exact ids and labels: an auditor pastes a request code, a username or an action name.
    search_fields = ("=object_id", "object_label", "=actor_id", "actor_label", "action")
    date_hierarchy = "created_at"
    ordering = ("-sequence",)
    show_full_result_count = False
    # Labels and the user agent are words as they were recorded: an agent's, an outsider's (a
    # failed sign-in's username), a reviewer's; shown quoted, like the rest of what they wrote.
    fields = readonly_fields = (
        "sequence",
        "created_at",
        "action",
        "actor_type",
        "actor_id",
        "actor_shown",
        "object_type",
        "object_id",
        "object_label_shown",
        "ip_address",
        "user_agent_shown",
        "request_id",
        "before_shown",
        "after_shown",
        "context_shown",
        "prev_hash",
        "key_id",
        "hash",
    )

    class Media:
        css = {"all": ("css/admin_audit.css",)}

    @admin.display(description="actor label")
    def actor_shown(self, record: AuditRecord) -> str:
        return _audit_actor_label(record)

    @admin.display(description="object label")
    def object_label_shown(self, record: AuditRecord) -> str:
        return _audit_object_label(record)

    @admin.display(description="#", ordering="sequence")
    def number(self, record: AuditRecord) -> int:
        return record.sequence  # a header as narrow as the numbers under it

    @admin.display(description="when (UTC)", ordering="created_at")
    def when_listed(self, record: AuditRecord) -> SafeString:
        at = record.created_at.astimezone(UTC)
        return format_html(
            '<time datetime="{}">{} {}</time>',
            at.isoformat(),
            at.strftime("%Y-%m-%d"),
            at.strftime("%H:%M:%S"),
        )

    @admin.display(description="actor, from")
    def actor_listed(self, record: AuditRecord) -> SafeString:
        label = _shortened(
            _audit_actor_label(record, limit=_LISTED_LABEL_CHARS), _audit_actor_label(record)
        )
        where = (
            format_html('<span class="audit-sub">from {}</span>', record.ip_address)
            if record.ip_address
            else ""
        )
        return format_html("{} {}{}", record.get_actor_type_display(), label, where)

    @admin.display(description="object")
    def object_listed(self, record: AuditRecord) -> SafeString:
        short_id = agent_text_cut(record.object_id, _LISTED_ID_CHARS + 1)
        shortened = short_id != record.object_id
        listed = _audit_object_label(
            record, limit=_LISTED_LABEL_CHARS, short_id=short_id if shortened else ""
        )
        label = _shortened(listed, _audit_object_label(record))
        # The id goes under the label unless the label as listed names it (a request's label
        # names its code; one cut short may no longer do so).
        if not record.object_id or (shortened and short_id in listed):
            kind = format_html("{}", record.object_type)
        else:
            kind = format_html("{} {}", record.object_type, _shortened(short_id, record.object_id))
        return format_html('{}<span class="audit-sub">{}</span>', label, kind)


# Who may sign in and with which rights is configuration too: audit the auth admins.
User = get_user_model()


class AuditedUserAdmin(AuditedAdminMixin, UserAdmin):
    audit_exclude_fields = ("password",)
    actions = ["issue_reviewer_token"]

    @admin.action(description="Issue a reviewer API token (shown once)")
    def issue_reviewer_token(self, request: HttpRequest, queryset) -> HttpResponse:  # type: ignore[no-untyped-def]
        issued = [
            (user.get_username(), reviewer_token_issue(user=user, actor=signed_in_user(request)))
            for user in queryset
        ]
        return one_time_secrets_response(
            request,
            title="New reviewer API tokens",
            secrets=[
                (f"{name} (expires {token.token.expiry:%Y-%m-%d %H:%M} UTC)", token.plaintext)
                for name, token in issued
            ],
            back_url=reverse("admin:auth_user_changelist"),
        )


class AuditedGroupAdmin(AuditedAdminMixin, GroupAdmin):
    pass


for _model, _admin_class in ((User, AuditedUserAdmin), (Group, AuditedGroupAdmin)):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
    admin.site.register(_model, _admin_class)


# knox's own admin put each new token in a flash message (a cookie) and listed digests; this one
# lists prefixes, issues through the Users action above and revokes through the service (audited).
if admin.site.is_registered(AuthToken):
    admin.site.unregister(AuthToken)


@admin.register(AuthToken)
class ReviewerTokenAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("prefix", "user", "created", "expiry")
    list_select_related = ("user",)
    search_fields = ("token_key", "user__username")
    fields = readonly_fields = ("token_key", "user", "created", "expiry")
    actions = ["revoke"]

    @admin.display(description="token")
    def prefix(self, token: AuthToken) -> str:
        # Not knox's __str__, which shows the digest.
        return f"{token.token_key}…"

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # Revoking is deleting; the action below is allowed to whoever may delete tokens.
        return bool(request.user.has_perm("knox.delete_authtoken"))

    def get_actions(
        self,
        request: HttpRequest,
        action_location: admin.ActionLocation = admin.ActionLocation.CHANGE_LIST,
    ) -> dict[str, Any]:
        actions = super().get_actions(request, action_location)
        actions.pop("delete_selected", None)  # unaudited: revoke through the service instead
        return actions

    def delete_model(self, request: HttpRequest, obj: AuthToken) -> None:
        reviewer_token_revoke(token=obj, actor=signed_in_user(request))

    @admin.action(description="Revoke selected tokens", permissions=["delete"])
    def revoke(self, request: HttpRequest, queryset) -> None:  # type: ignore[no-untyped-def]
        revoked = sum(
            reviewer_token_revoke(token=token, actor=signed_in_user(request))
            for token in queryset.select_related("user")
        )
        self.message_user(request, f"Revoked {revoked} token(s).")


class EscalationStepInline(admin.TabularInline):
    model = EscalationStep
    extra = 1
    fields = (
        "position",
        "after_minutes",
        "notify_team",
        "notify_user",
        "notify_email",
        "notify_slack",
        "notify_console",
        "reassign_to",
    )


@admin.register(EscalationChain)
class EscalationChainAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ("name", "description")
    search_fields = ("name",)
    inlines = [EscalationStepInline]


@admin.register(EscalationFiring)
class EscalationFiringAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("approval", "step", "trigger", "actor", "due_at", "fired_at")
    list_filter = ("trigger",)
    list_select_related = ("approval", "step", "step__chain", "actor")


class NotificationAttemptInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = NotificationAttempt
    extra = 0
    fields = ("number", "started_at", "finished_at", "outcome", "error")
    readonly_fields = fields


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The outbox. Failed rows are what an operator comes here for: filter on status."""

    list_display = (
        "created_at",
        "recipient",
        "channel",
        "reason",
        "status",
        "attempts",
        "next_attempt_at",
        "last_error",
    )
    list_filter = ("status", "channel")
    search_fields = ("approval__code", "recipient__username", "dedupe_key", "last_error")
    list_select_related = ("recipient", "approval")
    inlines = [NotificationAttemptInline]
    actions = ["retry_failed"]

    @admin.action(description="Retry the selected failed notifications")
    def retry_failed(self, request: HttpRequest, queryset: QuerySet[Notification]) -> None:
        failed = queryset.filter(status=NotificationStatus.FAILED).values_list("pk", flat=True)
        count = notifications_retry_failed(notification_ids=failed, actor=signed_in_user(request))
        self.message_user(request, f"{count} notification(s) queued again.")


@admin.register(NotificationPreference)
class NotificationPreferenceAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = (
        "user",
        "slack_user_id",
        "email_enabled",
        "slack_enabled",
        "console_enabled",
        "quiet_hours_start",
        "quiet_hours_end",
        "time_zone",
    )
    search_fields = ("user__username", "slack_user_id")


@admin.register(SlackMessage)
class SlackMessageAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("approval", "recipient", "channel", "ts", "created_at")


@admin.register(DenyReasonPreset)
class DenyReasonPresetAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """Ready-made deny reasons per tool, offered (editable) in the decision page's deny form."""

    list_display = ("tool_glob", "text", "position")
    list_editable = ("position",)
    search_fields = ("tool_glob", "text")


@admin.register(ReviewerPageSettings)
class ReviewerPageSettingsAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ("user", "open_next_after_decision")
    search_fields = ("user__username",)


# Registers the policy, guardrail and halt admins.
import approvals.policies.admin  # noqa: E402, F401
