"""Admin for policy rules (ordered, first match wins), guardrails, halts and the backtest."""

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from agents.models import AgentGroup, AgentHalt
from approvals.agent_text import agent_text_in_quotes
from approvals.audit.admin import AuditedAdminMixin
from approvals.policies.backtest import policy_rule_backtest
from approvals.policies.halts import NotHalted, agent_halt, agent_resume
from approvals.policies.models import (
    Budget,
    CircuitBreaker,
    PolicyCondition,
    PolicyEvaluation,
    PolicyRule,
    Throttle,
)
from approvals.policies.outcomes import (
    LIST_DAYS,
    policy_rule_outcome_record,
    policy_rules_with_failures,
)
from console.admin_mixins import ReadOnlyAdminMixin
from console.http import signed_in_user


class PolicyConditionInline(admin.TabularInline):
    model = PolicyCondition
    extra = 0
    fields = ("path", "operator", "value")


class BacktestForm(forms.Form):
    limit = forms.IntegerField(
        label="Last N decided requests", min_value=1, max_value=5000, initial=200
    )


@admin.register(PolicyRule)
class PolicyRuleAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = (
        "position",
        "name",
        "state",
        "outcome",
        "tool_glob",
        "team",
        "failed_after_approval",
        "updated_at",
    )
    list_display_links = ("name",)
    list_editable = ("position", "state")
    list_filter = ("state", "outcome")
    search_fields = ("name", "description", "tool_glob")
    inlines = [PolicyConditionInline]
    readonly_fields = ("backtest_link", "outcome_record", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("name", "description", "position", "state", "backtest_link")}),
        ("What its approvals did when they ran", {"fields": ("outcome_record",)}),
        (
            "Matches (every criterion set must hold; argument conditions are below)",
            {
                "fields": (
                    "agent",
                    "agent_group",
                    "tool_glob",
                    "impact_at_least",
                    "confidence_below",
                    "labels",
                    ("active_from", "active_until"),
                    ("total_path", "total_window_seconds", "total_above"),
                )
            },
        ),
        (
            "Outcome",
            {
                "fields": (
                    "outcome",
                    "reason",
                    "team",
                    "required_approvals",
                    "time_to_decide_seconds",
                    "on_timeout",
                    "escalation_chain",
                )
            },
        ),
        ("History", {"fields": ("created_at", "updated_at")}),
    )

    @admin.display(description="Backtest")
    def backtest_link(self, obj: PolicyRule) -> str:
        if obj.pk is None:
            return "Save the rule (as a draft) to backtest it."
        url = reverse("admin:approvals_policyrule_backtest", args=[obj.pk])
        return format_html('<a href="{}">Backtest against decided requests</a>', url)

    def get_queryset(self, request: HttpRequest) -> QuerySet[PolicyRule]:
        since = timezone.now() - timedelta(days=LIST_DAYS)
        return policy_rules_with_failures(super().get_queryset(request), since=since)

    @admin.display(description=f"Its approvals that failed ({LIST_DAYS} days)")
    def failed_after_approval(self, obj: PolicyRule) -> str:
        approved, failed = getattr(obj, "auto_approved", 0), getattr(obj, "auto_failed", 0)
        if not approved:
            return "none"
        if not failed:
            return f"0 of {approved}"
        return format_html(
            '<strong style="color: #b42318;">{} of {}</strong> ({}%)',
            failed,
            approved,
            round(100 * failed / approved),
        )

    @admin.display(description="Outcome record")
    def outcome_record(self, obj: PolicyRule) -> SafeString | str:
        if obj.pk is None:
            return "A new rule has approved nothing yet."
        record = policy_rule_outcome_record(rule=obj)
        return render_to_string(
            "admin/approvals/policyrule/outcome_record.html", {"record": record}
        )

    def get_urls(self):  # type: ignore[no-untyped-def]
        return [
            path(
                "<int:rule_id>/backtest/",
                self.admin_site.admin_view(self.backtest_view),
                name="approvals_policyrule_backtest",
            ),
            *super().get_urls(),
        ]

    def backtest_view(self, request: HttpRequest, rule_id: int) -> HttpResponse:
        rule = get_object_or_404(PolicyRule, pk=rule_id)
        if not self.has_view_permission(request, rule):
            return HttpResponse(status=403)
        form = BacktestForm(request.GET or None)
        result = None
        if form.is_valid():
            result = policy_rule_backtest(rule=rule, limit=form.cleaned_data["limit"])
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Backtest: {rule.name}",
            "rule": rule,
            "form": form,
            "result": result,
        }
        return TemplateResponse(request, "admin/approvals/policyrule/backtest.html", context)


@admin.register(Throttle)
class ThrottleAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = (
        "name",
        "enabled",
        "agent",
        "tool_glob",
        "impact_at_least",
        "max_auto_approvals",
        "window_seconds",
    )
    list_filter = ("enabled",)


@admin.register(Budget)
class BudgetAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ("name", "enabled", "scope", "agent", "ceiling", "action")
    list_filter = ("enabled", "scope", "action")


@admin.register(CircuitBreaker)
class CircuitBreakerAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ("name", "enabled", "agent", "max_denials", "window_seconds")
    list_filter = ("enabled",)


@admin.register(PolicyEvaluation)
class PolicyEvaluationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The record of how each request was decided: read-only, like the rest of history."""

    list_display = ("approval", "outcome", "rule_name", "evaluated_at")
    list_filter = ("outcome",)
    search_fields = ("approval__code", "rule_name", "reason")
    list_select_related = ("approval",)


@admin.register(AgentGroup)
class AgentGroupAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ("name",)
    filter_horizontal = ("agents",)


@admin.register(AgentHalt)
class AgentHaltAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """Adding a halt here halts the agent (its pending requests are cancelled)."""

    list_display = ("agent", "halted_at", "halted_by", "reason", "resumed_at", "resumed_by")
    list_filter = ("resumed_at",)
    list_select_related = ("agent", "halted_by", "resumed_by")
    fields = ("agent", "reason")
    actions = ["resume"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("agents.halt_agent"))

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_halt_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("agents.halt_agent"))

    def save_model(self, request: HttpRequest, obj: AgentHalt, form, change: bool) -> None:  # type: ignore[no-untyped-def]
        halt = agent_halt(agent=obj.agent, reason=obj.reason, halted_by=signed_in_user(request))
        obj.pk = halt.pk

    def response_add(self, request: HttpRequest, obj: AgentHalt, post_url_continue=None):  # type: ignore[no-untyped-def]
        self.message_user(
            request, f"Agent {agent_text_in_quotes(obj.agent.name)} is halted.", messages.WARNING
        )
        return HttpResponseRedirect(reverse("admin:agents_agenthalt_changelist"))

    @admin.action(description="Resume the selected halted agents", permissions=["halt"])
    def resume(self, request: HttpRequest, queryset) -> None:  # type: ignore[no-untyped-def]
        for halt in queryset.filter(resumed_at__isnull=True).select_related("agent"):
            try:
                agent_resume(
                    agent=halt.agent,
                    resumed_by=signed_in_user(request),
                    reason=f"Resumed from the admin by {request.user}.",
                )
            except NotHalted:
                continue
        self.message_user(request, "Resumed.")
