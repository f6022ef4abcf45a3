"""Configuration changes through the Django admin become audit records, with before and after.

Every ModelAdmin that can change our models mixes in AuditedAdminMixin (a test checks the admin
registry, so a new admin cannot forget it). The admin's own LogEntry keeps only field names;
the trail keeps the values.
"""

from typing import Any

from django.contrib import admin
from django.db import models, transaction
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest

from approvals.audit.trail import AuditAction, audit_record


def model_snapshot(obj: models.Model, *, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """Field values, many-to-many as sorted primary keys; `exclude` keeps secrets out."""
    data: dict[str, Any] = {}
    for field in obj._meta.concrete_fields:
        if field.name not in exclude:
            data[field.name] = field.value_from_object(obj)
    if obj.pk is not None:
        for field in obj._meta.many_to_many:
            if field.name not in exclude:
                data[field.name] = sorted(getattr(obj, field.name).values_list("pk", flat=True))
    return data


def _changed_only(
    before: dict[str, Any], after: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    changed = {key for key in after if before.get(key) != after[key]}
    return (
        {key: before.get(key) for key in sorted(changed)},
        {key: after[key] for key in sorted(changed)},
    )


class AuditedAdminMixin:
    """Record every admin add, change and delete of the model in the audit trail."""

    # Field names never written to the trail (password hashes, credential digests).
    audit_exclude_fields: tuple[str, ...] = ()

    def _snapshot(self, obj: models.Model) -> dict[str, Any]:
        return model_snapshot(obj, exclude=self.audit_exclude_fields)

    def save_model(self, request: HttpRequest, obj: Any, form: ModelForm, change: bool) -> None:
        before = None
        if change and obj.pk is not None:
            stored = type(obj)._default_manager.filter(pk=obj.pk).first()
            before = self._snapshot(stored) if stored is not None else None
        # Kept on the request until save_related: many-to-many values exist only after it.
        request._audit_before = before  # type: ignore[attr-defined]
        super().save_model(request, obj, form, change)  # type: ignore[misc]

    def save_related(
        self, request: HttpRequest, form: ModelForm, formsets: Any, change: bool
    ) -> None:
        super().save_related(request, form, formsets, change)  # type: ignore[misc]
        obj = form.instance
        after = self._snapshot(obj)
        before = getattr(request, "_audit_before", None)
        if change and before is not None:
            before, after = _changed_only(before, after)
            if not after:
                return  # saved without a change: nothing happened worth a record
        audit_record(
            action=AuditAction.CONFIG_CHANGED if change else AuditAction.CONFIG_CREATED,
            actor=request.user,
            target=obj,
            before=before if change else None,
            after=after,
        )

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        with transaction.atomic():
            before = self._snapshot(obj)
            target = _Deleted(obj)
            super().delete_model(request, obj)  # type: ignore[misc]
            _deletion_record(request, target, before)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        with transaction.atomic():
            doomed = [(_Deleted(obj), self._snapshot(obj)) for obj in queryset]
            super().delete_queryset(request, queryset)  # type: ignore[misc]
            for target, before in doomed:
                _deletion_record(request, target, before)


class _Deleted:
    """The reference to an object taken before deletion clears its primary key."""

    def __init__(self, obj: models.Model) -> None:
        self.type = obj._meta.label_lower
        self.id = str(getattr(obj, "code", None) or obj.pk)
        self.label = str(obj)[:200]


class AuditedModelAdmin(AuditedAdminMixin, admin.ModelAdmin):
    pass


def _deletion_record(request: HttpRequest, target: _Deleted, before: dict[str, Any]) -> None:
    # From what was read before the delete: the row and its primary key are gone after it.
    audit_record(
        action=AuditAction.CONFIG_DELETED,
        actor=request.user,
        object_type=target.type,
        object_id=target.id,
        object_label=target.label,
        before=before,
    )
