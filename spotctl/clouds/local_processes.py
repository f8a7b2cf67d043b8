"""The processes of a local-cloud instance: found, signalled, killed.

Two nets find them. Where the machine allows it, every process the local runner starts joins
the instance's cgroup (local_cgroups.py), which no descendant can leave. And every such
process (and every child of those) carries `SPOTCTL_LOCAL_INSTANCE=<id>` in its environment,
which finds them without a cgroup, even the ones that left their process group, though not
one that also dropped the variable. Both are used everywhere: the marker covers machines
without cgroups and instances made before they were used.
"""

from __future__ import annotations

import os
import signal
import time

from spotctl.clouds import local_cgroups
from spotctl.remote.local import INSTANCE_MARKER

KILL_TIMEOUT_S = 2.0


def processes_of(instance_id: str) -> list[int]:
    """Pids of the instance's live processes: its cgroup's members and the processes whose
    environment carries its marker."""
    in_group = {pid for group in local_cgroups.groups_of_instance(instance_id) for pid in local_cgroups.members(group)}
    return sorted(in_group.union(_marked(instance_id)) - {os.getpid()})


def _marked(instance_id: str) -> list[int]:
    """Pids of live processes whose environment carries the instance's marker."""
    marker = f"{INSTANCE_MARKER}={instance_id}".encode()
    me = os.getpid()
    pids: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if marker in f.read().split(b"\0"):
                    pids.append(int(entry))
        except OSError:  # vanished, or not ours to read
            continue
    return pids


def _is_supervisor(pid: int) -> bool:
    """An agent supervisor (`agent.py _supervise ...`) forwards SIGTERM to its phase's
    process group, so signalling it as well would deliver the program a second SIGTERM; its
    keeper (`agent.py _keep ...`) only waits for the program and ends with it."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
    except OSError:
        return False
    return (b"_supervise" in args or b"_keep" in args) and any(a.endswith(b"agent.py") for a in args)


HOOK_MARKER = b"SKYPILOT_HOOK_EVENT="
"""In the environment of a job's lifecycle hook and its children (node_agent/agent_hooks.py)."""


def _is_hook(pid: int) -> bool:
    """A preemption hook, started because of the notice: on a cloud VM nobody signals it (the
    agent's SIGTERM goes to the program's group only), so the local cloud must not either; the
    notice's SIGKILL at the deadline takes it like everything else."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return any(v.startswith(HOOK_MARKER) for v in f.read().split(b"\0"))
    except OSError:
        return False


def user_processes_of(instance_id: str) -> list[int]:
    """The instance's processes except agent supervisors and preemption hooks: what a
    preemption notice signals and waits for (supervisors exit by themselves once their phase
    has ended)."""
    return [pid for pid in processes_of(instance_id) if not _is_supervisor(pid) and not _is_hook(pid)]


def _signal(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):  # gone meanwhile, or not ours
            pass


def signal_users(instance_id: str, sig: int) -> None:
    """Signal the instance's programs, not its agent supervisors (see user_processes_of)."""
    _signal(user_processes_of(instance_id), sig)


def kill_all(instance_id: str, timeout: float = KILL_TIMEOUT_S) -> None:
    """SIGKILL every process of the instance until none is left (new ones may be forking):
    its cgroup first (frozen, so atomically; then removed), then whatever the marker finds."""
    deadline = time.monotonic() + timeout
    for group in local_cgroups.groups_of_instance(instance_id):
        local_cgroups.destroy(group, timeout)
    while processes_of(instance_id) and time.monotonic() < deadline:
        _signal(processes_of(instance_id), signal.SIGKILL)
        time.sleep(0.02)
