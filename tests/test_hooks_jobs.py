"""`config.hooks` end to end: a managed job on the local cloud (real processes, the embedded
Temporal server and worker) is preempted with a notice; its preemption hooks run on the node
and show in its log, a hook's files reach its bucket, and the job recovers and succeeds
whatever its hooks' exits. A bad hooks block is one line and exit 2, and creates nothing."""

from __future__ import annotations

import shutil
import textwrap
import time
import uuid
from pathlib import Path
from typing import Literal, get_args

import pytest

from spotctl.models.spec import HOOK_EVENTS
from spotctl.task import parse_task_text
from spotctl.task.schema import HookSpec

from conftest import Spot, launched_id

HOOKED = """\
name: hooked
resources:
  cpus: 1+
file_mounts:
  ~/ckpt:
    name: {bucket}
    mode: MOUNT
envs:
  MYVAR: from-envs
secrets:
  TOKEN: s3cret-value
run: |
  if [ -f ~/ckpt/flushed ]; then echo "resumed: $(cat ~/ckpt/flushed)"; exit 0; fi
  trap 'echo "program got TERM"; exit 143' TERM
  echo "first attempt running"
  while true; do sleep 0.1; done
config:
  hooks:
    - run: |
        echo "hook saw event=$SKYPILOT_HOOK_EVENT var=$MYVAR token=${{#TOKEN}} rank=$SKYPILOT_NODE_RANK"
        echo "flushed by attempt $SPOTCTL_ATTEMPT" > ~/ckpt/flushed
        exit 7
      events: [preemption]
    - run: sleep 60
      timeout: 1
    - run: echo "a down hook ran"
      events: [down]
"""


def test_config_hooks_parse_as_skypilot_says() -> None:
    """SkyPilot's defaults (all three events, 3600 s), the order written, the older
    autostop.hook routed as SkyPilot routes it, and the launch's notes on what never runs."""
    text = textwrap.dedent("""\
        run: echo
        resources:
          autostop: {idle_minutes: 5, down: true, hook: echo old, hook_timeout: 10}
        config:
          kubernetes: {pod_config: {}}
          hooks:
            - run: echo a
            - run: echo b
              events: [preemption]
              timeout: 20
        """)
    task = parse_task_text(text).tasks[0]
    assert [(h.run, h.events, h.timeout_s) for h in task.lifecycle_hooks()] == [
        ("echo a", ["stop", "preemption", "down"], 3600.0), ("echo b", ["preemption"], 20.0),
        ("echo old", ["down"], 10.0)]
    notes = task.unsupported()
    assert "config.kubernetes: not supported yet" in notes
    assert any(n.startswith("config.hooks[0]: events stop, down do not happen") and "preemption notice only" in n
               for n in notes)
    assert not any(n.startswith("config.hooks[1]") for n in notes)
    assert any(n.startswith("resources.autostop.hook: events down") and "it never runs" in n for n in notes)
    stop = parse_task_text("run: echo\nresources:\n  autostop: {hook: echo x}\n").tasks[0].lifecycle_hooks()
    assert [(h.events, h.timeout_s) for h in stop] == [(["stop"], 3600.0)]
    assert get_args(HookSpec.model_fields["events"].annotation)[0] == list[Literal[HOOK_EVENTS]]


