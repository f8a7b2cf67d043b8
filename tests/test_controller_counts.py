"""bench/controller_counts.py at a tiny size (2 jobs held 20 s on the real embedded server and
the local cloud's simulated instances): its table has the rows issue 27's breakdown is made
of, with counts a launch, a quiet running job and a cancel must have, and it leaves nothing
behind. Not in the quick tier (about a minute)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = "bench/controller_counts.py"


def row(table: str, name: str) -> tuple[float, float, float]:
    """(per launch, per quiet job-minute, per cancel) of one row."""
    line = next((ln for ln in table.splitlines() if ln.startswith(f"| {name} |")), None)
    assert line is not None, f"no row {name!r} in:\n{table}"
    cells = [c.strip() for c in line.strip("|").split("|")]
    return float(cells[1]), float(cells[2]), float(cells[4])


def count_dirs() -> set[Path]:
    """The script's counts dirs (its deployment's state dir is fleet.py's, checked by its own tests)."""
    return set(Path(tempfile.gettempdir()).glob("spotctl-counts-*"))


def test_tiny_run_prints_sane_counts_and_leaves_nothing() -> None:
    before = count_dirs()
    result = subprocess.run([sys.executable, SCRIPT, "--jobs", "2", "--hold", "20"], cwd=REPO, capture_output=True,
                            text=True, timeout=600)
    print(result.stdout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    launch_events, quiet_events, cancel_events = row(out, "history events, all")
    assert 10 <= launch_events <= 200 and quiet_events == 0 and 1 <= cancel_events <= 100
    assert row(out, "history event WORKFLOW_EXECUTION_STARTED")[0] == 1
    assert row(out, "server rpc StartWorkflowExecution")[0] == 1
    assert row(out, "server rpc RequestCancelWorkflowExecution")[2] >= 1
    assert row(out, "activity teardown")[2] == 1
    assert 1 <= row(out, "server rpc RecordActivityTaskHeartbeat")[1] <= 60  # monitors beat every 12 s
    assert row(out, "worker node_polls")[1] >= 1  # a running job is watched
    assert row(out, "visibility UpsertWorkflowExecution")[0] >= 1  # RUNNING is visible
    assert row(out, "db write UpdateWorkflowExecution")[0] >= 1
    assert "N=2: launch" in out
    assert count_dirs() <= before  # its counts dir is gone (the deployment's processes and dir: fleet.py)


def test_bad_flags_are_one_line_and_exit_2() -> None:
    for args in (["--jobs", "0"], ["--jobs", "a,b"], ["--hold", "1"], ["--lines-per-s", "-1"], ["--nope"]):
        result = subprocess.run([sys.executable, SCRIPT, *args], cwd=REPO, capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr, (args, result.stderr)
        assert result.stdout == ""
