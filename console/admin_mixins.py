"""Admin building blocks shared by the apps."""

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import add_never_cache_headers, patch_cache_control


class ReadOnlyAdminMixin:
    """For history and agent-written data: the admin may look, never add, change or delete."""

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


def one_time_secrets_response(
    request: HttpRequest, *, title: str, secrets: list[tuple[str, str]], back_url: str
) -> HttpResponse:
    """The page that shows newly issued secrets (credentials, tokens) once.

    Rendered as the answer to the POST that issued them, never carried to another page: the
    admin's messages travel in a cookie, signed but readable by anything that sees the cookie
    (the browser's storage, a proxy's logs). `no-store` keeps it out of caches and history.
    """
    response = render(
        request,
        "admin/one_time_secrets.html",
        {
            **admin.site.each_context(request),
            "title": title,
            "secrets": secrets,
            "back_url": back_url,
        },
    )
    add_never_cache_headers(response)
    patch_cache_control(response, no_store=True, private=True)
    return response
