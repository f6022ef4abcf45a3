"""Sign-in throttling: per username and per address, growing lockouts, one audit record each.

The attack it answers: 25 wrong passwords in 15 seconds were all checked, then the right one
signed in, and every failure queued on the audit chain's lock.
"""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest
from axes.models import AccessAttempt
from django.core.cache import cache
from django.db import close_old_connections
from django.test import Client

from approvals.audit import AuditAction
from approvals.models import AuditChainHead, AuditRecord
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"


@pytest.fixture(autouse=True)
def _no_lockouts_recorded_by_other_tests() -> None:
    # Which lockouts were already audited is kept in the cache (console/login_throttle.py).
    cache.clear()


def _sign_in(username: str, password: str, *, address: str = "198.51.100.7", **extra: str):
    client = Client(REMOTE_ADDR=address, **extra)
    response = client.post(LOGIN, {"username": username, "password": password})
    return client, response


def _signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def _fail(times: int, username: str = "alice", **kwargs: str) -> None:
    for _ in range(times):
        _, response = _sign_in(username, "wrong password", **kwargs)
        assert response.status_code in (200, 429)


def _age_attempts(seconds: int) -> None:
    """As if `seconds` had passed since every recorded failure."""
    for attempt in AccessAttempt.objects.all():
        AccessAttempt.objects.filter(pk=attempt.pk).update(
            attempt_time=attempt.attempt_time - timedelta(seconds=seconds)
        )


def test_it_refuses_the_right_password_after_too_many_wrong_ones(settings) -> None:
    UserFactory(username="alice")
    # From many addresses: the username's own count locks it.
    for n in range(settings.LOGIN_FAILURE_LIMIT):
        _fail(1, address=f"203.0.113.{n + 1}")

    client, response = _sign_in("alice", PASSWORD, address="203.0.113.200")

    assert response.status_code == 429
    assert not _signed_in(client)
    page = response.content.decode()
    assert "Too many failed sign-ins" in page
    assert "Try again in 5 minutes" in page


def test_it_locks_an_address_that_tries_many_usernames(settings) -> None:
    UserFactory(username="bob")
    for n in range(settings.LOGIN_FAILURE_LIMIT):
        _fail(1, username=f"user{n}", address="198.51.100.66")

    client, response = _sign_in("bob", PASSWORD, address="198.51.100.66")
    assert response.status_code == 429
    assert not _signed_in(client)
    # bob himself, from elsewhere, is not affected.
    client, response = _sign_in("bob", PASSWORD, address="198.51.100.67")
    assert response.status_code == 302
    assert _signed_in(client)


def test_it_doubles_the_lockout_for_every_failure_after_one(settings) -> None:
    UserFactory(username="alice")
    _fail(settings.LOGIN_FAILURE_LIMIT)
    _age_attempts(settings.LOGIN_LOCKOUT_SECONDS + 1)

    # The first lockout is over: one more guess, which fails and locks for twice as long.
    _, response = _sign_in("alice", "still wrong")
    assert response.status_code == 429
    assert "Try again in 10 minutes" in response.content.decode()
    _age_attempts(settings.LOGIN_LOCKOUT_SECONDS + 1)
    _, response = _sign_in("alice", PASSWORD)
    assert response.status_code == 429

    _age_attempts(settings.LOGIN_LOCKOUT_SECONDS)
    client, response = _sign_in("alice", PASSWORD)
    assert response.status_code == 302
    assert _signed_in(client)


def test_it_caps_the_lockout(settings) -> None:
    UserFactory(username="alice")
    _fail(settings.LOGIN_FAILURE_LIMIT)
    for _ in range(10):
        _age_attempts(settings.LOGIN_LOCKOUT_MAX_SECONDS)
        _fail(1)

    _age_attempts(settings.LOGIN_LOCKOUT_MAX_SECONDS - 60)
    assert _sign_in("alice", PASSWORD)[1].status_code == 429
    _age_attempts(61)
    assert _sign_in("alice", PASSWORD)[1].status_code == 302


def test_it_forgives_a_username_its_typos_once_it_signs_in(settings) -> None:
    UserFactory(username="alice")
    _fail(settings.LOGIN_FAILURE_LIMIT - 1)
    assert _sign_in("alice", PASSWORD, address="192.0.2.1")[1].status_code == 302

    _fail(settings.LOGIN_FAILURE_LIMIT - 1, address="192.0.2.2")
    assert _sign_in("alice", PASSWORD, address="192.0.2.3")[1].status_code == 302


def test_it_does_not_let_a_valid_account_clear_an_address_count(settings) -> None:
    UserFactory(username="mallory")
    UserFactory(username="victim")
    address = "198.51.100.99"
    for n in range(settings.LOGIN_FAILURE_LIMIT - 1):
        _fail(1, username=f"user{n}", address=address)
    # The sprayer signs in to their own account from the same address...
    assert _sign_in("mallory", PASSWORD, address=address)[1].status_code == 302

    # ...and the next wrong guess still locks the address.
    _fail(1, username="victim", address=address)
    assert _sign_in("victim", PASSWORD, address=address)[1].status_code == 429


