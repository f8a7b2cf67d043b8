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

The row is asked of the kernel by its 4-tuple over sock_diag netlink (what `ss` uses; any
user may), an exact lookup of about 0.1 ms. Reading /proc/net/tcp instead walks every socket
of the machine (20 ms at 500 sockets here), so it is only the fallback for a kernel without
inet_diag.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct
from pathlib import Path

TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))
MAX_TABLE_BYTES = 256 << 20
"""A bound on what is read (about 150 bytes a socket: more than a million connections)."""
NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 1
NLMSG_ERROR = 2
NLMSG_HEADER = struct.Struct("=IHHII")
INET_DIAG_NOCOOKIE = 0xFFFFFFFF
DIAG_TIMEOUT_S = 2.0


class DiagUnavailable(Exception):
    """This kernel does not answer inet_diag requests (the /proc fallback is used)."""


def _diag_lookup(family: int, local: tuple[str, int], remote: tuple[str, int]) -> int | None:
    """The uid of the live TCP socket with this local and remote address, by one inet_diag
    request (linux/inet_diag.h: inet_diag_req_v2, answered by an inet_diag_msg)."""
    def addr(host: str) -> bytes:
        return socket.inet_pton(family, host).ljust(16, b"\0")

    sockid = (struct.pack("!HH", local[1], remote[1]) + addr(local[0]) + addr(remote[0])
              + struct.pack("=III", 0, INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE))
    request = struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0, 0, 0xFFFFFFFF) + sockid
    message = NLMSG_HEADER.pack(NLMSG_HEADER.size + len(request), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, 1, 0) + request
    netlink = getattr(socket, "AF_NETLINK", None)
    if netlink is None:
        raise DiagUnavailable("no netlink on this system")
    try:
        with socket.socket(netlink, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG) as nl:
            nl.settimeout(DIAG_TIMEOUT_S)
            nl.sendto(message, (0, 0))
            reply = nl.recv(8192)
    except OSError as exc:
        raise DiagUnavailable(str(exc)) from None
    if len(reply) < NLMSG_HEADER.size + 4:
        raise DiagUnavailable("short reply")
    kind = NLMSG_HEADER.unpack_from(reply)[1]
    if kind == NLMSG_ERROR:
        code = -struct.unpack_from("=i", reply, NLMSG_HEADER.size)[0]
        if code == errno.ENOENT:
            return None  # no such socket
        raise DiagUnavailable(errno.errorcode.get(code, str(code)))
    # inet_diag_msg: family, state, timer, retrans (4 bytes), sockid (48), expires, rqueue,
    # wqueue (12), then uid and inode.
    offset = NLMSG_HEADER.size + 4 + 48 + 12
    if kind != SOCK_DIAG_BY_FAMILY or len(reply) < offset + 8:
        raise DiagUnavailable(f"unexpected reply type {kind}")
    uid, inode = struct.unpack_from("=II", reply, offset)
    return uid if inode != 0 else None


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
    try:
        return _diag_peer_uid(want_local, want_remote)
    except DiagUnavailable:
        return _proc_peer_uid(want_local, want_remote)


Address = tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]


def _diag_peer_uid(local: Address, remote: Address) -> int | None:
    """By inet_diag: the client socket as IPv4, else as an IPv6 socket that reached an IPv4
    address through a v4-mapped one (a dual-stack client)."""
    if isinstance(local[0], ipaddress.IPv6Address) or isinstance(remote[0], ipaddress.IPv6Address):
        return _diag_lookup(socket.AF_INET6, (str(local[0]), local[1]), (str(remote[0]), remote[1]))
    uid = _diag_lookup(socket.AF_INET, (str(local[0]), local[1]), (str(remote[0]), remote[1]))
    if uid is not None:
        return uid
    return _diag_lookup(socket.AF_INET6, (f"::ffff:{local[0]}", local[1]), (f"::ffff:{remote[0]}", remote[1]))


def _proc_peer_uid(want_local: Address, want_remote: Address) -> int | None:
    """By reading /proc/net/tcp{,6} (see the module docstring)."""
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
