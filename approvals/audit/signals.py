"""Sign-ins, sign-outs and sign-in lockouts in the audit trail (connected in
ApprovalsConfig.ready).

A single failed sign-in is not recorded here: django-axes counts and keeps every failure in its
own tables (console/login_throttle.py), and a record per failure made every wrong password queue
on the audit chain's head lock, the one lock every audited write waits for. What the trail gets
is the lockout, once, when it starts.
"""

from typing import Any

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.dispatch import receiver

from approvals.audit.trail import AuditAction, AuditActor, audit_record
from console.login_throttle import lockout_is_new


@receiver(user_logged_in, dispatch_uid="audit_login")
def _audit_login(sender: Any, request: Any, user: Any, **_: Any) -> None:
    audit_record(action=AuditAction.AUTH_LOGIN, actor=user, target=user)


@receiver(user_logged_out, dispatch_uid="audit_logout")
def _audit_logout(sender: Any, request: Any, user: Any, **_: Any) -> None:
    if user is not None:
        audit_record(action=AuditAction.AUTH_LOGOUT, actor=user, target=user)


@receiver(user_locked_out, dispatch_uid="audit_locked_out")
def _audit_locked_out(sender: Any, request: Any, username: str | None, **_: Any) -> None:
    # axes sends this on the failure that locks, and again for every sign-in refused while the
    # lockout lasts. Only the first has counted its failures: the refused ones are not news.
    failures = getattr(request, "axes_failures_since_start", None)
    if failures is None:
        return
    # Guesses sent at once all pass the check before any failure is counted, and each then
    # finds the limit reached: the first to claim this lockout records it.
    if not lockout_is_new(request=request):
        return
    attempted = str(username or "")[:200]
    audit_record(
        action=AuditAction.AUTH_LOCKED_OUT,
        actor=AuditActor.anonymous(attempted),
        object_type="auth.user",
        object_label=attempted,
        context={"failures": failures},
    )
