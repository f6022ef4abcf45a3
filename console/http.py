"""Typing aids for views."""

from django.contrib.auth.models import User
from django.http import HttpRequest


class AuthenticatedHttpRequest(HttpRequest):
    """A request to a view behind @login_required: `request.user` is a signed-in User.

    Only for annotations (django-stubs' recipe); nothing constructs it.
    """

    user: User


def signed_in_user(request: HttpRequest) -> User:
    """`request.user` where only a signed-in user gets this far: the admin, reviewer API views.

    For a view function, prefer annotating the request as AuthenticatedHttpRequest; methods whose
    signature a framework fixes (ModelAdmin actions, DRF views) narrow with this instead.
    """
    user = request.user
    assert isinstance(user, User), "only a signed-in user reaches this code"
    return user
