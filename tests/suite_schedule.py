"""How the suite is shared among pytest-xdist's workers (`-n 4 --dist loadfile`, the addopts in
pyproject.toml); `pytest -n 0` runs it serially, in its usual order.

Why these rules, and not xdist's own:
- A test file is one unit, run by one worker from its first test to its last, as with xdist's
  loadfile: a module-scoped server (the `env` fixtures' dev servers) starts once per file, and
  a file's tests keep the order they were written in.
- A few files share one unit (GROUPS): they would disturb one another's measurements if they
  ran at the same moment, so one worker runs them one after the other.
- Units start longest first (SECONDS): the worker that gets the soak starts it at once instead
  of last, when the other workers would have nothing left to do. xdist hands out units in
  collection order, so `order_for_workers` sorts the collection (under xdist only).

Most tests wait on things (Temporal, processes, sshd, timers) rather than burn CPU, so on 2
cores 4 workers finish the suite in well under half the serial time (see README's Tests).
"""

from __future__ import annotations

import os
from typing import Any

import pytest

HEAVY = "heavy: the soak, the fuzzer and the benchmark"
GROUPS: dict[str, str] = {
    # Each loads both cores for minutes; the benchmark measures its latencies and the fuzzer the
    # CPU and wall time of each example, so none of them may overlap another.
    "tests/chaos/test_soak.py": HEAVY,
    "tests/test_fuzz_dry_run.py": HEAVY,
    "tests/test_bench_quick.py": HEAVY,
}
"""Files that run on one worker, one after the other (file -> group name)."""

SECONDS: dict[str, float] = {
    # A full serial run's seconds per file (`pytest --junitxml`, summed per file); files not
    # listed take less than 15 s. Only the order matters: the longest start first.
    "tests/chaos/test_soak.py": 390, "tests/test_workflow_races.py": 166, "tests/test_fuzz_dry_run.py": 162,
    "tests/test_moody_jobs.py": 106, "tests/test_durability.py": 100, "tests/test_codec_key.py": 93,
    "tests/lab/test_aws_failures.py": 88, "tests/test_recovery.py": 78, "tests/lab/test_aws_jobs.py": 76,
    "tests/test_event_deadlines.py": 76, "tests/test_supervisor.py": 72, "tests/lab/test_gcp_jobs.py": 70,
    "tests/lab/test_cross_cloud_jobs.py": 61, "tests/test_died_before_ready.py": 58,
    "tests/test_worker_fleet.py": 57, "tests/test_node_faults.py": 57, "tests/test_bench_quick.py": 47,
    "tests/test_worker_slots.py": 44, "tests/test_notify_bulkhead.py": 44, "tests/test_jobs.py": 42,
    "tests/test_full_disk.py": 41, "tests/test_event_handoff.py": 35, "tests/test_readme_demo.py": 34,
    "tests/test_monitor_heartbeat.py": 26, "tests/test_pipelines.py": 26, "tests/test_follow_cli.py": 26,
    "tests/test_cancel_continued.py": 26, "tests/test_checkpoint_resume.py": 25, "tests/test_notifications.py": 24,
    "tests/lab/test_ssh_runner.py": 24, "tests/test_status_paused_worker.py": 22, "tests/test_local_users.py": 21,
    "tests/test_backoff_timeskip.py": 19, "tests/test_local_preemption.py": 19, "tests/test_server.py": 18,
    "tests/test_job_ids.py": 18, "tests/test_launch_flags.py": 17, "tests/test_task_limits.py": 17,
}


def unit_of(path: str) -> str:
    """The unit a test file belongs to: its group, else the file itself."""
    return GROUPS.get(path, path)


def unit_seconds(unit: str) -> float:
    return sum(SECONDS.get(path, 0.0) for path, group in GROUPS.items() if group == unit) or SECONDS.get(unit, 0.0)


def order_for_workers(items: list[pytest.Item]) -> None:
    """Sort the collection so that the longest units come first, each unit's tests together and
    in their order (a stable sort on the unit's seconds and its first place)."""
    first: dict[str, int] = {}
    for i, item in enumerate(items):
        first.setdefault(unit_of(item.nodeid.split("::", 1)[0]), i)

    def key(pair: tuple[int, pytest.Item]) -> tuple[float, int, int]:
        unit = unit_of(pair[1].nodeid.split("::", 1)[0])
        return (-unit_seconds(unit), first[unit], pair[0])

    items[:] = [item for _, item in sorted(enumerate(items), key=key)]


def under_xdist() -> bool:
    return bool(os.environ.get("PYTEST_XDIST_WORKER"))


def make_scheduler(config: pytest.Config, log: Any) -> Any:
    """For `--dist loadfile`: xdist's scope scheduling with a file (or its group) as the scope,
    in collection order (which `order_for_workers` made longest first)."""
    from xdist.scheduler import LoadScopeScheduling

    class SuiteScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return unit_of(nodeid.split("::", 1)[0])

    config.option.loadscopereorder = False  # keep the collection's order, not "most tests first"
    return SuiteScheduling(config, log)
