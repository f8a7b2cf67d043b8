"""The program each end-to-end job runs on its node (bench/economics_e2e.py ships it in the
job's workdir): it "computes" by sleeping for COMPUTE_S seconds in all, checkpoints its
progress to CKPT_DIR (a bucket mounted live, so a relaunched node resumes from it) every
CKPT_EVERY_S seconds of compute, writes its progress fraction as of its last checkpoint to
the file named by SPOTCTL_PROGRESS_FILE (when spotctl sets it), and exits 0 when done.
Standard library only: it runs on the node."""

from __future__ import annotations

import os
import time
from pathlib import Path

STEP_S = 0.1


def main() -> int:
    compute_s = float(os.environ["COMPUTE_S"])
    every_s = float(os.environ["CKPT_EVERY_S"])
    ckpt = Path(os.path.expanduser(os.environ["CKPT_DIR"])) / "progress"
    progress_file = os.environ.get("SPOTCTL_PROGRESS_FILE")
    done = float(ckpt.read_text()) if ckpt.exists() else 0.0
    print(f"resumed at {done:.1f} of {compute_s:.1f} s" if done else "starting fresh", flush=True)

    def save() -> None:
        tmp = ckpt.with_name("progress.tmp")
        tmp.write_text(f"{done:.3f}")
        os.replace(tmp, ckpt)
        if progress_file:
            Path(progress_file).write_text(f"{min(1.0, done / compute_s):.6f}")

    last = done
    while done < compute_s:
        step = min(STEP_S, compute_s - done)
        time.sleep(step)
        done += step
        if done - last >= every_s or done >= compute_s:
            save()
            last = done
    print(f"done: {done:.1f} s of compute", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
