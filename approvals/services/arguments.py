"""Checking arguments against a request's JSON Schema (for reviewers' changed arguments)."""

from typing import Any

import jsonschema
import referencing
import referencing.exceptions

from approvals.models import (
    ApprovalRequest,
)


def approval_arguments_validate(
    *, approval: ApprovalRequest, arguments: dict[str, Any]
) -> list[str]:
    """Why `arguments` break the request's arguments_schema, one message each; empty if valid.

    For reviewer edits ("approve with changes"): changed arguments must still fit the tool.
    """
    return arguments_schema_errors(schema=approval.arguments_schema, arguments=arguments)


def arguments_schema_errors(*, schema: dict[str, Any] | None, arguments: Any) -> list[str]:
    if schema is None:
        return []
    validator_class = jsonschema.validators.validator_for(schema)
    # An explicit empty registry: a schema's $ref never makes the console fetch a URL.
    validator = validator_class(schema, registry=referencing.Registry())
    try:
        errors = sorted(validator.iter_errors(arguments), key=lambda e: list(e.path))
    except referencing.exceptions.Unresolvable as unresolvable:
        # Fail closed: arguments that cannot be checked do not pass.
        return [f"$: the schema refers to {unresolvable.ref!r}, which cannot be resolved"]
    return [f"{error.json_path}: {error.message}" for error in errors]
