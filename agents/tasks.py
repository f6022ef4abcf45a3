"""Celery tasks for AAP webhook delivery: take ids, call one service, own the retry schedule."""

from celery import shared_task

from agents.aap.webhooks import notification_deliver, notification_enqueue, notifications_due


@shared_task(name="aap.deliver_notification", ignore_result=True)
def deliver_notification(notification_id: int) -> None:
    delay = notification_deliver(notification_id=notification_id)
    if delay is not None:
        notification_enqueue(notification_id=notification_id, countdown=delay)


@shared_task(name="aap.deliver_due_notifications", ignore_result=True)
def deliver_due_notifications() -> int:
    """Run by beat: re-enqueue due events whose task was lost. A duplicate task is harmless."""
    due = notifications_due()
    for notification_id in due:
        notification_enqueue(notification_id=notification_id)
    return len(due)
