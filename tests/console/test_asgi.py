"""The ASGI stack returns a request's database connection to the pool, even after a 500."""

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.urls import path

from tests.thread_connections import ThreadConnectionWatch


def _read_then_fail(request: HttpRequest) -> HttpResponse:
    User.objects.count()
    raise RuntimeError("a view that fails after reading")


async def _read_then_fail_async(request: HttpRequest) -> HttpResponse:
    await sync_to_async(User.objects.count)()
    raise RuntimeError("an async view that fails after reading")


urlpatterns = [path("fail", _read_then_fail), path("fail-async", _read_then_fail_async)]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("view", ["fail", "fail-async"])
def test_it_returns_the_connection_of_a_request_that_failed(live_console, settings, view) -> None:
    # A connection a failed request kept would be a pool slot lost for good: after
    # DATABASE_POOL_MAX such failures, every request would wait for the pool and time out.
    settings.ROOT_URLCONF = __name__
    with ThreadConnectionWatch() as watch:
        for _ in range(3):
            assert httpx.get(f"{live_console.url}/{view}").status_code == 500
    assert watch.left_open() == []
