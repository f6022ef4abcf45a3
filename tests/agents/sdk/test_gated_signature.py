"""How a gated call becomes the arguments a reviewer sees, and approved arguments a call again."""

from collections.abc import Callable
from typing import Any

import pytest
from approval_console._wire import GatedSignature, create_body, duration, summary_text


def _refund(payment_id: str, amount: int, /, currency: str = "EUR", *notes: str, **extra: int):
    return payment_id, amount, currency, notes, extra


def test_it_submits_every_bound_argument_with_defaults() -> None:
    gate = GatedSignature(_refund, frozenset())

    assert gate.arguments(("pay_1", 10, "GBP", "dup"), {"priority": 2}) == {
        "payment_id": "pay_1",
        "amount": 10,
        "currency": "GBP",
        "notes": ["dup"],
        "extra": {"priority": 2},
    }
    assert gate.arguments(("pay_1", 10), {})["currency"] == "EUR"


def test_it_rebuilds_the_call_from_approved_arguments() -> None:
    gate = GatedSignature(_refund, frozenset())
    approved = {
        "payment_id": "pay_1",
        "amount": 5,
        "currency": "USD",
        "notes": ["a", "b"],
        "extra": {"priority": 1},
    }

    args, kwargs = gate.call_arguments(approved, ("pay_1", 10), {})

    assert _refund(*args, **kwargs) == ("pay_1", 5, "USD", ("a", "b"), {"priority": 1})


def test_it_keeps_self_out_of_the_review_and_in_the_call() -> None:
    class Payments:
        def refund(self, payment_id: str) -> str:
            return f"{id(self)}:{payment_id}"

    payments = Payments()
    gate = GatedSignature(Payments.refund, frozenset({"self"}))

    assert gate.arguments((payments, "pay_1"), {}) == {"payment_id": "pay_1"}
    args, kwargs = gate.call_arguments({"payment_id": "pay_2"}, (payments, "pay_1"), {})
    assert Payments.refund(*args, **kwargs) == f"{id(payments)}:pay_2"


def test_it_refuses_arguments_a_reviewer_could_not_see() -> None:
    gate = GatedSignature(_refund, frozenset())
    with pytest.raises(TypeError, match="'amount' is not JSON-serialisable"):
        gate.arguments(("pay_1", object()), {})


def test_it_refuses_approved_arguments_naming_unknown_parameters() -> None:
    gate = GatedSignature(_refund, frozenset())
    with pytest.raises(TypeError, match="unknown parameters"):
        gate.call_arguments({"payment_id": "p", "amount": 1, "admin": True}, ("p", 1), {})


def test_it_sends_only_the_fields_that_were_set() -> None:
    body = create_body(
        tool="deploy",
        arguments={"service": "web"},
        summary=None,
        reasoning=None,
        confidence=None,
        impact="high",
        context=None,
        labels=["prod"],
        timeout=90,
        run=None,
    )

    assert body == {
        "tool": "deploy",
        "arguments": {"service": "web"},
        "impact": "high",
        "labels": ["prod"],
        "timeout": "90s",
    }
    assert duration("30m") == "30m"


def test_the_summary_gets_every_bound_argument_by_name() -> None:
    def issue_refund(payment_id: str, amount: int = 500, *, currency: str = "EUR") -> None: ...

    gate = GatedSignature(issue_refund, frozenset())

    def text(summary: Callable[..., str], *args: Any, **kwargs: Any) -> str | None:
        return summary_text(summary, gate, args, kwargs)

    assert text(lambda payment_id, amount, currency: f"{payment_id} {amount}", "p") == "p 500"
    assert text(lambda amount, **_: f"{amount}", payment_id="p", amount=7) == "7"
    assert text(lambda **every: ",".join(sorted(every)), "p", 7) == "amount,currency,payment_id"


def test_the_summary_gets_positional_only_and_star_args_by_position() -> None:
    gate = GatedSignature(_refund, frozenset())

    summary = summary_text(
        lambda *args, **kwargs: f"{args} {kwargs}", gate, ("pay_1", 10, "GBP", "dup"), {"p": 2}
    )

    assert summary == "('pay_1', 10, 'GBP', 'dup') {'p': 2}"
