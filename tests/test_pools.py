"""Pools end to end on the real embedded Temporal and the local cloud: `pool apply`, jobs on
the pool (`launch -p`), a worker preempted under a job, cancel, `pool down`, and bad input."""

from __future__ import annotations

import asyncio
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from spotctl.client import connect
from spotctl.models.pool import RELEASE_SIGNAL, PoolRelease, PoolRequest, pool_workflow_id
from spotctl.worker.sweeper import SweepReport, sweep_once

from conftest import Spot


def pool_file(tmp_path: Path, setups: Path, workers: str = "workers: 2", resources: str = "cpus: 1+") -> str:
    """A SkyPilot pool file; `workers`: the `pool:` section's lines."""
    path = tmp_path / "pool.yaml"
    section = "".join(f"  {line.strip()}\n" for line in workers.splitlines())
    path.write_text(f"pool:\n{section}resources:\n  {resources}\nsetup: |\n"
                    f"  echo \"setup on $(hostname)\" >> {setups}\n")
    return str(path)


def job_file(tmp_path: Path, name: str, run: str) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\nrun: |\n" + textwrap.indent(textwrap.dedent(run), "  "))
    return str(path)


def wait_pool(spot: Spot, name: str, text: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    out = ""
    while time.monotonic() < deadline:
        out = spot.run("pool", "status", name).output
        if text in out:
            return out
        time.sleep(0.3)
    raise AssertionError(f"pool {name} never showed {text!r}; last:\n{out}")


def down(spot: Spot, name: str) -> None:
    result = spot.run("pool", "down", name, "--cancel", "-y")
    assert result.exit_code == 0, result.output
    assert "is down" in result.output


def test_pool_runs_jobs_on_workers_set_up_once(spot_clean: Spot, tmp_path: Path) -> None:
    setups = tmp_path / "setups"
    runs = tmp_path / "runs"
    result = spot_clean.run("pool", "apply", "-p", "twin", pool_file(tmp_path, setups), "-y")
    assert result.exit_code == 0, result.output
    try:
        job = job_file(tmp_path, "work", f"""
            test -z "$(ls -A)" || {{ echo "dirty working directory"; exit 3; }}
            touch mine
            echo "$SPOTCTL_JOB_ID $MY_VAR $(hostname)" >> {runs}
            sleep 1
        """)
        ids = [spot_clean.launch_detached("-p", "twin", "--env", f"MY_VAR=v{i}", job) for i in range(4)]
        states = [spot_clean.wait_status(i, "SUCCEEDED", "FAILED", timeout=120) for i in ids]
        assert [s["status"] for s in states] == ["SUCCEEDED"] * 4, states
        lines = runs.read_text().splitlines()
        assert sorted(int(line.split()[0]) for line in lines) == ids  # each exactly once
        assert {line.split()[1] for line in lines} == {"v0", "v1", "v2", "v3"}  # its own envs
        assert len(setups.read_text().splitlines()) == 2  # each worker set up once, not per job
        assert all(s["pool"] == "twin" and s["recoveries"] == 0 for s in states)
        out = spot_clean.run("pool", "status", "twin").output
        assert "READY" in out and "Spend so far: $" in out and out.count("idle") == 2, out
        assert spot_clean.run("status", "--json", "--all").output.count('"twin"') >= 4  # jobs, not the pool
    finally:
        down(spot_clean, "twin")


def test_preempted_worker_sends_its_job_back_to_pending(spot_clean: Spot, tmp_path: Path) -> None:
    setups = tmp_path / "setups"
    assert spot_clean.run("pool", "apply", "-p", "heal", pool_file(tmp_path, setups), "-y").exit_code == 0
    try:
        hold = job_file(tmp_path, "held", """
            if [ "$SPOTCTL_RECOVERY_COUNT" = 0 ]; then while true; do sleep 0.1; done; fi
            echo "ran again after $SPOTCTL_RECOVERY_COUNT recovery"
        """)
        job_id = spot_clean.launch_detached("-p", "heal", hold)
        first = spot_clean.wait_running(job_id, 1, timeout=90)
        result = spot_clean.run("debug", "preempt", str(job_id), "--notice", "0")
        assert result.exit_code == 0, result.output
        done = spot_clean.wait_status(job_id, "SUCCEEDED", "FAILED", timeout=120)
        assert done["status"] == "SUCCEEDED" and done["recoveries"] == 1, done
        assert [r["outcome"] for r in done["history"]] == ["preempted", "succeeded"]
        assert done["worker"] != first["worker"]
        assert "ran again after 1 recovery" in spot_clean.run("logs", "--no-follow", str(job_id)).stdout
        wait_pool(spot_clean, "heal", "READY")  # the lost worker was replaced
    finally:
        down(spot_clean, "heal")


def test_cancel_frees_the_worker_for_the_next_job(spot_clean: Spot, tmp_path: Path) -> None:
    setups = tmp_path / "setups"
    assert spot_clean.run("pool", "apply", "-p", "solo", pool_file(tmp_path, setups, "workers: 1"), "-y").exit_code == 0
    try:
        forever = job_file(tmp_path, "forever", "while true; do sleep 0.1; done\n")
        quick = job_file(tmp_path, "quick", "echo quick done\n")
        long_id = spot_clean.launch_detached("-p", "solo", forever)
        running = spot_clean.wait_running(long_id, 1, timeout=90)
        next_id = spot_clean.launch_detached("-p", "solo", quick)
        spot_clean.wait_status(next_id, "PENDING")  # listed once visibility has it; it cannot get further
        assert spot_clean.run("cancel", "-y", str(long_id)).exit_code == 0
        assert spot_clean.wait_status(long_id, "CANCELLED", timeout=60)["status"] == "CANCELLED"
        done = spot_clean.wait_status(next_id, "SUCCEEDED", "FAILED", timeout=60)
        assert done["status"] == "SUCCEEDED" and done["worker"] == running["worker"], done  # same worker, kept
        assert len(setups.read_text().splitlines()) == 1
    finally:
        down(spot_clean, "solo")


def test_pool_scales_with_its_queue(spot_clean: Spot, tmp_path: Path) -> None:
    setups = tmp_path / "setups"
    elastic = pool_file(tmp_path, setups, "min_workers: 0\n  max_workers: 2")
    assert spot_clean.run("pool", "apply", "-p", "elastic", elastic, "--idle-timeout", "1", "-y").exit_code == 0
    try:
        assert "0 " in wait_pool(spot_clean, "elastic", "READY")  # no job, no worker
        assert spot_clean.alive_instances() == []
        job = job_file(tmp_path, "nap", "sleep 2\n")
        ids = [spot_clean.launch_detached("-p", "elastic", job) for _ in range(3)]
        out = wait_pool(spot_clean, "elastic", "busy")
        assert len(spot_clean.alive_instances()) <= 2, out  # never above max_workers
        assert all(spot_clean.wait_status(i, "SUCCEEDED", "FAILED", timeout=120)["status"] == "SUCCEEDED" for i in ids)
        assert len(setups.read_text().splitlines()) == 2  # scaled to 2, not 3
        deadline = time.monotonic() + 60
        while spot_clean.alive_instances() and time.monotonic() < deadline:  # idle workers go after 1 s
            time.sleep(0.3)
        assert spot_clean.alive_instances() == []
        resized = spot_clean.run("pool", "apply", "-p", "elastic", "--workers", "1")
        assert resized.exit_code == 0 and "updated: 1 worker" in resized.output, resized.output
        wait_pool(spot_clean, "elastic", "idle")
        assert len(spot_clean.alive_instances()) == 1
    finally:
        down(spot_clean, "elastic")


def test_bad_pool_input_is_one_line_and_exit_2(spot_clean: Spot, tmp_path: Path) -> None:
    setups = tmp_path / "setups"
    job = job_file(tmp_path, "job", "echo hi\n")
    result = spot_clean.run("launch", "-y", "-d", "-p", "nosuch", job)
    assert result.exit_code == 2 and "pool 'nosuch' does not exist" in result.output, result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("pool:\n  min_workers: 3\n  max_workers: 1\nresources:\n  cpus: 1+\n")
    result = spot_clean.run("pool", "apply", "-p", "bad", str(bad), "-y")
    assert result.exit_code == 2 and "min_workers (3) is more than max_workers (1)" in result.output, result.output
    malformed = tmp_path / "malformed.yaml"
    malformed.write_text("pool:\n  workers: lots\nresources:\n  cpus: 1+\n")
    result = spot_clean.run("pool", "apply", "-p", "bad", str(malformed), "-y")
    assert result.exit_code == 2 and "pool.workers" in result.output, result.output
    with_run = tmp_path / "with_run.yaml"
    with_run.write_text("pool:\n  workers: 1\nrun: echo no\n")
    result = spot_clean.run("pool", "apply", "-p", "bad", str(with_run), "-y")
    assert result.exit_code == 2 and "may not have a `run` section" in result.output, result.output
    result = spot_clean.run("pool", "apply", "-p", "Bad_Name", str(with_run), "-y")
    assert result.exit_code == 2 and "bad pool name" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1
    result = spot_clean.run("pool", "status", "bad")
    assert result.exit_code == 1 and "no pool 'bad'" in result.output
    small = pool_file(tmp_path, setups, "workers: 1", "instance_type: local.small")
    assert spot_clean.run("pool", "apply", "-p", "small", small, "-y").exit_code == 0
    try:
        big = tmp_path / "big.yaml"
        big.write_text("resources:\n  cpus: 4+\nrun: echo big\n")
        result = spot_clean.run("launch", "-y", "-d", "-p", "small", str(big))
        assert result.exit_code == 2, result.output
        assert "cannot serve this job's resources" in result.output and "Managed job" not in result.output
    finally:
        down(spot_clean, "small")


def test_waiting_jobs_are_served_by_priority_then_age() -> None:
    """The pool's queue order (models.pool.PoolRequest.order_key): higher priority first, then
    the oldest, then the lower id."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    reqs = [PoolRequest(job_id=1, seq=1, priority=500, submitted_at=t0),
            PoolRequest(job_id=2, seq=1, priority=900, submitted_at=t0 + timedelta(seconds=5)),
            PoolRequest(job_id=3, seq=1, priority=500, submitted_at=t0 - timedelta(seconds=5)),
            PoolRequest(job_id=4, seq=1, priority=0, submitted_at=t0 - timedelta(days=1)),
            PoolRequest(job_id=5, seq=2, priority=500, submitted_at=t0)]
    assert [r.job_id for r in sorted(reqs, key=PoolRequest.order_key)] == [2, 3, 1, 5, 4]


def test_the_sweeper_spares_a_running_pools_workers(spot_clean: Spot, tmp_path: Path) -> None:
    """A pool's workers are tagged with the pool's number, which no job's workflow has: the
    orphan sweeper must ask for the pool before it takes them for orphans."""
    assert spot_clean.run("pool", "apply", "-p", "kept", pool_file(tmp_path, tmp_path / "s", "workers: 1"),
                          "-y").exit_code == 0
    try:
        wait_pool(spot_clean, "kept", "idle")
        alive = [i.id for i in spot_clean.alive_instances()]

        async def go() -> SweepReport:
            return await sweep_once(await connect(spot_clean.settings), spot_clean.settings, grace_s=0)

        report = asyncio.run(go())
        assert alive and not set(alive) & set(report.terminated), report
        assert [i.id for i in spot_clean.alive_instances()] == alive
    finally:
        down(spot_clean, "kept")


def test_down_drains_or_cancels_and_says_so_first(spot_clean: Spot, tmp_path: Path) -> None:
    assert spot_clean.run("pool", "apply", "-p", "ebb", pool_file(tmp_path, tmp_path / "s", "workers: 1"),
                          "-y").exit_code == 0
    nap = job_file(tmp_path, "nap", "sleep 2\n")
    first = spot_clean.launch_detached("-p", "ebb", nap)
    spot_clean.wait_running(first, 1, timeout=90)
    second = spot_clean.launch_detached("-p", "ebb", nap)
    wait_pool(spot_clean, "ebb", "1 job(s) waiting")  # its request has reached the pool
    result = spot_clean.run("pool", "down", "ebb", "-y")
    assert result.exit_code == 0, result.output
    assert "1 waiting job(s) and 1 running job(s) will run to their end first" in result.output, result.output
    refused = spot_clean.run("launch", "-y", "-d", "-p", "ebb", nap)
    assert refused.exit_code == 2 and "going down" in refused.output, refused.output
    for job_id in (first, second):
        assert spot_clean.wait_status(job_id, "SUCCEEDED", "FAILED", timeout=90)["status"] == "SUCCEEDED"
    deadline = time.monotonic() + 60
    while spot_clean.run("pool", "status", "ebb").exit_code == 0 and time.monotonic() < deadline:
        time.sleep(0.3)
    assert spot_clean.run("pool", "status", "ebb").exit_code == 1  # gone, with its workers

    assert spot_clean.run("pool", "apply", "-p", "ebb", pool_file(tmp_path, tmp_path / "s", "workers: 1"),
                          "-y").exit_code == 0  # the same name again, a new pool
    forever = spot_clean.launch_detached("-p", "ebb", job_file(tmp_path, "forever", "while true; do sleep 0.1; done\n"))
    spot_clean.wait_running(forever, 1, timeout=90)
    result = spot_clean.run("pool", "down", "ebb", "--cancel", "-y")
    assert result.exit_code == 0 and "1 running job(s) will be CANCELLED" in result.output, result.output
    assert spot_clean.wait_status(forever, "CANCELLED", timeout=60)["status"] == "CANCELLED"
    assert spot_clean.alive_instances() == []


def test_an_idle_worker_taken_back_is_replaced(spot_clean: Spot, tmp_path: Path) -> None:
    setups = tmp_path / "setups"
    assert spot_clean.run("pool", "apply", "-p", "phoenix", pool_file(tmp_path, setups, "workers: 1"),
                          "--probe-interval", "1", "-y").exit_code == 0
    try:
        wait_pool(spot_clean, "phoenix", " idle ")
        [old] = spot_clean.alive_instances()
        spot_clean.cloud.preempt(old.id, 0)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            alive = spot_clean.alive_instances()
            if alive and alive[0].id != old.id and " idle " in spot_clean.run("pool", "status", "phoenix").output:
                break
            time.sleep(0.3)
        else:
            raise AssertionError(spot_clean.run("pool", "status", "phoenix").output)
        assert len(setups.read_text().splitlines()) == 2  # the replacement was set up too
        job = spot_clean.launch_detached("-p", "phoenix", job_file(tmp_path, "hi", "echo hi\n"))
        done = spot_clean.wait_status(job, "SUCCEEDED", "FAILED", timeout=60)
        assert done["status"] == "SUCCEEDED" and done["recoveries"] == 0, done
    finally:
        down(spot_clean, "phoenix")


def test_down_does_not_wait_for_a_setup_that_never_ends(spot_clean: Spot, tmp_path: Path) -> None:
    path = tmp_path / "slow.yaml"
    path.write_text("pool:\n  workers: 1\nresources:\n  cpus: 1+\nsetup: sleep 600\n")
    assert spot_clean.run("pool", "apply", "-p", "slow", str(path), "-y").exit_code == 0
    wait_pool(spot_clean, "slow", "setting-up")
    started = time.monotonic()
    down(spot_clean, "slow")
    assert time.monotonic() - started < 60
    assert spot_clean.alive_instances() == []


def test_set_priority_moves_a_job_waiting_for_a_worker(spot_clean: Spot, tmp_path: Path) -> None:
    """`spotctl set-priority` on a job waiting for a pool's worker moves its place in the pool's
    queue: raised, it runs before a job that waited longer (patch pool-priority)."""
    order = tmp_path / "order"
    assert spot_clean.run("pool", "apply", "-p", "line", pool_file(tmp_path, tmp_path / "s", "workers: 1"),
                          "-y").exit_code == 0
    try:
        gate = tmp_path / "gate"
        busy = spot_clean.launch_detached("-p", "line", job_file(tmp_path, "busy", f"""
            while [ ! -e {gate} ]; do sleep 0.1; done
            """))
        spot_clean.wait_running(busy, 1, timeout=90)
        older = spot_clean.launch_detached("-p", "line", job_file(tmp_path, "older", f"echo older >> {order}\n"))
        wait_pool(spot_clean, "line", "1 job(s) waiting")
        newer = spot_clean.launch_detached("-p", "line", job_file(tmp_path, "newer", f"echo newer >> {order}\n"))
        wait_pool(spot_clean, "line", "2 job(s) waiting")
        result = spot_clean.run("set-priority", str(newer), "100")
        assert result.exit_code == 0 and "priority 0 -> 100" in result.output, result.output
        wait_pool(spot_clean, "line", f"next: {newer}, {older}")  # the pool moved it ahead
        gate.touch()
        for job_id in (busy, older, newer):
            assert spot_clean.wait_status(job_id, "SUCCEEDED", "FAILED", timeout=90)["status"] == "SUCCEEDED"
        assert order.read_text().split() == ["newer", "older"]
    finally:
        down(spot_clean, "line")


def test_a_release_sent_again_never_frees_a_worker_the_next_job_holds(spot_clean: Spot, tmp_path: Path) -> None:
    """A pool job's monitor gives the worker back as its program ends (pool-early-release); a
    retried monitor sends that release again, maybe once the worker runs the next job. The
    pool must neither free the worker under that job nor hand it to a third: one job a worker."""
    assert spot_clean.run("pool", "apply", "-p", "twice", pool_file(tmp_path, tmp_path / "s", "workers: 1"),
                          "-y").exit_code == 0
    try:
        first = spot_clean.launch_detached("-p", "twice", job_file(tmp_path, "first", "echo first\n"))
        assert spot_clean.wait_status(first, "SUCCEEDED", "FAILED", timeout=90)["status"] == "SUCCEEDED"
        gate = tmp_path / "gate"
        busy = spot_clean.launch_detached("-p", "twice", job_file(tmp_path, "busy", f"""
            while [ ! -e {gate} ]; do sleep 0.1; done
            """))
        spot_clean.wait_running(busy, 1, timeout=90)
        third = spot_clean.launch_detached("-p", "twice", job_file(tmp_path, "third", "echo third\n"))
        wait_pool(spot_clean, "twice", f"1 job(s) waiting for a worker, next: {third}")

        seq = spot_clean.job(first)["last_attempt"]  # its request: the attempt it ran

        async def release_first_again() -> None:
            client = await connect(spot_clean.settings)
            await client.get_workflow_handle(pool_workflow_id("twice")).signal(
                RELEASE_SIGNAL, PoolRelease(job_id=first, seq=seq))
        asyncio.run(release_first_again())
        time.sleep(3)  # the pool has taken the signal (its workflow runs in well under that)
        out = wait_pool(spot_clean, "twice", f"1 job(s) waiting for a worker, next: {third}")
        [held] = [line for line in out.splitlines() if " busy " in line]
        assert f" {busy} " in held, out  # still the busy job's
        assert spot_clean.job(third)["status"] == "PENDING"
        assert spot_clean.job(busy)["status"] == "RUNNING"
        gate.touch()
        for job_id in (busy, third):
            assert spot_clean.wait_status(job_id, "SUCCEEDED", "FAILED", timeout=90)["status"] == "SUCCEEDED"
    finally:
        down(spot_clean, "twice")
