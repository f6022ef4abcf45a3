import pytest

from tests.agents.sdk.author_venv import AuthorVenv, make_author_venv


@pytest.fixture(scope="session")
def author_venv(tmp_path_factory: pytest.TempPathFactory) -> AuthorVenv:
    # Once a session: building the wheel and the venv takes seconds, not milliseconds.
    return make_author_venv(tmp_path_factory.mktemp("author"))
