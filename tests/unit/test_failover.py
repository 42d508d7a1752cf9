"""Several Nomad servers: the address list (NOMAD_ADDR / --address) and when a call
goes on to the next server. The rules as a table (core/failover.py), then the adapter
against fake agents on loopback, one of them down."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.fake_nomad import FakeNomad

from nomadml.adapters import nomad_api
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.cli.main import main
from nomadml.core.failover import LEADERLESS_WAIT_S, Outcome, Retry, next_try
from nomadml.errors import BadInput, ExitCode, NomadAPIError, NomadUnreachable
from nomadml.settings import NomadSettings, parse_addresses

IRIS = Path(__file__).resolve().parents[2] / "examples" / "iris" / "iris.toml"

# -- the address list ------------------------------------------------------------------


def test_a_comma_separated_list_keeps_its_order_and_drops_repeats() -> None:
    text = " https://s1:4646 ,https://s2:4646/,https://s1:4646,http://[::1]:4646"
    assert parse_addresses(text) == ("https://s1:4646", "https://s2:4646", "http://[::1]:4646")
    settings = NomadSettings.from_env({"NOMAD_ADDR": "https://a:1,https://b:2"})
    assert (settings.address, settings.fallbacks) == ("https://a:1", ("https://b:2",))
    # A flag beats the environment, list and all.
    flagged = NomadSettings.from_env({"NOMAD_ADDR": "https://a:1"}, address="http://c:3,http://d:4")
    assert flagged.addresses == ("http://c:3", "http://d:4")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "https://a:1,htp://b:2",
            "NOMAD_ADDR entry 2 of 2: 'htp://b:2' has no http:// or https://",
        ),
        ("https://a:1,,https://b:2", "NOMAD_ADDR entry 2 of 3: '' is empty"),
        ("https://a:1,", "NOMAD_ADDR entry 2 of 2: '' is empty"),
        ("127.0.0.1:4646", "NOMAD_ADDR: '127.0.0.1:4646' has no http:// or https:// scheme"),
        ("https://a:1,https://b:99999", "entry 2 of 2: 'https://b:99999' is not an address"),
        ("https://a:1,https://b:2/v1", "'https://b:2/v1' has more than a scheme, host and port"),
        ("https://:4646", "NOMAD_ADDR: 'https://:4646' names no host"),
    ],
)
def test_a_malformed_entry_is_named(text: str, message: str) -> None:
    with pytest.raises(BadInput) as err:
        NomadSettings.from_env({"NOMAD_ADDR": text})
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_the_flag_is_named_when_it_is_the_flag_that_is_wrong() -> None:
    with pytest.raises(BadInput, match=r"^--address entry 2 of 2: 'nope'"):
        NomadSettings.from_env({}, address="http://a:1,nope")


# -- the rules -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "read", "attempt", "server", "expected"),
    [
        # A connection never made: safe for anything, straight to the next server.
        (Outcome.NOT_SENT, True, 1, 0, Retry(1, 0.0)),
        (Outcome.NOT_SENT, False, 1, 0, Retry(1, 0.0)),
        (Outcome.NOT_SENT, False, 2, 1, Retry(2, 0.0)),
        # Every server tried once: wait before the next round.
        (Outcome.NOT_SENT, True, 3, 2, Retry(0, 0.25)),
        (Outcome.NOT_SENT, True, 6, 2, Retry(0, 0.5)),
        # Three rounds: give up.
        (Outcome.NOT_SENT, True, 9, 2, None),
        # Sent, answer lost: a read goes on, a write is never repeated blindly.
        (Outcome.LOST, True, 1, 0, Retry(1, 0.0)),
        (Outcome.LOST, False, 1, 0, None),
        (Outcome.TRANSIENT, True, 1, 2, Retry(0, 0.0)),
        # A lost answer may have cost a timeout: three tries in all, not three per server.
        (Outcome.LOST, True, 3, 2, None),
        (Outcome.TRANSIENT, True, 3, 2, None),
        (Outcome.TRANSIENT, False, 1, 0, None),
        # No leader: Nomad refused before applying; anything waits for the election.
        (Outcome.LEADERLESS, False, 1, 0, Retry(1, 0.25)),
        (Outcome.LEADERLESS, True, 5, 1, Retry(2, 2.0)),
        # A server that does not know the token: each other server once, no more.
        (Outcome.UNKNOWN_TOKEN, False, 1, 2, Retry(0, 0.0)),
        (Outcome.UNKNOWN_TOKEN, True, 2, 0, Retry(1, 0.0)),
        (Outcome.UNKNOWN_TOKEN, True, 3, 1, None),
        # An answer another try would not change.
        (Outcome.FINAL, True, 1, 0, None),
    ],
)
def test_when_a_call_goes_to_the_next_server(
    outcome: Outcome, read: bool, attempt: int, server: int, expected: Retry | None
) -> None:
    step = next_try(outcome, read=read, attempt=attempt, server=server, servers=3, elapsed_s=0.0)
    assert step == expected


def test_one_server_keeps_three_tries_and_a_leaderless_cluster_is_waited_for_in_bounds() -> None:
    def alone(attempt: int) -> Retry | None:
        return next_try(
            Outcome.TRANSIENT, read=True, attempt=attempt, server=0, servers=1, elapsed_s=0.0
        )

    assert [alone(1), alone(2), alone(3)] == [Retry(0, 0.25), Retry(0, 0.5), None]
    late = next_try(
        Outcome.LEADERLESS, read=True, attempt=2, server=0, servers=3, elapsed_s=LEADERLESS_WAIT_S
    )
    assert late is None


# -- the adapter, one server down ------------------------------------------------------


@pytest.fixture()
def down() -> Iterator[str]:
    """An address where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    yield f"http://127.0.0.1:{port}"


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nomad_api, "BACKOFF_S", 0.0)


