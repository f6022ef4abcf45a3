"""Reviewer API tokens (django-rest-knox): stored as a digest, shown once, expiring, revocable.

DRF's authtoken stored each key in plaintext and listed it in the admin. knox stores a SHA-512
digest and an identifying prefix (`token_key`, the first characters, `acr_…`), gives each token
an expiry (REVIEWER_TOKEN_TTL_SECONDS) and revokes by deleting the row. Issuing and revoking
go through the services here, which write the audit records; knox's own admin (which put new
tokens in a flash message, i.e. in a cookie) is replaced in approvals/admin.py.

Tokens from before knox (40 hex characters, no `acr_` prefix) cannot be turned into digests
after the fact without keeping the plaintext scheme alive: they were deleted (migration
`drop_plaintext_api_tokens`) and are answered with a 401 saying so.
"""

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from knox.auth import TokenAuthentication
from knox.models import AuthToken
from knox.settings import knox_settings
from rest_framework import exceptions

from approvals.audit import AuditAction, audit_record

AUDIT_OBJECT_TYPE = "knox.authtoken"


@dataclass(frozen=True)
class IssuedReviewerToken:
    """A token as issued: `plaintext` exists only here, never in the database."""

    token: AuthToken
    plaintext: str


def _label(token: AuthToken) -> str:
    return f"{token.user.get_username()}: {token.token_key}…"


def reviewer_token_issue(*, user: AbstractBaseUser, actor: Any = None) -> IssuedReviewerToken:
    """A new API token for `user`, valid for REVIEWER_TOKEN_TTL_SECONDS. The caller shows the
    plaintext once; only its digest is kept."""
    with transaction.atomic():
        token, plaintext = AuthToken.objects.create(user=user)
        audit_record(
            action=AuditAction.REVIEWER_TOKEN_ISSUED,
            actor=actor,
            object_type=AUDIT_OBJECT_TYPE,
            object_id=token.token_key,
            object_label=_label(token),
            # The prefix identifies the token; the secret and its digest never enter the trail.
            after={"user": user.get_username(), "expiry": token.expiry},
        )
    return IssuedReviewerToken(token=token, plaintext=plaintext)


def reviewer_token_revoke(*, token: AuthToken, actor: Any = None) -> bool:
    """Revoke (delete) the token. False if it was already gone: revoked twice, or expired."""
    with transaction.atomic():
        # Delete by key and count: of two revocations at once, only one records it.
        deleted, _ = AuthToken.objects.filter(digest=token.digest).delete()
        if deleted:
            audit_record(
                action=AuditAction.REVIEWER_TOKEN_REVOKED,
                actor=actor,
                object_type=AUDIT_OBJECT_TYPE,
                object_id=token.token_key,
                object_label=_label(token),
            )
    return bool(deleted)


def reviewer_token_revoke_own(*, user: AbstractBaseUser, token_key: str) -> bool:
    """A reviewer revokes one of their own tokens by its prefix; anyone else's is not found."""
    revoked = False
    for token in AuthToken.objects.filter(user=user, token_key=token_key).select_related("user"):
        revoked = reviewer_token_revoke(token=token, actor=user) or revoked
    return revoked


def reviewer_tokens_live(*, user: AbstractBaseUser) -> list[AuthToken]:
    """The reviewer's tokens that still work, newest first."""
    return list(
        AuthToken.objects.filter(user=user).exclude(expiry__lte=timezone.now()).order_by("-created")
    )


class ReviewerTokenAuthentication(TokenAuthentication):  # type: ignore[misc]
    """`Authorization: Token acr_…`: knox's check, with a clear answer for pre-knox tokens."""

    def authenticate_credentials(self, token: bytes) -> tuple[Any, AuthToken]:
        if not token.decode(errors="replace").startswith(knox_settings.TOKEN_PREFIX):
            raise exceptions.AuthenticationFailed(
                f"Not a reviewer API token: they start with {knox_settings.TOKEN_PREFIX!r}. "
                "Tokens issued before the console stored only digests no longer work; "
                "ask an admin for a new one."
            )
        try:
            return super().authenticate_credentials(token)  # type: ignore[no-any-return]
        except exceptions.AuthenticationFailed as failed:
            if str(failed.detail) == "Invalid token.":
                raise exceptions.AuthenticationFailed(
                    "The token is unknown, expired or revoked."
                ) from failed
            raise


class ReviewerTokenScheme(OpenApiAuthenticationExtension):  # type: ignore[misc]
    """Documents the reviewer token in the OpenAPI schema."""

    target_class = "approvals.reviewer_tokens.ReviewerTokenAuthentication"
    name = "reviewerToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": (
                "`Token acr_…`: a reviewer API token, issued in the admin (Users, action "
                "'Issue a reviewer API token') or with `manage.py create_reviewer_token`, "
                f"valid for {settings.REVIEWER_TOKEN_TTL_SECONDS // 86400} days."
            ),
        }
