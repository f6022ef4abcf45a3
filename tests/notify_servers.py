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


@dataclass
class SlackApi:
    """Records every call; scripted answers (status, headers, body) are used up first."""

    url: str
    calls: list[SlackCall] = field(default_factory=list)
    scripted: list[tuple[int, dict[str, str], dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    posted: int = 0
    # Runs while Slack is "processing" a post: lets a test decide the request mid-flight.
    on_post: Callable[[], None] | None = None

    def calls_to(self, method: str) -> list[SlackCall]:
        with self.lock:
            return [call for call in self.calls if call.method == method]


def _handler_for(api: SlackApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if "json" in self.headers.get("Content-Type", ""):
                body = json.loads(raw or b"{}")
            else:
                body = {key: values[0] for key, values in parse_qs(raw.decode()).items()}
            method = self.path.rsplit("/", 1)[-1]
            with api.lock:
                api.calls.append(SlackCall(method, body, dict(self.headers)))
                if api.scripted:
                    status, headers, answer = api.scripted.pop(0)
                elif method == "chat.postMessage":
                    if api.on_post is not None:
                        api.on_post()
                    api.posted += 1
                    status, headers = 200, {}
                    answer = {"ok": True, "channel": "D0001", "ts": f"1700000000.{api.posted:06d}"}
                else:
                    status, headers, answer = 200, {}, {"ok": True}
            payload = json.dumps(answer).encode()
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
