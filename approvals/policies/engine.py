"""Rule matching: pure functions over a snapshot of a request. No database, no clock.

The first active rule that matches decides. A rule that cannot be evaluated (a missing argument,
a value of the wrong type, a broken pattern) stops the evaluation with a hold: an error never
falls through to a later rule that might approve. Shadow rules are evaluated alongside and
recorded, never obeyed.
"""

import fnmatch
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any

from approvals.models import IMPACT_RANK
from approvals.policies.models import Outcome
from approvals.reasons import AgentValue, Reason, reason_join

# Longer agent-supplied strings are not fed to an operator's regex: a bad pattern on a huge
# input can backtrack for a very long time, and the request is held instead.
MAX_REGEX_SUBJECT = 10_000

_MISSING = object()


class RuleError(Exception):
    """The rule cannot be evaluated against this request. The request is held.

    Carries a Reason: the message quotes the agent's values, which must stay marked as theirs.
    """

    def __init__(self, reason: Reason | str) -> None:
        self.reason = reason if isinstance(reason, Reason) else Reason.of(reason)
        super().__init__(str(self.reason))


@dataclass(frozen=True)
class Condition:
    path: str
    operator: str
    value: Any


@dataclass(frozen=True)
class Rule:
    id: int
    name: str
    position: int
    outcome: str
    shadow: bool = False
    agent_id: int | None = None
    agent_group_id: int | None = None
    tool_glob: str = ""
    impact_at_least: str = ""
    confidence_below: float | None = None
    labels: tuple[str, ...] = ()
    active_from: time | None = None
    active_until: time | None = None
    conditions: tuple[Condition, ...] = ()
    total_path: str = ""
    total_window_seconds: int | None = None
    total_above: float | None = None
    reason: str = ""
    team_id: int | None = None
    team_name: str = ""
    required_approvals: int = 1
    time_to_decide_seconds: int | None = None
    on_timeout: str = "deny"
    escalation_chain_id: int | None = None
    # Set when the stored rule is malformed: evaluating it holds the request.
    broken: str = ""

    @property
    def title(self) -> str:
        return f"rule “{self.name}” (#{self.position})"


@dataclass(frozen=True)
class Snapshot:
    """What the policy may look at: the submitted fields, who sent them, and when."""

    agent_id: int
    tool: str
    arguments: dict[str, Any]
    impact: str
    confidence: float | None
    at: datetime
    agent_group_ids: frozenset[int] = frozenset()
    # None when the request carries no labels at all.
    labels: Any = None


# (tool_glob, path, window_seconds, at) -> the sum over the agent's approved requests.
TotalsLookup = Callable[[str, str, int, datetime], float]


def _no_totals(tool_glob: str, path: str, window_seconds: int, at: datetime) -> float:
    raise RuleError("running totals are not available here")


@dataclass(frozen=True)
class ShadowMatch:
    rule: str
    outcome: str
    why: Reason

    @property
    def reason(self) -> str:
        return str(self.why)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "outcome": self.outcome,
            "reason": self.reason,
            "reason_parts": self.why.as_json(),
        }


@dataclass(frozen=True)
class Evaluation:
    outcome: str
    # The console's words with the agent's values kept apart; `reason` is its plain text.
    why: Reason
    rule: Rule | None = None
    errored: bool = False
    shadow_matches: tuple[ShadowMatch, ...] = field(default_factory=tuple)

    @property
    def reason(self) -> str:
        return str(self.why)


def resolve_path(arguments: Any, path: str) -> Any:
    """The value at a dotted path ("customer.id", "items.0.sku"), or _MISSING."""
    current = arguments
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return _MISSING
    return current


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _equal(actual: Any, expected: Any) -> bool:
    # In Python True == 1; in a policy, a boolean is never a number.
    if isinstance(actual, bool) != isinstance(expected, bool):
        return False
    return bool(actual == expected)


def _ordered(actual: Any, expected: Any, path: str) -> None:
    if _is_number(actual) and _is_number(expected):
        return
    if isinstance(actual, str) and isinstance(expected, str):
        return
    raise RuleError(
        Reason.format(
            "arguments.%s is %s, which cannot be compared with %r",
            path,
            AgentValue(actual),
            expected,
        )
    )


