"""Rule matching, without a database: every operator, combinations, order, defaults, failures."""

from datetime import UTC, datetime, time
from typing import Any

import pytest

from approvals.policies.engine import (
    DEFAULT_HOLD_REASON,
    Condition,
    Rule,
    RuleError,
    Snapshot,
    compare,
    policy_evaluate,
    rule_explain_match,
)

NOON = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _snapshot(**overrides: Any) -> Snapshot:
    fields: dict[str, Any] = {
        "agent_id": 1,
        "tool": "issue_refund",
        "arguments": {
            "amount": 4900,
            "currency": "EUR",
            "customer": {"email": "ann@example.com", "tags": ["vip", "eu"]},
            "items": [{"sku": "A-1"}],
            "dry_run": False,
        },
        "impact": "high",
        "confidence": 0.6,
        "at": NOON,
    }
    fields.update(overrides)
    return Snapshot(**fields)


def _rule(rule_id: int = 1, outcome: str = "approve", **overrides: Any) -> Rule:
    return Rule(id=rule_id, name=f"r{rule_id}", position=rule_id * 10, outcome=outcome, **overrides)


@pytest.mark.parametrize(
    ("operator", "actual", "expected", "result"),
    [
        ("=", 4900, 4900, True),
        ("=", 4900, 4900.0, True),
        ("=", "EUR", "USD", False),
        ("=", True, 1, False),  # a boolean is never a number
        ("=", False, False, True),
        ("!=", "EUR", "USD", True),
        ("!=", 4900, 4900, False),
        ("<", 4900, 5000, True),
        ("<", 5000, 5000, False),
        ("<=", 5000, 5000, True),
        ("<=", 5001, 5000, False),
        (">", 5001, 5000, True),
        (">", 5000, 5000, False),
        (">=", 5000, 5000, True),
        (">=", 4999, 5000, False),
        ("<", "a", "b", True),
        ("in", "EUR", ["EUR", "USD"], True),
        ("in", "GBP", ["EUR", "USD"], False),
        ("in", 1, [True], False),
        ("contains", "ann@example.com", "@example", True),
        ("contains", "ann@example.com", "@evil", False),
        ("contains", ["vip", "eu"], "vip", True),
        ("contains", ["vip", "eu"], "us", False),
        ("contains", {"vip": 1}, "vip", True),
        ("matches", "ann@example.com", r"[a-z]+@example\.com", True),
        # The whole value must match, so an allow-list pattern cannot be slipped past.
        ("matches", "ann@example.com.evil.org", r"[a-z]+@example\.com", False),
        ("matches", "A-1", r"A-\d+", True),
    ],
)
def test_it_applies_every_operator(operator: str, actual: Any, expected: Any, result: bool) -> None:
    assert compare(operator, actual, expected) is result


@pytest.mark.parametrize(
    ("operator", "actual", "expected"),
    [
        ("<", "4900", 5000),  # text against a number
        (">", True, 0),  # a boolean against a number
        ("<=", None, 1),
        ("in", "EUR", "EUR,USD"),  # "in" needs a list
        ("contains", 4900, "49"),
        ("contains", "abc", 1),
        ("matches", 4900, r"\d+"),
        ("matches", "abc", "(unclosed"),
        ("matches", "a" * 20_000, "a+"),
        ("~", 1, 1),
    ],
)
def test_it_refuses_comparisons_that_make_no_sense(
    operator: str, actual: Any, expected: Any
) -> None:
    with pytest.raises(RuleError):
        compare(operator, actual, expected)


def test_it_matches_on_nested_paths_and_list_indexes() -> None:
    rule = _rule(
        conditions=(
            Condition("customer.email", "matches", r".+@example\.com"),
            Condition("customer.tags", "contains", "vip"),
            Condition("items.0.sku", "=", "A-1"),
        )
    )
    why = rule_explain_match(rule, _snapshot())
    assert why is not None
    assert "arguments.items.0.sku = \"A-1\" = 'A-1'" in [str(phrase) for phrase in why]


def test_it_ands_every_criterion() -> None:
    base = {
        "agent_id": 1,
        "tool_glob": "issue_*",
        "impact_at_least": "medium",
        "confidence_below": 0.9,
        "labels": ("finance",),
        "active_from": time(9),
        "active_until": time(17),
        "conditions": (Condition("amount", "<", 5000), Condition("currency", "in", ["EUR"])),
    }
    snapshot = _snapshot(labels=["finance", "eu"])
    assert rule_explain_match(_rule(**base), snapshot) is not None
    # Each criterion alone, when it fails, makes the whole rule fail.
    for field, failing in [
        ("agent_id", 2),
        ("tool_glob", "send_*"),
        ("impact_at_least", "critical"),
        ("confidence_below", 0.5),
        ("labels", ("finance", "pii")),
        ("active_from", time(13)),
        ("conditions", (Condition("amount", "<", 5000), Condition("currency", "in", ["USD"]))),
    ]:
        assert rule_explain_match(_rule(**{**base, field: failing}), snapshot) is None, field


def test_it_matches_agent_groups() -> None:
    rule = _rule(agent_group_id=7)
    assert rule_explain_match(rule, _snapshot(agent_group_ids=frozenset({7, 8}))) is not None
    assert rule_explain_match(rule, _snapshot(agent_group_ids=frozenset({8}))) is None


