"""A reviewer's own settings of the decision page (one row per reviewer, created on first save)."""

from typing import Any

from approvals.models import ReviewerPageSettings


def reviewer_page_settings_save(*, user: Any, open_next_after_decision: bool) -> None:
    ReviewerPageSettings.objects.update_or_create(
        user=user, defaults={"open_next_after_decision": open_next_after_decision}
    )
