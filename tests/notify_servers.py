"""Real receivers on loopback for notification tests: an SMTP server and a Slack API stand-in.

Both are the edge of the outside world, so they are fakes of Slack and a mail relay, never of
our own code: the notifiers talk to them over real sockets through Django's SMTP backend and the
official slack-sdk.
"""

import email
import email.policy
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RecordingSmtpHandler:
    """Accepts mail, or answers "451 try later" for the first `fail_first` messages."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.refused = 0
        self.fail_first = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        with self.lock:
            if self.refused < self.fail_first:
                self.refused += 1
                return "451 4.3.0 Try again later"
            message = email.message_from_bytes(envelope.content, policy=email.policy.default)
            self.messages.append(message)
        return "250 OK"


@dataclass
class SmtpServer:
    port: int
    handler: RecordingSmtpHandler


@pytest.fixture
def smtp_server(settings) -> Iterator[SmtpServer]:
    handler = RecordingSmtpHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": port, "timeout": 5},
        }
    }
    try:
        yield SmtpServer(port=port, handler=handler)
    finally:
        controller.stop()


@dataclass
class SlackCall:
    method: str
    body: dict[str, Any]
    headers: dict[str, str]


Answer = tuple[int, dict[str, str], dict[str, Any]]


@dataclass
class SlackApi:
    """Records every call; scripted answers (status, headers, body) are used up first: those in
    `scripted` by whatever call comes next, those in `scripted_for[method]` by that method only.

    Like Slack it keeps what was posted: a post to a member id lands in the app's direct message
    with them (a `D…` conversation, also what conversations.open answers), and
    conversations.history lists a conversation's messages newest first, with `oldest`, `limit`
    and cursor paging, and their `metadata` only when asked for (`include_all_metadata`).
    """

    url: str
    calls: list[SlackCall] = field(default_factory=list)
    scripted: list[Answer] = field(default_factory=list)
    scripted_for: dict[str, list[Answer]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    posted: int = 0
    # Runs while Slack is "processing" a post: lets a test decide the request mid-flight.
    on_post: Callable[[], None] | None = None
    # This many posts are stored but their answer is lost: the connection drops, as when the
    # client times out after Slack accepted the message.
    lose_answers: int = 0
    # Each conversation's messages, oldest first.
    conversations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    direct_messages: dict[str, str] = field(default_factory=dict)

    def calls_to(self, method: str) -> list[SlackCall]:
        with self.lock:
            return [call for call in self.calls if call.method == method]

    def messages_in(self, conversation: str) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.conversations.get(conversation, []))

    def conversation_for(self, channel: str) -> str:
        """A member id's direct message with the app; any other id is the conversation itself."""
        if not channel.startswith(("U", "W")):
            return channel
        return self.direct_messages.setdefault(channel, f"D{len(self.direct_messages) + 1:04d}")

    def answer(self, method: str, body: dict[str, Any]) -> Answer | None:
        """The answer to one call, or None: the connection drops without one."""
        if self.scripted:
            return self.scripted.pop(0)
        if self.scripted_for.get(method):
            return self.scripted_for[method].pop(0)
        if method == "chat.postMessage":
            return self._post(body)
        if method == "conversations.open":
            return 200, {}, {"ok": True, "channel": {"id": self.conversation_for(body["users"])}}
        if method == "conversations.history":
            return 200, {}, self._history(body)
        return 200, {}, {"ok": True}

    def _post(self, body: dict[str, Any]) -> Answer | None:
        if self.on_post is not None:
            self.on_post()
        self.posted += 1
        conversation = self.conversation_for(body["channel"])
        message = {"type": "message", "bot_id": "B0APP", "text": body.get("text", "")}
        message["ts"] = f"{int(time.time())}.{self.posted:06d}"
        if body.get("metadata"):
            message["metadata"] = body["metadata"]
        self.conversations.setdefault(conversation, []).append(message)
        if self.lose_answers:
            self.lose_answers -= 1
            return None
        return 200, {}, {"ok": True, "channel": conversation, "ts": message["ts"]}

    def _history(self, query: dict[str, Any]) -> dict[str, Any]:
        oldest = float(query.get("oldest", 0))
        with_metadata = query.get("include_all_metadata") in ("1", "true", "True")
        newest_first = [
            {key: value for key, value in message.items() if key != "metadata" or with_metadata}
            for message in reversed(self.conversations.get(query["channel"], []))
            if float(message["ts"]) > oldest
        ]
        start, limit = int(query.get("cursor") or 0), int(query.get("limit", 100))
        page = newest_first[start : start + limit]
        more = start + limit < len(newest_first)
        return {
            "ok": True,
            "messages": page,
            "has_more": more,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }


def _handler_for(api: SlackApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def do_GET(self) -> None:
            path, _, query = self.path.partition("?")
            body = {key: values[0] for key, values in parse_qs(query).items()}
            self._answer(path.rsplit("/", 1)[-1], body)

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if "json" in self.headers.get("Content-Type", ""):
                body = json.loads(raw or b"{}")
            else:
                body = {key: values[0] for key, values in parse_qs(raw.decode()).items()}
            self._answer(self.path.rsplit("/", 1)[-1], body)

        def _answer(self, method: str, body: dict[str, Any]) -> None:
            with api.lock:
                api.calls.append(SlackCall(method, body, dict(self.headers)))
                answer = api.answer(method, body)
            if answer is None:
                self.close_connection = True
                return
            status, headers, content = answer
            payload = json.dumps(content).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

    return Handler


@pytest.fixture
def slack_api(settings) -> Iterator[SlackApi]:
    api = SlackApi(url="")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(api))
    api.url = f"http://127.0.0.1:{server.server_address[1]}/api/"
    thread = threading.Thread(target=server.serve_forever, name="slack-api", daemon=True)
    thread.start()
    settings.SLACK_BOT_TOKEN = "xoxb-test-token"
    settings.SLACK_SIGNING_SECRET = "test-signing-secret"
    settings.SLACK_API_BASE_URL = api.url
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
