"""A fake Nomad agent for unit tests: a real HTTP server on 127.0.0.1 answering the
parts of Nomad's API that nomadml uses, from a small in-memory model.

Why a server and not mocks: nomadml's adapter does real HTTP (python-nomad's
requester, retries, timeouts, a chunked stream), and what matters is how it reacts
to Nomad's answers: status codes, plain-text errors, `X-Nomad-Index`, blocking
queries, check-and-set, the event stream. Why a model and not canned answers only:
answers stay consistent with each other the way Nomad's are (a write moves the
raft index, wakes the blocking reads and publishes an event), so a test says what
happened ("the deployment finished") rather than what each request returns.
What the model never does (a 503 while a leader is elected, a 403, a refused
stream) a test scripts in front of it with `script()`.

Modelled: jobs (Version, JobModifyIndex, register with EnforceIndex), deployments
(latest per job, blocking reads, events), allocations, service registrations,
variables (check-and-set with `cas`), the leader, `/v1/event/stream`. Not modelled:
HCL parsing, plans, evaluations, scheduling, ACLs, locks, regions and namespaces
(there is one, "default"); such a request answers 501 unless scripted.
"""

from __future__ import annotations

import copy
import enum
import json
import queue
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

Json = Any
# What the model answers: status, body (bytes go out verbatim, as Nomad's plain-text
# errors do; anything else as JSON) and the X-Nomad-Index (0: no header).
Reply = tuple[int, Json, int]

LEADER = "127.0.0.1:4647"
MAX_WAIT_S = 600.0  # Nomad caps a blocking query's wait at 10 minutes
DEFAULT_WAIT_S = 300.0  # and waits 5 minutes when none is given


@dataclass(frozen=True)
class Request:
    """One request as the fake saw it: path without the query, percent-decoded."""

    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Canned:
    status: int
    body: Json
    headers: dict[str, str]


class _End(enum.Enum):
    CLEAN = "the final chunk, as an agent that closes the stream sends it"
    ABORT = "no final chunk: the connection drops mid-stream"


class _Stream:
    """One open `/v1/event/stream` connection: its topic filter and, in order, what to
    send it. The model and the test only queue lines; the connection's thread writes."""

    def __init__(self, topics: list[str]) -> None:
        self.topics: dict[str, set[str]] = {}
        for topic in topics or ["*"]:
            name, _, key = topic.partition(":")
            self.topics.setdefault(name, set()).add(key or "*")
        self.outbox: queue.SimpleQueue[bytes | _End] = queue.SimpleQueue()

    def offer(self, event: Json) -> None:
        """Queue `event` if Nomad's filter would let it through: topic `*` or the
        event's, key `*`, the event's Key or one of its FilterKeys."""
        keys = self.topics.get(event["Topic"], set()) | self.topics.get("*", set())
        if keys & {"*", event["Key"], *event["FilterKeys"]}:
            line = {"Index": event["Index"], "Events": [event]}
            self.outbox.put(json.dumps(line).encode())


