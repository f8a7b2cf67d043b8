"""`spotctl status` while the worker does not answer (SIGSTOPped: a frozen VM, a debugger, a
machine swapping): the live query of a running job gives up after a short time-out and status
shows what visibility recorded, saying on stderr that it may be stale, within a few seconds
(it took 31 s before)."""

from __future__ import annotations

import json
import os
import signal
import time

from spotctl.embedded import EmbeddedServer

from conftest import Spot

QUICK_S = 12.0
"""The most a status may take with the worker paused (the query time-out plus the CLI's start)."""



def _timed(spot: Spot, *args: str):
    started = time.monotonic()
    result = spot.run(*args)
    return result, time.monotonic() - started


def test_status_of_a_running_job_is_quick_and_marked_stale_while_the_worker_is_paused(own_spot: Spot) -> None:
    spot = own_spot
    job_id = spot.launch_detached("-n", "paused", "sleep 600")
    spot.wait_running(job_id)
    worker = EmbeddedServer(spot.settings).worker.pid()
    assert worker is not None
    os.kill(worker, signal.SIGSTOP)
    try:
        one, took_one = _timed(spot, "status", str(job_id))
        as_json, took_json = _timed(spot, "status", "--json", str(job_id))
        verbose, took_verbose = _timed(spot, "status", "-v", str(job_id))
    finally:
        os.kill(worker, signal.SIGCONT)
    try:
        print(f"paused worker: status {took_one:.1f} s, --json {took_json:.1f} s, -v {took_verbose:.1f} s")
        for result, took in ((one, took_one), (as_json, took_json), (verbose, took_verbose)):
            assert result.exit_code == 0, result.output
            assert took < QUICK_S, f"status took {took:.1f} s with the worker paused"
            assert "worker not answering" in result.stderr and "last recorded state" in result.stderr, result.stderr
            assert "Traceback" not in result.output
        assert "RUNNING" in one.stdout and "paused" in one.stdout
        (row,) = json.loads(as_json.stdout)  # the same shape as ever: a list of jobs
        assert row["job_id"] == job_id and row["status"] == "RUNNING"
        assert "RUNNING" in verbose.stdout
        # Once the worker answers again, status is live and says nothing of staleness.
        live = spot.run("status", str(job_id))
        assert live.exit_code == 0 and "RUNNING" in live.stdout
        assert "worker not answering" not in live.stderr
    finally:
        assert spot.run("cancel", "-y", str(job_id)).exit_code == 0
        spot.wait_status(job_id, "CANCELLED", timeout=60)
        deadline = time.monotonic() + 30
        while spot.alive_instances() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert spot.alive_instances() == []
