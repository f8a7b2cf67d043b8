"""A full disk under the local cloud's instances and the log store (issue 21): a job that fills
it does not hang RUNNING in silence, its neighbour is not failed, the reason shows in status,
every byte its node wrote reaches the log store once there is room, its own exit code is the
job's, and a cancel ends it while the disk is still full. A job launched onto a full disk
says why it waits, and runs once there is room.

The instances' disks, the cloud's state and the log store share one small tmpfs (8 MiB) here,
as they share the state dir's disk by default; the Temporal server's database is elsewhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from spotctl.clouds import local_cgroups
from spotctl.clouds.local_processes import processes_of

from conftest import Spot, embedded_spot, spotctl_env

DISK_MB = 8
BALLAST_MB = 3

HOG = textwrap.dedent("""
    name: hog
    run: |
      echo begin
      python3 -c '
      import sys, time
      chunk = ("x" * 1023 + "\\n") * 64
      try:
          while True:
              sys.stdout.write(chunk)
              sys.stdout.flush()
              time.sleep(0.04)
      except OSError as exc:
          sys.stderr.write(f"hog stopped: {exc}\\n")
      '
      AFTER
""")


@pytest.fixture(scope="module")
def small_disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Spot, Path]]:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a small real filesystem (tmpfs) needs root and mount")
    home = tmp_path_factory.mktemp("spotctl-small-disk")
    disk = home / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m", "tmpfs", str(disk)], check=True)
    try:
        for name in ("local_cloud", "logs"):
            (disk / name).mkdir()
            (home / name).symlink_to(disk / name)
        with embedded_spot(home, spotctl_env(home)) as spot:
            yield spot, disk
    finally:
        if subprocess.run(["umount", str(disk)]).returncode != 0:
            subprocess.run(["umount", "-l", str(disk)], check=True)


@pytest.fixture
def full(small_disk: tuple[Spot, Path]) -> Iterator[tuple[Spot, Path]]:
    """The small-disk spotctl, checked clean after the test (no instance, process or log left)."""
    spot, disk = small_disk
    yield spot, disk
    deadline = time.monotonic() + 20
    while spot.alive_instances() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert spot.alive_instances() == []
    for inst in spot.cloud.list_instances(alive_only=False):
        assert processes_of(inst.id) == [], f"processes left on {inst.id}"
    groups = local_cgroups.cloud_groups(spot.cloud.root)
    assert not groups.exists() or not any(p.is_dir() for p in groups.iterdir()), f"cgroups left in {groups}"
    for job_logs in (disk / "logs").iterdir():  # the next test starts with the same free space
        shutil.rmtree(job_logs)
    (disk / "ballast").unlink(missing_ok=True)


def detail(spot: Spot, job_id: int) -> str:
    return spot.job(job_id).get("detail") or ""


def wait_for(cond, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"never: {what}")


def test_a_disk_hog_waits_visibly_keeps_its_output_and_ends_with_its_own_code(full) -> None:
    spot, disk = full
    (disk / "ballast").write_bytes(b"\0" * (BALLAST_MB << 20))
    task = disk.parent / "hog.yaml"
    task.write_text(HOG.replace("AFTER", "sleep 2; exit 4"))
    neighbour = spot.launch_detached("-n", "neighbour", "for i in $(seq 1 50); do echo tick $i; sleep 0.4; done")
    spot.wait_running(neighbour)
    hog = spot.launch_detached(str(task))
    spot.wait_running(hog)
    reason = wait_for(lambda: "no space left on device" in (d := detail(spot, hog)) and d, 30, "the hog shows why")
    assert spot.job(hog)["status"] == "RUNNING", reason
    node_dir = next(p for p in (disk / "local_cloud" / "instances").glob(f"*/home/.spotctl/job-{hog}/attempt-1"))
    wait_for(lambda: (node_dir / "run.exit").exists(), 30, "the hog's exit code is written on a full disk")
    time.sleep(3)  # the monitor has seen the exit code, yet output waits on the node: not over
    job = spot.job(hog)
    assert job["status"] == "RUNNING" and "log store" in (job.get("detail") or ""), job
    written = (node_dir / "output.log").read_bytes()
    assert written.startswith(b"begin\n") and len(written) > 1 << 20
    (disk / "ballast").unlink()  # room again: the rest of the output is shipped, then the end
    job = spot.wait_status(hog, "FAILED", "SUCCEEDED", "FAILED_CONTROLLER", timeout=60)
    assert job["status"] == "FAILED" and job["exit_code"] == 4 and job["recoveries"] == 0, job
    assert job["failure_reason"] == "run exited with code 4"
    stored = (disk / "logs" / f"job-{hog}" / "attempt-1" / "node-0.log").read_bytes()
    assert stored == written  # every byte the node wrote, once
    job = spot.wait_status(neighbour, "SUCCEEDED", "FAILED", "FAILED_CONTROLLER", timeout=60)
    assert job["status"] == "SUCCEEDED" and job["exit_code"] == 0 and job["recoveries"] == 0, job


def test_a_job_that_filled_the_disk_is_cancelled_while_it_is_full(full) -> None:
    spot, disk = full
    task = disk.parent / "hog.yaml"
    task.write_text(HOG.replace("AFTER", "sleep 1000"))
    hog = spot.launch_detached(str(task))
    spot.wait_running(hog)
    wait_for(lambda: "no space left on device (node 0 disk)" in detail(spot, hog), 30, "the hog shows why")
    assert shutil.disk_usage(disk).free < 1 << 20
    assert spot.job(hog)["status"] == "RUNNING"
    assert spot.run("cancel", "-y", str(hog)).exit_code == 0
    job = spot.wait_status(hog, "CANCELLED", "FAILED", "FAILED_CONTROLLER", timeout=60)
    assert job["status"] == "CANCELLED", job
    assert spot.alive_instances() == []


def fill(path: Path) -> None:
    """Write zeros to `path` until the disk is full."""
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * (4 << 10))
        except OSError:
            pass


def test_a_job_launched_onto_a_full_disk_says_so_and_starts_once_there_is_room(full) -> None:
    spot, disk = full
    spot.cloud.config()  # made on first use: a state dir in use has it
    fill(disk / "ballast")
    job_id = spot.launch_detached("-n", "patient", "echo made it")
    why = wait_for(lambda: "no space left on device" in (d := detail(spot, job_id)) and d, 60, "the job shows why")
    assert "(state dir)" in why and spot.job(job_id)["status"] in ("PENDING", "STARTING"), why
    (disk / "ballast").unlink()
    job = spot.wait_status(job_id, "SUCCEEDED", "FAILED", "FAILED_CONTROLLER", "FAILED_SETUP", timeout=120)
    assert job["status"] == "SUCCEEDED" and job["recoveries"] == 0, job
    assert "made it" in spot.run("logs", "--no-follow", str(job_id)).stdout
