from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group

from approvals.audit_admin import AuditedAdminMixin
from approvals.models import ApprovalEvent, ApprovalRequest, AuditRecord, Decision, Team
from console.admin_mixins import ReadOnlyAdminMixin


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
class TeamAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ("name", "code")
    search_fields = ("name",)
    filter_horizontal = ("members",)


@admin.register(AuditRecord)
class AuditRecordAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "sequence",
        "created_at",
        "action",
        "actor_type",
        "actor_label",
        "object_type",
        "object_id",
        "object_label",
        "ip_address",
    )
    list_filter = ("action", "actor_type", "object_type")
    # Exact ids and labels: an auditor pastes a request code, a username or an action name.
    search_fields = ("=object_id", "object_label", "=actor_id", "actor_label", "action")
    date_hierarchy = "created_at"
    ordering = ("-sequence",)
    show_full_result_count = False


# Who may sign in and with which rights is configuration too: audit the auth admins.
User = get_user_model()


class AuditedUserAdmin(AuditedAdminMixin, UserAdmin):
    audit_exclude_fields = ("password",)


class AuditedGroupAdmin(AuditedAdminMixin, GroupAdmin):
    pass


for _model, _admin_class in ((User, AuditedUserAdmin), (Group, AuditedGroupAdmin)):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
    admin.site.register(_model, _admin_class)
