"""A demo agent that keeps asking the console for approval, the way a real one would.

It submits realistic tool calls (refunds, outbound emails, record deletions, deploys) with varied
confidence and impact, waits for each decision with the long poll, "runs" what was approved (a
stand-in that now and then fails the way real tools do) and tells the console how it went. It
talks to the console through the Python SDK only, like any agent: nothing here touches the
database.
"""

import random
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from approval_console import Approval, Console, ConsoleApiError, ConsoleError
from approval_console.outcomes import run_approved
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

CUSTOMERS = ["Ada Moreau", "Kenji Ito", "Priya Raman", "Lucas Silva", "Noor Haddad", "Eva Novak"]


REFUND_SCHEMA = {
    "type": "object",
    "properties": {
        "payment_id": {"type": "string"},
        "amount": {"type": "integer", "x-money": {"currency_field": "currency", "minor_units": 2}},
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "reason": {"type": "string", "enum": ["duplicate_charge", "customer_request"]},
    },
    "required": ["payment_id", "amount", "currency", "reason"],
    "additionalProperties": False,
}


def _refund() -> dict[str, Any]:
    amount = random.choice([1299, 4900, 8950, 25000, 120000])
    customer = random.choice(CUSTOMERS)
    duplicate = random.random() < 0.6
    return {
        "tool": "issue_refund",
        "arguments": {
            "payment_id": f"pay_{uuid.uuid4().hex[:12]}",
            "amount": amount,
            "currency": random.choice(["EUR", "GBP", "USD"]),
            "reason": "duplicate_charge" if duplicate else "customer_request",
        },
        "summary": f"Refund {amount / 100:.2f} to {customer}"
        + (" for a duplicate charge." if duplicate else " at their request."),
        "reasoning": (
            "Two identical charges 40 seconds apart on the same card; the customer wrote in."
            if duplicate
            else "The customer says the product did not arrive; tracking shows no delivery scan."
        ),
        "confidence": round(
            random.uniform(0.55, 0.97) if duplicate else random.uniform(0.3, 0.7), 2
        ),
        "impact": "high" if amount >= 25000 else "medium",
        "context": {"ticket": f"SUP-{random.randint(1000, 9999)}", "customer": customer},
        # Says the amount is in cents, so reviewers read 250.00 EUR, not 25000.
        "arguments_schema": REFUND_SCHEMA,
    }


def _email() -> dict[str, Any]:
    customer = random.choice(CUSTOMERS)
    return {
        "tool": "send_email",
        "arguments": {
            "to": f"{customer.split()[0].lower()}@example.com",
            "subject": random.choice(
                [
                    "Your refund is on its way",
                    "About your account",
                    "Action needed: verify your card",
                ]
            ),
            "body": f"Hi {customer.split()[0]},\n\nWe looked into your request and ...",
        },
        "summary": f"Email {customer} about their support ticket.",
        "reasoning": "The ticket has been idle for 3 days; a status update is due.",
        "confidence": round(random.uniform(0.6, 0.99), 2),
        "impact": "low",
    }


def _deletion() -> dict[str, Any]:
    count = random.choice([1, 3, 40, 1200])
    return {
        "tool": "delete_records",
        "arguments": {
            "table": "crm_contacts",
            "filter": {"unsubscribed_before": "2024-01-01"},
            "expected_rows": count,
        },
        "summary": f"Delete {count} contacts who unsubscribed before 2024 (GDPR retention).",
        "reasoning": "The retention policy says unsubscribed contacts are purged after 24 months.",
        "confidence": round(random.uniform(0.4, 0.9), 2),
        "impact": "critical" if count > 100 else "high",
    }


def _deploy() -> dict[str, Any]:
    service = random.choice(["billing-api", "web", "search-indexer"])
    return {
        "tool": "deploy",
        "arguments": {
            "service": service,
            "version": f"v2.{random.randint(10, 40)}.{random.randint(0, 9)}",
            "environment": "production",
        },
        "summary": f"Deploy {service} to production.",
        "reasoning": "All checks passed on staging; the change fixes a timeout in checkout.",
        "confidence": round(random.uniform(0.5, 0.95), 2),
        "impact": random.choice(["high", "critical"]),
    }


