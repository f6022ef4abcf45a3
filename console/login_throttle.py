"""Growing sign-in lockouts on top of django-axes (configured in settings, "Sign-in throttling").

django-axes counts failures per username and per client address and refuses sign-ins past the
limit for a cool-off period. Here the cool-off grows: the first lockout lasts
LOGIN_LOCKOUT_SECONDS, and every failure after a lockout has ended locks again for twice as long
as the one before, up to LOGIN_LOCKOUT_MAX_SECONDS. An attacker gets LOGIN_FAILURE_LIMIT guesses,
then one guess per lockout, each wait doubling; a person who mistyped waits a few minutes once.

What makes it grow is the failure count itself, so the handler keeps the counted attempts until
LOGIN_FAILURE_MEMORY_SECONDS (a day) have passed in quiet. axes deleted them after one cool-off,
everyone's with the cool-off of whoever happened to sign in, which would have cut growing
lockouts short.
"""

import hashlib
import logging
import math
import unicodedata
from datetime import timedelta
from typing import Any

from axes.handlers.database import AxesDatabaseHandler
from axes.models import AccessAttempt
from django.conf import settings
from django.core.cache import cache
from django.db.models import Max, Q, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from console.request_context import client_ip_address

logger = logging.getLogger(__name__)


def _longest() -> timedelta:
    return timedelta(seconds=settings.LOGIN_LOCKOUT_MAX_SECONDS)


def _memory() -> timedelta:
    # Longer than the longest lockout: forgetting when it ends would start the next round of
    # guesses at the first, shortest lockout again.
    return max(timedelta(seconds=settings.LOGIN_FAILURE_MEMORY_SECONDS), 2 * _longest())


def _attempted_username(request: HttpRequest) -> str:
    # As Django's login form cleans it (UsernameField): what the failures were recorded under.
    credentials = getattr(request, "axes_credentials", None) or {}
    raw = credentials.get("username") or request.POST.get("username", "")
    return unicodedata.normalize("NFKC", str(raw).strip())


def _failure_counts(request: HttpRequest) -> list[tuple[str, str | None, int]]:
    """(what, which, failures) for this request's username and its address, over attempts
    not yet forgotten."""
    recent = AccessAttempt.objects.filter(attempt_time__gt=timezone.now() - _memory())
    return [
        (
            field,
            value,
            recent.filter(**{field: value}).aggregate(total=Sum("failures_since_start"))["total"]
            or 0,
        )
        for field, value in (
            ("username", _attempted_username(request)),
            ("ip_address", client_ip_address(request)),
        )
    ]


def failures_on_record(request: HttpRequest) -> int:
    """The most failures counted for this request's username or for its address."""
    return max(count for _, _, count in _failure_counts(request))


def login_cool_off(request: HttpRequest | None) -> timedelta:
    """AXES_COOLOFF_TIME: how long the current lockout of this username or address lasts,
    counted from its last failure: doubled for every failure beyond the limit, capped."""
    if request is None:  # only management commands ask without a request: keep everything
        return _memory()
    beyond = max(failures_on_record(request) - settings.LOGIN_FAILURE_LIMIT, 0)
    base = timedelta(seconds=settings.LOGIN_LOCKOUT_SECONDS)
    # 2**20 lockout periods is beyond any cap; bounding the exponent keeps the number small.
    return min(base * 2 ** min(beyond, 20), _longest())


def lockout_is_new(*, request: HttpRequest) -> bool:
    """True for the first caller per lockout of this username or address (an atomic cache
    add, shared by all server processes through Redis), so a burst is audited once."""
    cool_off = max(int(login_cool_off(request).total_seconds()), 1)
    locked = [
        f"login-lockout:{field}:{hashlib.sha256(str(value).encode()).hexdigest()}"
        for field, value, count in _failure_counts(request)
        if value and count >= settings.LOGIN_FAILURE_LIMIT
    ]
    try:
        # Every locked key is claimed (no short-circuit); it lapses with the lockout, so the
        # next, longer lockout is news again.
        claimed = [cache.add(key, True, timeout=cool_off) for key in locked]
    except Exception:  # a cache outage must not hide a lockout: record it, twice if need be
        logger.exception("could not check whether a sign-in lockout was already recorded")
        return True
    return any(claimed) or not locked


class GrowingLockoutHandler(AxesDatabaseHandler):
    def clean_expired_user_attempts(
        self, request: HttpRequest | None = None, credentials: dict[str, Any] | None = None
    ) -> int:
        # Forget attempts only after LOGIN_FAILURE_MEMORY_SECONDS with no new failure.
        count, _ = AccessAttempt.objects.filter(
            attempt_time__lte=timezone.now() - _memory()
        ).delete()
        return count

    def user_logged_in(self, sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
        super().user_logged_in(sender, request, user, **kwargs)
        # The right password forgives this username's failures (its typos), never the address's:
        # an attacker with one valid account must not be able to clear a password spray's count.
        AccessAttempt.objects.filter(username=user.get_username()).delete()


def lockout_response(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: the page a locked-out sign-in gets (console and admin alike)."""
    last_failure = (
        AccessAttempt.objects.filter(
            Q(username=_attempted_username(request)) | Q(ip_address=client_ip_address(request))
        ).aggregate(last=Max("attempt_time"))["last"]
        or timezone.now()
    )
    remaining = last_failure + login_cool_off(request) - timezone.now()
    minutes = max(1, math.ceil(remaining.total_seconds() / 60))
    return render(
        request,
        "registration/locked_out.html",
        {"minutes": minutes},
        status=429,
    )
