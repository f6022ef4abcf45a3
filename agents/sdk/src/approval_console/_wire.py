"""What the sync and async clients share: request bodies, retry timing, error parsing.

No I/O here, so the two clients cannot drift apart on what they send or when they retry (the
calls themselves, retried and waited on, are _protocol's plans).
"""

from __future__ import annotations

import email.utils
import inspect
import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from .errors import ApprovalExpired, ConsoleApiError
from .models import Decision

# Answers that mean "try again shortly": the request was not acted on, or, for a response lost
# after the console acted, the idempotency key makes the retry a replay.
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
MAX_RETRY_AFTER_SECONDS = 60.0

# A request's deadline as the caller gives it: seconds, a timedelta, or the console's "90s".
Timeout = str | int | float | timedelta


@dataclass(frozen=True)
class RetryPolicy:
    """How hard the client tries before it gives up with ConsoleUnreachable.

    `attempts` and the backoff apply to each HTTP call. While waiting for a decision the client
    keeps reconnecting until the console has been unreachable for `give_up_after` seconds.
    """

    attempts: int = 6
    base_delay: float = 0.25
    max_delay: float = 8.0
    give_up_after: float = 120.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to sleep before retry number `attempt` (0-based): full exponential backoff
        with jitter, or exactly what the console asked for in Retry-After."""
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER_SECONDS)
        ceiling = min(self.max_delay, self.base_delay * 2**attempt)
        return random.uniform(ceiling / 2, ceiling)


def retry_after_seconds(response: httpx.Response) -> float | None:
    raw = response.headers.get("Retry-After")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def api_error(response: httpx.Response) -> ConsoleApiError:
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    return ConsoleApiError(
        status_code=response.status_code,
        code=str(error.get("code") or f"http_{response.status_code}"),
        message=str(error.get("message") or response.text[:500] or response.reason_phrase),
        param=error.get("param"),
        request_id=error.get("request_id"),
    )


def duration(value: Timeout) -> str:
    """The console's duration format ("90s", "30m") from seconds, a timedelta, or a duration."""
    if isinstance(value, str):
        return value
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds < 1:
        raise ValueError("A timeout must be at least one second.")
    return f"{int(seconds)}s"


