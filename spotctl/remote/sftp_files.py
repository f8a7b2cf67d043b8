"""File work over SFTP for SSHRunner: directories made, files created with their mode from
the start (secrets are never world-readable for a moment), whole trees copied the way
spotctl.files.safe.copy_tree copies them locally (files and symlinks replaced, never written through).
"""

from __future__ import annotations

import os
import posixpath
import stat

import paramiko
from paramiko.sftp import CMD_HANDLE, CMD_OPEN, SFTP_FLAG_CREATE, SFTP_FLAG_EXCL, SFTP_FLAG_WRITE


def makedirs(sftp: paramiko.SFTPClient, path: str) -> None:
    try:
        if stat.S_ISDIR(sftp.stat(path).st_mode or 0):
            return
    except FileNotFoundError:
        pass
    makedirs(sftp, posixpath.dirname(path))
    try:
        sftp.mkdir(path)
    except OSError:
        if not stat.S_ISDIR(sftp.stat(path).st_mode or 0):  # lost a race: fine if a dir now
            raise


def create(sftp: paramiko.SFTPClient, path: str, mode: int) -> paramiko.SFTPFile:
    """Open a new file created with `mode` from the start. paramiko's open() cannot pass a
    mode, and a chmod after creation leaves a window where others could open the secrets."""
    attrs = paramiko.SFTPAttributes()
    attrs.st_mode = mode
    kind, msg = sftp._request(CMD_OPEN, path, SFTP_FLAG_WRITE | SFTP_FLAG_CREATE | SFTP_FLAG_EXCL, attrs)
    if kind != CMD_HANDLE:
        raise paramiko.SSHException(f"SFTP open of {path}: expected a handle")
    f = paramiko.SFTPFile(sftp, msg.get_binary(), "wb")
    f.set_pipelined(True)
    return f


def lstat(sftp: paramiko.SFTPClient, path: str) -> paramiko.SFTPAttributes | None:
    try:
        return sftp.lstat(path)
    except FileNotFoundError:
        return None


def _clear(sftp: paramiko.SFTPClient, path: str, attrs: paramiko.SFTPAttributes | None) -> None:
    """Remove whatever is at path (file, symlink or tree; `attrs` from lstat, None: nothing)."""
    if attrs is None:
        return
    if not stat.S_ISDIR(attrs.st_mode or 0):
        return sftp.remove(path)
    for entry in sftp.listdir_attr(path):
        _clear(sftp, f"{path}/{entry.filename}", entry)
    sftp.rmdir(path)


def upload(sftp: paramiko.SFTPClient, local: str, dest: str, old: paramiko.SFTPAttributes | None = None) -> None:
    """Copy one file with its mode, replacing what was there (never writing through a symlink)."""
    _clear(sftp, dest, old)
    with open(local, "rb") as src, create(sftp, dest, stat.S_IMODE(os.fstat(src.fileno()).st_mode)) as f:
        while chunk := src.read(1 << 20):
            f.write(chunk)


def put_tree(sftp: paramiko.SFTPClient, src: str, dst: str, old: paramiko.SFTPAttributes | None = None,
              top: bool = True) -> None:
    """spotctl.files.safe.copy_tree over SFTP, with one listdir per directory instead of a stat
    per file. Only the top destination may be a symlink to a directory."""
    if top:
        makedirs(sftp, dst)
    elif old is None or not stat.S_ISDIR(old.st_mode or 0):
        _clear(sftp, dst, old)
        sftp.mkdir(dst)
    there = {a.filename: a for a in sftp.listdir_attr(dst)}
    for entry in os.scandir(src):
        target, old_entry = f"{dst}/{entry.name}", there.get(entry.name)
        if entry.is_dir(follow_symlinks=False):
            put_tree(sftp, entry.path, target, old_entry, top=False)
        elif entry.is_symlink():
            _clear(sftp, target, old_entry)
            sftp.symlink(os.readlink(entry.path), target)  # (target, link): OpenSSH's order
        else:
            upload(sftp, entry.path, target, old_entry)
