"""What the queue page adds to its rows: the true number of requests waiting, and the "due soon"
window said in words."""

from typing import Any

from approvals.access import approvals_visible_to
from approvals.models import Status

# The queue's own filter rules, reused so the total counts exactly what the rows would show.
from approvals.selectors import FacetCounts, QueueFilters, _filtered


def approvals_pending_total(*, user: Any, filters: QueueFilters, counts: FacetCounts) -> int:
    """How many pending requests the user may decide match the filters, on every page, not one.

    The facet counts already hold it when only the search is set (they count within it); other
    filters cost one count query.
    """
    if not any([filters.agent, filters.tool, filters.impact, filters.team, filters.mine]):
        return counts.total
    pending = approvals_visible_to(user=user).filter(status=Status.PENDING)
    return _filtered(pending, filters, user).count()


def window_in_words(seconds: int) -> str:
    """ "5 minutes", "90 seconds", "1 hour": the due-soon window as the page explains it."""
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return f"{hours} hour{'s' if hours != 1 else ''}"
    if seconds % 60 == 0:
        minutes = seconds // 60
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"
