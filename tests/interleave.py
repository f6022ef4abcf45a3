"""Races made deterministic: let a real call of ours run, then change the world right after it.

A test that needs "the request was escalated between the access check and the decision" wraps
the function that checks (the real one still runs) and does the escalation when it returns.
"""

from collections.abc import Callable
from typing import Any

import pytest


def after_call(
    monkeypatch: pytest.MonkeyPatch, module: Any, name: str, then: Callable[[], object]
) -> None:
    """Replace `module.name` for this test with: call the original, run `then()`, return."""
    original = getattr(module, name)

    def called_then(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        then()
        return result

    monkeypatch.setattr(module, name, called_then)
