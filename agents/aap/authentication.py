"""AAP authentication: one bearer header, two kinds of principal.

Identity comes only from the credential. An instance credential makes approval requests; a
provisioner token manages instances. Each gets 403 on the other's operations, and anything
unknown, revoked or retired gets 401.
"""

from typing import Any

from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from agents.authentication import bearer_token
from agents.models import Agent, ProvisionerToken
from agents.services import (
    PROVISIONER_SCHEME,
    credential_authenticate,
    provisioner_token_authenticate,
)


class AapAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Agent | ProvisionerToken, str] | None:
        header = request.headers.get("Authorization", "")
        if not header:
            return None
        token = bearer_token(header)
        if token is None:
            raise exceptions.AuthenticationFailed("Authorization must be 'Bearer <token>'.")
        principal: Agent | ProvisionerToken | None
        if token.startswith(f"{PROVISIONER_SCHEME}_"):
            principal = provisioner_token_authenticate(token=token)
        else:
            principal = credential_authenticate(token=token)
        if principal is None:
            raise exceptions.AuthenticationFailed("The credential is invalid, expired or revoked.")
        return principal, token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="aap"'


class IsInstance(permissions.BasePermission):
    message = "Approval requests need an instance credential; a provisioner token cannot make them."

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.user, Agent)


class IsProvisioner(permissions.BasePermission):
    message = "Instance management needs a provisioner token; an instance credential cannot do it."

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.user, ProvisionerToken)