def test_it_matches_time_windows_that_wrap_past_midnight() -> None:
    night = _rule(active_from=time(22), active_until=time(6))
    assert rule_explain_match(night, _snapshot(at=NOON.replace(hour=23))) is not None
    assert rule_explain_match(night, _snapshot(at=NOON.replace(hour=3))) is not None
    assert rule_explain_match(night, _snapshot(at=NOON)) is None


def test_it_matches_impact_at_least() -> None:
    rule = _rule(impact_at_least="high")
    assert rule_explain_match(rule, _snapshot(impact="critical")) is not None
    assert rule_explain_match(rule, _snapshot(impact="high")) is not None
    assert rule_explain_match(rule, _snapshot(impact="medium")) is None


def test_it_lets_the_first_match_decide() -> None:
    rules = [
        _rule(1, "deny", tool_glob="delete_*", reason="Never delete."),
        _rule(2, "hold", conditions=(Condition("amount", ">", 1000),)),
        _rule(3, "approve"),
    ]
    evaluation = policy_evaluate(rules, _snapshot())
    assert (evaluation.outcome, evaluation.rule) == ("hold", rules[1])
    assert "Matched rule “r2” (#20)" in evaluation.reason
    assert "arguments.amount = 4900 > 1000" in evaluation.reason

    evaluation = policy_evaluate(rules, _snapshot(tool="delete_records"))
    assert (evaluation.outcome, evaluation.rule) == ("deny", rules[0])
    assert evaluation.reason.endswith("Never delete.")

    evaluation = policy_evaluate(rules, _snapshot(arguments={"amount": 10}))
    assert (evaluation.outcome, evaluation.rule) == ("approve", rules[2])


def test_it_holds_by_default_when_nothing_matches() -> None:
    evaluation = policy_evaluate([_rule(tool_glob="send_*")], _snapshot())
    assert evaluation.outcome == "hold"
    assert evaluation.rule is None
    assert evaluation.reason == DEFAULT_HOLD_REASON
    assert policy_evaluate([], _snapshot()).outcome == "hold"


@pytest.mark.parametrize(
    "broken",
    [
        {"conditions": (Condition("refund.amount", "<", 100),)},  # missing field
        {"conditions": (Condition("currency", "<", 100),)},  # wrong type
        {"conditions": (Condition("currency", "matches", "([A-Z]"),)},  # bad regex
        {"conditions": (Condition("currency", "in", "EUR"),)},  # bad value
        {"confidence_below": 0.9},  # the request states no confidence
        {"impact_at_least": "enormous"},
        {"total_path": "amount", "total_window_seconds": 60, "total_above": 1},  # no totals here
    ],
)
def test_it_holds_when_a_rule_cannot_be_evaluated_never_approves(broken: dict[str, Any]) -> None:
    rules = [_rule(1, "approve", **broken), _rule(2, "approve")]
    evaluation = policy_evaluate(rules, _snapshot(confidence=None))
    assert evaluation.outcome == "hold"
    assert evaluation.errored
    assert "could not be evaluated" in evaluation.reason
    assert "never approved" in evaluation.reason


def test_it_holds_on_labels_that_are_not_a_list_of_text() -> None:
    evaluation = policy_evaluate([_rule(labels=("pii",))], _snapshot(labels="pii"))
    assert (evaluation.outcome, evaluation.errored) == ("hold", True)


def test_it_records_shadow_rules_without_letting_them_decide() -> None:
    rules = [
        _rule(1, "deny", shadow=True, reason="Would stop refunds."),
        _rule(2, "approve", shadow=True, tool_glob="send_*"),
        _rule(3, "approve", shadow=True, conditions=(Condition("nope", "=", 1),)),
        _rule(4, "approve", conditions=(Condition("amount", "<", 10_000),)),
        _rule(5, "deny", shadow=True),  # after the deciding rule: still evaluated and recorded
    ]
    evaluation = policy_evaluate(rules, _snapshot())
    assert (evaluation.outcome, evaluation.rule) == ("approve", rules[3])
    shadows = {match.rule: match for match in evaluation.shadow_matches}
    assert set(shadows) == {"r1", "r3", "r5"}
    assert shadows["r1"].outcome == "deny"
    assert shadows["r3"].outcome == "error"


def test_it_adds_this_call_to_the_running_total() -> None:
    seen: list[tuple[str, str, int]] = []

    def totals(tool_glob: str, path: str, window: int, at: datetime) -> float:
        seen.append((tool_glob, path, window))
        return 6000.0

    rule = _rule(
        1,
        "hold",
        tool_glob="issue_*",
        total_path="amount",
        total_window_seconds=86_400,
        total_above=10_000,
    )
    assert rule_explain_match(rule, _snapshot(arguments={"amount": 4000}), totals) is None
    why = rule_explain_match(rule, _snapshot(arguments={"amount": 4001}), totals)
    assert why is not None and "amount totals 10001" in str(why[-1])
    assert seen[0] == ("issue_*", "amount", 86_400)


def test_it_does_not_look_up_totals_when_a_cheaper_criterion_fails() -> None:
    def totals(*args: Any) -> float:
        raise AssertionError("looked up a total for a rule that cannot match")

    rule = _rule(tool_glob="send_*", total_path="amount", total_window_seconds=1, total_above=0)
    assert rule_explain_match(rule, _snapshot(), totals) is None
