"""Read paths for runs and their traces."""

from uuid import UUID

from django.db.models import QuerySet

from agents.models import Agent, Run, TraceEvent


def run_get_for_agent(*, agent: Agent, code: UUID | str) -> Run | None:
    """An agent sees only its own runs; anything else is indistinguishable from absent."""
    return Run.objects.filter(agent=agent, code=code).first()


def run_events(*, run: Run, after: int = 0, limit: int = 100) -> QuerySet[TraceEvent]:
    """A page of the run's trace in sequence order, starting after sequence `after`."""
    return TraceEvent.objects.filter(run=run, sequence__gt=after).order_by("sequence")[:limit]
