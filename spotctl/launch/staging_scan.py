"""What staging would upload, looked at before anything is (by `launch --dry-run` and `launch`).

A workdir or a local file-mount source is walked once, as its store will copy it (the object
stores follow symlinks, each real directory once; the local store keeps links as links), and
every problem becomes one TaskError naming the path, instead of a traceback halfway through an
upload:

- a FIFO, socket or device is not a file of bytes: reading a FIFO blocks until someone writes
  to it, and the copy refuses the others with an exception;
- a path that cannot be read (permissions, a symlink loop);
- spotctl's state dir (settings.home) inside the tree, or the tree inside it: the local store's
  buckets live there, so `workdir: .` run from the folder holding ~/.spotctl copied the bucket
  into itself until the path was too long (Errno 36); on a cloud store it would upload the
  server's database;
- a sparse file with more than MAX_SPARSE_HOLE_BYTES of holes: an object store has no holes,
  so a 2 GB file taking nothing on disk became 2 GB in the bucket and again on each node;
- more than MAX_STAGED_FILES files or MAX_STAGED_BYTES bytes for one task (its workdir and
  mounts together); the walk stops there, so it is bounded too.

At most MAX_PROBLEMS_PER_TREE problems are listed for one tree (a folder of a thousand sockets
is one fix, not a thousand lines).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path

from spotctl.task import MAX_SPARSE_HOLE_BYTES, MAX_STAGED_BYTES, MAX_STAGED_FILES, TaskError

MAX_PROBLEMS_PER_TREE = 10
_MAX_EXTENTS = 10_000
"""Data/hole boundaries looked at per file; enough to tell a sparse file, bounded for a hostile one."""

_KINDS = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def size_text(n: int) -> str:
    """1536 -> '1.5 KiB'."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover


class UploadScan:
    """The scan of one task's uploads: totals are shared by its workdir and its mounts."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = os.path.realpath(os.path.expanduser(state_dir))
        self.files = 0
        self.bytes = 0
        self._over = False
        """A total was passed and said once; no further walking."""

    def scan(self, root: Path, follow_links: bool, error: Callable[[str], TaskError]) -> list[TaskError]:
        """The problems of uploading `root` (a file or a directory), each made by `error`."""
        problems: list[TaskError] = []

        def problem(message: str) -> bool:
            """Record one; False when this tree has had enough."""
            problems.append(error(message))
            return len(problems) < MAX_PROBLEMS_PER_TREE

        try:
            top = os.stat(root)
        except OSError as exc:
            problem(f"cannot read {root}: {exc.strerror}")
            return problems
        if os.path.realpath(root).startswith(self.state_dir + os.sep):
            problem(f"{root} is inside spotctl's state dir, which holds the buckets a job's files are copied "
                    "into; name a bucket by URL (local://NAME, s3://NAME ...) or use a folder elsewhere")
            return problems
        if not stat.S_ISDIR(top.st_mode):
            self._entry(str(root), top, problem)
            return problems
        seen: set[str] = set()
        stack = [str(root)]
        while stack and not self._over:
            folder = stack.pop()
            real = os.path.realpath(folder)
            if real in seen:
                continue  # a link loop, or a folder reached twice through links
            seen.add(real)
            if real == self.state_dir:
                if not problem(f"{folder} is spotctl's state dir: uploading it would copy the job's own "
                               "bucket (and the server's files) into the job; launch from a folder that "
                               "does not hold it, or set SPOTCTL_HOME elsewhere"):
                    break
                continue
            if not self._folder(folder, follow_links, stack, problem):
                break
        return problems

    def _folder(self, folder: str, follow_links: bool, stack: list[str],
                problem: Callable[[str], bool]) -> bool:
        """Look at one folder's entries; False when walking must stop."""
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if self._over:
                        return False
                    try:
                        st = os.stat(entry.path, follow_symlinks=follow_links)
                    except FileNotFoundError:
                        continue  # a dangling link: skipped, as the stores skip it
                    except OSError as exc:
                        if not problem(f"cannot read {entry.path}: {exc.strerror}"):
                            return False
                        continue
                    if stat.S_ISLNK(st.st_mode):
                        continue  # kept as a link (the local store)
                    if stat.S_ISDIR(st.st_mode):
                        stack.append(entry.path)
                    elif not self._entry(entry.path, st, problem):
                        return False
        except OSError as exc:
            return problem(f"cannot read the folder {folder}: {exc.strerror}")
        return True

    def _entry(self, path: str, st: os.stat_result, problem: Callable[[str], bool]) -> bool:
        """One file (not a folder); False when walking must stop."""
        for test, kind in _KINDS:
            if test(st.st_mode):
                return problem(f"{path} is {kind}, not a regular file: it cannot be uploaded (move it "
                               "out of the folder)")
        if not os.access(path, os.R_OK):
            return problem(f"cannot read {path}: permission denied")
        self.files += 1
        self.bytes += st.st_size
        if self.files > MAX_STAGED_FILES:
            self._over = True
            return problem(f"more than {MAX_STAGED_FILES} files to upload before the job starts; put "
                           "large trees in a bucket (file_mounts with a bucket URL or name:)")
        if self.bytes > MAX_STAGED_BYTES:
            self._over = True
            return problem(f"more than {size_text(MAX_STAGED_BYTES)} to upload before the job starts; put "
                           "large data in a bucket (file_mounts with a bucket URL or name:)")
        on_disk = st.st_blocks * 512
        if st.st_size - on_disk > MAX_SPARSE_HOLE_BYTES and _holes(path, st.st_size) > MAX_SPARSE_HOLE_BYTES:
            return problem(f"{path} is a sparse file ({size_text(st.st_size)} long, {size_text(on_disk)} on "
                           f"disk): a bucket has no holes, so all {size_text(st.st_size)} would be uploaded "
                           "and written on each node; move it out of the folder")
        return True


def _holes(path: str, size: int) -> int:
    """Bytes of `path` in holes (SEEK_DATA/SEEK_HOLE); 0 where the filesystem cannot tell, so a
    file that is only compressed on disk is never taken for a sparse one."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return 0
    try:
        holes, pos = 0, 0
        for _ in range(_MAX_EXTENTS):
            try:
                data = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno != errno.ENXIO:  # ENXIO: no data after pos, the rest is a hole
                    return 0
                data = size
            holes += max(0, min(data, size) - pos)
            if data >= size:
                break
            pos = os.lseek(fd, data, os.SEEK_HOLE)
        return holes
    except OSError:
        return 0
    finally:
        os.close(fd)
