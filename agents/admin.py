from django.contrib import admin, messages
from django.http import HttpRequest
from django.utils import timezone

from agents.models import (
    AapInstance,
    Agent,
    AgentCredential,
    ProvisionerToken,
    WebhookNotification,
    WebhookReceiver,
)
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
    fields = readonly_fields = ("url", "registration_id", "verified_at")
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Agent | None = None) -> bool:
        return False


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = ("name", "code", "created_at")
    search_fields = ("name", "code")
    readonly_fields = ("code", "created_at")
    inlines = [AgentCredentialInline, AapInstanceInline, WebhookReceiverInline]
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


@admin.register(ProvisionerToken)
class ProvisionerTokenAdmin(admin.ModelAdmin):
    """Tokens are created with `manage.py create_provisioner_token NAME` (shown once)."""

    list_display = ("name", "prefix", "created_at", "revoked_at")
    readonly_fields = ("name", "prefix", "created_at", "revoked_at")
    exclude = ("secret_digest",)
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Revoke selected provisioner tokens")
    def revoke(self, request: HttpRequest, queryset) -> None:  # type: ignore[no-untyped-def]
        queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, "Revoked.")


@admin.register(WebhookNotification)
class WebhookNotificationAdmin(admin.ModelAdmin):
    list_display = ("code", "agent", "created_at", "attempts", "delivered_at", "ended_reason")
    list_filter = ("delivered_at", "ended_reason")
    readonly_fields = [f.name for f in WebhookNotification._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
