"""The Nomad adapter: every HTTP call nomadml makes to Nomad goes through here.

It rides on python-nomad's requester (session, token, namespace, region and TLS
handling) but adds what nomadml needs on top: explicit timeouts, the
`X-Nomad-Index` of each answer for blocking queries, the endpoints python-nomad
does not wrap (version tags, job submissions), and translation of failures into
nomadml's error tree with Nomad's own message.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from nomadml.core.failover import Outcome, next_try
from nomadml.errors import Conflict, NomadAPIError, NomadMLError, NomadUnreachable
from nomadml.settings import NomadSettings

Json = Any
SOCKET_FAILURE = "cannot connect to unix socket"

# Blocking queries: Nomad adds up to wait/16 of jitter, so the HTTP timeout must
# comfortably exceed the wait we ask for.
DEFAULT_TIMEOUT = 10.0
RETRIES = 3  # tries per server for a read (core/failover.py decides)
BACKOFF_S = 0.25  # the first wait once every server failed; doubles each round
BLOCKING_WAIT_S = 30


@dataclass(frozen=True)
class Answer:
    status: int
    body: Json
    index: int  # X-Nomad-Index, 0 when absent


# Nomad's words (HTTP 500) when a check-and-set register lost a race: the job changed,
# appeared (planned as new) or vanished (planned as existing) since it was read; all
# three start with Nomad's RegisterEnforceIndexErrPrefix.
LOST_RACES = ("enforcing job modify index", "conflicting job modify index")


class NomadAPI:
    """A thin, typed client for the parts of Nomad's HTTP API nomadml uses."""

    def __init__(self, settings: NomadSettings, session: Any = None) -> None:
        self.settings = settings
        self._session = session
        self._requesters: dict[tuple[str, str], Any] = {}
        self.calls = 0  # HTTP requests made; benchmarks read it
        # The server that answered last: asked first next time (settings.addresses index).
        self.server = 0

    def scoped(self, namespace: str | None) -> NomadAPI:
        """The same client for another namespace (job and deployment calls)."""
        import dataclasses

        if not namespace or namespace == (self.settings.namespace or "default"):
            return self
        return type(self)(dataclasses.replace(self.settings, namespace=namespace), self._session)

    # -- transport -----------------------------------------------------------------

    def _requester(self, first_segment: str, server: int = 0) -> Any:
        address = self.settings.addresses[server]
        requester = self._requesters.get((address, first_segment))
        if requester is None:
            import requests
            from nomad.api.base import Requester

            from nomadml.adapters.unix_socket import URL, UnixSocketAdapter, socket_path

            s = self.settings
            cert = (s.client_cert, s.client_key) if s.client_cert and s.client_key else ()
            if self._session is None:
                self._session = requests.Session()
            url = address
            path = socket_path(address)
            if path is not None:  # the Task API: a task's own agent, on a unix socket
                self._session.mount(URL, UnixSocketAdapter(path))
                url = URL
            kind = type(f"Endpoint_{first_segment}", (Requester,), {"ENDPOINT": first_segment})
            requester = kind(
                address=url,
                namespace=s.namespace,
                token=s.token,
                region=s.region,
                verify=s.verify,
                cert=cert,
                timeout=DEFAULT_TIMEOUT,
                session=self._session,
            )
            self._requesters[(address, first_segment)] = requester
        return requester

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Json = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Answer:
        """Call `/v1/<path>` on the first server that answers; raise NomadUnreachable
        or NomadAPIError on failure. Which failures are tried again, and where, is
        core/failover.py's decision: reads move on to the next server, writes only
        when the server never saw them (check-and-set settles the rest)."""
        segments = path.strip("/").split("/")
        params = dict(params or {})
        if self.settings.namespace:
            params.setdefault("namespace", self.settings.namespace)
        started, attempt, tried = time.monotonic(), 0, set()
        while True:
            attempt += 1
            server = self.server
            tried.add(server)
            self.calls += 1
            try:
                response = self._requester(segments[0], server).request(
                    *segments[1:],
                    method=method.lower(),
                    params=params,
                    json=body,
                    timeout=timeout,
                )
                break
            except Exception as err:
                failure, outcome = self._failure(method, path, err, server)
            step = next_try(
                outcome,
                read=method.upper() == "GET",
                attempt=attempt,
                server=server,
                servers=len(self.settings.addresses),
                elapsed_s=time.monotonic() - started,
                attempts_per_server=RETRIES,
                backoff_s=BACKOFF_S,
            )
            if step is None:
                raise self._all_tried(failure, tried)
            self.server = step.server
            time.sleep(step.delay_s)
        index = int(response.headers.get("X-Nomad-Index", "0") or 0)
        text = response.text
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = text
        return Answer(response.status_code, parsed, index)

    def open_stream(self, path: str, params: dict[str, Any], read_timeout: float) -> Any:
        """A streaming GET (the event stream); the caller iterates and closes it."""
        segments = path.strip("/").split("/")
        params = dict(params)
        if self.settings.namespace:
            params.setdefault("namespace", self.settings.namespace)
        # One try per server: the caller reconnects (and resyncs) on its own schedule.
        for turn in range(len(self.settings.addresses)):
            server = (self.server + turn) % len(self.settings.addresses)
            self.calls += 1
            try:
                response = self._requester(segments[0], server).request(
                    *segments[1:],
                    method="get",
                    params=params,
                    timeout=(DEFAULT_TIMEOUT, read_timeout),
                    stream=True,
                )
            except Exception as err:
                failure, outcome = self._failure("GET", path, err, server)
                if outcome not in (Outcome.NOT_SENT, Outcome.LOST, Outcome.TRANSIENT):
                    raise failure from None
                continue
            self.server = server
            return response
        raise self._all_tried(failure, set(range(len(self.settings.addresses)))) from None

    def _failure(
        self, method: str, path: str, err: Exception, server: int
    ) -> tuple[Exception, Outcome]:
        """nomadml's error for a failed try, and what kind of failure it was."""
        import nomad.api.exceptions as nexc
        import requests

        address = self.settings.addresses[server]
        cause: object = err.nomad_resp if isinstance(err, nexc.BaseNomadException) else err
        if isinstance(cause, requests.Response):
            failure = self._translate(method, path, cause)
            if not isinstance(failure, NomadAPIError) or isinstance(failure, Conflict):
                return failure, Outcome.FINAL
            if _leaderless(failure.message):
                return failure, Outcome.LEADERLESS
            if failure.status == 403 and "token not found" in failure.message.lower():
                return failure, Outcome.UNKNOWN_TOKEN
            if failure.status in (500, 502, 503, 504):
                return failure, Outcome.TRANSIENT
            return failure, Outcome.FINAL
        if not isinstance(cause, (requests.RequestException, nexc.TimeoutNomadException)):
            raise err
        return NomadUnreachable(address, _reason(cause)), (
            Outcome.NOT_SENT if _never_sent(cause) else Outcome.LOST
        )

    def _all_tried(self, failure: Exception, tried: set[int]) -> Exception:
        """With several servers, an unreachable cluster is named whole."""
        if isinstance(failure, NomadUnreachable) and len(tried) > 1:
            reason = str(failure).split(": ", 1)[-1]
            names = ", ".join(self.settings.addresses[i] for i in sorted(tried))
            return NomadUnreachable(names, f"no server answered (last: {reason})")
        return failure

    def _translate(self, method: str, path: str, resp: Any) -> Exception:
        import requests

        if not isinstance(resp, requests.Response):
            return NomadUnreachable(self.settings.address, _reason(resp))
        text = resp.text or resp.reason or ""
        if resp.status_code == 409 or any(race in text.lower() for race in LOST_RACES):
            return Conflict(method.upper(), "/v1/" + path, resp.status_code, text)
        if resp.status_code == 403:
            from urllib.parse import parse_qs, urlsplit

            from nomadml.core.acl import needed

            query = parse_qs(urlsplit(str(getattr(resp, "url", "") or "")).query)
            need = needed(method, path, (query.get("prefix") or [""])[0])
            hint = (
                f": it needs {need}; `nomadml policy` prints policies that have it" if need else ""
            )
            if "token not found" in text.lower() or self._token_refused(path):
                text = f"NOMAD_TOKEN is not a token Nomad knows (expired or revoked?): {text}"
            else:
                text = f"permission denied (check NOMAD_TOKEN and its policy{hint}): {text}"
        return NomadAPIError(method.upper(), "/v1/" + path, resp.status_code, text)

    def _token_refused(self, path: str) -> bool:
        """After a 403: is the token itself refused (unknown, expired, revoked)? Nomad
        then says only "Permission denied" on most paths; its own token is readable by
        any valid token, so asking for it tells the two apart."""
        if not self.settings.token or path == "acl/token/self":
            return False
        try:
            self.request("GET", "acl/token/self")
        except NomadAPIError as err:
            return err.status == 403
        except NomadMLError:
            return False
        return False

    # -- cluster -------------------------------------------------------------------

    def leader(self) -> str:
        return str(self.request("GET", "status/leader").body or "")

    def agent_self(self) -> Json:
        return self.request("GET", "agent/self").body

    # -- jobs ----------------------------------------------------------------------

    def parse_hcl(self, hcl: str, variables: dict[str, str] | None = None) -> Json:
        """Nomad's own HCL2 parse (canonicalized), so we submit what Nomad would."""
        body: dict[str, Any] = {"JobHCL": hcl, "Canonicalize": True}
        if variables:
            body["Variables"] = "\n".join(f"{k} = {json.dumps(v)}" for k, v in variables.items())
        return self.request("PUT", "jobs/parse", body=body).body

    def validate(self, job: Json) -> list[str]:
        """Server-side validation; Nomad answers 200 even when the job is invalid."""
        body = self.request("PUT", "validate/job", body={"Job": job}).body or {}
        errors = list(body.get("ValidationErrors") or [])
        if not errors and body.get("Error"):
            errors = [str(body["Error"])]
        return [str(e) for e in errors]

    def plan(self, job: Json, diff: bool = True) -> Json:
        return self.request("PUT", f"job/{job['ID']}/plan", body={"Job": job, "Diff": diff}).body

    def register(
        self,
        job: Json,
        *,
        enforce_index: int | None,
        source: str | None = None,
        variables: str = "",
    ) -> Json:
        """Register with check-and-set: `enforce_index` 0 means "only if new"."""
        body: dict[str, Any] = {"Job": job}
        if enforce_index is not None:
            body["EnforceIndex"] = True
            body["JobModifyIndex"] = enforce_index
        if source is not None:
            body["Submission"] = {"Source": source, "Format": "hcl2", "Variables": variables}
        return self.request("PUT", f"job/{job['ID']}", body=body).body

    def _get_or_none(self, path: str) -> Json | None:
        """A read where 404 means "there is none"."""
        try:
            return self.request("GET", path).body
        except NomadAPIError as err:
            if err.status == 404:
                return None
            raise

    def job(self, job_id: str) -> Json | None:
        return self._get_or_none(f"job/{job_id}")

    def job_versions(self, job_id: str) -> list[Json]:
        body = self.request("GET", f"job/{job_id}/versions").body or {}
        return list(body.get("Versions") or [])

    def job_submission(self, job_id: str, version: int) -> Json:
        return self.request("GET", f"job/{job_id}/submission", params={"version": version}).body

    def job_allocations(self, job_id: str) -> list[Json]:
        return list(self.request("GET", f"job/{job_id}/allocations").body or [])

    def latest_deployment(self, job_id: str) -> Json | None:
        return self.request("GET", f"job/{job_id}/deployment").body

    def tag_version(self, job_id: str, tag: str, version: int, description: str) -> None:
        self.request(
            "PUT",
            f"job/{job_id}/versions/{tag}/tag",
            body={"Version": version, "Description": description},
        )

    def untag_version(self, job_id: str, tag: str) -> None:
        self.request("DELETE", f"job/{job_id}/versions/{tag}/tag")

    def job_services(self, job_id: str) -> list[Json]:
        return list(self.request("GET", f"job/{job_id}/services").body or [])

    def evaluation(self, eval_id: str, index: int = 0) -> Answer:
        return self.get(f"evaluation/{eval_id}", index)

    def task_log_tail(
        self, alloc_id: str, task: str, kind: str = "stderr", size: int = 2048
    ) -> str:
        """The last `size` bytes a task wrote to stderr/stdout (empty if unavailable)."""
        try:
            answer = self.request(
                "GET",
                f"client/fs/logs/{alloc_id}",
                params={
                    "task": task,
                    "type": kind,
                    "origin": "end",
                    "offset": size,
                    "plain": "true",
                },
            )
        except NomadAPIError:
            return ""
        return answer.body if isinstance(answer.body, str) else json.dumps(answer.body)

    def get_variable(self, path: str) -> Json | None:
        return self._get_or_none(f"var/{path}")

    def _put_variable(self, path: str, params: dict[str, Any] | None, **fields: Any) -> Json:
        body: dict[str, Any] = {"Path": path, **fields}
        if self.settings.namespace:
            body["Namespace"] = self.settings.namespace
        return self.request("PUT", f"var/{path}", params=params, body=body).body

    def put_variable(self, path: str, items: dict[str, str], cas: int | None = None) -> Json:
        """Write a Nomad Variable; with `cas`, only if its ModifyIndex is still `cas`."""
        return self._put_variable(path, {"cas": cas} if cas is not None else None, Items=items)

    def acquire_lock(self, path: str, ttl: str, items: dict[str, str]) -> str:
        """Take Nomad's lock on a variable (decided inside the FSM); 409 -> Conflict."""
        lock = {"TTL": ttl, "LockDelay": "1s"}
        body = self._put_variable(path, {"lock-acquire": ""}, Items=items, Lock=lock)
        return str(((body or {}).get("Lock") or {}).get("ID", ""))

    def release_lock(self, path: str, lock_id: str) -> None:
        self._put_variable(path, {"lock-release": ""}, Lock={"ID": lock_id})

    def list_variables(self, prefix: str) -> list[Json]:
        return list(self.request("GET", "vars", params={"prefix": prefix}).body or [])

    def stop_job(self, job_id: str, purge: bool = False) -> Json:
        return self.request("DELETE", f"job/{job_id}", params={"purge": str(purge).lower()}).body

    # -- deployments ---------------------------------------------------------------

    def deployment(
        self, deployment_id: str, index: int = 0, wait: float = BLOCKING_WAIT_S
    ) -> Answer:
        """A deployment; with index > 0 this is a blocking query."""
        return self.get(f"deployment/{deployment_id}", index, wait)

    def deployment_allocations(self, deployment_id: str, index: int = 0) -> Answer:
        return self.get(f"deployment/allocations/{deployment_id}", index)

    def promote(self, deployment_id: str) -> Json:
        return self.request(
            "PUT",
            f"deployment/promote/{deployment_id}",
            body={"DeploymentID": deployment_id, "All": True},
        ).body

    def fail_deployment(self, deployment_id: str) -> Json:
        return self.request(
            "PUT", f"deployment/fail/{deployment_id}", body={"DeploymentID": deployment_id}
        ).body

    # -- services ------------------------------------------------------------------

    def service(self, name: str) -> list[Json]:
        return list(self.request("GET", f"service/{name}").body or [])

    def get(self, path: str, index: int = 0, wait: float = BLOCKING_WAIT_S) -> Answer:
        """A read; with index > 0 a blocking query, answered once Nomad's index for
        `path` passes `index` or after `wait` seconds (then with the same index)."""
        if index <= 0:
            return self.request("GET", path)
        return self.request(
            "GET",
            path,
            params={"index": index, "wait": f"{max(1, int(wait * 1000))}ms"},
            timeout=wait * 1.25 + 5,
        )


