"""A tiny HTTP proxy in front of the live console that can lose responses, answer 503, or hold a
request past the client's timeout.

It stands in for the network between an agent and the console: the console really acts on a
request whose response the proxy then drops, which is exactly the case idempotency keys exist for.
"""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx


class FlakyProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.drop_next = 0  # forward these to the console, then hang up without an answer
        self.unavailable_next = 0  # answer these with unavailable_status, never forwarded
        self.unavailable_status = 503
        self.hold_next = 0  # hold these for hold_seconds (past a client's timeout), never forwarded
        self.hold_seconds = 1.0
        self.retry_after = "0"
        self.seen: list[tuple[str, str, str | None]] = []  # (method, path, Idempotency-Key)
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                proxy.seen.append((self.command, self.path, self.headers.get("Idempotency-Key")))
                with proxy._lock:
                    held = proxy.hold_next > 0
                    proxy.hold_next -= held
                    unavailable = not held and proxy.unavailable_next > 0
                    proxy.unavailable_next -= unavailable
                if held:
                    time.sleep(proxy.hold_seconds)
                    self.close_connection = True  # the client has hung up by now
                    return
                if unavailable:
                    self.send_response(proxy.unavailable_status)
                    self.send_header("Retry-After", proxy.retry_after)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                headers = {
                    key: value
                    for key, value in self.headers.items()
                    if key.lower() not in {"host", "content-length", "connection"}
                }
                answer = httpx.request(
                    self.command,
                    proxy.upstream + self.path,
                    content=body,
                    headers=headers,
                    timeout=40,
                )
                with proxy._lock:
                    drop = proxy.drop_next > 0
                    proxy.drop_next -= drop
                if drop:
                    self.close_connection = True
                    return
                self.send_response(answer.status_code)
                for key, value in answer.headers.items():
                    if key.lower() not in {"content-length", "transfer-encoding", "connection"}:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FlakyProxy":
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()
