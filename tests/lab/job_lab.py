"""What the lab's job tests share: a training stand-in that counts steps and checkpoints them,
and the CLI calls a user would make to follow a job (launch, logs, wait for a line)."""

from __future__ import annotations

import re
import time
from pathlib import Path

from conftest import Spot, launched_id

COUNTER = """\
import os, signal, sys, time
print(f"run id {os.environ.get('SKYPILOT_RUN_ID')}", flush=True)
path = os.path.expanduser("~/ckpt/step")
step = int(open(path).read()) if os.path.exists(path) else 0
print(f"resuming at {step}", flush=True)
def save_and_exit(signum, frame):
    print(f"SIGTERM at step {step}, saved", flush=True)
    sys.exit(143)
signal.signal(signal.SIGTERM, save_and_exit)
while step < STEPS:
    step += 1
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(step))
    os.replace(tmp, path)
    print(f"step {step}", flush=True)
    time.sleep(0.5)
print(f"done {step}", flush=True)
"""



def launch(spot: Spot, task: Path) -> int:
    result = spot.run("launch", "-y", "-d", str(task))
    assert result.exit_code == 0, result.output
    return launched_id(result.stderr)


def logs(spot: Spot, job_id: int) -> str:
    result = spot.run("logs", "--no-follow", str(job_id))
    return result.output


def wait_for_log(spot: Spot, job_id: int, pattern: str, timeout: float = 90) -> re.Match:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = logs(spot, job_id)
        if m := re.search(pattern, text, re.M):
            return m
        time.sleep(0.5)
    raise AssertionError(f"job {job_id}: no {pattern!r} in its logs:\n{text[-3000:]}")


def steps_seen(text: str) -> list[int]:
    return [int(s) for s in re.findall(r"^step (\d+)$", text, re.M)]


def run_ids(text: str) -> list[str]:
    """The SKYPILOT_RUN_ID each attempt's program saw, in order."""
    return re.findall(r"^run id (\S+)$", text, re.M)