def _leaderless(message: str) -> bool:
    """Nomad's words when the server asked could not reach a leader at all: no leader
    elected yet, or the old leader's address refuses connections (it died and the
    election is under way), or the agent could not authenticate the request at a
    server (seen on a client's Task API for ~20 s after the leader was killed: "Server
    error authenticating request"). Either way the request was never applied."""
    text = message.lower()
    return (
        "no cluster leader" in text
        or ("failed to get conn" in text and "connection refused" in text)
        or "error authenticating request" in text
    )


def _never_sent(err: object) -> bool:
    """True when the connection itself failed (refused, connect timeout, TLS handshake):
    the server never saw the request."""
    import requests
    from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

    if isinstance(err, (requests.exceptions.ConnectTimeout, requests.exceptions.SSLError)):
        return True
    seen: object = err
    for _ in range(6):  # requests -> urllib3 MaxRetryError -> its reason
        if isinstance(seen, (NewConnectionError, ConnectTimeoutError)):
            return True
        args = getattr(seen, "args", ())
        seen = getattr(seen, "reason", None) or (args[0] if args else None)
        if seen is None:
            return False
    return False


def _reason(err: object) -> str:
    text = str(err)
    socket_failure = text.find(SOCKET_FAILURE)  # the Task API's socket (unix_socket.py)
    if socket_failure >= 0:
        return text[socket_failure:].split('"', 1)[0].split("')", 1)[0]
    if "Connection refused" in text:
        return "connection refused (is the agent running? check NOMAD_ADDR)"
    if "CERTIFICATE_VERIFY_FAILED" in text and "match" in text:
        return "the server's TLS certificate is not for this address (hostname mismatch)"
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "TLS certificate not trusted (set NOMAD_CACERT to the CA that signed it)"
    if "CERTIFICATE_REQUIRED" in text or "BAD_CERTIFICATE" in text or "UNKNOWN_CA" in text:
        return (
            "the server refused nomadml's client certificate (set NOMAD_CLIENT_CERT and "
            "NOMAD_CLIENT_KEY to a certificate its CA signed)"
        )
    return text.splitlines()[0][:200] if text else type(err).__name__
