from django.contrib import admin
from django.http import HttpRequest

from approvals.models import ApprovalEvent, ApprovalRequest, Decision, Team


class ReadOnlyAdminMixin:
    """History is append-only: the admin may look, never add, change or delete."""

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


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
class ApprovalRequestAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("tool", "agent", "status", "impact", "confidence", "created_at", "deadline_at")
    list_filter = ("status", "impact", "agent")
    search_fields = ("code", "tool", "summary", "idempotency_key")
    date_hierarchy = "created_at"
    list_select_related = ("agent",)
    inlines = [ApprovalEventInline]


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
class TeamAdmin(admin.ModelAdmin):
    list_display = ("name", "code")
    search_fields = ("name",)
    filter_horizontal = ("members",)


# Registers the policy, guardrail and halt admins.
import approvals.policies.admin  # noqa: E402, F401
