"""Admin building blocks shared by the apps."""

import re
from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import add_never_cache_headers, patch_cache_control
from django.utils.safestring import SafeData, mark_safe


class ReadOnlyAdminMixin:
    """For history and agent-written data: the admin may look, never add, change or delete."""

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


# Django's "The agent “<a href="…">“bot”</a>” was changed successfully.": its own pair of quotes
# around a link whose text (the object's string, escaped, so without "<") is quoted already.
_QUOTES_AROUND_QUOTED_LINK = re.compile(r'\u201c(<a href="[^"]*">\u201c[^<]*</a>)\u201d')


def _without_its_quotes(shown: str) -> str:
    """An object's string that quotes itself (“bot”) without that pair, for the places where
    Django puts its own quotes around it."""
    if len(shown) >= 2 and shown[0] == "\u201c" and shown[-1] == "\u201d":
        return shown[1:-1]
    return shown


class QuotedNameAdminMixin:
    """For models whose string quotes a name someone else chose (an agent names itself): Django's
    messages and delete page put quotes of their own around the string, which would read
    ““bot””. Keeps one pair, the string's own."""

    def message_user(self, request: HttpRequest, message: Any, *args: Any, **kwargs: Any) -> None:
        if isinstance(message, SafeData):
            # Only the quote characters go: nothing the escaping made safe is touched.
            message = mark_safe(_QUOTES_AROUND_QUOTED_LINK.sub(r"\1", str(message)))  # noqa: S308
        super().message_user(request, message, *args, **kwargs)  # type: ignore[misc]

    def response_delete(self, request: HttpRequest, obj_display: str, obj_id: Any) -> HttpResponse:
        return super().response_delete(request, _without_its_quotes(obj_display), obj_id)  # type: ignore[misc, no-any-return]

    def render_delete_form(self, request: HttpRequest, context: dict[str, Any]) -> HttpResponse:
        context["escaped_object"] = _without_its_quotes(context["escaped_object"])
        return super().render_delete_form(request, context)  # type: ignore[misc, no-any-return]


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
