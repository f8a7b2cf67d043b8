"""One freezer cgroup per local-cloud instance, so ending an instance kills every process
it started, even one that left its process group and dropped the environment marker
(`env -u SPOTCTL_LOCAL_INSTANCE setsid nohup ... &`).

Why a cgroup and not a PID namespace: the agent and spotctl talk about the instance's
processes by host pid (the agent's pid files, `pid_alive`, `killpg`), and every runner
call is a separate short-lived process that must see the programs the previous calls
started. A namespace per call would die with its call; one per instance would need a
long-lived init per instance, `nsenter` for every call and pid translation everywhere. A
cgroup needs none of that: the runner's child joins the instance's group just before it
execs (one write to `cgroup.procs`), its descendants inherit the group whatever they do,
and pids stay host pids.

Why the v1 freezer: freezing the group first makes the kill atomic, since a process cannot
fork a child past a SIGKILL sweep while it is frozen. Groups live at
/sys/fs/cgroup/freezer/spotctl/<cloud key>/<instance id>; the cloud key (a hash of the
cloud's directory) keeps each local cloud's groups apart, so one cloud's leak cleanup never
touches another's instances (tests run many clouds at once). Without root or a writable
freezer hierarchy `create` returns None and the instance relies on the environment marker
alone (see local_processes.py), which stays in use as a second net either way.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import time
from pathlib import Path

log = logging.getLogger(__name__)

FREEZER = Path("/sys/fs/cgroup/freezer")
"""The v1 freezer hierarchy's mount point; a module constant so tests can point it elsewhere."""
GROUP_DIR = "spotctl"
DESTROY_TIMEOUT_S = 2.0
FREEZE_WAIT_S = 0.5
"""A task in uninterruptible sleep can keep the group FREEZING; kill (and retry) after this."""
ROUND_S = 0.2
"""How long one kill round waits for the group to empty before killing again."""
POLL_S = 0.005


def spotctl_root() -> Path:
    """The parent of every local cloud's groups (shared by all clouds, never removed)."""
    return FREEZER / GROUP_DIR


def cloud_groups(cloud_root: Path) -> Path:
    """The directory of one local cloud's instance groups."""
    key = hashlib.sha256(str(Path(cloud_root).resolve()).encode()).hexdigest()[:16]
    return spotctl_root() / key


def group_of(cloud_root: Path, instance_id: str) -> Path:
    return cloud_groups(cloud_root) / instance_id


def create(cloud_root: Path, instance_id: str) -> Path | None:
    """Make the instance's group; None when this machine cannot (no root, no freezer).

    Retried because another process may remove the cloud's emptied directory between our
    two mkdirs (see `destroy`)."""
    if os.geteuid() != 0 or not (FREEZER / "cgroup.procs").exists():
        return None
    group = group_of(cloud_root, instance_id)
    for _ in range(5):
        try:
            group.parent.mkdir(parents=True, exist_ok=True)
            group.mkdir()
            return group
        except FileNotFoundError:
            continue
        except OSError as exc:  # read-only or foreign cgroup fs: fall back to the marker
            log.warning("local cloud: cannot make cgroup %s (%s); using the environment marker only", group, exc)
            return None
    return None


def members(group: Path) -> list[int]:
    """Pids in the group ([] when it does not exist). Zombies are not listed."""
    try:
        return [int(p) for p in (group / "cgroup.procs").read_text().split()]
    except OSError:  # gone (destroyed meanwhile), or no cgroup fs
        return []


def groups_of_instance(instance_id: str) -> list[Path]:
    """The instance's group in whichever local cloud made it (ids are random, so one at most)."""
    return sorted(spotctl_root().glob(f"*/{instance_id}"))


def leftovers(cloud_root: Path) -> list[str]:
    """Instance ids that still have a group in this cloud."""
    try:
        return sorted(e.name for e in os.scandir(cloud_groups(cloud_root)) if e.is_dir())
    except FileNotFoundError:
        return []


def destroy(group: Path, timeout: float = DESTROY_TIMEOUT_S) -> bool:
    """Kill everything in the group and remove it; True when it is gone.

    Freeze, SIGKILL every member, thaw (the kills land on thawing), wait until the group is
    empty, rmdir. Repeated until the rmdir succeeds, because a runner call that opened
    `cgroup.procs` before the freeze may still add a process; once the group is removed such
    a late join fails (ENODEV) and the runner call fails with it. The cloud's directory goes
    too when this was its last group."""
    deadline = time.monotonic() + timeout
    while True:
        if not group.is_dir():
            _remove_if_empty(group.parent)
            return True
        _kill_frozen(group)
        round_end = min(deadline, time.monotonic() + ROUND_S)
        while members(group) and time.monotonic() < round_end:
            time.sleep(POLL_S)
        try:
            group.rmdir()
        except FileNotFoundError:
            pass
        except OSError as exc:  # EBUSY: a member is left, or joined late; kill again
            if time.monotonic() >= deadline:
                log.warning("local cloud: cannot remove cgroup %s after %.1fs (%s); members: %s",
                            group, timeout, exc, members(group))
                return False
            continue
        _remove_if_empty(group.parent)
        return True


def _kill_frozen(group: Path) -> None:
    """SIGKILL every member while the group is frozen. A freeze that fails or does not finish
    (a member in uninterruptible sleep) still gets the kills; `destroy` repeats them."""
    state = group / "freezer.state"
    try:
        state.write_text("FROZEN")
        until = time.monotonic() + FREEZE_WAIT_S
        while state.read_text().strip() != "FROZEN" and time.monotonic() < until:
            time.sleep(POLL_S)
    except OSError:  # removed meanwhile by another killer, or the freeze was refused
        pass
    try:
        for pid in members(group):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    finally:
        try:
            state.write_text("THAWED")
        except OSError:
            pass


def _remove_if_empty(cloud_dir: Path) -> None:
    """Remove a cloud's directory once its last group is gone (never the shared root)."""
    if cloud_dir.parent != spotctl_root():
        return
    try:
        cloud_dir.rmdir()
    except OSError:  # not empty (another instance), or gone already
        pass
