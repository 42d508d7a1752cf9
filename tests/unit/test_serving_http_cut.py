"""A connection cut mid-answer is a broken connection (status None), never an exception
that would reach the operator as exit 70 (seen once from `router show` during a router
reload: http.client's IncompleteRead is not an OSError)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from nomadml.adapters.serving_http import call


@pytest.fixture
def cutting_server() -> Iterator[tuple[str, list[bytes]]]:
    """A listener on loopback that answers each connection with the next canned reply
    and closes it."""
    replies: list[bytes] = []
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(replies.pop(0))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/x", replies
    sock.close()


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b",  # IncompleteRead
        b"garbage that is no status line\r\n\r\n",  # BadStatusLine
        b"",  # closed before any answer (RemoteDisconnected)
    ],
)
def test_a_cut_answer_is_no_answer(cutting_server: tuple[str, list[bytes]], reply: bytes) -> None:
    url, replies = cutting_server
    replies.append(reply)
    assert call(url, timeout_s=2) == (None, b"")


def test_a_whole_answer_is_read(cutting_server: tuple[str, list[bytes]]) -> None:
    url, replies = cutting_server
    replies.append(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\nno")
    assert call(url, timeout_s=2) == (503, b"no")
