"""Benchmark: how long policy evaluation adds to creating a request, with N rules.

Prints numbers; asserts nothing. Everything it creates is rolled back.

    python manage.py bench_policies --rules 100 --iterations 300
"""

import os
import statistics
import time
from typing import Any

from django.core.management.base import BaseCommand
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agents.models import Agent
from approvals.policies.engine import Snapshot, policy_evaluate
from approvals.policies.evaluation import approved_totals_for, policy_decide, rules_load
from approvals.policies.models import Outcome, PolicyCondition, PolicyRule, RuleState
from approvals.services import Submission


class _Rollback(Exception):
    pass


def _ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"median {statistics.median(ordered) * 1000:.3f} ms, p95 {p95 * 1000:.3f} ms"


class Command(BaseCommand):
    help = "Print the time policy evaluation adds to a request with N rules (default 100)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--rules", type=int, default=100)
        parser.add_argument("--iterations", type=int, default=300)

    def handle(self, *args: Any, rules: int, iterations: int, **options: Any) -> None:
        try:
            with transaction.atomic():
                self._run(rule_count=rules, iterations=iterations)
                raise _Rollback
        except _Rollback:
            pass

    # long: a benchmark's setup, timed loop and report, read as one procedure
    def _run(self, *, rule_count: int, iterations: int) -> None:
        agent = Agent.objects.create(name=f"bench-{time.monotonic_ns()}")
        # The worst case: every rule gets as far as its last argument condition and fails
        # there, so each one is evaluated in full and the request falls to the default.
        for index in range(rule_count):
            rule = PolicyRule.objects.create(
                name=f"bench rule {index}",
                position=index,
                state=RuleState.SHADOW if index % 10 == 9 else RuleState.ACTIVE,
                tool_glob="issue_*",
                impact_at_least="low",
                confidence_below=0.99,
                outcome=Outcome.APPROVE,
            )
            PolicyCondition.objects.create(rule=rule, path="currency", operator="in", value=["EUR"])
            PolicyCondition.objects.create(
                rule=rule, path="customer.email", operator="matches", value=r".+@example\.com"
            )
            PolicyCondition.objects.create(rule=rule, path="amount", operator=">", value=10**9)
        submission = Submission(
            tool="issue_refund",
            arguments={"amount": 4900, "currency": "EUR", "customer": {"email": "a@example.com"}},
            timeout="30m",
            confidence=0.5,
            impact="high",
        )

        decide: list[float] = []
        for _ in range(iterations):
            with transaction.atomic():
                started = time.perf_counter()
                verdict = policy_decide(agent=agent, submission=submission, now=timezone.now())
                decide.append(time.perf_counter() - started)
        assert verdict.outcome == Outcome.HOLD
        with transaction.atomic(), CaptureQueriesContext(connection) as queries:
            policy_decide(agent=agent, submission=submission, now=timezone.now())

        loaded = rules_load()
        snapshot = Snapshot(
            agent_id=agent.pk,
            tool=submission.tool,
            arguments=submission.arguments,
            impact=submission.impact,
            confidence=submission.confidence,
            at=timezone.now(),
        )
        totals = approved_totals_for(agent.pk)
        engine: list[float] = []
        for _ in range(iterations):
            started = time.perf_counter()
            policy_evaluate(loaded, snapshot, totals)
            engine.append(time.perf_counter() - started)

        load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
        self.stdout.write(
            f"policy evaluation with {rule_count} rules, {iterations} requests "
            f"(load average {load}: a busy machine inflates every number):\n"
            f"  added to each request (lock, halt check, load rules, match): {_ms(decide)}\n"
            f"  matching alone (rules in memory): {_ms(engine)}\n"
            f"  database queries per decision (rules cached): {len(queries)}\n"
            f"policy_ms_median={statistics.median(decide) * 1000:.3f}"
        )
