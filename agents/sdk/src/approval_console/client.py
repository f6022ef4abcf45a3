"""Console and AsyncConsole: ask the approval console before acting, and wait for the answer.

    console = Console("https://console.example", credential)

    @console.requires_approval(impact="high", summary=lambda payment_id, amount: f"Refund {amount}")
    def issue_refund(payment_id: str, amount: int) -> None: ...

The decorated function runs only with a usable approval, and with the arguments the reviewer
approved. Anything else raises: ApprovalDenied, ApprovalExpired, ApprovalCancelled, or
ConsoleUnreachable when no decision could be had. No decision, no call.

Both clients are I/O shells over one protocol (_protocol): each API call is a plan that says what
to send, reads the answers and decides retries, sleeps and the long-poll wait; Console carries its
steps out with httpx.Client and time.sleep, AsyncConsole with httpx.AsyncClient and asyncio.sleep.

Customise a client with its options, not by overriding its methods: which public methods a client
calls for itself is not part of the API, and wait's long polls, cancel's re-read and the outcome
reports run the protocol's plans, not the public methods, so an override of `get` or
`report_outcome` does not see them. Every
request passes through the `transport` given to the constructor: log, sign or fake them there.
Leaving `with` calls `close()` (`async with`: `aclose()`), also in a subclass. (docs/sdk.md)
"""

# long: Console and AsyncConsole spell out the same public API, signature for signature

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ParamSpec, TypeVar

import httpx

from . import _gated, _protocol, _wire
from ._protocol import DEADLINE_GRACE as DEADLINE_GRACE
from ._protocol import LONG_POLL_SECONDS
from ._version import __version__
from ._wire import RetryPolicy
from ._wire import Timeout as Timeout
from .models import Approval, Decision
from .runs import AsyncRun, Run, current_run

P = ParamSpec("P")
R = TypeVar("R")

USER_AGENT = f"agent-approval-console-sdk/{__version__}"


def _settings(url: str | None, credential: str | None) -> tuple[str, str]:
    url = url or os.environ.get("APPROVAL_CONSOLE_URL")
    credential = credential or os.environ.get("APPROVAL_CONSOLE_CREDENTIAL")
    if not url or not credential:
        raise ValueError(
            "Console needs a url and a credential (or APPROVAL_CONSOLE_URL and "
            "APPROVAL_CONSOLE_CREDENTIAL in the environment)."
        )
    return url.rstrip("/"), credential


class _ConsoleBase:
    def __init__(
        self,
        url: str | None = None,
        credential: str | None = None,
        *,
        retry: RetryPolicy | None = None,
        http_timeout: float = 10.0,
        long_poll_seconds: int = LONG_POLL_SECONDS,
    ) -> None:
        self.url, credential = _settings(url, credential)
        self.retry = retry or RetryPolicy()
        self.long_poll_seconds = long_poll_seconds
        self._headers = {"Authorization": f"Bearer {credential}", "User-Agent": USER_AGENT}
        self._timeout = httpx.Timeout(http_timeout)
        # A long poll holds the response for up to long_poll_seconds: read past that.
        self._poll_timeout = httpx.Timeout(http_timeout, read=long_poll_seconds + http_timeout)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"  # never the credential

    def _request(self, send: _protocol.Send) -> dict[str, Any]:
        """httpx's request() arguments for one step of a plan (_protocol)."""
        return {
            "method": send.method,
            "url": send.path,
            "json": send.json,
            "params": send.params,
            "headers": send.headers,
            "timeout": self._poll_timeout if send.long_poll else self._timeout,
        }


