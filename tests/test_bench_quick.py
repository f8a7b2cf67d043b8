"""`python bench/run.py --quick` in CI: 50 simulated jobs on the embedded server, failing past
twice a target of issue 11 (MiB per running job, preemption detection p50), so a regression
of the controller's cost or speed cannot land unseen. Its figures are printed (`pytest -s`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_quick_benchmark_meets_its_limits() -> None:
    result = subprocess.run([sys.executable, "bench/run.py", "--quick"], cwd=REPO, capture_output=True, text=True,
                            timeout=600)
    print(result.stdout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = next(line for line in result.stdout.splitlines() if line.startswith("N=50 "))
    assert "MiB/job" in summary and "detection p50" in summary and "left 0" in summary
