"""Domain errors carry their own code, status and param; the API handler answers with them."""

from agents.aap.limits import RateLimited
from approvals.exceptions import IdempotencyConflict, ReviewRejected
from console.api_errors import exception_handler


def test_it_answers_a_domain_error_with_its_own_status_code_and_param() -> None:
    response = exception_handler(IdempotencyConflict(), {})
    assert response is not None and response.status_code == 409
    assert response.data == {
        "error": {
            "type": "conflict",
            "code": "idempotency_conflict",
            "message": "The idempotency key was already used for a different request.",
            "param": "Idempotency-Key",
        }
    }


def test_it_sends_retry_after_with_a_rate_limit() -> None:
    response = exception_handler(RateLimited(what="calls", retry_after=7), {})
    assert response is not None and response.status_code == 429
    assert response["Retry-After"] == "7"
    assert response.data["error"]["code"] == "rate_limited"


def test_it_gives_a_refused_review_the_status_its_code_calls_for() -> None:
    assert ReviewRejected("no").http_status == 400
    assert ReviewRejected("no", code="already_voted").http_status == 409
    assert ReviewRejected("no", code="own_agent").http_status == 403
