from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "approvals"
    verbose_name = "Approvals"

    def ready(self) -> None:
        from approvals import subscribers
        from approvals.audit import guards, signals  # noqa: F401  (connects the receivers)
        from console import tracing

        # OpenTelemetry export, only when an OTLP endpoint is configured (console/tracing.py).
        tracing.configure()

        # The side effects of approvals' and agents' domain events (approvals.subscribers).
        subscribers.connect()
