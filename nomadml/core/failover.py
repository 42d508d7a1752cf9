"""When a call to Nomad may be sent again, and to which server: a pure decision over
what happened to the last try, so table tests can drive every case.

Nomad runs several servers; any of them answers any request (followers forward to the
leader). A call that failed may go to the next server only when repeating it cannot
do a thing twice:

- the connection was never made (refused, connect timeout, TLS handshake refused):
  the server never saw the request, so even a write is safe to send elsewhere;
- the cluster had no leader ("No cluster leader", or the server asked could not even
  connect to the old leader: "failed to get conn ... connection refused"; or, through a
  client agent's Task API, "Server error authenticating request", the authentication
  that comes before anything else failed): nothing was applied, so any call waits for
  an election (bounded) and goes again;
- the server did not know the token ("ACL token not found": each server resolves tokens
  from its own copy of the state, and one that restarted moments ago may lag): nothing
  was applied; each other server is asked once;
- the request was sent and the answer lost (read timeout, connection reset, a 5xx
  from a follower whose leader went away): a read goes again, to the next server;
  a write does not — it may have been applied. nomadml's writes are check-and-set
  (register with EnforceIndex / job modify index, variables with `cas`, locks), so the
  operator's next run finds out what happened instead of doing it twice.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

# A leader election takes a few seconds; a cluster leaderless for longer is down.
LEADERLESS_WAIT_S = 30.0
BACKOFF_S = 0.25
MAX_BACKOFF_S = 2.0


class Outcome(enum.Enum):
    NOT_SENT = "not sent"  # the connection was never made
    LOST = "lost"  # sent; the answer never came (timeout, reset)
    LEADERLESS = "leaderless"  # Nomad refused it: the cluster has no leader right now
    TRANSIENT = "transient"  # a 5xx that is not a refusal (follower lost its leader...)
    UNKNOWN_TOKEN = "unknown token"  # 403 "ACL token not found" from this server
    FINAL = "final"  # an answer that another try would not change (4xx, a lost race)


@dataclass(frozen=True)
class Retry:
    """Send the call again to `addresses[server]` after `delay_s` seconds."""

    server: int
    delay_s: float


def next_try(
    outcome: Outcome,
    *,
    read: bool,
    attempt: int,
    server: int,
    servers: int,
    elapsed_s: float,
    attempts_per_server: int = 3,
    backoff_s: float = BACKOFF_S,
) -> Retry | None:
    """What to do after try number `attempt` (from 1) to server index `server` of
    `servers` failed with `outcome`; None: give up and report the failure."""
    if outcome is Outcome.FINAL:
        return None
    if outcome is Outcome.UNKNOWN_TOKEN:
        return Retry((server + 1) % servers, 0.0) if attempt < servers else None
    if outcome is Outcome.LEADERLESS:
        if elapsed_s >= LEADERLESS_WAIT_S:
            return None
        return Retry((server + 1) % servers, _backoff(attempt, backoff_s))
    if not read and outcome is not Outcome.NOT_SENT:
        return None  # a write that may have been applied is never repeated blindly
    # A refused connection costs nothing: every server gets its tries. An answer that
    # was lost may have cost a whole timeout: the tries are shared, as with one server.
    budget = attempts_per_server * (servers if outcome is Outcome.NOT_SENT else 1)
    if attempt >= budget:
        return None
    nxt = (server + 1) % servers
    # Straight on to the next server; wait only once every server has been tried.
    delay = _backoff(attempt // servers, backoff_s) if attempt % servers == 0 else 0.0
    return Retry(nxt, delay)


def _backoff(rounds: int, base_s: float) -> float:
    return float(min(MAX_BACKOFF_S, base_s * 2 ** max(0, rounds - 1)))
