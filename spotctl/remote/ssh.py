"""SSHRunner: the Runner of a real VM, over one pooled paramiko connection per node.

Activities build a new runner per call and call it from many threads, so the connection (and
its SFTP session and the node's $HOME) lives in a module-level pool keyed by (user, host, port).
Every failure to reach the node is a `NodeUnreachable`: the Temporal activity retries over
time, so a call makes at most a couple of quick connect tries and never waits long.

A node can vanish in three ways, and each is caught within bounded time:
- killed (preempted): the TCP connection gets EOF/RST at once;
- link cut: keepalives + TCP_USER_TIMEOUT make the kernel drop the socket;
- frozen (TCP alive, nothing answers): only the application notices, so every channel and
  SFTP operation has a silence timeout after which the pooled connection is dropped.

Host keys are pinned in `known_hosts` on first contact (trust on first use). Cloud IPs are
reused by new VMs, so a cloud adapter must call `forget_host` when a NEW instance gets an
address; otherwise its fresh host key is refused as `HostKeyChanged`.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import posixpath
import select
import shlex
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

import paramiko

from spotctl.remote.base import CommandResult, NodeUnreachable
from spotctl.remote.sftp_files import create, lstat, makedirs, put_tree, upload
from spotctl.remote.ssh_reader import ReaderBroken, ReadSession

log = logging.getLogger(__name__)

KEEPALIVE_S = 5
TCP_USER_TIMEOUT_MS = 10_000
_DEAD = (TimeoutError, EOFError, paramiko.SSHException, ConnectionError)
MAX_COMMANDS = 4
"""Concurrent commands or bulk transfers per node: each is a channel and may add a probe
channel; with the shared SFTP session that stays within sshd's default MaxSessions of 10
(a refused channel would look like a dead node)."""
T = TypeVar("T")


class HostKeyChanged(NodeUnreachable):
    """The node answered with another host key than the pinned one: maybe a new VM on a reused
    IP (then the cloud adapter should have called `forget_host`), maybe an impostor."""


class _Conn:
    """One node's live connection: transport, SFTP session (serialised: paramiko's client is
    not safe for concurrent requests) and the cached $HOME."""

    def __init__(self, transport: paramiko.Transport, sftp: paramiko.SFTPClient, home: str) -> None:
        self.transport, self.sftp, self.home = transport, sftp, home
        self.sftp_lock = threading.Lock()
        self.commands = threading.BoundedSemaphore(MAX_COMMANDS)
        self.reader: ReadSession | None = None
        """The node's long-lived reader (ssh_reader.py), started on the first read_files."""
        self.reader_lock = threading.Lock()
        self.reader_broken = False
        """The reader cannot run on this node (no python3 ...): SFTP reads from then on."""


_pool: dict[tuple[str, str, int], _Conn] = {}
_pool_lock = threading.Lock()
_connect_locks: dict[tuple[str, str, int], threading.Lock] = {}
_known_hosts_lock = threading.Lock()


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's SHA256 fingerprint, so errors can be compared with `ssh-keygen -lf`."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")