def compare(operator: str, actual: Any, expected: Any, path: str = "value") -> bool:
    """Apply one operator. Raises RuleError when the comparison makes no sense."""
    if operator == "=":
        return _equal(actual, expected)
    if operator == "!=":
        return not _equal(actual, expected)
    if operator in {"<", "<=", ">", ">="}:
        _ordered(actual, expected, path)
        if operator == "<":
            return bool(actual < expected)
        if operator == "<=":
            return bool(actual <= expected)
        if operator == ">":
            return bool(actual > expected)
        return bool(actual >= expected)
    if operator == "in":
        if not isinstance(expected, list):
            raise RuleError(f'"in" needs a list to look in, the rule has {expected!r}')
        return any(_equal(actual, item) for item in expected)
    if operator == "contains":
        if isinstance(actual, str):
            if not isinstance(expected, str):
                raise RuleError(f"arguments.{path} is text; the rule looks for {expected!r}")
            return expected in actual
        if isinstance(actual, list):
            return any(_equal(item, expected) for item in actual)
        if isinstance(actual, dict):
            return isinstance(expected, str) and expected in actual
        raise RuleError(
            Reason.format("arguments.%s is %s, which contains nothing", path, AgentValue(actual))
        )
    if operator == "matches":
        if not isinstance(expected, str):
            raise RuleError(f"the pattern {expected!r} is not text")
        if not isinstance(actual, str):
            raise RuleError(
                Reason.format("arguments.%s is %s, not text to match", path, AgentValue(actual))
            )
        if len(actual) > MAX_REGEX_SUBJECT:
            raise RuleError(f"arguments.{path} is too long to match safely")
        try:
            pattern = re.compile(expected)
        except re.error as error:
            raise RuleError(f"the pattern {expected!r} is broken: {error}") from None
        # The whole value must match: a partial match would let "x@example.com.evil" through
        # a rule written for "@example\.com".
        return pattern.fullmatch(actual) is not None
    raise RuleError(f"unknown operator {operator!r}")


def _in_window(moment: time, start: time, end: time) -> bool:
    if start <= end:
        return start <= moment < end
    return moment >= start or moment < end  # wraps past midnight


def _labels(snapshot: Snapshot) -> frozenset[str]:
    if snapshot.labels is None:
        return frozenset()
    if not isinstance(snapshot.labels, list | tuple | set | frozenset) or not all(
        isinstance(label, str) for label in snapshot.labels
    ):
        raise RuleError("the request's labels are not a list of text")
    return frozenset(snapshot.labels)


def rule_explain_match(
    rule: Rule, snapshot: Snapshot, totals: TotalsLookup = _no_totals
) -> list[Reason] | None:
    """Why the rule matches, one phrase per criterion, or None if it does not match.

    The agent's values in the phrases (the tool, an argument's value) are AgentValue parts.

    Cheap criteria come first, so a rule for another tool never fails on a missing argument.
    Phrases are formatted only once the rule has matched: most rules do not, and formatting
    was most of the cost of evaluating 100 rules.
    """
    if rule.broken:
        raise RuleError(rule.broken)
    why = _request_criteria_met(rule, snapshot)
    if why is None or not _conditions_met(rule, snapshot, why):
        return None
    if not _running_total_met(rule, snapshot, totals, why):
        return None
    if not why:
        return [Reason.of("the rule matches every request")]
    return [Reason.format(template, *args) for template, args in why]


# A matched criterion's phrase: a template and its arguments, formatted only once the whole rule
# has matched (see rule_explain_match).
_Phrases = list[tuple[str, tuple[Any, ...]]]


def _request_criteria_met(rule: Rule, snapshot: Snapshot) -> _Phrases | None:
    """The criteria on who asks and what (agent, group, tool, impact, labels, time, confidence):
    their phrases, or None at the first that does not hold."""
    why: _Phrases = []
    if rule.agent_id is not None:
        if snapshot.agent_id != rule.agent_id:
            return None
        why.append(("the agent is the rule's agent", ()))
    if rule.agent_group_id is not None:
        if rule.agent_group_id not in snapshot.agent_group_ids:
            return None
        why.append(("the agent is in the rule's group", ()))
    if rule.tool_glob:
        if not fnmatch.fnmatchcase(snapshot.tool, rule.tool_glob):
            return None
        why.append(("tool %s matches %s", (AgentValue(snapshot.tool), rule.tool_glob)))
    if rule.impact_at_least:
        if rule.impact_at_least not in IMPACT_RANK:
            raise RuleError(f"unknown impact {rule.impact_at_least!r} in the rule")
        if snapshot.impact not in IMPACT_RANK:
            raise RuleError(
                Reason.format("the request's impact %s is unknown", AgentValue(snapshot.impact))
            )
        if IMPACT_RANK[snapshot.impact] < IMPACT_RANK[rule.impact_at_least]:  # type: ignore[index]
            return None
        why.append(("impact %s is at least %s", (snapshot.impact, rule.impact_at_least)))
    if rule.labels:
        carried = _labels(snapshot)
        if not set(rule.labels) <= carried:
            return None
        why.append(("labelled %s", (", ".join(sorted(rule.labels)),)))
    if rule.active_from is not None and rule.active_until is not None:
        moment = snapshot.at.timetz().replace(tzinfo=None)
        if not _in_window(moment, rule.active_from, rule.active_until):
            return None
        why.append(
            (
                "time %s UTC is within %s-%s",
                (
                    moment.strftime("%H:%M"),
                    rule.active_from.strftime("%H:%M"),
                    rule.active_until.strftime("%H:%M"),
                ),
            )
        )
    if rule.confidence_below is not None:
        if snapshot.confidence is None:
            raise RuleError("the request states no confidence")
        if not snapshot.confidence < rule.confidence_below:
            return None
        why.append(("confidence %g is below %g", (snapshot.confidence, rule.confidence_below)))
    return why


