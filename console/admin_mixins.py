"""Admin building blocks shared by the apps."""

from django.http import HttpRequest


class ReadOnlyAdminMixin:
    """For history and agent-written data: the admin may look, never add, change or delete."""

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