SCENARIOS = [_refund, _refund, _email, _email, _deletion, _deploy]


class Command(BaseCommand):
    help = "Run a demo agent that submits approval requests to a running console."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000")
        parser.add_argument(
            "--credential-file", default=str(Path(settings.VAR_DIR) / "demo-agent.credential")
        )
        parser.add_argument(
            "--interval", type=float, default=6.0, help="mean seconds between requests"
        )
        parser.add_argument("--max-pending", type=int, default=8)
        parser.add_argument(
            "--count", type=int, default=0, help="stop after this many (0: forever)"
        )

    def handle(self, *args: object, **options: Any) -> None:
        token = Path(options["credential_file"]).read_text().strip()
        self._wait_until_up(options["url"])
        self.stdout.write(f"the console is up at {options['url']}/ (log in as shown above)")
        console = Console(options["url"], token)
        waiting: list[threading.Thread] = []
        sent = 0
        while not options["count"] or sent < options["count"]:
            waiting = [thread for thread in waiting if thread.is_alive()]
            if len(waiting) < options["max_pending"]:
                body = random.choice(SCENARIOS)()
                body["timeout"] = random.choice(["5m", "10m", "30m"])
                approval = self._submit(console, body)
                if approval is not None:
                    sent += 1
                    thread = threading.Thread(
                        target=self._await, args=(console, approval), daemon=True
                    )
                    thread.start()
                    waiting.append(thread)
            # A quick first few, so a newcomer sees a live queue at once.
            pause = 0.5 if sent < 3 else random.expovariate(1 / options["interval"])
            time.sleep(pause)
        for thread in waiting:
            thread.join()
        console.close()

    def _wait_until_up(self, url: str) -> None:
        for _ in range(120):
            try:
                if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise SystemExit("the console did not come up")

    def _submit(self, console: Console, body: dict[str, Any]) -> Approval | None:
        # The SDK retries transient failures with one idempotency key: never a duplicate.
        try:
            approval = console.submit(body.pop("tool"), body.pop("arguments"), **body)
        except ConsoleApiError as refused:
            self.stderr.write(f"refused: {refused}")
            return None
        except ConsoleError as error:
            self.stderr.write(f"console unreachable: {error}")
            return None
        self.stdout.write(
            f"asked: {approval.tool} ({body['impact']}, confidence {body['confidence']})"
        )
        return approval

    def _await(self, console: Console, approval: Approval) -> None:
        while True:
            try:
                decision = console.wait(approval)
                break
            except ConsoleError:
                time.sleep(2)  # the console is away: keep waiting, never act without a decision
        note = f" ({decision.note})" if decision.note else ""
        if not decision.is_usable():
            self.stdout.write(f"{decision.status}: {approval.tool} will not run{note}")
            return
        try:
            run_approved(console, decision, _stand_in_tool(approval.tool))
        except Exception as error:  # reported to the console as failed by run_approved
            self.stdout.write(f"{decision.status}: {approval.tool} ran and failed: {error}{note}")
        else:
            self.stdout.write(f"{decision.status}: {approval.tool} ran{note}")


# What real tools answer when they fail: one call in eight does, so the console has failures to
# show (the track record, "approved, then failed", the approvers' notices).
FAILURES = {
    "issue_refund": "card_declined: the card issuer refused the refund",
    "send_email": "smtp 451: temporary local problem, try again later",
    "delete_records": "lock timeout: the table is being backed up",
    "deploy": "health check failed: 3 of 5 pods not ready after 120 s",
}


def _stand_in_tool(tool: str) -> Any:
    def call(**arguments: Any) -> dict[str, Any]:
        time.sleep(random.uniform(0.05, 0.4))  # the call takes a moment, as a real one would
        if random.random() < 1 / 8:
            raise RuntimeError(FAILURES.get(tool, "the service answered 503"))
        return {"done": tool, "reference": uuid.uuid4().hex[:12]}

    return call
