"""Keep other local users off the embedded server's ports: an nftables table per state dir.

`temporal server start-dev` has no authentication and no TLS flags: whoever can connect to its
gRPC port or its web UI may list, start, signal, cancel and terminate every workflow, which on
the local cloud means running programs as the owner. It listens on 127.0.0.1, but every user
of the machine can connect there. We cannot change that Go server, so the kernel keeps the
others out: an `output` hook rule rejects (TCP reset) any loopback connection to the gRPC, UI
and codec ports from a socket whose owner is not the uid that runs the embedded server
(`meta skuid`: the kernel's record of who created the socket, which nobody can forge).

Only root may install it (CAP_NET_ADMIN), so the guard exists when spotctl runs as root and
`nft` is installed. Otherwise the ports stay open to local users: README "Threat model" says
so and how to close it. The supervisor installs the table before it starts the server and
removes it when it stops; `spotctl server stop` removes it too (after a killed supervisor). A
table left by a crash keeps guarding ports until the next start replaces it, which is the safe
way round. Installing replaces the whole table in one nft transaction, so there is never a
moment without a rule while the server runs.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess

from spotctl.config import Settings

NFT_TIMEOUT_S = 10.0
FAMILY = "inet"  # IPv4 and IPv6 in one table


def table_name(settings: Settings) -> str:
    """One table per state dir (many homes may run side by side, each with its own ports)."""
    return "spotctl_" + hashlib.sha256(str(settings.home).encode()).hexdigest()[:16]


def guarded_ports(settings: Settings) -> list[int]:
    e = settings.embedded
    return sorted({p for p in (e.port, e.ui_port, e.codec_port) if p > 0})


def _nft() -> str | None:
    return shutil.which("nft") or next((p for p in ("/usr/sbin/nft", "/sbin/nft") if os.access(p, os.X_OK)), None)


def _run(nft: str, args: list[str], script: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([nft, *args], input=script, capture_output=True, text=True, timeout=NFT_TIMEOUT_S)


def install(settings: Settings) -> str | None:
    """Guard the ports; None when done, else why not (to log: the ports are then open)."""
    if os.geteuid() != 0:
        return "spotctl does not run as root, so it cannot install firewall rules"
    nft = _nft()
    if nft is None:
        return "nft (the nftables package) is not installed"
    name, uid = table_name(settings), os.geteuid()
    ports = ", ".join(str(p) for p in guarded_ports(settings))
    script = (
        f"table {FAMILY} {name} {{}}\n"
        f"flush table {FAMILY} {name}\n"
        f"table {FAMILY} {name} {{\n"
        f"  chain output {{\n"
        f"    type filter hook output priority 0; policy accept;\n"
        f"    oifname \"lo\" tcp dport {{ {ports} }} meta skuid != {uid} reject with tcp reset\n"
        f"  }}\n"
        f"}}\n"
    )
    try:
        done = _run(nft, ["-f", "-"], script)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"nft failed: {exc}"
    if done.returncode != 0:
        return f"nft failed: {done.stderr.strip()[:500]}"
    return None


def remove(settings: Settings) -> None:
    """Remove the table if it exists (a no-op without root or nft)."""
    nft = _nft()
    if os.geteuid() != 0 or nft is None:
        return
    try:
        _run(nft, ["delete", "table", FAMILY, table_name(settings)])
    except (OSError, subprocess.TimeoutExpired):
        pass


def active(settings: Settings) -> bool:
    """Whether this state dir's table is in place (for `spotctl server status`)."""
    nft = _nft()
    if os.geteuid() != 0 or nft is None:
        return False
    try:
        return _run(nft, ["list", "table", FAMILY, table_name(settings)]).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False
