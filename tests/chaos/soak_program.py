#!/usr/bin/env python3
"""The chaos soak's job: a checkpointing counter whose every byte of output can be predicted.

It runs on a local-cloud instance (copied there through the job's workdir) and uses only the
standard library. Why each piece is there:

- It folds each step into a running SHA-256 and checkpoints {step, state} in its MOUNT bucket
  (temporary file + os.replace, so a kill leaves the old or the new checkpoint, never half), and
  resumes from it: the final result equals an uninterrupted run's if and only if every resume
  was right.
- Every record it prints is a pure function of (key, job id, attempt, step), so the test can
  rebuild the exact bytes each attempt must have in the log store. Step records carry bytes
  that are not UTF-8, which a lossy log path would mangle.
- It prints a step *before* checkpointing it, so a kill between the two recomputes the step
  (seen twice across attempts) instead of losing its line.
- It appends a copy of every record it printed to `$SOAK_OUT/<key>/attempt-<n>.out`, outside
  the instance, written right after stdout: what spotctl stored must be that copy, or that
  copy plus the one record being written when the kill came.
- It holds an exclusive non-blocking flock on `$SOAK_LOCK` (outside the instance) for its whole
  life. If another copy of the job runs at the same moment, the flock fails, and it writes a
  violation file into `$SOAK_OUT/violations/` and exits 3. A preempted attempt's processes are
  SIGKILLed, so the kernel releases its lock; only a real double run trips this.
- On SIGTERM (the cloud's preemption notice) it saves its checkpoint and exits 143.

Environment: SOAK_KEY, SOAK_STEPS, SOAK_STEP_S, SOAK_LOCK, SOAK_OUT, SPOTCTL_JOB_ID,
SPOTCTL_ATTEMPT; the checkpoint lives in ~/ckpt (the job's MOUNT bucket).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import sys
import time

NOT_UTF8 = b"\xff\xfe\x80\xc3("
"""Invalid UTF-8 on purpose: a lone continuation byte, 0xff/0xfe, a truncated sequence."""


def next_state(state: str, key: str, step: int) -> str:
    """One "training" step: the test recomputes the chain to know the right result."""
    return hashlib.sha256(f"{state}:{key}:{step}".encode()).hexdigest()


def header(key: str, job_id: str, attempt: str, resumed: int) -> bytes:
    return f"soak {key} job {job_id} attempt {attempt}: resumed from step {resumed}\n".encode()


def step_record(key: str, step: int, state: str) -> bytes:
    return f"soak {key} step {step:05d} {state[:12]} ".encode() + NOT_UTF8 + b"\n"


def notice_record(key: str, step: int) -> bytes:
    return f"soak {key} notice: checkpoint saved at step {step}\n".encode()


def result_record(key: str, result: str) -> bytes:
    return f"soak {key} result: {result}\n".encode()


def result_of(state: str) -> str:
    return state[:16]


class Output:
    """stdout (what spotctl ships to its log store), then the program's own copy."""

    def __init__(self, copy_path: str) -> None:
        os.makedirs(os.path.dirname(copy_path), exist_ok=True)
        self.copy = os.open(copy_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def emit(self, record: bytes) -> None:
        os.write(1, record)  # one write per record, no buffering in between
        os.write(self.copy, record)


def write_json(path: str, data: dict) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def main() -> int:
    key = os.environ["SOAK_KEY"]
    steps = int(os.environ["SOAK_STEPS"])
    step_s = float(os.environ["SOAK_STEP_S"])
    out_dir = os.environ["SOAK_OUT"]
    job_id = os.environ.get("SPOTCTL_JOB_ID", "?")
    attempt = os.environ.get("SPOTCTL_ATTEMPT", "?")

    lock = os.open(os.environ["SOAK_LOCK"], os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.makedirs(os.path.join(out_dir, "violations"), exist_ok=True)
        holder = os.pread(lock, 200, 0).decode(errors="replace")
        with open(os.path.join(out_dir, "violations", f"{key}-attempt-{attempt}-pid-{os.getpid()}"), "w") as f:
            f.write(f"job {job_id} attempt {attempt} pid {os.getpid()} at {time.time():.3f}: "
                    f"lock held by [{holder}]\n")
        return 3
    os.ftruncate(lock, 0)
    os.pwrite(lock, f"job {job_id} attempt {attempt} pid {os.getpid()} since {time.time():.3f}".encode(), 0)

    noticed = False

    def on_term(_signum: int, _frame: object) -> None:
        nonlocal noticed
        noticed = True

    signal.signal(signal.SIGTERM, on_term)
    ckpt_dir = os.path.expanduser("~/ckpt")
    ckpt = os.path.join(ckpt_dir, "checkpoint.json")
    try:
        with open(ckpt) as f:
            data = json.load(f)
        done, state = int(data["step"]), str(data["state"])
    except FileNotFoundError:
        done, state = 0, ""

    out = Output(os.path.join(out_dir, key, f"attempt-{attempt}.out"))
    out.emit(header(key, job_id, attempt, done))
    while done < steps:
        if noticed:
            out.emit(notice_record(key, done))
            return 143
        time.sleep(step_s)  # the "work"
        step = done + 1
        new = next_state(state, key, step)
        out.emit(step_record(key, step, new))
        write_json(ckpt, {"step": step, "state": new})
        done, state = step, new
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    write_json(os.path.join(ckpt_dir, "result.json"), {"steps": done, "result": result_of(state)})
    out.emit(result_record(key, result_of(state)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
