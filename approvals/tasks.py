"""Celery tasks: fetch, call one service, own the retry policy."""

from celery import shared_task

from approvals.services import approval_requests_expire_overdue


@shared_task(name="approvals.expire_overdue_requests", ignore_result=True)
def expire_overdue_requests() -> int:
    """Run by beat every few seconds. Reads expire overdue requests too: a late beat is safe."""
    return approval_requests_expire_overdue()
