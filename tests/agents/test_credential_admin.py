"""Issuing an agent credential in the admin shows it once, on its own page, in no cookie.

The attack: the admin put the new credential in a flash message, which travels in the messages
cookie, signed but readable by anything that sees the cookie.
"""

import re

import pytest
from django.test import Client

from agents.services import credential_authenticate
from tests.factories import AgentFactory, UserFactory
from tests.one_time_secrets import assert_shown_once_and_never_in_a_cookie

pytestmark = pytest.mark.django_db


def test_it_shows_a_new_credential_on_its_own_page_and_in_no_cookie() -> None:
    agent = AgentFactory(name="mailer")
    client = Client()
    client.force_login(UserFactory(username="ops", is_staff=True, is_superuser=True))

    response = client.post(
        "/admin/agents/agent/",
        {"action": "issue_credential", "_selected_action": [agent.pk]},
    )

    found = re.search(r"aac_[0-9a-f]+_[A-Za-z0-9_\-]+", response.content.decode())
    assert found is not None, response.content.decode()[:2000]
    assert credential_authenticate(token=found.group(0)) == agent
    assert_shown_once_and_never_in_a_cookie(response, found.group(0))
    # And the next page shown to the admin does not repeat it.
    assert found.group(0) not in client.get("/admin/agents/agent/").content.decode()
