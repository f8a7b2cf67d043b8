"""`python bench/pool_throughput.py --quick`: 110 simulated jobs (two arrays, two priorities)
through a pool of 20 workers with one preempted, on the embedded server. What it checks is what a
user would: every job SUCCEEDED, each (array, rank) ran to its end exactly once, no VM left. Its
figures (throughput, overhead, memory) are printed, not asserted: performance claims live in the
benchmark's BENCHMARKS.md section."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_quick_pool_benchmark_runs_every_job_once() -> None:
    result = subprocess.run([sys.executable, "bench/pool_throughput.py", "--quick"], cwd=REPO, capture_output=True,
                            text=True, timeout=600)
    print(result.stdout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads(result.stdout[result.stdout.index("{\n"):])
    once = summary["exactly_once"]
    assert once["succeeded"] == once["jobs"] == 110
    assert once["jobs_with_one_finished_run"] == 110 and once["jobs_with_more_finished_runs"] == 0
    assert once["ranks_once"] == once["ranks_expected"] == 110
    assert summary["instances_left"] == 0
