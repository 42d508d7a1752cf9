"""How nomadml reaches Nomad: flags > environment > defaults, with the nomad CLI's
own variable names so an operator's shell works unchanged."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

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

    @property
    def verify(self) -> bool | str:
        """What `requests` needs: a CA bundle path, True (system CAs) or False."""
        if self.skip_verify:
            return False
        return self.ca_cert or True

    def __repr__(self) -> str:
        # Never let a token reach a log line or a traceback.
        shown = "set" if self.token else "unset"
        return f"NomadSettings(address={self.address!r}, token={shown})"

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, **overrides: str | None
    ) -> NomadSettings:
        """Read NOMAD_* variables; non-None keyword overrides (from flags) win."""
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
        values.update({k: v for k, v in overrides.items() if v is not None})
        values["address"] = str(values["address"]).rstrip("/")
        return cls(**values)  # type: ignore[arg-type]
