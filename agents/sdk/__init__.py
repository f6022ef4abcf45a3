"""Python SDK for the Agent Approval Console. Depends on httpx only: no Django needed.

from agents.sdk import Console
console = Console("https://console.example", credential)
decision = console.request_approval("issue_refund", {"payment_id": "pay_1", "amount": 4900})
"""

from agents.sdk._wire import RetryPolicy
from agents.sdk.client import AsyncConsole, Console
from agents.sdk.errors import (
    ApprovalCancelled,
    ApprovalDenied,
    ApprovalExpired,
    ApprovalNotGranted,
    ConsoleApiError,
    ConsoleError,
    ConsoleUnreachable,
)
from agents.sdk.models import Approval, Decision

__all__ = [
    "Approval",
    "ApprovalCancelled",
    "ApprovalDenied",
    "ApprovalExpired",
    "ApprovalNotGranted",
    "AsyncConsole",
    "Console",
    "ConsoleApiError",
    "ConsoleError",
    "ConsoleUnreachable",
    "Decision",
    "RetryPolicy",
]
