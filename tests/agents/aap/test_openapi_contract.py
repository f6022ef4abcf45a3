"""Schemathesis against the live server: the AAP v1 contract, with valid credentials.

Every operation of openapi.yaml gets generated valid input; no response may be a 5xx, use an
undocumented status, content type or header, or break the response schema.
"""

from dataclasses import dataclass
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from agents.services import credential_issue, provisioner_token_create
from tests.factories import AgentFactory

SPEC = Path(__file__).resolve().parents[3] / "agents" / "aap" / "spec" / "openapi.yaml"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

schema = schemathesis.openapi.from_path(str(SPEC))
# Valid input only: the point is that every valid call gets a conforming answer. (Rejection of
# invalid input is asserted by the per-section tests.)
schema.config.generation.update(modes=[schemathesis.GenerationMode.POSITIVE])


@dataclass
class Tokens:
    instance: str
    provisioner: str


@pytest.fixture
def tokens(transactional_db) -> Tokens:
    return Tokens(
        instance=credential_issue(agent=AgentFactory()).plaintext,
        provisioner=provisioner_token_create(name="schemathesis").plaintext,
    )


@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_the_live_api_conforms_to_the_contract(case, live_console, tokens) -> None:
    token = tokens.provisioner if case.path.startswith("/v1/instances") else tokens.instance
    case.call_and_validate(
        base_url=f"{live_console.url}/aap",
        headers={"Authorization": f"Bearer {token}"},
        checks=CHECKS,
        timeout=40,
    )