def two(first: str, second: str) -> NomadAPI:
    return NomadAPI(NomadSettings.from_env({"NOMAD_ADDR": f"{first},{second}"}))


def test_reads_and_unsent_writes_go_to_the_next_server_which_is_then_asked_first(
    fake_nomad: FakeNomad, down: str
) -> None:
    api = two(down, fake_nomad.address)
    assert api.leader() == "127.0.0.1:4647"
    api.register({"ID": "x"}, enforce_index=0)  # refused at the door: safe to send on
    assert [r.method for r in fake_nomad.requests] == ["GET", "PUT"]
    assert api.server == 1 and api.calls == 3  # the dead one was tried once, not again
    assert fake_nomad.put_job({"ID": "x"})["Version"] == 1  # registered exactly once


def test_a_write_whose_answer_was_lost_is_not_repeated_on_another_server(
    fake_nomad: FakeNomad,
) -> None:
    with FakeNomad() as other:
        fake_nomad.script("PUT", "/v1/job/x", 500, b"rpc error: EOF")
        with pytest.raises(NomadAPIError, match="HTTP 500"):
            two(fake_nomad.address, other.address).register({"ID": "x"}, enforce_index=0)
        assert other.requests == []
        # A read in the same state goes on to the next server.
        fake_nomad.script("GET", "/v1/status/leader", 500, b"rpc error: EOF")
        assert two(fake_nomad.address, other.address).leader()
        assert [r.path for r in other.requests] == ["/v1/status/leader"]


@pytest.mark.parametrize(
    "said",
    [
        b"No cluster leader",
        b"rpc error: failed to get conn: dial tcp 127.0.0.1:4702: connect: connection refused",
        b"Server error authenticating request",  # a client's Task API, leader just killed
    ],
)
def test_a_leaderless_refusal_is_sent_again_even_for_a_write(
    fake_nomad: FakeNomad, said: bytes
) -> None:
    with FakeNomad() as other:
        fake_nomad.script("PUT", "/v1/job/x", 500, said)
        two(fake_nomad.address, other.address).register({"ID": "x"}, enforce_index=0)
        assert len(other.requests_to("PUT", "/v1/job/x")) == 1
        assert len(fake_nomad.requests_to("PUT", "/v1/job/x")) == 1


def test_a_server_that_does_not_know_the_token_yet_is_passed_over(
    fake_nomad: FakeNomad,
) -> None:
    with FakeNomad() as other:
        fake_nomad.script("PUT", "/v1/job/x", 403, b"ACL token not found")
        two(fake_nomad.address, other.address).register({"ID": "x"}, enforce_index=0)
        assert len(other.requests_to("PUT", "/v1/job/x")) == 1
        # Alone, or unknown everywhere: one line saying what is wrong with the token.
        other.script("GET", "/v1/status/leader", 403, b"ACL token not found")
        with pytest.raises(NomadAPIError, match="NOMAD_TOKEN is not a token Nomad knows"):
            NomadAPI(NomadSettings.from_env({"NOMAD_ADDR": other.address})).leader()
        assert len(other.requests_to("GET", "/v1/status/leader")) == 1


def test_all_servers_down_is_one_line_naming_them(down: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        other = f"http://127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(NomadUnreachable) as err:
        two(down, other).leader()
    assert str(err.value).startswith(f"cannot reach Nomad at {down}, {other}: no server answered")


# -- the CLI ---------------------------------------------------------------------------


def test_a_bad_entry_stops_the_command_before_anything_is_sent(fake_nomad: FakeNomad) -> None:
    env = {"NOMAD_ADDR": f"{fake_nomad.address},htp://typo:4646"}
    image = "127.0.0.1:5000/iris@sha256:" + "a" * 64
    for args in (
        ["status"],
        ["deploy", str(IRIS), "--version", "1.0.0", "--image", image, "--unregistered"],
    ):
        result = CliRunner(env=env).invoke(main, args)
        assert result.exit_code == int(ExitCode.BAD_INPUT)
        assert result.stderr.strip().splitlines() == [
            "nomadml: error: NOMAD_ADDR entry 2 of 2: 'htp://typo:4646' has no http:// or "
            "https:// scheme (want http[s]://host[:port])"
        ]
    assert fake_nomad.requests == []
    # Repeated --address flags are a list too; the live server answers.
    fake_nomad.script("GET", "/v1/jobs", 200, [])
    result = CliRunner(env={}).invoke(
        main, ["--address", "http://127.0.0.1:1", "--address", fake_nomad.address, "status"]
    )
    assert result.exit_code == 0, result.stderr
