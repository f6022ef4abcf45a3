"""Every module of the console imports: a moved or renamed module that something still imports by
its old name fails here, before a page or a command that loads it lazily does in production."""

import importlib
import pkgutil

import pytest

import agents
import approvals
import console

MODULES = sorted(
    module.name
    for package in (console, approvals, agents)
    for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}.")
    if ".migrations" not in module.name
)


def test_it_finds_the_modules() -> None:
    assert {"approvals.services.creation", "agents.api.native", "console.outbox"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_it_imports(name: str) -> None:
    importlib.import_module(name)
