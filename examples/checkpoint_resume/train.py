#!/usr/bin/env python3
"""A tiny "training" program that survives preemptions by checkpointing to a bucket.

Each step folds the step number into a running SHA-256 (the "model state"), so the final
result is the same whether the run was interrupted or not, if and only if resuming works.
The checkpoint ({step, state} as JSON) is rewritten atomically (temporary file +
os.replace) after every step, so a kill at any moment leaves the previous or the new one,
never half of one. On SIGTERM (the cloud's preemption notice) it saves and exits 143.

The checkpoint records the run it belongs to ($SKYPILOT_TASK_ID: the same across the
recoveries of one managed job, new for each launch), so the relaunches of a job resume from
it while a new launch with the same bucket starts fresh: the demo can be run again.

Environment: CHECKPOINT_DIR (default /checkpoint), TOTAL_STEPS (30), STEP_SECONDS (0.2).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import time

CKPT_DIR = os.environ.get("CHECKPOINT_DIR", "/checkpoint")
TOTAL_STEPS = int(os.environ.get("TOTAL_STEPS", "30"))
STEP_SECONDS = float(os.environ.get("STEP_SECONDS", "0.2"))
RUN_ID = os.environ.get("SKYPILOT_TASK_ID", "")  # "" outside a job: any checkpoint is resumed
CKPT = os.path.join(CKPT_DIR, "checkpoint.json")


class Preempted(Exception):
    pass


def on_term(signum: int, _frame: object) -> None:
    raise Preempted()


def write_json(path: str, data: dict) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load() -> tuple[int, str]:
    """(steps done, state) from this run's checkpoint; (0, "") when there is none or the one
    found was written by another run (an earlier launch of the demo)."""
    try:
        with open(CKPT) as f:
            data = json.load(f)
    except FileNotFoundError:
        return 0, ""
    if RUN_ID and data.get("run") != RUN_ID:
        print(f"checkpoint of another run ({data.get('run')}) ignored", flush=True)
        return 0, ""
    return int(data["step"]), str(data["state"])


def save(progress: tuple[int, str]) -> None:
    write_json(CKPT, {"step": progress[0], "state": progress[1], "run": RUN_ID})


def train_step(state: str, step: int) -> str:
    return hashlib.sha256(f"{state}:{step}".encode()).hexdigest()


def main() -> int:
    os.makedirs(CKPT_DIR, exist_ok=True)
    progress = load()  # (steps done, state after them): one tuple, replaced in one assignment
    print(f"resumed from step {progress[0]}" if progress[0] else "starting fresh", flush=True)
    try:
        signal.signal(signal.SIGTERM, on_term)
        while progress[0] < TOTAL_STEPS:
            step = progress[0] + 1
            time.sleep(STEP_SECONDS)  # the "work"
            progress = (step, train_step(progress[1], step))
            print(f"step {step}", flush=True)  # before the save: a kill between the two redoes the
            save(progress)  # step (printed twice), never hides it (saved, but never printed)
    except Preempted:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        save(progress)
        print(f"preempted: checkpoint saved at step {progress[0]}", flush=True)
        return 143  # 128 + SIGTERM: not a success, so the job is recovered, not finished
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    result = progress[1][:16]
    write_json(os.path.join(CKPT_DIR, "result.json"), {"steps": progress[0], "result": result})
    print(f"result: {result}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
