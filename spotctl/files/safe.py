"""Small file-system steps several rooms need, done the one safe way."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path


def create_once(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Create `path` with `data` unless it exists, atomically and without ever overwriting:
    of several processes racing (a CLI and a worker starting at once), one file wins and every
    process then reads the same content. Written to a private temporary name first, then
    hard-linked into place, so nobody ever reads a half-written file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:  # also when the write failed (a full disk): no temporary file is left behind
        tmp.unlink(missing_ok=True)


def copy_tree(src: Path, dst: Path) -> None:
    """copytree(symlinks=True, dirs_exist_ok=True), except that it also replaces existing
    files and symlinks (shutil's fails on an existing symlink, so a second sync would).
    Only `dst` itself may be a symlink to a directory (it is followed); deeper ones are
    replaced, so a copy never writes outside the tree it targets."""
    _copy_tree(Path(src), Path(dst), top=True)


def _copy_tree(src: Path, dst: Path, top: bool) -> None:
    if (dst.is_symlink() and not top) or (dst.exists() and not dst.is_dir()):
        dst.unlink()
    dst.mkdir(parents=True, exist_ok=True)
    for entry in os.scandir(src):
        target = dst / entry.name
        if entry.is_dir(follow_symlinks=False):
            _copy_tree(Path(entry.path), target, top=False)
            continue
        if target.is_symlink() or target.is_file():
            target.unlink()  # never write through an old symlink
        elif target.is_dir():
            shutil.rmtree(target)
        if entry.is_symlink():
            os.symlink(os.readlink(entry.path), target)
        else:
            shutil.copy2(entry.path, target)
    shutil.copystat(src, dst)
