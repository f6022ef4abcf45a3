"""Password reset only with a mail server, and no mail body ever in the log.

The attack: with no mail server, the embedded backend printed the reset mail, link included, to
the log; anyone reading the logs could reset the demo superuser's password.
"""

import logging
import re

import pytest
from django.core import mail
from django.test import Client

from console import settings as console_settings
from tests.factories import UserFactory
from tests.notify_servers import smtp_server  # noqa: F401

pytestmark = pytest.mark.django_db

RESET_PAGES = [
    "/accounts/password_reset/",
    "/accounts/password_reset/done/",
    "/accounts/reset/MQ/set-password/",
    "/accounts/reset/done/",
]


@pytest.mark.parametrize("url", RESET_PAGES)
def test_it_serves_no_reset_page_without_a_mail_server(client: Client, url: str) -> None:
    assert client.get(url).status_code == 404


def test_it_sends_no_reset_mail_without_a_mail_server(client: Client) -> None:
    UserFactory(username="admin", email="admin@example.test", is_superuser=True)

    response = client.post("/accounts/password_reset/", {"email": "admin@example.test"})

    assert response.status_code == 404
    assert mail.outbox == []


def test_it_offers_no_reset_link_on_the_login_page_without_a_mail_server(client: Client) -> None:
    page = client.get("/accounts/login/").content.decode()

    assert "password_reset" not in page
    assert "Forgotten your password" not in page


def test_it_logs_that_mail_was_not_sent_but_never_its_body(
    settings,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The embedded default, as settings.py configures it without EMAIL_HOST (pytest-django
    # swaps in its in-memory backend; the module keeps what the environment gave).
    settings.MAILERS = console_settings.MAILERS
    caplog.set_level(logging.INFO)

    sent = mail.send_mail(
        "Password reset on console",
        "Follow https://console.example.test/accounts/reset/MQ/secret-token/ to reset.",
        "approvals@localhost",
        ["admin@example.test"],
    )

    assert sent == 1
    written = caplog.text + "".join(capsys.readouterr())
    assert "secret-token" not in written
    assert "admin@example.test" in caplog.text
    assert "Password reset on console" in caplog.text


def test_it_mails_a_working_reset_link_with_a_mail_server(
    settings,
    smtp_server,  # noqa: F811
) -> None:
    settings.PASSWORD_RESET_ENABLED = True
    UserFactory(username="alice", email="alice@example.test")
    client = Client()

    assert "Forgotten your password" in client.get("/accounts/login/").content.decode()
    response = client.post("/accounts/password_reset/", {"email": "alice@example.test"})

    assert response.status_code == 302
    [message] = smtp_server.handler.messages
    assert message["To"] == "alice@example.test"
    body = message.get_body(preferencelist=("plain",)).get_content()
    link = re.search(r"/accounts/reset/[^/\s]+/[^/\s]+/", body)
    assert link is not None
    # The link opens the set-password form (through Django's redirect that hides the token).
    followed = client.get(link.group(0), follow=True)
    assert followed.status_code == 200
    assert "new_password1" in followed.content.decode()
