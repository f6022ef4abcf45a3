"""The console's OpenAPI schema is generated without a warning, so a new one shows at once."""

from pathlib import Path

import pytest
import yaml
from django.core.management import call_command


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> dict:
    # --fail-on-warn: drf-spectacular's warnings (a view it cannot describe, two operations
    # with one id, an enum named by a hash) fail the command, and this test with it.
    path = Path(tmp_path_factory.mktemp("schema")) / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(path))
    document: dict = yaml.safe_load(path.read_text())
    return document


def test_aap_is_documented_by_its_own_contract_not_here(schema: dict) -> None:
    # agents/aap/spec/openapi.yaml describes it; here it showed as bodiless operations.
    assert not [path for path in schema["paths"] if path.startswith("/aap/")]


def test_every_humanlayer_operation_says_what_it_answers(schema: dict) -> None:
    operations = [
        operation
        for path, item in schema["paths"].items()
        if path.startswith("/humanlayer/")
        for operation in item.values()
    ]
    assert len(operations) == 8
    assert len({operation["operationId"] for operation in operations}) == 8
    for operation in operations:
        for response in operation["responses"].values():
            assert "content" in response, operation["operationId"]


def test_the_requests_status_has_a_name(schema: dict) -> None:
    assert "ApprovalStatusEnum" in schema["components"]["schemas"]