def test_it_audits_the_lockout_once_and_no_single_failure(settings) -> None:
    UserFactory(username="alice")
    _fail(settings.LOGIN_FAILURE_LIMIT - 1)
    # A wrong password takes no audit chain lock: nothing is appended, the head is untouched.
    assert AuditRecord.objects.count() == 0
    assert not AuditChainHead.objects.exists()

    _fail(1)  # this one locks
    _fail(3)  # refused while locked
    _sign_in("alice", PASSWORD)

    [record] = AuditRecord.objects.all()
    assert record.action == AuditAction.AUTH_LOCKED_OUT
    assert (record.actor_type, record.actor_label) == ("anonymous", "alice")
    assert record.context == {"failures": settings.LOGIN_FAILURE_LIMIT}
    assert record.ip_address == "198.51.100.7"
    assert "wrong password" not in str(record.context) + str(record.after)


def test_it_locks_the_admin_sign_in_too(settings) -> None:
    UserFactory(username="root", is_staff=True, is_superuser=True)
    client = Client(REMOTE_ADDR="198.51.100.5")
    for _ in range(settings.LOGIN_FAILURE_LIMIT):
        client.post("/admin/login/", {"username": "root", "password": "guess"})

    response = client.post("/admin/login/", {"username": "root", "password": PASSWORD})

    assert response.status_code == 429
    assert "Too many failed sign-ins" in response.content.decode()
    assert not _signed_in(client)


def test_it_ignores_x_forwarded_for_unless_a_header_is_configured(settings) -> None:
    UserFactory(username="bob")
    # A client naming a new address for every guess still comes from one peer.
    for n in range(settings.LOGIN_FAILURE_LIMIT):
        _fail(1, username=f"user{n}", HTTP_X_FORWARDED_FOR=f"10.0.0.{n}")
    assert _sign_in("bob", PASSWORD, HTTP_X_FORWARDED_FOR="10.0.0.200")[1].status_code == 429


def test_it_takes_the_client_address_from_the_configured_header(settings) -> None:
    settings.CLIENT_IP_HEADER = "X-Real-IP"
    UserFactory(username="bob")
    proxy = "10.1.1.1"
    for n in range(settings.LOGIN_FAILURE_LIMIT):
        _fail(1, username=f"user{n}", address=proxy, HTTP_X_REAL_IP="203.0.113.50")

    # Another client behind the same proxy is not locked by the first one's failures.
    assert (
        _sign_in("bob", PASSWORD, address=proxy, HTTP_X_REAL_IP="203.0.113.51")[1].status_code
        == 302
    )
    assert (
        _sign_in("bob", PASSWORD, address=proxy, HTTP_X_REAL_IP="203.0.113.50")[1].status_code
        == 429
    )
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"203.0.113.50"}


@pytest.mark.django_db(transaction=True)
def test_a_burst_of_guesses_at_once_still_ends_locked(settings) -> None:
    """Two (or twenty) requests at once: each is checked against the count before its own
    failure is recorded, so a burst may get a few guesses past the limit, but never past the
    lockout: the right password afterwards is refused, and the lockout is recorded."""
    UserFactory(username="alice")
    burst = settings.LOGIN_FAILURE_LIMIT * 4
    start = threading.Barrier(burst)

    def guess(n: int) -> int:
        start.wait(timeout=30)
        try:
            return _sign_in("alice", f"guess {n}", address=f"203.0.113.{n + 1}")[1].status_code
        finally:
            close_old_connections()

    with ThreadPoolExecutor(max_workers=burst) as pool:
        answers = list(pool.map(guess, range(burst)))

    assert set(answers) <= {200, 429}
    client, response = _sign_in("alice", PASSWORD, address="203.0.113.250")
    assert response.status_code == 429
    assert not _signed_in(client)
    assert AuditRecord.objects.filter(action=AuditAction.AUTH_LOCKED_OUT).count() == 1


def test_it_locks_out_through_the_asgi_server_too(live_console, transactional_db, settings) -> None:
    """The console runs under uvicorn: axes' middleware takes its async path there."""
    UserFactory(username="alice")
    with httpx.Client(base_url=live_console.url, timeout=10) as browser:
        browser.get(LOGIN)

        def sign_in(password: str) -> httpx.Response:
            return browser.post(
                LOGIN,
                data={
                    "username": "alice",
                    "password": password,
                    "csrfmiddlewaretoken": browser.cookies["csrftoken"],
                },
                headers={"Referer": f"{live_console.url}{LOGIN}"},
            )

        for _ in range(settings.LOGIN_FAILURE_LIMIT):
            assert sign_in("wrong").status_code in (200, 429)
        refused = sign_in(PASSWORD)

    assert refused.status_code == 429
    assert "Too many failed sign-ins" in refused.text
    assert "sessionid" not in refused.cookies
