"""A job's priority as Temporal's task-queue priority: who gets the next launch slot.

Launch slots are the launch queue's (models.launch_queue; each worker takes at most
worker.max_concurrent_launches create_cluster activities at once). Temporal's matching
service hands a backlogged queue's tasks out lowest `priority_key` first, first-scheduled
first within one key. SkyPilot's priorities run from -1000 to 1000, higher first: each maps
to its own key, 1 (priority 1000) to 2001 (priority -1000), so the granularity is one
priority step; priority 0, SkyPilot's default, is key 1001, the middle, which is also what
the server gives a task without a key when it runs with SERVER_PRIORITY_LEVELS levels (jobs
started before priorities existed wait as priority 0 does). The embedded server is started
with these levels and one partition per task queue (embedded/procs.py): with several
partitions, each orders only its own tasks.
"""

from __future__ import annotations

from spotctl.models.spec import MAX_PRIORITY, MIN_PRIORITY

PRIORITY_SIGNAL = "set_priority"
"""The job workflow's signal that carries a new priority (`spotctl set-priority`)."""
SERVER_PRIORITY_LEVELS = MAX_PRIORITY - MIN_PRIORITY + 1
"""2001: one Temporal priority level per SkyPilot priority (the server's matching.priorityLevels)."""


def priority_key(priority: int) -> int:
    """Temporal's priority_key for a job's priority: 1 for the highest (1000), 2001 for the
    lowest (-1000); out-of-range priorities are clamped."""
    return MAX_PRIORITY + 1 - max(MIN_PRIORITY, min(MAX_PRIORITY, priority))
