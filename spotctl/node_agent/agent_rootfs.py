"""A phase's own view of `/` for absolute mount targets on the local cloud (stdlib only; copied
next to agent.py and imported by it).

mounts.json asks for sources at absolute targets (`/checkpoint`, `/etc/xyz`). Bind-mounting in a
private mount namespace keeps the mount itself off the host, but a target that does not exist
yet must first be made, and `mkdir /etc/xyz` writes the host's /etc even inside a namespace.
So nothing is made on the host's file system: in the phase's mount namespace (the agent's
`unshare`), a new root is built on a tmpfs whose entries are recursive bind mounts of the host's
top-level entries; a missing target is made in that tmpfs, or, deeper down, in a tmpfs laid
over its nearest existing directory (whose entries are bound back in the same way, so the rest of
/etc stays as it was). The phase then chroots into the new root. Targets that all exist already
are simply bound over. The scratch mount points live in the attempt directory, inside the
instance's sandbox.

Run by the agent as `python -I -S agent_rootfs.py ATTEMPT_DIR -- ARGV` inside `unshare --mount`:
it makes the mounts of ATTEMPT_DIR/mounts.json and execs ARGV (same pid), or exits 126 with
the reason on stderr (the phase's output.log).
"""

from __future__ import annotations

import ctypes
import json
import os
import sys

MS_BIND, MS_MOVE, MS_REC, MS_UNBINDABLE = 4096, 8192, 16384, 1 << 17

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]


class RootfsError(Exception):
    """A mount target cannot be made (said in the phase's output, exit code 126)."""


def _mount(source: str | None, target: str, fstype: str | None = None, flags: int = 0,
           data: str | None = None) -> None:
    if _libc.mount(source and source.encode(), target.encode(), fstype and fstype.encode(), flags,
                   data and data.encode()) != 0:
        err = ctypes.get_errno()
        raise RootfsError(f"cannot mount {source or fstype} at {target}: {os.strerror(err)}")


def _tmpfs(path: str, like: str) -> None:
    """A fresh tmpfs at `path` with the mode of the directory `like`, never copied by a mirror."""
    _mount("spotctl-rootfs", path, "tmpfs", 0, f"mode={os.stat(like).st_mode & 0o7777:o}")
    _mount(None, path, None, MS_UNBINDABLE)


def _mirror(src: str, dst: str) -> None:
    """Make dst (an empty tmpfs) show src's entries: symlinks copied, the rest bound."""
    for name in os.listdir(src):
        s, d = os.path.join(src, name), os.path.join(dst, name)
        if os.path.islink(s):
            os.symlink(os.readlink(s), d)
        elif os.path.isdir(s):
            os.mkdir(d)
            _mount(s, d, None, MS_BIND | MS_REC)
        else:
            open(d, "w").close()
            _mount(s, d, None, MS_BIND)


class _NewRoot:
    def __init__(self, scratch: str) -> None:
        self.root = os.path.join(scratch, "root")
        self.stage = os.path.join(scratch, "stage")
        os.makedirs(self.root, exist_ok=True)
        os.makedirs(self.stage, exist_ok=True)
        _tmpfs(self.root, "/")
        _mirror("/", self.root)
        self.ours = {self.root}
        """Directories on a tmpfs of ours: what is made in them stays in this namespace."""

    def _shadow(self, path: str) -> None:
        """Lay a tmpfs over `path` showing what was there, so something can be added to it."""
        keep = os.path.join(self.stage, str(len(os.listdir(self.stage))))
        os.mkdir(keep)
        _mount(path, keep, None, MS_BIND | MS_REC)
        _tmpfs(path, keep)
        _mirror(keep, path)
        self.ours.add(path)

    def make_point(self, target: str, is_dir: bool) -> str:
        """The mount point for `target` under the new root, made where it is missing."""
        parts = os.path.normpath(target).strip("/").split("/")
        cur = self.root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            nxt = os.path.join(cur, part)
            if os.path.islink(nxt):
                raise RootfsError(f"mount target {target}: {'/' + '/'.join(parts[:i + 1])} is a symlink")
            if os.path.lexists(nxt):
                if last and os.path.isdir(nxt) != is_dir:
                    raise RootfsError(f"mount target {target} exists and is not a {'directory' if is_dir else 'file'}")
                if not last and not os.path.isdir(nxt):
                    raise RootfsError(f"mount target {target}: {'/' + '/'.join(parts[:i + 1])} is not a directory")
            else:
                if cur not in self.ours:
                    self._shadow(cur)
                if last and not is_dir:
                    open(nxt, "w").close()
                else:
                    os.mkdir(nxt, 0o755)
                self.ours.add(nxt)
            cur = nxt
        return cur

    def enter(self) -> None:
        """Make the new root the phase's `/` (as switch_root does), keeping the working directory."""
        cwd = os.getcwd()
        os.chdir(self.root)
        _mount(".", "/", None, MS_MOVE)
        os.chroot(".")
        os.chdir(cwd)


def _fits(m: dict) -> bool:
    """Whether the target exists already as what its source is (then it is simply bound over)."""
    target = m["target"]
    return os.path.exists(target) and not os.path.islink(target) and os.path.isdir(target) == os.path.isdir(m["source"])


def enter(mounts: list[dict], scratch: str) -> None:
    """In the caller's private mount namespace: every {source, target} of `mounts` (parents
    first) is bound at its target, and the host's file system is not written to."""
    if all(_fits(m) for m in mounts):
        for m in mounts:
            _mount(m["source"], m["target"], None, MS_BIND | MS_REC)
        return
    new = _NewRoot(scratch)
    for m in mounts:
        point = new.make_point(m["target"], os.path.isdir(m["source"]))
        _mount(m["source"], point, None, MS_BIND | MS_REC)
        new.ours.add(point)  # a target below this one is made in the job's own source, as on a VM
    new.enter()


MOUNT_FAILED = 126


def main(argv: list[str]) -> int:
    d, command = argv[0], argv[2:]
    try:
        with open(os.path.join(d, "mounts.json")) as f:
            mounts = [{"source": str(m["source"]), "target": str(m["target"])} for m in json.load(f)]
        mounts.sort(key=lambda m: len(os.path.normpath(m["target"]).split(os.sep)))  # parents first
        enter(mounts, os.path.join(d, "rootfs"))
    except (OSError, ValueError, TypeError, KeyError, RootfsError) as exc:
        sys.stderr.write(f"spotctl agent: cannot make the mounts of mounts.json: {exc}\n")
        return MOUNT_FAILED
    os.execvp(command[0], command)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
