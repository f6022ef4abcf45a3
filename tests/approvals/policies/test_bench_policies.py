"""The benchmark command runs and prints a number; how big the number is, is not a test."""

import re
from io import StringIO

import pytest
from django.core.management import call_command

from approvals.policies.models import PolicyRule


@pytest.mark.django_db
def test_it_prints_the_time_policy_evaluation_adds_and_leaves_nothing_behind() -> None:
    out = StringIO()
    call_command("bench_policies", rules=5, iterations=3, stdout=out)
    match = re.search(r"^policy_ms_median=(\d+\.\d+)$", out.getvalue(), re.MULTILINE)
    assert match is not None, out.getvalue()
    assert float(match[1]) > 0
    assert "with 5 rules, 3 requests" in out.getvalue()
    assert not PolicyRule.objects.exists()
