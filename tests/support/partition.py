"""A cluster client cut off from the rest of the cluster, on one machine: every agent
shares loopback, so a network namespace would cut the client off from the servers'
127.0.0.1 listeners only with routing and NAT added. Instead, packets are dropped on
lo by netfilter, as a partition drops them between hosts: the client agent's process
is moved into a cgroup (v2) of its own and iptables drops

- what that cgroup's sockets send to the servers' RPC ports (its new connections),
- both directions of the connections it had open to them (by its local ports: a
  socket keeps the cgroup it was made in),
- everything to and from the client's dynamic port range (its allocations: the node's
  data plane, as seen from any other host).

Healing removes the rules and moves the process back. Nothing else on the machine is
touched: the rules match only that cgroup, those ports and that range."""

from __future__ import annotations

import contextlib
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

from support.cluster import RUN_DIR, SERVERS

UNIFIED = Path("/sys/fs/cgroup/unified")  # cgroup v2 (hybrid hosts); or /sys/fs/cgroup
RPC_PORTS = ",".join(str(port + 1) for port in SERVERS.values())
DYNAMIC = {"c1": 14000, "c2": 15000, "c3": 16000}  # scripts/cluster.sh: a range per client


def _cgroup2_root() -> Path:
    return UNIFIED if (UNIFIED / "cgroup.procs").exists() else Path("/sys/fs/cgroup")


def _iptables(*args: str) -> None:
    subprocess.run(["iptables", "-w", *args], check=True, capture_output=True)


def _remove(chain: str) -> None:
    """The partition's rules gone (by hand: iptables -D OUTPUT -o lo -j CHAIN;
    iptables -F CHAIN; iptables -X CHAIN). Nothing to remove is no error."""
    for args in (("-D", "OUTPUT", "-o", "lo", "-j", chain), ("-F", chain), ("-X", chain)):
        with contextlib.suppress(subprocess.CalledProcessError):
            _iptables(*args)


def _open_rpc_ports(pid: int) -> list[int]:
    """Local ports of the process's established connections to the servers' RPC."""
    out = subprocess.run(
        ["ss", "-tnpH", "state", "established"], check=True, capture_output=True, text=True
    ).stdout
    ports = []
    rpc = set(RPC_PORTS.split(","))
    for line in out.splitlines():
        fields = line.split()
        if f"pid={pid}," not in line or len(fields) < 4:
            continue
        local, peer = fields[2], fields[3]
        if peer.rsplit(":", 1)[1] in rpc:
            ports.append(int(local.rsplit(":", 1)[1]))
    return ports


def available() -> str | None:
    """Why a partition cannot be made here (None: it can)."""
    try:
        subprocess.run(["iptables", "-w", "-S", "OUTPUT"], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as err:
        return f"iptables does not work here: {err}"
    if not (_cgroup2_root() / "cgroup.procs").exists():
        return "no cgroup v2 hierarchy to match sockets by"
    return None


@contextlib.contextmanager
def partitioned(name: str) -> Iterator[None]:
    """Client `name` (c1, c2, c3) cut off from the servers and from other hosts while
    inside; healed after."""
    pid = int((RUN_DIR / f"cluster-{name}.pid").read_text())
    chain = f"NOMADML-PART-{name}"
    group = _cgroup2_root() / f"nomadml-partition-{name}"
    own = Path(f"/proc/{pid}/cgroup").read_text()
    was = re.search(r"^0::(.*)$", own, re.M)
    home = _cgroup2_root() / (was.group(1).lstrip("/") if was else "")
    group.mkdir(exist_ok=True)
    _remove(chain)  # left by a run that was killed before it could heal
    _iptables("-N", chain)
    try:
        (group / "cgroup.procs").write_text(str(pid))
        low = DYNAMIC[name]
        rules = [
            ["-m", "cgroup", "--path", f"/{group.name}", "-m", "multiport", "--dports", RPC_PORTS],
            ["--dport", f"{low}:{low + 999}"],
            ["--sport", f"{low}:{low + 999}"],
        ]
        for port in _open_rpc_ports(pid):
            rules.append(["--sport", str(port), "-m", "multiport", "--dports", RPC_PORTS])
            rules.append(["--dport", str(port), "-m", "multiport", "--sports", RPC_PORTS])
        for rule in rules:
            _iptables("-A", chain, "-p", "tcp", *rule, "-j", "DROP")
        _iptables("-I", "OUTPUT", "-o", "lo", "-j", chain)
        yield
    finally:
        _remove(chain)
        with contextlib.suppress(OSError):
            (home / "cgroup.procs").write_text(str(pid))
        with contextlib.suppress(OSError):
            group.rmdir()
