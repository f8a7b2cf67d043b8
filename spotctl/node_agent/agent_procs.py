"""Is a process, or a process group, still alive? (stdlib only; copied next to agent.py on every
node and imported by it.)

Host code imports this module too, on purpose: the embedded server's and supervisor's pid
checks and the event callbacks' process groups need the same answer as the agent gives,
zombies counted as dead (nobody may ever reap them).
"""

from __future__ import annotations

import os


def pid_alive(pid: int | None) -> bool:
    """True if pid is a live process; zombies count as dead (nobody may ever reap them)."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return True  # no /proc (not Linux): trust kill(0)


def group_alive(pgid: int) -> bool:
    """Whether any process of the group still runs (zombies do not count: on some machines
    nobody reaps orphans)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False
