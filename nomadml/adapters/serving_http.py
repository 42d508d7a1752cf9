"""Plain HTTP requests to a serving endpoint (status and body; a refused or broken
connection is status None), for probes that must see exactly what a server sends."""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request


def call(url: str, body: bytes | None = None, timeout_s: float = 5.0) -> tuple[int | None, bytes]:
    """GET (or POST `body` as JSON): (status, body); (None, b"") when nothing answers."""
    request = urllib.request.Request(
        url,
        data=body,
        method="POST" if body is not None else "GET",
        headers={"Content-Type": "application/json"} if body is not None else {},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as err:
        try:
            return int(err.code), err.read()
        except (http.client.HTTPException, OSError):
            return int(err.code), b""
    # A connection cut mid-answer (a router reloading, a server stopping) is a broken
    # connection too: IncompleteRead and BadStatusLine are not OSErrors.
    except (urllib.error.URLError, http.client.HTTPException, OSError):
        return None, b""