class Console(_ConsoleBase):
    """A blocking client. Thread-safe: one Console can serve many threads."""

    def __init__(
        self,
        url: str | None = None,
        credential: str | None = None,
        *,
        retry: RetryPolicy | None = None,
        http_timeout: float = 10.0,
        long_poll_seconds: int = LONG_POLL_SECONDS,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(
            url,
            credential,
            retry=retry,
            http_timeout=http_timeout,
            long_poll_seconds=long_poll_seconds,
        )
        self._http = httpx.Client(
            base_url=self.url, headers=self._headers, timeout=self._timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Console:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- The I/O: carrying out the protocol's plans ---------------------------------------

    def _run(self, plan: _protocol.Plan[R]) -> R:
        running = _protocol.Running(plan)
        while (step := running.next_step()) is not None:
            try:
                if isinstance(step, _protocol.Sleep):
                    time.sleep(step.seconds)
                else:
                    running.answer(self._http.request(**self._request(step)))
            except BaseException as error:
                running.fail(error)
        return running.result

    # --- The API ---------------------------------------------------------------------------

    def submit(
        self,
        tool: str,
        arguments: Mapping[str, Any],
        *,
        summary: str | None = None,
        reasoning: str | None = None,
        confidence: float | None = None,
        impact: str | None = None,
        context: Mapping[str, Any] | None = None,
        labels: list[str] | None = None,
        timeout: Timeout | None = None,
        run: str | None = None,
        arguments_schema: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Approval:
        """Create an approval request and return at once, usually still pending."""
        body = _wire.create_body(
            tool=tool,
            arguments=arguments,
            summary=summary,
            reasoning=reasoning,
            confidence=confidence,
            impact=impact,
            context=context,
            labels=labels,
            timeout=timeout,
            run=run,
            arguments_schema=arguments_schema,
        )
        return self._run(_protocol.submit(self, body, idempotency_key))

    def get(self, request_id: str, *, wait: int = 0) -> Approval:
        """The request's current state; with `wait`, a long poll of up to that many seconds."""
        return self._run(_protocol.get(self, request_id, wait=wait))

    def wait(self, request_id: str | Approval, *, timeout: float | None = None) -> Decision:
        """Block until the request is decided, expires or is cancelled, and return the decision.

        Long polls, reconnecting through outages until the console has been unreachable for
        `retry.give_up_after` seconds (then ConsoleUnreachable). With `timeout`, raises
        TimeoutError if the request is still pending after that many seconds.
        """
        return self._run(_protocol.wait(self, request_id, timeout=timeout))

    def cancel(self, request_id: str) -> Approval:
        """Withdraw a pending request. Returns its state (already decided requests stay so)."""
        return self._run(_protocol.cancel(self, request_id))

    def report_outcome(
        self,
        request_id: str,
        status: str,
        *,
        result: Any = None,
        error: str | None = None,
        duration_ms: int | None = None,
        cost: float | str | None = None,
        currency: str | None = None,
    ) -> Approval:
        """Tell the console what the decided call did: "succeeded", "failed" or "not_executed".

        Idempotent: the same report again is answered alike. A different second report raises
        ConsoleApiError 409 `outcome_already_reported`. The decorator reports by itself."""
        body = _wire.outcome_body(
            status=status,
            result=result,
            error=error,
            duration_ms=duration_ms,
            cost=cost,
            currency=currency,
        )
        return self._run(_protocol.report_outcome(self, request_id, body))

    def submit_question(
        self,
        question: str,
        *,
        answer_schema: Mapping[str, Any],
        reasoning: str | None = None,
        impact: str | None = None,
        context: Mapping[str, Any] | None = None,
        labels: list[str] | None = None,
        timeout: Timeout | None = None,
        run: str | None = None,
        tool: str | None = None,
        idempotency_key: str | None = None,
    ) -> Approval:
        """Ask reviewers a question and return at once; `wait()` for the decision."""
        body = _wire.question_body(
            question=question,
            answer_schema=answer_schema,
            reasoning=reasoning,
            impact=impact,
            context=context,
            labels=labels,
            timeout=timeout,
            run=run,
            tool=tool,
        )
        return self._run(_protocol.submit_question(self, body, idempotency_key))

    def ask(
        self,
        question: str,
        *,
        answer_schema: Mapping[str, Any],
        timeout: Timeout | None = None,
        impact: str | None = None,
        reasoning: str | None = None,
        context: Mapping[str, Any] | None = None,
        labels: list[str] | None = None,
        run: str | None = None,
        tool: str | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """Ask a person and wait: the answer, which the console has validated against
        `answer_schema`. Raises ApprovalDenied when the reviewer declines to answer (their
        reason in `.reason`), ApprovalExpired when nobody answers by `timeout` (the question's
        deadline), ConsoleUnreachable when the console cannot be asked. No answer, no value."""
        approval = self.submit_question(
            question,
            answer_schema=answer_schema,
            reasoning=reasoning,
            impact=impact,
            context=context,
            labels=labels,
            timeout=timeout,
            run=run or _current_run_id(),
            tool=tool,
            idempotency_key=idempotency_key,
        )
        return self.wait(approval).answer_or_raise()

    def request_approval(
        self,
        tool: str,
        arguments: Mapping[str, Any],
        *,
        summary: str | None = None,
        reasoning: str | None = None,
        confidence: float | None = None,
        impact: str | None = None,
        context: Mapping[str, Any] | None = None,
        labels: list[str] | None = None,
        timeout: Timeout | None = None,
        run: str | None = None,
        arguments_schema: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Decision:
        """Submit and wait: the decision on this call. Check `decision.is_usable()` (or call
        `decision.raise_unless_usable()`) right before acting; approvals expire."""
        approval = self.submit(
            tool,
            arguments,
            summary=summary,
            reasoning=reasoning,
            confidence=confidence,
            impact=impact,
            context=context,
            labels=labels,
            timeout=timeout,
            run=run or _current_run_id(),
            arguments_schema=arguments_schema,
            idempotency_key=idempotency_key,
        )
        return self.wait(approval)

    def requires_approval(
        self,
        *,
        impact: str | None = None,
        summary: str | Callable[..., str] | None = None,
        reasoning: str | None = None,
        confidence: float | None = None,
        context: Mapping[str, Any] | None = None,
        labels: list[str] | None = None,
        timeout: Timeout | None = None,
        tool: str | None = None,
        exclude: tuple[str, ...] = ("self", "cls"),
    ) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Gate a function (sync or async) behind a reviewer's approval.

        `summary` may be a string or a callable given the call's arguments, defaults included.
        Parameters in `exclude` are neither shown nor changeable.
        """

        def decorate(fn: Callable[P, R]) -> Callable[P, R]:
            gate = _gated.Gate.of(
                fn,
                tool=tool,
                exclude=exclude,
                summary=summary,
                reasoning=reasoning,
                confidence=confidence,
                impact=impact,
                context=context,
                labels=labels,
                timeout=timeout,
            )

            def decide(args: tuple[Any, ...], kwargs: dict[str, Any]) -> _gated.DecidedCall:
                asking = gate.asking(args, kwargs)
                with asking.recording_unreachable():
                    decision = self.request_approval(
                        gate.tool, asking.arguments, **asking.request()
                    )
                return asking.decided(decision)

            if inspect.iscoroutinefunction(fn):

                @functools.wraps(fn)
                async def gated_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                    # A blocking Console asks with blocking I/O: keep it off the loop.
                    call = await asyncio.to_thread(decide, args, kwargs)
                    return await _gated.run_async(self, call, fn)

                return gated_async  # type: ignore[return-value]

            @functools.wraps(fn)
            def gated(*args: P.args, **kwargs: P.kwargs) -> R:
                result: R = _gated.run_blocking(self, decide(args, kwargs), fn)
                return result

            return gated

        return decorate

    def run(
        self,
        name: str,
        *,
        external_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        budget: float | None = None,
    ) -> Run:
        """A run context: `with console.run("refund-bot") as run:`. Gated calls inside it are
        tied to the run and recorded in its trace; the run is closed on exit."""
        return Run(self, name=name, external_id=external_id, metadata=metadata, budget=budget)


def _current_run_id() -> str | None:
    run = current_run()
    return run.id if run else None


class AsyncConsole(_ConsoleBase):
    """The asyncio twin of Console, for async agents and async functions."""

    def __init__(
        self,
        url: str | None = None,
        credential: str | None = None,
        *,
        retry: RetryPolicy | None = None,
        http_timeout: float = 10.0,
        long_poll_seconds: int = LONG_POLL_SECONDS,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            url,
            credential,
            retry=retry,
            http_timeout=http_timeout,
            long_poll_seconds=long_poll_seconds,
        )
        self._http = httpx.AsyncClient(
            base_url=self.url, headers=self._headers, timeout=self._timeout, transport=transport
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncConsole:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # --- The I/O: carrying out the protocol's plans ---------------------------------------

    async def _run(self, plan: _protocol.Plan[R]) -> R:
        running = _protocol.Running(plan)
        while (step := running.next_step()) is not None:
            try:
                if isinstance(step, _protocol.Sleep):
                    await asyncio.sleep(step.seconds)
                else:
                    running.answer(await self._http.request(**self._request(step)))
            except BaseException as error:
                running.fail(error)
        return running.result

    async def submit(
        self,
        tool: str,
        arguments: Mapping[str, Any],
        *,
        summary: str | None = None,
        reasoning: str | None = None,
        confidence: float | None = None,
        impact: str | None = None,
        context: Mapping[str, Any] | None = None,
        labels: list[str] | None = None,
        timeout: Timeout | None = None,
        run: str | None = None,
        arguments_schema: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Approval:
        body = _wire.create_body(
            tool=tool,
            arguments=arguments,
            summary=summary,
            reasoning=reasoning,
            confidence=confidence,
            impact=impact,
            context=context,
            labels=labels,
            timeout=timeout,
            run=run,
            arguments_schema=arguments_schema,
        )
        return await self._run(_protocol.submit(self, body, idempotency_key))

    async def get(self, request_id: str, *, wait: int = 0) -> Approval:
        return await self._run(_protocol.get(self, request_id, wait=wait))

    async def wait(self, request_id: str | Approval, *, timeout: float | None = None) -> Decision:
        return await self._run(_protocol.wait(self, request_id, timeout=timeout))

    async def cancel(self, request_id: str) -> Approval:
        return await self._run(_protocol.cancel(self, request_id))

    async def submit_question(
        self,
        question: str,
        *,
        answer_schema: Mapping[str, Any],
        reasoning: str | None = None,
        impact: str | None = None,
        context: Mapping[str, Any] | None = None,
        labels: list[str] | None = None,
        timeout: Timeout | None = None,
        run: str | None = None,
        tool: str | None = None,
        idempotency_key: str | None = None,
    ) -> Approval:
        """Ask reviewers a question and return at once; `wait()` for the decision."""
        body = _wire.question_body(
            question=question,
            answer_schema=answer_schema,
            reasoning=reasoning,
            impact=impact,
            context=context,
            labels=labels,
            timeout=timeout,
            run=run,
            tool=tool,
        )
        return await self._run(_protocol.submit_question(self, body, idempotency_key))

    async def ask(
        self,
        question: str,
        *,
        answer_schema: Mapping[str, Any],
        timeout: Timeout | None = None,
        impact: str | None = None,
        reasoning: str | None = None,
        context: Mapping[str, Any] | None = None,
        labels: list[str] | None = None,
        run: str | None = None,
        tool: str | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """Ask a person and wait: the answer, which the console has validated against
        `answer_schema`. Raises ApprovalDenied when the reviewer declines to answer (their
        reason in `.reason`), ApprovalExpired when nobody answers by `timeout` (the question's
        deadline), ConsoleUnreachable when the console cannot be asked. No answer, no value."""
        approval = await self.submit_question(
            question,
            answer_schema=answer_schema,
            reasoning=reasoning,
            impact=impact,
            context=context,
            labels=labels,
            timeout=timeout,
            run=run or _current_run_id(),
            tool=tool,
            idempotency_key=idempotency_key,
        )
        return (await self.wait(approval)).answer_or_raise()

    async def request_approval(
        self,
        tool: str,
        arguments: Mapping[str, Any],
        *,
        summary: str | None = None,
        reasoning: str | None = None,
        confidence: float | None = None,
        impact: str | None = None,
        context: Mapping[str, Any] | None = None,
        labels: list[str] | None = None,
        timeout: Timeout | None = None,
        run: str | None = None,
        arguments_schema: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Decision:
        approval = await self.submit(
            tool,
            arguments,
            summary=summary,
            reasoning=reasoning,
            confidence=confidence,
            impact=impact,
            context=context,
            labels=labels,
            timeout=timeout,
            run=run or _current_run_id(),
            arguments_schema=arguments_schema,
            idempotency_key=idempotency_key,
        )
        return await self.wait(approval)

    async def report_outcome(
        self,
        request_id: str,
        status: str,
        *,
        result: Any = None,
        error: str | None = None,
        duration_ms: int | None = None,
        cost: float | str | None = None,
        currency: str | None = None,
    ) -> Approval:
        """See Console.report_outcome."""
        body = _wire.outcome_body(
            status=status,
            result=result,
            error=error,
            duration_ms=duration_ms,
            cost=cost,
            currency=currency,
        )
        return await self._run(_protocol.report_outcome(self, request_id, body))

    def requires_approval(
        self,
        *,
        impact: str | None = None,
        summary: str | Callable[..., str] | None = None,
        reasoning: str | None = None,
        confidence: float | None = None,
        context: Mapping[str, Any] | None = None,
        labels: list[str] | None = None,
        timeout: Timeout | None = None,
        tool: str | None = None,
        exclude: tuple[str, ...] = ("self", "cls"),
    ) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
        """Gate an async function. (For plain functions use Console, which also gates async.)"""

        def decorate(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
            if not inspect.iscoroutinefunction(fn):
                raise TypeError(
                    f"AsyncConsole.requires_approval gates async functions; {fn.__name__} is "
                    "not one. Use Console.requires_approval for plain functions."
                )
            gate = _gated.Gate.of(
                fn,
                tool=tool,
                exclude=exclude,
                summary=summary,
                reasoning=reasoning,
                confidence=confidence,
                impact=impact,
                context=context,
                labels=labels,
                timeout=timeout,
            )

            @functools.wraps(fn)
            async def gated(*args: P.args, **kwargs: P.kwargs) -> R:
                asking = gate.asking(args, kwargs)
                with asking.recording_unreachable():
                    decision = await self.request_approval(
                        gate.tool, asking.arguments, **asking.request()
                    )
                result: R = await _gated.run_async(self, asking.decided(decision), fn)
                return result

            return gated

        return decorate

    def run(
        self,
        name: str,
        *,
        external_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        budget: float | None = None,
    ) -> AsyncRun:
        """`async with console.run("refund-bot") as run:`; see Console.run."""
        return AsyncRun(self, name=name, external_id=external_id, metadata=metadata, budget=budget)
