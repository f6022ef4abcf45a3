"""Read paths for the kill-switch page."""

from uuid import UUID

from django.db.models import Prefetch, QuerySet

from agents.models import Agent, AgentHalt, Run


def agents_with_halts() -> QuerySet[Agent]:
    """Agents with their halt history, newest first (the first unresumed one is the active halt)."""
    return Agent.objects.prefetch_related(
        Prefetch(
            "halts",
            queryset=AgentHalt.objects.select_related("halted_by", "resumed_by").order_by(
                "-halted_at", "-id"
            ),
        )
    ).order_by("name")


def agent_get(*, code: UUID | str) -> Agent | None:
    return Agent.objects.filter(code=code).first()


def run_get(*, code: UUID | str) -> Run | None:
    return Run.objects.filter(code=code).first()
