"""How the suite is shared among pytest-xdist's workers (`-n 6 --dist loadfile`, the addopts in
pyproject.toml); `pytest -n 0` runs it serially, in its usual order.

Why these rules, and not xdist's own:
- A test file is one unit, run by one worker from its first test to its last, as with xdist's
  loadfile: a module-scoped server (the `env` fixtures' dev servers) starts once per file, and
  a file's tests keep the order they were written in.
- Units start longest first (SECONDS): a long file never starts last and ends the run alone.
  xdist hands out units in collection order, so `order_for_workers` sorts the collection
  (under xdist only).
- The files in ALONE run last, with the machine to themselves: once only they are left, every
  other worker is stopped, and one worker runs them after the others have ended. The soak
  loads both cores with dozens of processes (the load average passed 40 with it in the
  crowd, and the other workers' short programs finished before the tests could preempt
  them); the benchmark measures latencies against limits.

Most tests wait on things (Temporal, processes, sshd, timers) rather than burn CPU. Measured on
2 cores (other work on the machine, load 5-10): ten mid-sized files took 148 s on 3 workers,
132 s on 4 and 112 s on 6; the whole suite 20 min 38 s on 4 and 11 min 48 s on 6 (serial: 44 min).
"""

from __future__ import annotations

import os
from typing import Any

import pytest

ALONE = ("tests/chaos/test_soak.py", "tests/test_bench_quick.py")
"""Files that run after all the others, one at a time, with no other test running."""

SECONDS: dict[str, float] = {
    # A full serial run's seconds per file (`pytest --junitxml`, summed per file); files not
    # listed take less than 15 s. Only the order matters: the longest start first.
    "tests/chaos/test_soak.py": 390, "tests/test_workflow_races.py": 166, "tests/test_fuzz_dry_run.py": 162,
    "tests/test_moody_jobs.py": 106, "tests/test_durability.py": 100, "tests/test_codec_key.py": 93,
    "tests/lab/test_aws_failures.py": 88, "tests/test_recovery.py": 78, "tests/lab/test_aws_jobs.py": 76,
    "tests/test_event_deadlines.py": 76, "tests/test_supervisor.py": 72, "tests/lab/test_gcp_jobs.py": 70,
    "tests/lab/test_cross_cloud_jobs.py": 61, "tests/test_died_before_ready.py": 58,
    "tests/test_worker_fleet.py": 57, "tests/test_node_faults.py": 57, "tests/test_bench_quick.py": 47,
    "tests/test_bench_pool_quick.py": 45, "tests/test_pools.py": 45, "tests/test_pool_jobs.py": 25,
    "tests/test_job_arrays.py": 25, "tests/test_priorities.py": 15,
    "tests/test_worker_slots.py": 44, "tests/test_notify_bulkhead.py": 44, "tests/test_jobs.py": 42,
    "tests/test_full_disk.py": 41, "tests/test_event_handoff.py": 35, "tests/test_readme_demo.py": 34,
    "tests/test_monitor_heartbeat.py": 26, "tests/test_pipelines.py": 26, "tests/test_follow_cli.py": 26,
    "tests/test_cancel_continued.py": 26, "tests/test_checkpoint_resume.py": 25, "tests/test_notifications.py": 24,
    "tests/lab/test_ssh_runner.py": 24, "tests/test_status_paused_worker.py": 22, "tests/test_local_users.py": 21,
    "tests/test_backoff_timeskip.py": 19, "tests/test_local_preemption.py": 19, "tests/test_server.py": 18,
    "tests/test_economics_e2e.py": 62, "tests/test_local_trace.py": 20, "tests/test_job_ids.py": 18,
    "tests/test_launch_flags.py": 17, "tests/test_task_limits.py": 17, "tests/test_deadlines.py": 82,
    "tests/test_fleet_jobs.py": 24, "tests/test_economics.py": 17, "tests/test_dashboard.py": 60,
    "tests/test_controller_counts.py": 55,
}


def file_of(item_or_nodeid: pytest.Item | str) -> str:
    nodeid = item_or_nodeid if isinstance(item_or_nodeid, str) else item_or_nodeid.nodeid
    return nodeid.split("::", 1)[0]


def order_for_workers(items: list[pytest.Item]) -> None:
    """Sort the collection: the ALONE files last, the others longest first, each file's tests
    together and in their order (a stable sort)."""
    first: dict[str, int] = {}
    for i, item in enumerate(items):
        first.setdefault(file_of(item), i)

    def key(pair: tuple[int, pytest.Item]) -> tuple[bool, float, int, int]:
        path = file_of(pair[1])
        return (path in ALONE, -SECONDS.get(path, 0.0), first[path], pair[0])

    items[:] = [item for _, item in sorted(enumerate(items), key=key)]


def under_xdist() -> bool:
    return bool(os.environ.get("PYTEST_XDIST_WORKER"))


TERMINAL_ENV = ("COLUMNS", "LINES")
"""An xdist worker starts with COLUMNS=80 and LINES=24 whatever the run had, and `status`
fits its table into COLUMNS when set: the workers get the run's own values (or none) back."""


def pass_terminal_env(workerinput: dict[str, Any]) -> None:
    """On the controller, for each worker (pytest_configure_node)."""
    workerinput["spotctl_terminal_env"] = {key: os.environ.get(key) for key in TERMINAL_ENV}


def restore_terminal_env(workerinput: dict[str, Any]) -> None:
    """On a worker (pytest_configure): the controller's COLUMNS and LINES, or none."""
    for key, value in workerinput.get("spotctl_terminal_env", {}).items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def make_scheduler(config: pytest.Config, log: Any) -> Any:
    """For `--dist loadfile`: xdist's scope scheduling with a file as the scope, in collection
    order (which `order_for_workers` made), and the ALONE files run as the docstring says."""
    from xdist.scheduler import LoadScopeScheduling

    class SuiteScheduling(LoadScopeScheduling):
        alone_node: Any = None
        """The worker that runs the ALONE files, once the others have ended."""

        def _split_scope(self, nodeid: str) -> str:
            return file_of(nodeid)

        def _assign_work_unit(self, node: Any) -> None:
            if next(iter(self.workqueue)) in ALONE:
                self.alone_node = self.alone_node or node
                if node is not self.alone_node:
                    node.shutdown()  # it runs what it holds, then ends
                    return
                if any(other is not node for other in self.assigned_work):
                    return  # the others have not ended yet: remove_node calls again
            super()._assign_work_unit(node)

        def remove_node(self, node: Any) -> str | None:
            crashed = super().remove_node(node)
            if self.alone_node in self.assigned_work and not self.alone_node.shutting_down:
                self._reschedule(self.alone_node)
            return crashed

    config.option.loadscopereorder = False  # keep the collection's order, not "most tests first"
    return SuiteScheduling(config, log)