def create_body(
    *,
    tool: str,
    arguments: Mapping[str, Any],
    summary: str | None,
    reasoning: str | None,
    confidence: float | None,
    impact: str | None,
    context: Mapping[str, Any] | None,
    labels: list[str] | None,
    timeout: Timeout | None,
    run: str | None,
    arguments_schema: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The POST /api/v1/requests body. Fields left unset are not sent: the console's defaults
    apply, and a console that predates a field does not reject requests that do not use it."""
    body: dict[str, Any] = {"tool": tool, "arguments": dict(arguments)}
    optional: dict[str, Any] = {
        "summary": summary,
        "reasoning": reasoning,
        "confidence": confidence,
        "impact": impact,
        "context": dict(context) if context is not None else None,
        "labels": list(labels) if labels is not None else None,
        "timeout": duration(timeout) if timeout is not None else None,
        "run": run,
        "arguments_schema": dict(arguments_schema) if arguments_schema is not None else None,
    }
    body.update({name: value for name, value in optional.items() if value is not None})
    return body


def question_body(
    *,
    question: str,
    answer_schema: Mapping[str, Any],
    reasoning: str | None,
    impact: str | None,
    context: Mapping[str, Any] | None,
    labels: list[str] | None,
    timeout: Timeout | None,
    run: str | None,
    tool: str | None,
) -> dict[str, Any]:
    """The POST /api/v1/questions body; unset fields are not sent, as in create_body."""
    body: dict[str, Any] = {"question": question, "answer_schema": dict(answer_schema)}
    optional: dict[str, Any] = {
        "tool": tool,
        "reasoning": reasoning,
        "impact": impact,
        "context": dict(context) if context is not None else None,
        "labels": list(labels) if labels is not None else None,
        "timeout": duration(timeout) if timeout is not None else None,
        "run": run,
    }
    body.update({name: value for name, value in optional.items() if value is not None})
    return body


class GatedSignature:
    """Turns a call into the JSON arguments a reviewer sees, and approved arguments back into a
    call. The reviewer approves exactly what runs: every bound argument, defaults included."""

    def __init__(self, fn: Callable[..., Any], exclude: frozenset[str]) -> None:
        self.signature = inspect.signature(fn)
        self.exclude = exclude
        self.name = fn.__name__

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> inspect.BoundArguments:
        """The call as the function will see it: defaults the caller left out filled in."""
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return bound

    def arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        bound = self.bind(args, kwargs)
        submitted: dict[str, Any] = {}
        for name, value in bound.arguments.items():
            if name in self.exclude:
                continue
            try:
                # Round-trip so the reviewer sees what JSON makes of it (tuples become lists).
                submitted[name] = json.loads(json.dumps(value))
            except (TypeError, ValueError):
                raise TypeError(
                    f"{self.name}(): argument {name!r} is not JSON-serialisable, so a reviewer "
                    f"could not see it. Pass plain data or exclude it."
                ) from None
        return submitted

    def call_arguments(
        self,
        approved: Mapping[str, Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Positional and keyword arguments for the approved call. Excluded parameters (such as
        `self`) come from the original call; everything else from the approval."""
        original = self.bind(args, kwargs)
        unknown = set(approved) - set(self.signature.parameters)
        if unknown:
            raise TypeError(
                f"{self.name}(): the approved arguments name unknown parameters {sorted(unknown)}."
            )
        call_args: list[Any] = []
        call_kwargs: dict[str, Any] = {}
        # Once a parameter is missing, later ones can only be passed by name.
        positional_ok = True
        for name, parameter in self.signature.parameters.items():
            source = original.arguments if name in self.exclude else approved
            if name not in source:
                positional_ok = False
                continue
            value = source[name]
            if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
                call_args.extend(value)
            elif parameter.kind is inspect.Parameter.VAR_KEYWORD:
                call_kwargs.update(value)
            elif parameter.kind is inspect.Parameter.POSITIONAL_ONLY or (
                parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD and positional_ok
            ):
                call_args.append(value)
            else:
                call_kwargs[name] = value
        return tuple(call_args), call_kwargs


def summary_text(
    summary: str | Callable[..., str] | None,
    gate: GatedSignature,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> str | None:
    """The summary for one call. A callable gets every bound argument, defaults included, by
    name where Python allows it: `lambda payment_id, amount: ...` works however the caller
    passed them, and `lambda amount, **_: ...` picks one."""
    if summary is None or isinstance(summary, str):
        return summary
    bound = gate.bind(args, kwargs)
    parameters = gate.signature.parameters
    # With *args in the signature, the parameters before it can only be filled by position.
    by_position = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters.values())
    call_args: list[Any] = []
    call_kwargs: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        kind = parameters[name].kind
        if kind is inspect.Parameter.VAR_POSITIONAL:
            call_args.extend(value)
        elif kind is inspect.Parameter.VAR_KEYWORD:
            call_kwargs.update(value)
        elif kind is inspect.Parameter.POSITIONAL_ONLY or (
            kind is inspect.Parameter.POSITIONAL_OR_KEYWORD and by_position
        ):
            call_args.append(value)
        else:
            call_kwargs[name] = value
    return str(summary(*call_args, **call_kwargs))


def monotonic() -> float:
    return time.monotonic()


# Outcome statuses an agent reports (the console adds `not_reported` itself).
SUCCEEDED = "succeeded"
FAILED = "failed"
NOT_EXECUTED = "not_executed"
# The decorator reports a short result: the return value as JSON when it is small, else its
# JSON or repr cut to this many characters. Errors are cut the same way.
MAX_OUTCOME_TEXT = 2000


def outcome_body(
    *,
    status: str,
    result: Any = None,
    error: str | None = None,
    duration_ms: int | None = None,
    cost: float | str | None = None,
    currency: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"status": status}
    if result is not None:
        body["result"] = result
    if error:
        body["error"] = error
    if duration_ms is not None:
        body["duration_ms"] = duration_ms
    if cost is not None:
        body["cost"] = str(cost)
    if currency:
        body["currency"] = currency
    return body


def short_result(value: Any) -> Any:
    """A function's return value as a short outcome result: itself when it is small JSON,
    else a truncated text of it. None stays None."""
    if value is None:
        return None
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)[:MAX_OUTCOME_TEXT]
    if len(text) <= MAX_OUTCOME_TEXT:
        return json.loads(text)
    return text[:MAX_OUTCOME_TEXT]


def error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:MAX_OUTCOME_TEXT]


def outcome_report(
    decision: Decision,
    *,
    started: float | None,
    result: Any = None,
    error: BaseException | None = None,
    ran: bool = True,
) -> dict[str, Any] | None:
    """What to tell the console about a decided call (report_outcome's keywords), or None when
    there is nothing it should hear: a denial needs no report, and a call interrupted
    (cancelled, KeyboardInterrupt) may or may not have acted, so the console's own
    `not_reported` mark says it best. `started`: monotonic() when the call began."""
    if not ran:
        if not decision.approved:
            return None
        why = (
            f"The approval expired before the call started ({error})."
            if isinstance(error, ApprovalExpired)
            else f"Not run: {error_text(error)}"
            if error is not None
            else "Not run."
        )
        return {"status": NOT_EXECUTED, "error": why[:MAX_OUTCOME_TEXT]}
    duration_ms = None if started is None else int((monotonic() - started) * 1000)
    if error is not None:
        if not isinstance(error, Exception):
            return None
        return {"status": FAILED, "error": error_text(error), "duration_ms": duration_ms}
    return {"status": SUCCEEDED, "result": short_result(result), "duration_ms": duration_ms}
