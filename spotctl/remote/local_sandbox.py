"""What a local-cloud instance's processes see of this host: not the controller's secrets.

The local runner starts every command through this file (`python -I -S local_sandbox.py
--stage S --hide H... --keep P... -- ARGV`), stdlib only. It puts the command in a mount
namespace of its own where each hidden directory H is an empty tmpfs, except for the paths to
keep inside it, bind-mounted back at their own paths; a hidden file shows /dev/null. What the
local cloud hides (clouds/local.py): the spotctl home (the codec key, the Temporal database,
config.yaml and its webhook URL, the SSH key, other instances' disks and env.json files), the
worker user's home (~/.aws, gcloud's config) and the cloud credential files the worker's
environment names. What it keeps: the instance's own directory, the local buckets (a MOUNT at
`~/x` is a symlink into them) and the Python that runs the agent. How, without writing
anywhere outside the instance: a tmpfs is mounted at S (an empty dir inside the instance), the
kept paths are bound into it at their places relative to H, and the tmpfs is moved onto H.

Then the command enters a user namespace of its own, where it is root (uid 0 maps to uid 0, so
files keep their owner) but holds no capability over the host: the mounts made above are locked
(`umount H` is refused), and /proc/PID/root of the worker or of PID 1, which would show the
host's whole file system, cannot be opened. A root program in a mount namespace alone could
undo or bypass the hiding in one command.

Where this cannot be done (not root, no mount or user namespaces) the local runner runs
commands as they are and says so once in the worker's log (local.py `sandbox_problem`). What
is left even here: the program is uid 0 on the host, so files that uid 0 may write by their
mode bits stay writable (block devices are covered with /dev/null, so the disk cannot be read
raw). On a real VM none of this applies: the VM is the boundary.
"""

from __future__ import annotations

import ctypes
import os
import stat
import sys

MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE = 4096, 8192, 16384, 1 << 18
CLONE_NEWNS, CLONE_NEWUSER = 0x00020000, 0x10000000
HIDDEN_MODE = "mode=0755,size=1m"
"""The tmpfs over the spotctl home holds only the (empty) paths to the kept directories."""

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(source: str | None, target: str, fstype: str | None = None, flags: int = 0, data: str | None = None) -> None:
    _check(_libc.mount(source and source.encode(), target.encode(), fstype and fstype.encode(), flags,
                       data and data.encode()), f"mount {source} {target}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), f"unshare {flags:#x}")


def _hide_dir(home: str, stage: str, keep: list[str]) -> None:
    """`home` shows only the `keep` paths inside it, through a tmpfs built at `stage`."""
    mount("spotctl-sandbox", stage, "tmpfs", 0, HIDDEN_MODE)
    for path in keep:
        rel = os.path.relpath(path, home)
        if rel == "." or rel.startswith("..") or not os.path.exists(path):
            continue
        inside = os.path.join(stage, rel)
        if os.path.isdir(path):
            os.makedirs(inside, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(inside), exist_ok=True)
            open(inside, "w").close()
        mount(path, inside, None, MS_BIND | MS_REC)
    mount(stage, home, None, MS_MOVE)


def hide(hidden: list[str], stage: str, keep: list[str]) -> None:
    """In a new mount namespace: every `hidden` directory shows only the `keep` paths inside it,
    every hidden file is empty. Outer directories first: an inner one is hidden with them."""
    unshare(CLONE_NEWNS)
    mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing made here reaches the host
    done: list[str] = []
    for path in sorted(set(hidden), key=len):
        if path == "/" or any(path == d or path.startswith(d.rstrip("/") + "/") for d in done):
            continue
        if os.path.isdir(path):
            _hide_dir(path, stage, keep)
            done.append(path)
        elif os.path.isfile(path) and not any(k == path for k in keep):
            mount("/dev/null", path, None, MS_BIND)
    hide_block_devices()


def hide_block_devices(dev: str = "/dev") -> None:
    """/dev/null over every block device node: uid 0 may open them by their mode bits, and a raw
    read of the disk would show every file on it, the hidden ones too. (Making a new node needs
    CAP_MKNOD on the host, which the user namespace below does not give.)"""
    for top, dirs, files in os.walk(dev):
        dirs[:] = [d for d in dirs if not os.path.ismount(os.path.join(top, d))]  # pts, shm, mqueue
        for name in files:
            path = os.path.join(top, name)
            try:
                if stat.S_ISBLK(os.lstat(path).st_mode):
                    mount("/dev/null", path, None, MS_BIND)
            except OSError:  # gone meanwhile
                continue


def drop_host_privileges() -> None:
    """A user namespace where uid/gid 0 map to themselves and nothing else: the mounts above
    become locked, and no capability reaches the host's namespaces."""
    uid, gid = os.geteuid(), os.getegid()
    unshare(CLONE_NEWUSER)
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"{uid} {uid} 1")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"{gid} {gid} 1")


def main(argv: list[str]) -> int:
    """`--stage S [--hide H]... [--keep P]... -- ARGV`: hide, drop, exec ARGV (same pid)."""
    split = argv.index("--")
    opts, command = argv[:split], argv[split + 1:]
    stage = ""
    hidden: list[str] = []
    keep: list[str] = []
    for flag, value in zip(opts[::2], opts[1::2], strict=True):
        if flag == "--stage":
            stage = value
        elif flag == "--hide":
            hidden.append(os.path.abspath(value))
        elif flag == "--keep":  # at its given path and at its real one (a symlinked dir of the
            keep += {os.path.abspath(value), os.path.realpath(value)}  # home: cwd is the real one)
    cwd = os.getcwd()
    try:
        hide(hidden, stage, keep)
        drop_host_privileges()
    except OSError as exc:
        sys.stderr.write(f"spotctl local sandbox: {exc}\n")
        return 125
    os.chdir(cwd)  # the kept instance directory, now seen through its bind mount
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        sys.stderr.write(f"{command[0]}: {exc}\n")
        return 127
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
