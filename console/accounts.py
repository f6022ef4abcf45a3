"""Sign-in pages: the login page, and password reset only where a mail server can carry it.

Django's auth URLs served password reset unconditionally; with no mail server the reset link
went to the log (console/mail.py no longer writes bodies there). Now the reset views answer 404
unless PASSWORD_RESET_ENABLED, which defaults to "EMAIL_HOST is set", and the login page only
offers the link when they are served.
"""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.http import Http404, HttpRequest
from django.http.response import HttpResponseBase
from django.urls import path


class LoginView(auth_views.LoginView):
    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["password_reset_enabled"] = settings.PASSWORD_RESET_ENABLED
        return context


def _only_with_password_reset(
    view: Callable[..., HttpResponseBase],
) -> Callable[..., HttpResponseBase]:
    # Checked per request, not when the URLs are built: the setting decides, whatever imported
    # the URL configuration first.
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not settings.PASSWORD_RESET_ENABLED:
            raise Http404("Password reset is not available: no mail server is configured.")
        return view(request, *args, **kwargs)

    return wrapped


# Served only with PASSWORD_RESET_ENABLED; the names are Django's own, which its views redirect to.
_RESET_VIEWS: list[tuple[str, Any, str]] = [
    ("password_reset/", auth_views.PasswordResetView, "password_reset"),
    ("password_reset/done/", auth_views.PasswordResetDoneView, "password_reset_done"),
    ("reset/<uidb64>/<token>/", auth_views.PasswordResetConfirmView, "password_reset_confirm"),
    ("reset/done/", auth_views.PasswordResetCompleteView, "password_reset_complete"),
]

urlpatterns = [
    path("login/", LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password_change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path(
        "password_change/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
] + [
    path(route, _only_with_password_reset(view.as_view()), name=name)
    for route, view, name in _RESET_VIEWS
]
