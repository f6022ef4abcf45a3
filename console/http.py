"""Typing aids for views."""

from django.contrib.auth.models import User
from django.http import HttpRequest


class AuthenticatedHttpRequest(HttpRequest):
    """A request to a view behind @login_required: `request.user` is a signed-in User.

    Only for annotations (django-stubs' recipe); nothing constructs it.
    """

    user: User
