"""A long-lived reader on a node: one SSH channel running a tiny stdlib Python loop that answers
"these byte ranges of these files" with one line, so a monitor poll costs one round trip and
no process start (bench/ssh_poll.py measures it against SFTP reads and a command per poll).

The protocol is one JSON line each way: the request `[[path, offset, max_bytes], ...]` (absolute
paths), the answer `[base64 | null, ...]` in the same order (null: no such file). The loop ends
when its stdin closes, i.e. with the channel or the connection, so nothing outlives spotctl's
connection on the node.

Any trouble with the reader itself (no python3, a garbled answer) raises `ReaderBroken` and the
runner falls back to SFTP reads; a silent channel raises TimeoutError like every other call.
"""

from __future__ import annotations

import base64
import binascii
import json
import shlex

import paramiko

READER = (
    "import base64,json,sys\n"
    "for line in sys.stdin:\n"
    "    out = []\n"
    "    for path, offset, size in json.loads(line):\n"
    "        try:\n"
    "            with open(path, 'rb') as f:\n"
    "                f.seek(offset)\n"
    "                out.append(base64.b64encode(f.read(size)).decode())\n"
    "        except (FileNotFoundError, NotADirectoryError):\n"
    "            out.append(None)\n"
    "    sys.stdout.write(json.dumps(out) + '\\n')\n"
    "    sys.stdout.flush()\n"
)
ANSWER_SLACK = 4096
"""Bytes an answer may hold beyond its base64 payload (brackets, quotes, nulls)."""


class ReaderBroken(Exception):
    """The reader cannot serve (not started, exited, or answered nonsense): use SFTP instead."""


class ReadSession:
    """One reader process on the node, on its own channel of the pooled connection. Not
    thread-safe: the runner serialises requests."""

    def __init__(self, transport: paramiko.Transport, python: str, timeout_s: float) -> None:
        try:
            self.channel = transport.open_session(timeout=timeout_s)
        except paramiko.ChannelException as exc:  # refused (MaxSessions): the node is fine
            raise ReaderBroken(f"no channel for the reader ({exc})") from exc
        self.channel.settimeout(timeout_s)
        self.channel.exec_command(f"{shlex.quote(python)} -u -c {shlex.quote(READER)}")
        self._buffer = b""

    def read(self, reads: list[tuple[str, int, int]]) -> list[bytes]:
        """The bytes of each (absolute path, offset, max_bytes); b"" for a missing file."""
        if self.channel.closed or self.channel.exit_status_ready():
            raise ReaderBroken("the reader exited")
        self.channel.sendall((json.dumps([list(r) for r in reads]) + "\n").encode())
        limit = sum(4 * (size // 3 + 1) for _, _, size in reads) + ANSWER_SLACK
        line = self._line(limit)
        try:
            answer = json.loads(line)
            if not isinstance(answer, list) or len(answer) != len(reads):
                raise ValueError(f"{len(answer) if isinstance(answer, list) else type(answer)} items")
            return [base64.b64decode(a) if a else b"" for a in answer]
        except (ValueError, TypeError, binascii.Error) as exc:
            raise ReaderBroken(f"the reader answered nonsense ({exc})") from exc

    def _line(self, limit: int) -> bytes:
        """The next answer line; TimeoutError when the node stays silent (the channel's
        time-out), ReaderBroken when the reader ended or talks too much."""
        while b"\n" not in self._buffer:
            chunk = self.channel.recv(1 << 16)  # raises TimeoutError (socket.timeout) on silence
            if not chunk:
                err = self.channel.recv_stderr(2048).decode(errors="replace").strip() if \
                    self.channel.recv_stderr_ready() else ""
                raise ReaderBroken(f"the reader exited{': ' + err[-200:] if err else ''}")
            self._buffer += chunk
            if len(self._buffer) > limit:
                raise ReaderBroken(f"an answer longer than {limit} bytes")
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def close(self) -> None:
        self.channel.close()
