"""HTTP over a unix socket for `requests`: Nomad's Task API, the agent's API that
every task reaches at ${NOMAD_SECRETS_DIR}/api.sock with its workload identity (no
operator token in the job, no network address, no TLS client certificate).

NOMAD_ADDR=unix:///secrets/api.sock selects it; the session sends such requests to
`http+unix://task-api`, a name that only this adapter answers (requests refuses
the scheme without it, so nothing can leak onto the network)."""

from __future__ import annotations

import socket
from typing import Any

import requests.adapters
import urllib3.connection
import urllib3.connectionpool

SCHEME = "unix://"
URL = "http+unix://task-api"


def socket_path(address: str) -> str | None:
    """The socket's path for a unix:// address, else None."""
    return address[len(SCHEME) :] if address.startswith(SCHEME) else None


class _Connection(urllib3.connection.HTTPConnection):
    def __init__(self, path: str, **kwargs: Any) -> None:
        super().__init__("localhost", **kwargs)
        self._socket_path = path

    def _new_conn(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        timeout = self.timeout
        sock.settimeout(timeout if isinstance(timeout, (int, float)) else None)
        try:
            sock.connect(self._socket_path)
        except OSError as err:
            sock.close()
            raise urllib3.exceptions.NewConnectionError(
                self, f"cannot connect to unix socket {self._socket_path}: {err}"
            ) from err
        return sock


class _Pool(urllib3.connectionpool.HTTPConnectionPool):
    def __init__(self, path: str, **kwargs: Any) -> None:
        super().__init__("localhost", **kwargs)
        self._socket_path = path

    def _new_conn(self) -> _Connection:
        return _Connection(self._socket_path, timeout=self.timeout.connect_timeout)


class UnixSocketAdapter(requests.adapters.HTTPAdapter):
    """Every request mounted on it goes to one unix socket."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self._pool = _Pool(path)

    def get_connection_with_tls_context(
        self, request: Any, verify: Any, proxies: Any = None, cert: Any = None
    ) -> _Pool:
        return self._pool

    def close(self) -> None:
        self._pool.close()
        super().close()