class FakeNomad:
    """Serves from construction until `close()` (or the end of a `with` block)."""

    def __init__(self, heartbeat_s: float = 10.0) -> None:
        """`heartbeat_s`: how long a stream stays silent before a `{}` (Nomad: 10 s)."""
        self.heartbeat_s = heartbeat_s
        self.requests: list[Request] = []  # every request, in order of arrival
        # One lock for everything; waiting on it is how blocking reads and stream_raw
        # learn of a change. Reentrant so that routes can call the public writers.
        self._cond = threading.Condition(threading.RLock())
        self._closed = False
        self._index = 1  # the raft index: every write moves it
        self._tables: dict[str, int] = {}  # each table's last write, for list reads
        self._jobs: dict[str, Json] = {}
        self._versions: dict[str, list[Json]] = {}  # per job, newest first
        self._deployments: dict[str, Json] = {}
        self._allocs: dict[str, Json] = {}
        self._services: dict[str, Json] = {}
        self._variables: dict[str, Json] = {}
        self._events: list[Json] = []  # the event buffer, replayed to new streams
        self._streams: list[_Stream] = []
        self._canned: dict[tuple[str, str], list[Canned]] = {}
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., Reply]]] = [
            (method, re.compile(pattern), handler)
            for method, pattern, handler in [
                ("GET", r"status/leader", self._leader),
                ("GET", r"job/(?P<id>[^/]+)", self._get_job),
                ("PUT", r"job/(?P<id>[^/]+)", self._register),
                ("DELETE", r"job/(?P<id>[^/]+)", self._deregister),
                ("GET", r"job/(?P<id>[^/]+)/versions", self._job_versions),
                ("GET", r"job/(?P<id>[^/]+)/allocations", self._job_allocations),
                ("GET", r"job/(?P<id>[^/]+)/deployment", self._latest_deployment),
                ("GET", r"job/(?P<id>[^/]+)/services", self._job_services),
                ("GET", r"deployment/(?P<id>[^/]+)", self._get_deployment),
                ("GET", r"deployment/allocations/(?P<id>[^/]+)", self._deployment_allocs),
                ("GET", r"service/(?P<name>[^/]+)", self._service),
                ("GET", r"vars", self._list_variables),
                ("GET", r"var/(?P<path>.+)", self._get_variable),
                ("PUT", r"var/(?P<path>.+)", self._put_variable),
                ("DELETE", r"var/(?P<path>.+)", self._delete_variable),
            ]
        ]
        self._server = _Server(self)
        # Polling for shutdown every 50 ms keeps close() quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    @property
    def address(self) -> str:
        """What NOMAD_ADDR should be."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def index(self) -> int:
        """The raft index now: that of the last write."""
        with self._cond:
            return self._index

    def close(self) -> None:
        """End every stream and blocking read, then stop serving."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self.end_streams()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> FakeNomad:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- what a test asks of it ----------------------------------------------------------

    def script(
        self,
        method: str,
        path: str,
        status: int,
        body: Json = b"",
        headers: dict[str, str] | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next `times` requests to `method path` ("/v1/...", no query) with
        this, before the model sees them (a scripted write changes nothing). `body`:
        bytes verbatim (Nomad's errors are plain text), anything else as JSON."""
        with self._cond:
            answers = self._canned.setdefault((method.upper(), path), [])
            answers.extend([Canned(status, body, dict(headers or {}))] * times)

    def requests_to(self, method: str, path: str) -> list[Request]:
        """The requests made so far to `method path`, in order."""
        with self._cond:
            return [r for r in self.requests if (r.method, r.path) == (method.upper(), path)]

    def put_job(self, job: Json) -> Json:
        """Register `job` (as `PUT /v1/job/<ID>` without EnforceIndex); the stored job."""
        with self._cond:
            return copy.deepcopy(self._store_job(job))

    def put_deployment(self, deployment: Json, event: bool = True) -> Json:
        """Create or replace a deployment (`ID` and `JobID` needed) and, unless `event`
        is False, publish it on the event stream. Without the event it is a change a
        client can only learn by reading, as after an agent restart lost the buffer."""
        with self._cond:
            index = self._write("deployment")
            stored = self._stamp(self._deployments.get(deployment["ID"]), deployment, index)
            self._deployments[stored["ID"]] = stored
            if event:
                self._publish(
                    {
                        "Topic": "Deployment",
                        "Type": "DeploymentStatusUpdate",
                        "Key": stored["ID"],
                        "Namespace": "default",
                        "FilterKeys": [stored["JobID"]],
                        "Index": index,
                        "Payload": {"Deployment": stored},
                    }
                )
            return copy.deepcopy(stored)

    def put_allocation(self, alloc: Json) -> Json:
        """Create or replace an allocation (`ID` and `JobID` needed; `DeploymentID`
        puts it in that deployment's allocations)."""
        with self._cond:
            index = self._write("allocs")
            stored = self._stamp(self._allocs.get(alloc["ID"]), alloc, index)
            self._allocs[stored["ID"]] = stored
            return copy.deepcopy(stored)

    def put_service(self, registration: Json) -> Json:
        """Create or replace a service registration (`ID`, `ServiceName`, `JobID`)."""
        with self._cond:
            index = self._write("service_registrations")
            stored = self._stamp(self._services.get(registration["ID"]), registration, index)
            self._services[stored["ID"]] = stored
            return copy.deepcopy(stored)

    def put_variable(self, path: str, items: dict[str, str]) -> Json:
        """Create or replace a variable, no check-and-set."""
        with self._cond:
            return copy.deepcopy(self._store_variable(path, items))

    def stream_raw(self, line: bytes, wait_s: float = 5.0) -> int:
        """Send `line` verbatim on every open event stream, after waiting up to
        `wait_s` for one to open; for what the model never publishes (an event the
        topic filter should have stopped, a garbled line). How many streams got it."""
        with self._cond:
            self._cond.wait_for(lambda: self._streams, wait_s)
            for stream in self._streams:
                stream.outbox.put(line)
            return len(self._streams)

    def end_streams(self, abort: bool = False) -> None:
        """End every open event stream: cleanly, as an agent closing it, or with
        `abort` by dropping the connection mid-stream (the client sees a broken read)."""
        with self._cond:
            streams, self._streams = self._streams, []
        for stream in streams:
            stream.outbox.put(_End.ABORT if abort else _End.CLEAN)

    # -- the model -------------------------------------------------------------------

    def _write(self, table: str) -> int:
        """A raft write to `table`: the index moves and blocking reads re-check."""
        self._index += 1
        self._tables[table] = self._index
        self._cond.notify_all()
        return self._index

    @staticmethod
    def _stamp(old: Json | None, new: Json, index: int) -> Json:
        return {
            "Namespace": "default",
            **copy.deepcopy(new),
            "CreateIndex": old["CreateIndex"] if old else index,
            "ModifyIndex": index,
        }

    def _publish(self, event: Json) -> None:
        self._events.append(event)
        for stream in self._streams:
            stream.offer(event)

    def _store_job(self, job: Json) -> Json:
        """Every register makes a new version (Nomad skips unchanged jobs; no test
        needs that)."""
        old = self._jobs.get(job["ID"])
        index = self._write("jobs")
        stored = {
            "Status": "pending",
            "Stop": False,
            **self._stamp(old, job, index),
            "Version": old["Version"] + 1 if old else 0,
            "JobModifyIndex": index,
        }
        self._jobs[job["ID"]] = stored
        self._versions.setdefault(job["ID"], []).insert(0, stored)
        return stored

    def _store_variable(self, path: str, items: dict[str, str]) -> Json:
        old, index, now = self._variables.get(path), self._write("variables"), time.time_ns()
        stored = self._stamp(old, {"Path": path, "Items": items}, index)
        stored.update(CreateTime=old["CreateTime"] if old else now, ModifyTime=now)
        self._variables[path] = stored
        return stored

    # -- the routes: each answers (status, body, X-Nomad-Index) under the lock ---------

    def _leader(self, m: re.Match[str], query: dict[str, str], body: Json) -> Reply:
        return 200, LEADER, 0

    def _get_job(self, m: re.Match[str], query: dict[str, str], body: Json) -> Reply:
        job = self._jobs.get(m["id"])
        if job is None:
            return 404, b"job not found", self._tables.get("jobs", 1)
        return 200, job, job["ModifyIndex"]

    def _register(self, m: re.Match[str], query: dict[str, str], body: Json) -> Reply:
        """Nomad's check-and-set on JobModifyIndex: its three refusals, all HTTP 500."""
        body = body or {}
        job, old = body.get("Job") or {}, self._jobs.get(m["id"])
        if job.get("ID") != m["id"]:
            return 400, b"Job ID does not match name", 0
        if body.get("EnforceIndex"):
            want = int(body.get("JobModifyIndex") or 0)
            refusal = ""
            if old and want == 0:
                refusal = "job already exists"
            elif old and want != old["JobModifyIndex"]:
                refusal = f"job exists with conflicting job modify index: {old['JobModifyIndex']}"
            elif not old and want:
                refusal = "job does not exist"
            if refusal:
                return 500, f"Enforcing job modify index {want}: {refusal}".encode(), 0
        stored = self._store_job(job)
        index = stored["JobModifyIndex"]
        answer = {"EvalID": str(uuid.uuid4()), "EvalCreateIndex": index, "Warnings": ""}
        return 200, {**answer, "JobModifyIndex": index, "Index": index}, index

    def _deregister(self, m: re.Match[str], query: dict[str, str], body: Json) -> Reply:
        """Stop (a new version with Stop set) or, with purge=true, forget the job."""
        if m["id"] not in self._jobs:
            return 404, b"job not found", 0
        if query.get("purge") == "true":
            del self._jobs[m["id"]], self._versions[m["id"]]
            index = self._write("jobs")
        else:
            index = self._store_job({**self._jobs[m["id"]], "Stop": True})["JobModifyIndex"]
        answer = {"EvalID": str(uuid.uuid4()), "EvalCreateIndex": index}
        return 200, {**answer, "JobModifyIndex": index, "Index": index}, index

    def _job_versions(self, m: re.Match[str], query: dict[str, str], body: Json) -> Reply:
        versions = self._versions.get(m["id"])
        if not versions:
            return 404, b"job versions not found", self._tables.get("jobs", 1)
        return 200, {"Versions": versions, "Diffs": None}, versions[0]["ModifyIndex"]

    def _job_allocations(self, m: re.Match[str], query: dict[str, str], body: Json) -> Reply:
        allocs = [a for a in self._allocs.values() if a["JobID"] == m["id"]]
        return 200, allocs, self._tables.get("allocs", 1)

    def _latest_deployment(self, m: re.Match[str], query: dict[str, str], body: Json) -> Reply:
        """The job's newest deployment, `null` when it has none (as Nomad answers)."""
        mine = [d for d in self._deployments.values() if d["JobID"] == m["id"]]
        if not mine:
            return 200, None, self._tables.get("deployment", 1)
        latest = max(mine, key=lambda d: d["CreateIndex"])
        return 200, latest, latest["ModifyIndex"]

    def _job_services(self, m: re.Match[str], query: dict[str, str], body: Json) -> Reply:
        services = [s for s in self._services.values() if s["JobID"] == m["id"]]
        return 200, services, self._tables.get("service_registrations", 1)

    def _get_deployment(self, m: re.Match[str], query: dict[str, str], body: Json) -> Reply:
        deployment = self._deployments.get(m["id"])
        if deployment is None:
            return 404, b"deployment not found", self._tables.get("deployment", 1)
        return 200, deployment, deployment["ModifyIndex"]

    def _deployment_allocs(self, m: re.Match[str], query: dict[str, str], body: Json) -> Reply:
        allocs = [a for a in self._allocs.values() if a.get("DeploymentID") == m["id"]]
        return 200, allocs, self._tables.get("allocs", 1)

    def _service(self, m: re.Match[str], query: dict[str, str], body: Json) -> Reply:
        found = [s for s in self._services.values() if s["ServiceName"] == m["name"]]
        return 200, found, self._tables.get("service_registrations", 1)

    def _list_variables(self, m: re.Match[str], query: dict[str, str], body: Json) -> Reply:
        """Metadata only, as Nomad lists them: no Items."""
        prefix = query.get("prefix", "")
        found = [
            {k: v for k, v in var.items() if k != "Items"}
            for path, var in sorted(self._variables.items())
            if path.startswith(prefix)
        ]
        return 200, found, self._tables.get("variables", 1)

    def _get_variable(self, m: re.Match[str], query: dict[str, str], body: Json) -> Reply:
        var = self._variables.get(m["path"])
        if var is None:
            return 404, b"variable not found", self._tables.get("variables", 1)
        return 200, var, var["ModifyIndex"]

    def _cas_conflict(self, path: str, query: dict[str, str]) -> Reply | None:
        """With `cas`, a write goes through only if the variable's ModifyIndex is
        still that (0: it must not exist); else 409 and the variable as it is."""
        if "cas" not in query:
            return None
        current = self._variables.get(path) or {
            "Namespace": "default",
            "Path": path,
            "CreateIndex": 0,
            "ModifyIndex": 0,
        }
        if int(query["cas"]) == current["ModifyIndex"]:
            return None
        return 409, current, current["ModifyIndex"]

    def _put_variable(self, m: re.Match[str], query: dict[str, str], body: Json) -> Reply:
        if {"lock-acquire", "lock-release", "lock-renew"} & query.keys():
            return _not_modelled("PUT", f"/v1/var/{m['path']}?lock-*")
        items = (body or {}).get("Items")
        if not items:
            return 400, b"variable missing required Items object", 0
        conflict = self._cas_conflict(m["path"], query)
        if conflict:
            return conflict
        stored = self._store_variable(m["path"], dict(items))
        return 200, stored, stored["ModifyIndex"]

    def _delete_variable(self, m: re.Match[str], query: dict[str, str], body: Json) -> Reply:
        conflict = self._cas_conflict(m["path"], query)
        if conflict:
            return conflict
        self._variables.pop(m["path"], None)
        return 204, b"", self._write("variables")

    # -- serving ---------------------------------------------------------------------

    def _arrive(self, request: Request) -> Canned | None:
        """Log `request`; the canned answer queued for it, if any."""
        with self._cond:
            self.requests.append(request)
            answers = self._canned.get((request.method, request.path))
            return answers.pop(0) if answers else None

    def _answer(self, method: str, path: str, query: dict[str, str], body: Json) -> Reply:
        """Route to the model. A GET with `index` is a blocking query: answered once
        the answer's index passes it, or when `wait` runs out (with the same index)."""
        method = "PUT" if method == "POST" else method
        found = [
            (handler, match)
            for verb, pattern, handler in self._routes
            if verb == method and (match := pattern.fullmatch(path.removeprefix("/v1/")))
        ]
        if not found:
            return _not_modelled(method, path)
        handler, match = found[0]
        try:
            after = int(query.get("index") or 0) if method == "GET" else 0
            wait_s = _duration(query["wait"]) if "wait" in query else DEFAULT_WAIT_S
        except ValueError as err:
            return 400, str(err).encode(), 0
        deadline = time.monotonic() + min(wait_s, MAX_WAIT_S)
        with self._cond:
            while True:
                reply = handler(match, query, body)
                left = deadline - time.monotonic()
                done = reply[0] != 200 or not after or reply[2] > after
                if done or left <= 0 or self._closed:
                    return copy.deepcopy(reply)
                self._cond.wait(left)

    def _subscribe(self, topics: list[str], start: int) -> _Stream:
        """A new stream: the buffered events from `start` on, then each as published."""
        stream = _Stream(topics)
        with self._cond:
            for event in self._events:
                if event["Index"] >= start:
                    stream.offer(event)
            if self._closed:
                stream.outbox.put(_End.CLEAN)
            else:
                self._streams.append(stream)
                self._cond.notify_all()
        return stream

    def _unsubscribe(self, stream: _Stream) -> None:
        with self._cond:
            if stream in self._streams:
                self._streams.remove(stream)


def _not_modelled(method: str, path: str) -> Reply:
    return 501, f"FakeNomad does not model {method} {path}; script() an answer".encode(), 0


def _duration(text: str) -> float:
    """A Go duration as Nomad parses `wait`: "500ms", "30s", "1m30s"."""
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"Invalid wait time: {text!r}")
    return sum(float(n) * units[u] for n, u in parts)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a stream or blocking read left open never holds up close()

    def __init__(self, fake: FakeNomad) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    """HTTP only: parse, log, then a canned answer, the event stream or the model.
    Every answer closes its connection, so nothing lingers after a test."""

    server: _Server
    protocol_version = "HTTP/1.1"  # chunked streams need it

    def _handle(self) -> None:
        url = urlsplit(self.path)
        pairs = parse_qsl(url.query, keep_blank_values=True)
        request = Request(self.command, unquote(url.path), dict(pairs))
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        fake = self.server.fake
        canned = fake._arrive(request)
        if canned is not None:
            self._send(canned.status, canned.body, fake.index, canned.headers)
            return
        if (request.method, request.path) == ("GET", "/v1/event/stream"):
            topics = [v for k, v in pairs if k == "topic"]
            self._stream(fake._subscribe(topics, int(request.query.get("index") or 0)))
            return
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            self._send(400, b"invalid JSON body", 0)
            return
        self._send(*fake._answer(request.method, request.path, request.query, body))

    do_GET = do_PUT = do_POST = do_DELETE = _handle

    def _send(
        self, status: int, body: Json, index: int, extra: dict[str, str] | None = None
    ) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"X-Nomad-Index": str(index)} if index else {}
        if not isinstance(body, bytes):
            headers["Content-Type"] = "application/json"
        headers.update(extra or {})
        headers.update({"Content-Length": str(len(data)), "Connection": "close"})
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, stream: _Stream) -> None:
        """Newline-delimited JSON in chunks, as Nomad streams it, with a `{}` heartbeat
        after `heartbeat_s` of silence, until the stream is ended or the client goes."""
        fake = self.server.fake
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            while True:
                try:
                    item = stream.outbox.get(timeout=fake.heartbeat_s)
                except queue.Empty:
                    item = b"{}"
                if item is _End.ABORT:
                    return
                if item is _End.CLEAN:
                    self.wfile.write(b"0\r\n\r\n")
                    return
                line = item + b"\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                self.wfile.flush()
        except OSError:
            return  # the client went away
        finally:
            fake._unsubscribe(stream)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the request log is FakeNomad.requests
