"""Which local user opened a loopback TCP connection, as the kernel tells it (Linux).

A server on 127.0.0.1 is reachable by every user of the machine, and TCP carries no identity.
But on loopback both ends of a connection are sockets of this kernel: the client's socket is a
row of /proc/net/tcp (or tcp6) whose local address is the peer address we accepted from and
whose remote address is our own, and that row's `uid` column is the user that created it.
Nobody can forge it (the row is the kernel's; a user cannot bind a port another user's
connection holds), so it is a check that needs no token to paste and no setting.

A row whose inode is 0 belongs to a socket no process holds any more (closed, or TIME_WAIT,
where the kernel reports uid 0): it proves nothing, so it does not count. Connections from
another network namespace or another machine have no row here: `peer_uid` returns None and
the caller refuses them.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))
MAX_TABLE_BYTES = 256 << 20
"""A bound on what is read (about 150 bytes a socket: more than a million connections)."""


def _address(hex_addr: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]:
    """`0100007F:1F90` (IPv4) or 32 hex digits (IPv6) and a port, as the kernel prints them:
    the address is in host byte order, 32 bits at a time."""
    ip_hex, port_hex = hex_addr.split(":")
    raw = bytes.fromhex(ip_hex)
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4)) if socket.htonl(1) != 1 else raw
    ip = ipaddress.ip_address(words)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip, int(port_hex, 16)


def _normal(host: str, port: int) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]:
    ip = ipaddress.ip_address(host.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip, port


def peer_uid(peer: tuple[str, int], ours: tuple[str, int]) -> int | None:
    """The uid owning the client socket of the connection `peer` -> `ours` (a server's
    `getpeername()` and `getsockname()`), or None when this kernel holds no such live socket."""
    want_local, want_remote = _normal(peer[0], peer[1]), _normal(ours[0], ours[1])
    for table in TABLES:
        try:
            with open(table, "rb") as f:
                text = f.read(MAX_TABLE_BYTES).decode("ascii", errors="replace")
        except OSError:
            continue
        for line in text.splitlines()[1:]:
            fields = line.split()
            if len(fields) < 10:
                continue
            try:
                if _address(fields[1]) != want_local or _address(fields[2]) != want_remote:
                    continue
                uid, inode = int(fields[7]), int(fields[9])
            except ValueError:
                continue
            if inode != 0:
                return uid
    return None


def is_loopback(host: str) -> bool:
    """Whether a bind address is a loopback one (only then can every peer be looked up here)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False
