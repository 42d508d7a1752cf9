"""How nomadml reaches Nomad: flags > environment > defaults, with the nomad CLI's
own variable names so an operator's shell works unchanged.

A cluster has several servers: NOMAD_ADDR (or --address, repeated or comma-separated)
may list them, `https://s1:4646,https://s2:4646`; the first is asked first, and the
client moves to the next when one is down (nomadml/adapters/nomad_api.py says when
that is safe). A malformed entry is refused before anything is sent."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from nomadml.errors import BadInput

DEFAULT_ADDRESS = "http://127.0.0.1:4646"


@dataclass(frozen=True)
class NomadSettings:
    address: str = DEFAULT_ADDRESS
    token: str | None = None
    namespace: str | None = None
    region: str | None = None
    ca_cert: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    skip_verify: bool = False
    # More servers of the same cluster, asked in order when `address` does not answer.
    fallbacks: tuple[str, ...] = ()

    @property
    def addresses(self) -> tuple[str, ...]:
        """Every server to ask, the preferred one first."""
        return (self.address, *self.fallbacks)

    @property
    def verify(self) -> bool | str:
        """What `requests` needs: a CA bundle path, True (system CAs) or False."""
        if self.skip_verify:
            return False
        return self.ca_cert or True

    def __repr__(self) -> str:
        # Never let a token reach a log line or a traceback.
        shown = "set" if self.token else "unset"
        return f"NomadSettings(addresses={','.join(self.addresses)!r}, token={shown})"

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, **overrides: str | None
    ) -> NomadSettings:
        """Read NOMAD_* variables; non-None keyword overrides (from flags) win. The
        address (flag or NOMAD_ADDR) may list several servers, comma-separated."""
        env = os.environ if env is None else env
        values: dict[str, object] = {
            "address": env.get("NOMAD_ADDR") or DEFAULT_ADDRESS,
            "token": env.get("NOMAD_TOKEN") or None,
            "namespace": env.get("NOMAD_NAMESPACE") or None,
            "region": env.get("NOMAD_REGION") or None,
            "ca_cert": env.get("NOMAD_CACERT") or None,
            "client_cert": env.get("NOMAD_CLIENT_CERT") or None,
            "client_key": env.get("NOMAD_CLIENT_KEY") or None,
            "skip_verify": env.get("NOMAD_SKIP_VERIFY", "").lower() in ("1", "true", "yes"),
        }
        source = "--address" if overrides.get("address") else "NOMAD_ADDR"
        values.update({k: v for k, v in overrides.items() if v is not None})
        first, *rest = parse_addresses(str(values["address"]), source)
        values["address"], values["fallbacks"] = first, tuple(rest)
        return cls(**values)  # type: ignore[arg-type]


def parse_addresses(text: str, source: str = "NOMAD_ADDR") -> tuple[str, ...]:
    """`http[s]://host[:port]` entries, comma-separated, in order, without duplicates;
    BadInput names the first malformed entry and where it came from."""
    entries = [entry.strip() for entry in text.split(",")]
    found: list[str] = []
    for position, entry in enumerate(entries, 1):
        problem = _address_problem(entry)
        if problem:
            where = f"{source} entry {position} of {len(entries)}" if len(entries) > 1 else source
            raise BadInput(f"{where}: {entry!r} {problem} (want http[s]://host[:port])")
        address = entry.rstrip("/")
        if address not in found:
            found.append(address)
    return tuple(found)


def _address_problem(entry: str) -> str:
    if not entry:
        return "is empty"
    if entry.startswith("unix://"):  # a task's own agent: the Task API's socket
        return "" if entry.startswith("unix:///") else "names no absolute socket path"
    try:
        parts = urlsplit(entry)
        port = parts.port
    except ValueError as err:
        return f"is not an address: {err}"
    if parts.scheme not in ("http", "https"):
        return "has no http:// or https:// scheme"
    if not parts.hostname:
        return "names no host"
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        return "has more than a scheme, host and port"
    if port == 0:
        return "has port 0"
    return ""
