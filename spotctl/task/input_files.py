"""Reading a file the command line names (a task file, `--env-file`) that may be a pipe.

A shell hands a command's output over as a file name: `spotctl launch <(make-task)` names
/dev/fd/63, `... | spotctl launch /dev/stdin` names a pipe, and `mkfifo` makes a named one.
Such a file is read like any task file (up to MAX_FILE_BYTES, UTF-8), but a pipe can also
stay silent forever (a FIFO no one writes to, `<(sleep 1d)`): it is opened without blocking
and read with poll() until its writer closes it, at most PIPE_READ_TIMEOUT_S in all, so a
mistake is one line and exit 2, never a hang. A regular file is read as before
(task_yaml.read_text), with the same messages.
"""

from __future__ import annotations

import os
import select
import stat
import time
from pathlib import Path

from spotctl.task.errors import TaskError
from spotctl.task.limits import MAX_FILE_BYTES
from spotctl.task.yaml_reader import decode_text, read_text

PIPE_READ_TIMEOUT_S = 30.0
"""How long a pipe (or a device) named as a file may take to be written and closed."""
_CHUNK = 64 * 1024


def is_special_file(path: Path) -> bool:
    """Whether `path` names something that exists and is neither a regular file nor a
    directory: a pipe, a FIFO, a terminal, a device."""
    try:
        mode = path.stat().st_mode
    except (OSError, ValueError):
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def read_input_file(path: Path, source: str) -> str:
    """The text of a file the user named: a regular file as task_yaml.read_text reads it, a
    pipe or device within MAX_FILE_BYTES and PIPE_READ_TIMEOUT_S. Raises TaskError naming
    `source`."""
    if not is_special_file(path):
        return read_text(path, source)
    return decode_text(_read_pipe(path, source), source)


def _read_pipe(path: Path, source: str) -> bytes:
    """Everything written to the pipe until its writer closes it, bounded in time and in size
    (MAX_FILE_BYTES + 1 at most, so that decode_text sees one byte too many).

    O_NONBLOCK: opening a FIFO that has no writer does not wait. poll() waits until there is
    data or the writers have gone (a FIFO whose writer never came reports nothing, so it is
    waited for, up to the time limit); a read of nothing after that is the end."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise TaskError("file not found", path=source) from None
    except OSError as exc:
        raise TaskError(f"cannot read the file: {exc.strerror or exc}", path=source) from None
    chunks: list[bytes] = []
    size = 0
    deadline = time.monotonic() + PIPE_READ_TIMEOUT_S
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLPRI)
        while size <= MAX_FILE_BYTES:
            left = deadline - time.monotonic()
            if left <= 0 or not poller.poll(max(1, int(left * 1000))):
                raise TaskError(f"still open after {PIPE_READ_TIMEOUT_S:g} s; a pipe or device given as a "
                                "file must be written and closed within that time", path=source)
            try:
                chunk = os.read(fd, min(_CHUNK, MAX_FILE_BYTES + 1 - size))
            except BlockingIOError:
                continue
            except OSError as exc:
                raise TaskError(f"cannot read the file: {exc.strerror or exc}", path=source) from None
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)  # at most MAX_FILE_BYTES + 1: decode_text refuses a longer one
