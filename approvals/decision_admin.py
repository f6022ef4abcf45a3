"""Admin for the decision page: preset deny reasons per tool, reviewers' page settings."""

from django.contrib import admin

from approvals.audit_admin import AuditedAdminMixin
from approvals.models import DenyReasonPreset, ReviewerPageSettings


@admin.register(DenyReasonPreset)
class DenyReasonPresetAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ("tool_glob", "text", "position")
    list_editable = ("position",)
    search_fields = ("tool_glob", "text")


@admin.register(ReviewerPageSettings)
class ReviewerPageSettingsAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ("user", "open_next_after_decision")
    search_fields = ("user__username",)
