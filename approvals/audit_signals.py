"""Sign-ins and sign-outs in the audit trail (connected in ApprovalsConfig.ready)."""

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from approvals.audit import AuditAction, AuditActor, audit_record


@receiver(user_logged_in, dispatch_uid="audit_login")
def _audit_login(sender: Any, request: Any, user: Any, **_: Any) -> None:
    audit_record(action=AuditAction.AUTH_LOGIN, actor=user, target=user)


@receiver(user_logged_out, dispatch_uid="audit_logout")
def _audit_logout(sender: Any, request: Any, user: Any, **_: Any) -> None:
    if user is not None:
        audit_record(action=AuditAction.AUTH_LOGOUT, actor=user, target=user)


@receiver(user_login_failed, dispatch_uid="audit_login_failed")
def _audit_login_failed(sender: Any, credentials: dict[str, Any], **_: Any) -> None:
    # `credentials` has the password replaced by Django; only the attempted name is kept.
    attempted = str(credentials.get("username", ""))[:200]
    audit_record(
        action=AuditAction.AUTH_LOGIN_FAILED,
        actor=AuditActor.anonymous(attempted),
        object_type="auth.user",
        object_label=attempted,
    )
