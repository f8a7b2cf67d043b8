"""One freezer cgroup per event_callback run, so a callback's end kills everything it started,
even a process that left its session (`setsid sleep 600 &`) or daemonized (double fork).

The same mechanism as a local-cloud instance's group (clouds/local_cgroups.py, whose `destroy`
does the freeze-kill-remove): the callback's bash joins its group just before it execs, and no
descendant can leave it. Groups live at
/sys/fs/cgroup/freezer/spotctl-callbacks/<pid namespace>/<worker>/<run>, where <worker> is the
worker process's pid and start time: a worker's groups are removed as
each callback ends, and all at once when the worker stops (`destroy_mine`). A worker killed
with SIGKILL (the supervisor does so to a worker that does not stop in time) cannot do either,
so the groups of workers that no longer run are removed by `sweep_orphans`, which a worker
calls when it starts and `spotctl server stop` calls after stopping the worker. The start time
in the name keeps a reused pid from passing for the dead worker, and the pid namespace keeps a
worker in another container (which shares the freezer hierarchy but not our pids) from passing
for a dead one.

Without root or a writable freezer hierarchy `create` returns None (said once in the log) and
a callback is confined by its process group alone, which a `setsid` escapes.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from spotctl.clouds import local_cgroups

log = logging.getLogger(__name__)

GROUP_DIR = "spotctl-callbacks"
_warned: list[bool] = []


def root() -> Path:
    """The parent of every worker's callback groups in this pid namespace (under the freezer
    that local_cgroups uses)."""
    try:
        pidns = f"pidns-{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        pidns = "pidns-unknown"
    return local_cgroups.FREEZER / GROUP_DIR / pidns


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def worker_key(pid: int | None = None) -> str:
    pid = os.getpid() if pid is None else pid
    return f"{pid}-{_start_time(pid)}"


def _worker_alive(key: str) -> bool:
    pid, _, started = key.partition("-")
    return pid.isdigit() and _start_time(int(pid)) == started


def create() -> Path | None:
    """A new group for one callback run of this worker; None when this machine cannot make one."""
    why = None
    if os.geteuid() != 0:
        why = "not root"
    elif not (local_cgroups.FREEZER / "cgroup.procs").exists():
        why = f"no cgroup v1 freezer at {local_cgroups.FREEZER}"
    else:
        group = root() / worker_key() / secrets.token_hex(6)
        try:
            group.mkdir(parents=True)
            return group
        except OSError as exc:
            why = f"cannot make {group}: {exc}"
    if not _warned:
        _warned.append(True)
        log.warning("event_callback: no cgroup for callbacks (%s); a callback is killed with its process group only, "
                    "so a process it starts in a new session (setsid) can outlive it", why)
    return None


def members(group: Path) -> list[int]:
    return local_cgroups.members(group)


def signal_members(group: Path, sig: int) -> None:
    for pid in members(group):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def destroy(group: Path) -> bool:
    """Kill everything in the group and remove it (and the worker's dir once it is empty)."""
    gone = local_cgroups.destroy(group)
    try:
        group.parent.rmdir()
    except OSError:  # another callback of the worker runs, or removed meanwhile
        pass
    return gone


def _destroy_worker(worker_dir: Path) -> None:
    try:
        groups = [Path(e.path) for e in os.scandir(worker_dir) if e.is_dir()]
    except FileNotFoundError:
        return
    for group in groups:
        destroy(group)
    try:
        worker_dir.rmdir()
    except OSError:
        pass


def destroy_mine() -> None:
    """Kill every callback this worker still runs (it stops)."""
    _destroy_worker(root() / worker_key())


def sweep_orphans() -> list[str]:
    """Kill the callbacks of workers that no longer run; returns those workers' keys."""
    try:
        keys = [e.name for e in os.scandir(root()) if e.is_dir()]
    except OSError:  # no freezer, or never used
        return []
    dead = [k for k in keys if not _worker_alive(k)]
    for key in dead:
        log.warning("removing the event_callback processes of worker %s, which no longer runs", key)
        _destroy_worker(root() / key)
    return dead


__all__ = ["create", "destroy", "destroy_mine", "members", "root", "signal_members", "sweep_orphans"]
