"""Bearer-credential authentication for the agent-facing APIs: written once here, used by the
native API (AgentCredentialAuthentication), AAP (agents.aap.authentication) and, for the header
itself, the ASGI fast path (bearer_token)."""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from agents.models import Agent
from agents.services import credential_authenticate


def bearer_token(authorization_header: str) -> str | None:
    scheme, _, token = authorization_header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class BearerAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <token>`: request.user is whom the token names, request.auth the
    token. No header: anonymous (the view's permission answers 401). A malformed header or an
    unknown token: 401 with the subclass's message."""

    realm = ""
    malformed_message = ""
    invalid_message = ""

    def principal_for(self, token: str) -> Any | None:
        raise NotImplementedError

    def authenticate(self, request: Request) -> tuple[Any, str] | None:
        header = request.headers.get("Authorization", "")
        if not header:
            return None
        token = bearer_token(header)
        if token is None:
            raise exceptions.AuthenticationFailed(self.malformed_message)
        principal = self.principal_for(token)
        if principal is None:
            raise exceptions.AuthenticationFailed(self.invalid_message)
        return principal, token

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (not 403) when the credential is missing.
        return f'Bearer realm="{self.realm}"'


class AgentCredentialAuthentication(BearerAuthentication):
    """`Authorization: Bearer <credential>`; sets request.user to the Agent."""

    realm = "agents"
    malformed_message = "Authorization must be 'Bearer <credential>'."
    invalid_message = "The credential is invalid or has been revoked."

    def principal_for(self, token: str) -> Agent | None:
        return credential_authenticate(token=token)


class IsAgent(permissions.BasePermission):
    message = "An agent credential is required: send 'Authorization: Bearer <credential>'."

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.user, Agent)


class AgentCredentialScheme(OpenApiAuthenticationExtension):  # type: ignore[misc]
    """Documents the bearer credential in the OpenAPI schema."""

    target_class = "agents.authentication.AgentCredentialAuthentication"
    name = "agentCredential"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "An agent credential (aac_…)."}