def wait_for_log(spot: Spot, job_id: int, text: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        logs = spot.run("logs", "--no-follow", str(job_id)).stdout
        if text in logs:
            return logs
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never printed {text!r}")


def test_preemption_hooks_run_on_the_notice_and_the_job_recovers(spot_clean: Spot, tmp_path: Path) -> None:
    bucket = f"hooks-test-{uuid.uuid4().hex[:8]}"
    bucket_dir = spot_clean.home / "local_buckets" / bucket
    path = tmp_path / "hooked.yaml"
    path.write_text(HOOKED.format(bucket=bucket))
    try:
        result = spot_clean.run("launch", "-y", "-d", str(path))
        assert result.exit_code == 0, result.output
        # Accepted, and told at launch what spotctl will not run.
        assert "config.hooks[2]: events down do not happen to a managed job" in result.stderr
        assert "config.hooks[0]" not in result.stderr
        job_id = launched_id(result.stderr)
        spot_clean.wait_running(job_id, 1)
        wait_for_log(spot_clean, job_id, "first attempt running")
        assert spot_clean.run("debug", "preempt", str(job_id), "--notice", "4").exit_code == 0
        job = spot_clean.wait_status(job_id, "SUCCEEDED", timeout=120)
        assert job["recoveries"] == 1
        assert [r["outcome"] for r in job["history"]] == ["preempted", "succeeded"]

        logs = spot_clean.run("logs", "--no-follow", str(job_id)).stdout
        lines = logs.splitlines()
        at = {key: next((i for i, line in enumerate(lines) if key in line), -1) for key in (
            "first attempt running", "preemption hook 1/2 started", "hook saw event=preemption",
            "preemption hook 1/2 ended (exit 7,", "preemption hook 2/2 started",
            "preemption hook 2/2 killed at its time limit (1.0 s)", "--- recovery ", "resumed: flushed by attempt 1")}
        assert all(i >= 0 for i in at.values()), (at, logs)
        assert list(at.values()) == sorted(at.values()), logs  # in the log where they happened
        # The job's env as the run has it (a secret too, never printed here), plus the event.
        assert "hook saw event=preemption var=from-envs token=12 rank=0" in logs
        assert "program got TERM" in logs  # the program had its notice as well
        assert "a down hook ran" not in logs
        assert (bucket_dir / "flushed").read_text() == "flushed by attempt 1\n"
    finally:
        shutil.rmtree(bucket_dir, ignore_errors=True)


BAD_HOOKS = {
    "not_a_list": ("config:\n  hooks:\n    run: echo\n", "config.hooks: expected a list"),
    "no_run": ("config:\n  hooks:\n    - events: [preemption]\n", "config.hooks[0]: missing required field 'run'"),
    "empty_run": ("config:\n  hooks:\n    - run: ''\n", "config.hooks[0].run"),
    "unknown_key": ("config:\n  hooks:\n    - run: echo\n      timout: 5\n", "did you mean 'timeout'"),
    "unknown_event": ("config:\n  hooks:\n    - run: echo\n      events: [preempted]\n",
                      "config.hooks[0].events[0]: expected 'stop', 'preemption' or 'down'"),
    "no_events": ("config:\n  hooks:\n    - run: echo\n      events: []\n", "config.hooks[0].events"),
    "twice": ("config:\n  hooks:\n    - run: echo\n      events: [down, down]\n", "each event at most once"),
    "zero_timeout": ("config:\n  hooks:\n    - run: echo\n      timeout: 0\n", "config.hooks[0].timeout: must be at least 1"),
    "fractional_timeout": ("config:\n  hooks:\n    - run: echo\n      timeout: 2.5\n", "expected a whole number"),
    "too_many": ("config:\n  hooks:\n" + "    - run: echo\n" * 33, "config.hooks: must have at most 32 entries"),
    "too_long": ("config:\n  hooks:\n    - run: '" + "x" * (16 * 1024 + 1) + "'\n", "more than the limit of 16384"),
    "too_much_together": ("config:\n  hooks:\n" + ("    - run: '" + "x" * 16000 + "'\n") * 9,
                          "more than the limit of 131072"),
    "legacy_timeout": ("resources:\n  autostop:\n    hook: echo\n    hook_timeout: 0\n", "hook_timeout"),
}


@pytest.mark.parametrize("case", sorted(BAD_HOOKS))
def test_a_bad_hooks_block_is_one_line_and_exit_2(spot_clean: Spot, tmp_path: Path, case: str) -> None:
    block, expected = BAD_HOOKS[case]
    path = tmp_path / "task.yaml"
    path.write_text("name: x\nrun: echo hi\n" + textwrap.dedent(block))
    before = len(spot_clean.status())
    result = spot_clean.run("launch", "-y", str(path))
    assert result.exit_code == 2, result.output
    assert expected in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.output
    assert len(spot_clean.status()) == before and spot_clean.alive_instances() == []
