"""Bearer-credential authentication for the agent API."""

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


class AgentCredentialAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <credential>`; sets request.user to the Agent."""

    def authenticate(self, request: Request) -> tuple[Agent, str] | None:
        header = request.headers.get("Authorization", "")
        if not header:
            return None
        token = bearer_token(header)
        if token is None:
            raise exceptions.AuthenticationFailed("Authorization must be 'Bearer <credential>'.")
        agent = credential_authenticate(token=token)
        if agent is None:
            raise exceptions.AuthenticationFailed("The credential is invalid or has been revoked.")
        return agent, token

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (not 403) when the credential is missing.
        return 'Bearer realm="agents"'


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
