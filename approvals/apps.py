from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "approvals"
    verbose_name = "Approvals"

    def ready(self) -> None:
        from approvals import audit_guards, audit_signals  # noqa: F401  (connects the receivers)
        from approvals import subscribers

        # The side effects of approvals' and agents' domain events (approvals.subscribers).
        subscribers.connect()
