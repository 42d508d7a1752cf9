"""A webhook receiver for unit tests: a real HTTP server on 127.0.0.1 that records
what it gets, so a test checks the bytes and headers nomadml actually sent
(signatures are computed over the body as sent, retries happen over HTTP)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType


class WebhookReceiver:
    """Serves from construction until `close()` (or the end of a `with` block). The
    first `fail_first` deliveries are answered 503, to exercise the sender's retries."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.calls = 0  # every POST, answered 503 or not
        self.received: list[tuple[dict[str, str], bytes]] = []  # (headers, body) kept
        self._lock = threading.Lock()
        self._server = _Server(self)
        # Polling for shutdown every 50 ms keeps close() quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> WebhookReceiver:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _take(self, headers: dict[str, str], body: bytes) -> int:
        """Record one delivery; the status to answer it with."""
        with self._lock:
            self.calls += 1
            if self.calls <= self.fail_first:
                return 503
            self.received.append((headers, body))
            return 204


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, receiver: WebhookReceiver) -> None:
        self.receiver = receiver
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(self.server.receiver._take(dict(self.headers), body))
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass
