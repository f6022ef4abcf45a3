"""A real webhook receiver on loopback, in a thread, that verifies like the spec tells receivers.

It knows its registrations (registration_id -> secret) in advance, checks every signature over
the exact body bytes, the timestamp and the message id, and can be told to fail the first
attempts of each event with 500, or to hold its answer to the next event it accepts (a slow
receiver: the sender may die while it waits).
"""

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def new_secret() -> str:
    import secrets

    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def signature_valid(secret: str, headers: Any, body: bytes) -> bool:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    offered = [
        s.removeprefix("v1,") for s in headers["webhook-signature"].split() if s.startswith("v1,")
    ]
    fresh = abs(time.time() - int(headers["webhook-timestamp"])) <= 300
    return fresh and any(hmac.compare_digest(expected, s) for s in offered)


@dataclass
class Receiver:
    url: str = ""
    registrations: dict[str, str] = field(default_factory=dict)  # registration_id -> secret
    instances: dict[str, str] = field(default_factory=dict)  # instance_id -> secret
    verifications: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)  # accepted, deduplicated
    attempts: dict[str, int] = field(default_factory=dict)  # event id -> attempts seen
    invalid: list[str] = field(default_factory=list)
    fail_first: int = 0
    verification_delay: float = 0.0
    # The next accepted event's answer waits this long (once); `holding` is set meanwhile.
    hold_next: float = 0.0
    holding: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def expect(self, registration_id: str, secret: str) -> None:
        self.registrations[registration_id] = secret

    def delivery(self) -> dict[str, str]:
        """A new registration this receiver expects, as an instance's `delivery` names it."""
        registration_id, secret = str(uuid.uuid4()), new_secret()
        self.expect(registration_id, secret)
        return {
            "type": "webhook",
            "url": self.url,
            "registration_id": registration_id,
            "signing_secret": secret,
        }

    def handle(self, headers: Any, body: bytes) -> tuple[int, bytes]:
        message = json.loads(body)
        if message.get("type") == "webhook.verification":
            time.sleep(self.verification_delay)
        with self.lock:
            if message.get("id") != headers.get("webhook-id"):
                self.invalid.append("id mismatch")
                return 400, b""
            if message["type"] == "webhook.verification":
                secret = self.registrations.get(message["registration_id"])
                if secret is None:
                    return 403, b""
                if not signature_valid(secret, headers, body):
                    self.invalid.append("bad verification signature")
                    return 401, b""
                self.verifications.append(message)
                self.instances[message["instance_id"]] = secret
                return 200, json.dumps({"challenge": message["challenge"]}).encode()
            secret = self.instances.get(message.get("instance_id", ""))
            if secret is None or not signature_valid(secret, headers, body):
                self.invalid.append(f"bad event signature {message}")
                return 401, b""
            self.attempts[message["id"]] = self.attempts.get(message["id"], 0) + 1
            if self.attempts[message["id"]] <= self.fail_first:
                return 500, b"try again"
            if all(event["id"] != message["id"] for event in self.events):
                self.events.append(message)
            hold, self.hold_next = self.hold_next, 0.0
        if hold:
            # Accepted (it is in `events`), but the sender hears so only after the hold.
            self.holding.set()
            time.sleep(hold)
        return 204, b""


def serve(receiver: Receiver) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            status, payload = receiver.handle({k.lower(): v for k, v in self.headers.items()}, body)
            try:
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except ConnectionError:
                pass  # the sender died while a held answer waited (see hold_next)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/aap/events"
    return server
