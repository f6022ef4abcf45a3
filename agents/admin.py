from django.contrib import admin, messages
from django.http import HttpRequest

from agents.models import Agent, AgentCredential, Run, TraceEvent
from agents.services import credential_issue, credential_revoke


class AgentCredentialInline(admin.TabularInline):
    model = AgentCredential
    extra = 0
    fields = ("prefix", "label", "created_at", "revoked_at")
    readonly_fields = ("prefix", "label", "created_at", "revoked_at")
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Agent | None = None) -> bool:
        # Credentials are issued through the action below, so the plaintext can be shown once.
        return False


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = ("name", "code", "created_at")
    search_fields = ("name", "code")
    readonly_fields = ("code", "created_at")
    inlines = [AgentCredentialInline]
    actions = ["issue_credential"]

    @admin.action(description="Issue a new credential (shown once)")
    def issue_credential(self, request: HttpRequest, queryset) -> None:  # type: ignore[no-untyped-def]
        for agent in queryset:
            issued = credential_issue(agent=agent, label=f"issued by {request.user}")
            self.message_user(
                request,
                f"New credential for {agent.name} (copy it now, it is not shown again): "
                f"{issued.plaintext}",
                messages.WARNING,
            )


@admin.register(AgentCredential)
class AgentCredentialAdmin(admin.ModelAdmin):
    list_display = ("__str__", "agent", "label", "created_at", "revoked_at")
    list_filter = ("revoked_at",)
    readonly_fields = ("agent", "prefix", "label", "created_at", "revoked_at")
    exclude = ("secret_digest",)
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Revoke selected credentials")
    def revoke(self, request: HttpRequest, queryset) -> None:  # type: ignore[no-untyped-def]
        for credential in queryset:
            credential_revoke(credential=credential)
        self.message_user(request, "Revoked.")


class ReadOnlyAdmin(admin.ModelAdmin):
    """Runs and traces are written by agents through the API; the admin only shows them."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Run)
class RunAdmin(ReadOnlyAdmin):
    list_display = ("name", "agent", "status", "total_cost", "budget", "created_at", "closed_at")
    list_filter = ("status",)
    search_fields = ("name", "code", "external_id")
    list_select_related = ("agent",)


@admin.register(TraceEvent)
class TraceEventAdmin(ReadOnlyAdmin):
    list_display = ("run", "sequence", "type", "cost", "recorded_at")
    list_filter = ("type",)
    list_select_related = ("run",)
