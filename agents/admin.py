from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.urls import reverse

from agents.models import (
    AapInstance,
    Agent,
    AgentCredential,
    ProvisionerToken,
    Run,
    TraceEvent,
    WebhookNotification,
    WebhookReceiver,
)
from agents.services import credential_issue, credential_revoke, provisioner_token_revoke
from approvals.access import approvals_visible_to, reviewer_may_see_run
from approvals.admin_agent_text import agent_line_field, shows_agent_text
from approvals.audit.admin import AuditedAdminMixin
from approvals.audit.export import streamed_download
from approvals.policies.halts import agent_halt
from approvals.run_export import CONTENT_TYPE, run_export_filename, run_export_start
from console.admin_mixins import (
    QuotedNameAdminMixin,
    ReadOnlyAdminMixin,
    one_time_secrets_response,
)
from console.http import signed_in_user


class AgentCredentialInline(admin.TabularInline):
    model = AgentCredential
    extra = 0
    fields = ("prefix", "label", "created_at", "revoked_at")
    readonly_fields = ("prefix", "label", "created_at", "revoked_at")
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Agent | None = None) -> bool:
        # Credentials are issued through the action below, so the plaintext can be shown once.
        return False


class AapInstanceInline(admin.StackedInline):
    """The AAP side of the same identity: who provisioned it, and whether it was deleted."""

    model = AapInstance
    extra = 0
    fields = readonly_fields = ("provisioner", "deleted_at")
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Agent | None = None) -> bool:
        return False


class WebhookReceiverInline(admin.StackedInline):
    model = WebhookReceiver
    extra = 0
    # Never the signing secret.
    fields = readonly_fields = ("url_shown", "registration_id", "verified_at")
    can_delete = False
    url_shown = agent_line_field("url")

    def has_add_permission(self, request: HttpRequest, obj: Agent | None = None) -> bool:
        return False


@admin.register(Agent)
class AgentAdmin(QuotedNameAdminMixin, AuditedAdminMixin, admin.ModelAdmin):
    list_display = ("name_shown", "code", "created_at")
    search_fields = ("name", "code")
    readonly_fields = ("code", "created_at")
    filter_horizontal = ("operators",)
    inlines = [AgentCredentialInline, AapInstanceInline, WebhookReceiverInline]
    actions = ["issue_credential", "halt"]
    name_shown = agent_line_field("name", ordering=True)

    def has_halt_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("agents.halt_agent"))

    @admin.action(description="Halt selected agents (kill switch)", permissions=["halt"])
    def halt(self, request: HttpRequest, queryset) -> None:  # type: ignore[no-untyped-def]
        for agent in queryset:
            agent_halt(
                agent=agent,
                reason=f"Halted from the admin by {request.user}.",
                halted_by=signed_in_user(request),
            )
        self.message_user(
            request, "Halted: pending requests cancelled, new ones denied.", messages.WARNING
        )

    @admin.action(description="Issue a new credential (shown once)")
    def issue_credential(self, request: HttpRequest, queryset) -> HttpResponse:  # type: ignore[no-untyped-def]
        issued = [
            (
                str(agent),
                credential_issue(
                    agent=agent, label=f"issued by {request.user}", actor=signed_in_user(request)
                ).plaintext,
            )
            for agent in queryset
        ]
        return one_time_secrets_response(
            request,
            title="New agent credentials",
            secrets=issued,
            back_url=reverse("admin:agents_agent_changelist"),
        )


@admin.register(AgentCredential)
class AgentCredentialAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ("__str__", "agent", "label", "created_at", "revoked_at")
    list_filter = ("revoked_at",)
    readonly_fields = ("agent", "prefix", "label", "created_at", "revoked_at")
    exclude = ("secret_digest",)
    audit_exclude_fields = ("secret_digest",)
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Revoke selected credentials")
    def revoke(self, request: HttpRequest, queryset) -> None:  # type: ignore[no-untyped-def]
        for credential in queryset:
            credential_revoke(credential=credential, actor=signed_in_user(request))
        self.message_user(request, "Revoked.")


@admin.register(Run)
@shows_agent_text(line=("external_id", "close_reason"), json=("metadata",))
class RunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Runs and traces are written by agents through the API; the admin only shows them."""

    list_display = (
        "name_shown",
        "agent",
        "status",
        "total_cost",
        "budget",
        "created_at",
        "closed_at",
    )
    list_filter = ("status",)
    search_fields = ("name", "code", "external_id")
    list_select_related = ("agent",)
    actions = ["export_record"]
    # What the agent named and wrote, as its words; the rest as stored.
    fields = readonly_fields = (
        "code",
        "agent",
        "name_shown",
        "external_id_shown",
        "metadata_shown",
        "status",
        "close_reason_shown",
        "budget",
        "total_cost",
        "last_sequence",
        "created_at",
        "closed_at",
    )
    name_shown = agent_line_field("name", ordering=True)

    @admin.action(description="Export the run's record for replay (JSON Lines)")
    def export_record(self, request: HttpRequest, queryset) -> HttpResponseBase | None:  # type: ignore[no-untyped-def]
        runs = list(queryset.select_related("agent")[:2])
        if len(runs) != 1:
            self.message_user(request, "Select one run to export.", messages.WARNING)
            return None
        (run,) = runs
        if not reviewer_may_see_run(user=request.user, run=run):
            self.message_user(request, "You may not see this run.", messages.ERROR)
            return None
        stream = run_export_start(
            run=run,
            actor=signed_in_user(request),
            via="admin",
            approvals=approvals_visible_to(user=request.user),
        )
        return streamed_download(
            stream=stream, content_type=CONTENT_TYPE, filename=run_export_filename(run)
        )


@admin.register(TraceEvent)
@shows_agent_text(line=("batch_key",), json=("data",))
class TraceEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("run", "sequence", "type", "cost", "recorded_at")
    list_filter = ("type",)
    list_select_related = ("run",)
    fields = readonly_fields = (
        "run",
        "sequence",
        "type",
        "occurred_at",
        "recorded_at",
        "cost",
        "data_shown",
        "batch_key_shown",
    )


@admin.register(ProvisionerToken)
class ProvisionerTokenAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """Tokens are created with `manage.py create_provisioner_token NAME` (shown once)."""

    list_display = ("name", "prefix", "created_at", "revoked_at")
    readonly_fields = ("name", "prefix", "created_at", "revoked_at")
    exclude = ("secret_digest",)
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Revoke selected provisioner tokens")
    def revoke(self, request: HttpRequest, queryset) -> None:  # type: ignore[no-untyped-def]
        for token in queryset.filter(revoked_at__isnull=True):
            provisioner_token_revoke(token=token, actor=signed_in_user(request))
        self.message_user(request, "Revoked.")


@admin.register(WebhookNotification)
class WebhookNotificationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("code", "agent", "created_at", "attempts", "delivered_at", "ended_reason")
    list_filter = ("delivered_at", "ended_reason")
    readonly_fields = [f.name for f in WebhookNotification._meta.fields]