def _conditions_met(rule: Rule, snapshot: Snapshot, why: _Phrases) -> bool:
    """The rule's conditions on the arguments; each that holds adds its phrase to `why`."""
    for condition in rule.conditions:
        actual = resolve_path(snapshot.arguments, condition.path)
        if actual is _MISSING:
            raise RuleError(f"arguments has no {condition.path!r}")
        if not compare(condition.operator, actual, condition.value, condition.path):
            return False
        why.append(
            (
                "arguments.%s = %r %s %r",
                (condition.path, AgentValue(actual), condition.operator, condition.value),
            )
        )
    return True


def _running_total_met(rule: Rule, snapshot: Snapshot, totals: TotalsLookup, why: _Phrases) -> bool:
    """The running total over the rule's window, this call included, if the rule has one."""
    if rule.total_path:
        if rule.total_window_seconds is None or rule.total_above is None:
            raise RuleError("the running total needs a window and a threshold")
        this_call = resolve_path(snapshot.arguments, rule.total_path)
        if this_call is _MISSING:
            raise RuleError(f"arguments has no {rule.total_path!r}")
        if not _is_number(this_call):
            raise RuleError(
                Reason.format(
                    "arguments.%s is %s, not a number", rule.total_path, AgentValue(this_call)
                )
            )
        total = (
            totals(rule.tool_glob, rule.total_path, rule.total_window_seconds, snapshot.at)
            + this_call
        )
        if not total > rule.total_above:
            return False
        why.append(
            (
                "%s totals %g over %ds with this call, above %g",
                (rule.total_path, total, rule.total_window_seconds, rule.total_above),
            )
        )
    return True


def describe_outcome(rule: Rule) -> str:
    if rule.outcome == Outcome.APPROVE:
        return "approved at once"
    if rule.outcome == Outcome.DENY:
        return "denied at once"
    parts = [f"held for review by {rule.team_name or 'any reviewer'}"]
    parts.append(f"{rule.required_approvals} approval{'s' if rule.required_approvals != 1 else ''}")
    if rule.time_to_decide_seconds:
        parts.append(f"at most {rule.time_to_decide_seconds}s to decide")
    parts.append(f"if nobody decides: {rule.on_timeout}")
    return "; ".join(parts)


def _sentence(rule: Rule, why: list[Reason]) -> Reason:
    return Reason.of(
        f"Matched {rule.title}: ",
        reason_join(why, "; "),
        f". Outcome: {describe_outcome(rule)}.",
        f" {rule.reason}" if rule.reason else "",
    )


DEFAULT_HOLD_REASON = "No policy rule matched: held for review by default."


def policy_evaluate(
    rules: Sequence[Rule], snapshot: Snapshot, totals: TotalsLookup = _no_totals
) -> Evaluation:
    """Evaluate rules in order: the first active match decides; shadow rules are only recorded."""
    decided: Evaluation | None = None
    shadows: list[ShadowMatch] = []
    for rule in rules:
        if decided is not None and not rule.shadow:
            continue
        try:
            why = rule_explain_match(rule, snapshot, totals)
        except RuleError as error:
            if rule.shadow:
                shadows.append(
                    ShadowMatch(
                        rule.name, "error", Reason.of("Could not evaluate: ", error.reason, ".")
                    )
                )
                continue
            decided = Evaluation(
                outcome=Outcome.HOLD,
                why=Reason.of(
                    f"{rule.title[0].upper()}{rule.title[1:]} could not be evaluated (",
                    error.reason,
                    "): held for review, never approved.",
                ),
                rule=rule,
                errored=True,
            )
            continue
        if why is None:
            continue
        if rule.shadow:
            shadows.append(ShadowMatch(rule.name, rule.outcome, _sentence(rule, why)))
        else:
            decided = Evaluation(outcome=rule.outcome, why=_sentence(rule, why), rule=rule)
    if decided is None:
        decided = Evaluation(outcome=Outcome.HOLD, why=Reason.of(DEFAULT_HOLD_REASON))
    return Evaluation(
        outcome=decided.outcome,
        why=decided.why,
        rule=decided.rule,
        errored=decided.errored,
        shadow_matches=tuple(shadows),
    )
