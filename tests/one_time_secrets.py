"""Checks for pages that show a newly issued secret once."""

from django.contrib.messages.storage.cookie import CookieStorage
from django.http import HttpResponse
from django.test import RequestFactory


def assert_shown_once_and_never_in_a_cookie(response: HttpResponse, secret: str) -> None:
    """The secret is on this page, the page is not stored, and no cookie carries it, the
    messages cookie included once decoded (it is signed, not encrypted)."""
    assert response.status_code == 200
    assert secret in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    for morsel in response.cookies.values():
        assert secret not in morsel.value
    messages = response.cookies.get("messages")
    if messages is not None and messages.value:
        storage = CookieStorage(RequestFactory().get("/"))
        decoded = storage._decode(messages.value) or []  # type: ignore[attr-defined]
        assert all(secret not in str(message) for message in decoded)
