import pytest

from tests.agents.sdk.api_reviewer import ApiReviewer
from tests.agents.sdk.author_venv import AuthorVenv, make_author_venv
from tests.factories import UserFactory, reviewer_api_token


@pytest.fixture(scope="session")
def author_venv(tmp_path_factory: pytest.TempPathFactory) -> AuthorVenv:
    # Once a session: building the wheel and the venv takes seconds, not milliseconds.
    return make_author_venv(tmp_path_factory.mktemp("author"))


@pytest.fixture
def api_reviewer(live_console, transactional_db) -> ApiReviewer:
    # Staff: a request routed to no team is visible to staff only (approvals/access.py).
    lead = UserFactory(username="lena", is_staff=True)
    return ApiReviewer(live_console.url, reviewer_api_token(lead))