def _host_entry(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


def forget_host(known_hosts: str, host: str, port: int = 22) -> None:
    """Drop the pinned key of host:port (and any pooled connection to it). For a cloud adapter
    when a NEW instance gets an address: the old VM's key must not block the new one."""
    entry = _host_entry(host, port)
    with _known_hosts_lock:
        try:
            with open(known_hosts) as f:
                lines = f.readlines()
        except FileNotFoundError:
            lines = []
        kept = [ln for ln in lines if entry not in (ln.split() or [""])[0].split(",")]
        if kept != lines:
            tmp = f"{known_hosts}.tmp.{os.getpid()}"
            with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
                f.writelines(kept)
            os.replace(tmp, known_hosts)
    with _pool_lock:
        stale = [k for k in _pool if k[1:] == (host, port)]
    for key in stale:
        _drop(key, None)


def _check_host_key(known_hosts: str, host: str, port: int, key: paramiko.PKey) -> None:
    """Trust on first use: record an unknown host's key, refuse a changed one."""
    entry = _host_entry(host, port)
    with _known_hosts_lock:
        known = paramiko.HostKeys()
        if os.path.exists(known_hosts):
            known.load(known_hosts)
        pinned = known.lookup(entry)
        if pinned:
            if key.get_name() in pinned and pinned[key.get_name()] == key:
                return
            old = ", ".join(fingerprint(k) for k in pinned.values())
            raise HostKeyChanged(f"host key of {entry} changed: pinned {old}, offered {fingerprint(key)} "
                                 f"(a new VM on a reused IP needs forget_host; else refuse)")
        os.makedirs(os.path.dirname(os.path.abspath(known_hosts)), mode=0o700, exist_ok=True)
        fd = os.open(known_hosts, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with open(fd, "a") as f:
            f.write(f"{entry} {key.get_name()} {key.get_base64()}\n")


def _drop(key: tuple[str, str, int], conn: _Conn | None) -> None:
    """Forget a node's connection (only `conn` if given, not a newer one) and close it."""
    with _pool_lock:
        current = _pool.get(key)
        if current is None or (conn is not None and current is not conn):
            current = conn
        else:
            del _pool[key]
    if current is not None:
        current.transport.close()


def close_all() -> None:
    """Close every pooled connection (tests, worker shutdown)."""
    with _pool_lock:
        keys = list(_pool)
    for key in keys:
        _drop(key, None)


class SSHRunner:
    """Runs commands and moves files on one node over SSH; see the module docstring."""

    shares_host_files = False
    """A real VM: host directories must be copied there, never linked."""

    def __init__(self, host: str, *, user: str, key_path: str, known_hosts: str, port: int = 22,
                 python: str = "python3", connect_timeout_s: float = 8.0, silence_timeout_s: float = 20.0) -> None:
        self.host, self.user, self.port, self.python = host, user, port, python
        self.key_path, self.known_hosts = key_path, known_hosts
        self.connect_timeout_s, self.silence_timeout_s = connect_timeout_s, silence_timeout_s
        self._key = (user, host, port)

    def __repr__(self) -> str:
        return f"SSHRunner({self.user}@{self.host}:{self.port})"

    @property
    def home(self) -> str:
        """The node's $HOME, asked once per connection (raises NodeUnreachable)."""
        return self._conn().home

    def close(self) -> None:
        """Close this node's pooled connection (shared with every runner of the node)."""
        _drop(self._key, None)

    # -- connection -------------------------------------------------------------------------

    def _conn(self) -> _Conn:
        with _pool_lock:
            conn = _pool.get(self._key)
            lock = _connect_locks.setdefault(self._key, threading.Lock())
        if conn is not None and conn.transport.is_active():
            return conn
        # One connect per node at a time; the others wait for it, but not forever.
        if not lock.acquire(timeout=2 * self.connect_timeout_s + 2):
            raise NodeUnreachable(f"{self}: another connect to {self.host} is still hanging")
        try:
            with _pool_lock:
                conn = _pool.get(self._key)
            if conn is not None and conn.transport.is_active():
                return conn
            if conn is not None:
                _drop(self._key, conn)
            for attempt in range(2):
                started = time.monotonic()
                try:
                    conn = self._connect()
                    break
                except HostKeyChanged:
                    raise
                except NodeUnreachable:  # a quick second try only after a quick failure
                    if attempt or time.monotonic() - started > 1:
                        raise
                    time.sleep(0.3)
            assert conn is not None  # the loop above breaks with a connection or raises
            with _pool_lock:
                _pool[self._key] = conn
            return conn
        finally:
            lock.release()

    def _connect(self) -> _Conn:
        where = f"{self.user}@{self.host}:{self.port}"
        transport = sock = None
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout_s)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            if hasattr(socket, "TCP_USER_TIMEOUT"):  # a cut link kills the socket, not hangs it
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, TCP_USER_TIMEOUT_MS)
            transport = paramiko.Transport(sock)
            transport.banner_timeout = transport.auth_timeout = self.connect_timeout_s
            transport.handshake_timeout = self.connect_timeout_s
            transport.start_client(timeout=self.connect_timeout_s)
            if not transport.initial_kex_done:  # start_client returns quietly on its time-out
                raise TimeoutError(f"no SSH handshake within {self.connect_timeout_s}s")
            _check_host_key(self.known_hosts, self.host, self.port, transport.get_remote_server_key())
            transport.auth_publickey(self.user, paramiko.PKey.from_path(self.key_path))
            transport.set_keepalive(KEEPALIVE_S)
            with _Watchdog(transport, self.connect_timeout_s):
                sftp = paramiko.SFTPClient.from_transport(transport)
                assert sftp is not None
                sftp.get_channel().settimeout(self.silence_timeout_s)
                home = sftp.normalize(".")  # sftp-server starts in the login's $HOME
            return _Conn(transport, sftp, home)
        except HostKeyChanged:
            if transport is not None:  # it is: the key is checked after it is made
                transport.close()
            raise
        except (OSError, EOFError, paramiko.SSHException) as exc:  # refused, timeout, auth (booting), EOF
            if transport is not None:
                transport.close()
            elif sock is not None:
                sock.close()
            raise NodeUnreachable(f"cannot connect to {where}: {type(exc).__name__}: {exc}") from exc

    def _lost(self, conn: _Conn, what: str, exc: BaseException, silent: bool = False) -> NodeUnreachable:
        """Drop the node's connection and say why, for the NodeUnreachable the caller raises."""
        _drop(self._key, conn)
        if silent or isinstance(exc, TimeoutError):
            why = f"no answer for {self.silence_timeout_s}s (node frozen or link down)"
        else:
            why = f"connection lost ({type(exc).__name__}: {exc})"
        return NodeUnreachable(f"{self}: {what}: {why}")

    def _sftp(self, what: str, fn: Callable[[paramiko.SFTPClient, str], T], bulk: bool = False) -> T:
        """Run fn(sftp, home) on the pooled SFTP session, or for a bulk transfer (which may
        take minutes) on a session of its own, so log shipping is not stuck behind it."""
        conn = self._conn()
        gate = conn.commands if bulk else conn.sftp_lock
        if not gate.acquire(timeout=self.silence_timeout_s):  # its holder drops a silent node
            raise NodeUnreachable(f"{self}: {what}: SFTP still busy after {self.silence_timeout_s}s")
        sftp, watchdog = conn.sftp, _Watchdog(conn.transport, self.silence_timeout_s)
        try:
            if bulk:
                with watchdog:
                    sftp = paramiko.SFTPClient.from_transport(conn.transport)
                    assert sftp is not None
                sftp.get_channel().settimeout(self.silence_timeout_s)
            return fn(sftp, conn.home)
        except (*_DEAD, OSError) as exc:
            if isinstance(exc, _DEAD) or not conn.transport.is_active():
                raise self._lost(conn, what, exc, watchdog.fired) from exc
            raise  # a real file error (permission denied, ...)
        finally:
            if sftp is not conn.sftp:
                sftp.close()
            gate.release()

    # -- Runner -----------------------------------------------------------------------------

    def run(self, argv: list[str], env: dict[str, str] | None = None, timeout: float = 60) -> CommandResult:
        """Env goes in as `env K=V` (sshd refuses SetEnv by default). A silent command is
        fine; a silent node is not: after half the silence timeout without output we open a
        probe channel, which a frozen node cannot answer within the other half. On timeout the channel is closed but the
        remote command is not killed (no pty); agent commands are short."""
        command = shlex.join(["env", *(f"{k}={v}" for k, v in env.items()), *argv] if env else argv)
        what, conn = f"run {shlex.join(argv[:3])}", self._conn()
        deadline = time.monotonic() + timeout
        out, err = bytearray(), bytearray()
        if not conn.commands.acquire(timeout=min(timeout, self.silence_timeout_s)):
            raise NodeUnreachable(f"{self}: {what}: {MAX_COMMANDS} commands already running on the node")
        watchdog = _Watchdog(conn.transport, self.silence_timeout_s)
        try:
            with watchdog:
                chan = conn.transport.open_session(timeout=self.silence_timeout_s)
                chan.exec_command(command)
            with chan:
                poller = select.poll()
                poller.register(chan.fileno(), select.POLLIN)
                quiet_since, probe_after = time.monotonic(), self.silence_timeout_s / 2
                while True:
                    wait = max(0.0, min(deadline, quiet_since + probe_after) - time.monotonic())
                    if chan.eof_received:  # the pipe stays readable after EOF: wait on the status
                        chan.status_event.wait(wait)
                    else:
                        poller.poll(wait * 1000)
                    if _drain(chan, out, err):
                        quiet_since = time.monotonic()
                    # OpenSSH may send the exit status before the last output: wait for EOF too
                    # (as LocalRunner's communicate() waits for the pipes to close).
                    if chan.exit_status_ready() and (chan.eof_received or chan.closed):
                        _drain(chan, out, err)
                        break
                    now = time.monotonic()
                    if now >= deadline:
                        raise NodeUnreachable(f"{self}: {what}: timed out after {timeout}s")
                    if now - quiet_since >= probe_after:
                        try:
                            conn.transport.open_session(timeout=probe_after).close()  # probe
                        except paramiko.SSHException as exc:
                            raise TimeoutError("probe channel not answered") from exc
                        quiet_since = time.monotonic()
        except (*_DEAD, OSError) as exc:  # OSError: a socket closed under us
            raise self._lost(conn, what, exc, watchdog.fired) from exc
        finally:
            conn.commands.release()
        code = chan.recv_exit_status()
        if code == -1:  # the channel closed without an exit status: the connection died
            raise self._lost(conn, what, EOFError("channel closed without an exit status"))
        return CommandResult(code, out.decode(errors="replace"), err.decode(errors="replace"))

    def put_file(self, local_path: str, remote_path: str) -> None:
        def put(sftp: paramiko.SFTPClient, home: str) -> None:
            dest = _path(home, remote_path)
            makedirs(sftp, posixpath.dirname(dest))
            upload(sftp, local_path, dest, lstat(sftp, dest))

        self._sftp(f"put {remote_path}", put, bulk=True)

    def put_dir(self, local_dir: str, remote_dir: str) -> None:
        def put(sftp: paramiko.SFTPClient, home: str) -> None:
            put_tree(sftp, local_dir, _path(home, remote_dir))

        self._sftp(f"put_dir {remote_dir}", put, bulk=True)

    def read_file(self, remote_path: str, offset: int = 0, max_bytes: int = 1 << 20) -> bytes:
        def read(sftp: paramiko.SFTPClient, home: str) -> bytes:
            try:
                with sftp.open(_path(home, remote_path), "rb") as f:
                    size = min(f.stat().st_size or 0, offset + max_bytes) - offset
                    return b"".join(f.readv([(offset, size)])) if size > 0 else b""  # pipelined reads
            except (FileNotFoundError, NotADirectoryError):
                return b""

        return self._sftp(f"read {remote_path}", read)

    def read_files(self, reads: list[tuple[str, int, int]]) -> list[bytes]:
        """All the reads in one round trip, through the node's long-lived reader (one channel,
        one python process per connection; ssh_reader.py); SFTP reads, one after the other,
        where the reader cannot run. Measured in bench/ssh_poll.py (BENCHMARKS.md)."""
        conn = self._conn()
        if not conn.reader_broken:
            if not conn.reader_lock.acquire(timeout=self.silence_timeout_s):  # its holder drops a silent node
                raise NodeUnreachable(f"{self}: read: the reader is still busy after {self.silence_timeout_s}s")
            watchdog = _Watchdog(conn.transport, self.silence_timeout_s)
            try:
                if conn.reader is None:
                    with watchdog:
                        conn.reader = ReadSession(conn.transport, self.python, self.silence_timeout_s)
                return conn.reader.read([(_path(conn.home, p), offset, size) for p, offset, size in reads])
            except ReaderBroken as exc:
                log.info("%s: reads go through SFTP: %s", self, exc)
                conn.reader_broken = True
                if conn.reader is not None:
                    conn.reader.close()
                    conn.reader = None
            except (*_DEAD, OSError) as exc:
                raise self._lost(conn, "read", exc, watchdog.fired) from exc
            finally:
                conn.reader_lock.release()
        return [self.read_file(path, offset, max_bytes) for path, offset, max_bytes in reads]

    def check_alive(self) -> None:
        """One SFTP round trip (connecting if needed): a frozen node fails it within the
        silence timeout, a gone one at once."""
        self._sftp("check_alive", lambda sftp, home: sftp.stat(home))

    def remove_file(self, remote_path: str) -> None:
        def remove(sftp: paramiko.SFTPClient, home: str) -> None:
            try:
                sftp.remove(_path(home, remote_path))
            except FileNotFoundError:
                pass

        self._sftp(f"remove {remote_path}", remove)

    def write_file(self, remote_path: str, data: bytes) -> None:
        """Write a 0600 temp file next to the target, then rename it over: readers see the old
        or the new content, never a torn file."""
        def write(sftp: paramiko.SFTPClient, home: str) -> None:
            dest = _path(home, remote_path)
            makedirs(sftp, posixpath.dirname(dest))
            tmp = f"{posixpath.dirname(dest)}/.{posixpath.basename(dest)}.tmp.{uuid.uuid4().hex[:12]}"
            with create(sftp, tmp, 0o600) as f:
                f.write(data)
            sftp.posix_rename(tmp, dest)

        self._sftp(f"write {remote_path}", write)


class _Watchdog:
    """Closes the transport if a block outlives `seconds`: some paramiko calls (exec_command,
    SFTP session start) wait for the server without any time-out of their own."""

    def __init__(self, transport: paramiko.Transport, seconds: float) -> None:
        self.fired = False
        self._transport = transport
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def _fire(self) -> None:
        self.fired = True
        self._transport.close()

    def __enter__(self) -> None:
        self._timer.start()

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


def _drain(chan: paramiko.Channel, out: bytearray, err: bytearray) -> bool:
    got = False
    while chan.recv_ready():
        out += chan.recv(1 << 16)
        got = True
    while chan.recv_stderr_ready():
        err += chan.recv_stderr(1 << 16)
        got = True
    return got


def _path(home: str, path: str) -> str:
    """`~`, `~/x` and relative paths are under the node's $HOME, as with ssh itself."""
    if path == "~" or path.startswith("~/"):
        path = path[2:]
    return posixpath.normpath(posixpath.join(home, path))
