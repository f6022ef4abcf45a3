"""AAP authentication: one bearer header, two kinds of principal.

Identity comes only from the credential. An instance credential makes approval requests; a
provisioner token manages instances. Each gets 403 on the other's operations, and anything
unknown, revoked or retired gets 401.
"""

from typing import Any

from rest_framework import permissions
from rest_framework.request import Request

from agents.authentication import BearerAuthentication
from agents.models import Agent, ProvisionerToken
from agents.services import (
    PROVISIONER_SCHEME,
    credential_authenticate,
    provisioner_token_authenticate,
)


class AapAuthentication(BearerAuthentication):
    realm = "aap"
    malformed_message = "Authorization must be 'Bearer <token>'."
    invalid_message = "The credential is invalid, expired or revoked."

    def principal_for(self, token: str) -> Agent | ProvisionerToken | None:
        if token.startswith(f"{PROVISIONER_SCHEME}_"):
            return provisioner_token_authenticate(token=token)
        return credential_authenticate(token=token)


class IsInstance(permissions.BasePermission):
    message = "Approval requests need an instance credential; a provisioner token cannot make them."

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.user, Agent)


class IsProvisioner(permissions.BasePermission):
    message = "Instance management needs a provisioner token; an instance credential cannot do it."

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.user, ProvisionerToken)
