"""Placement that learns, end to end: a job preempted in one zone makes the next job (another
job) rank that zone lower, through the fleet's memory (spotctl/fleet/), on the real embedded
server and worker and the local cloud's real instances; the memory outlives the server and
the worker; `launch --dry-run` and `status -v` show the figures behind the order.

The local cloud is set so the preempted zone is strictly the cheapest (local-east-1a at
$0.0100/h against local-west's $0.01005/h): ranked by price, every job would land there.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from spotctl.clouds.local import LocalCloud
from spotctl.clouds.local_processes import processes_of
from spotctl.fleet import FleetStore

from conftest import Spot, embedded_spot, spotctl_env


def _learning_env(home: Path) -> dict[str, str]:
    return {**spotctl_env(home), "SPOTCTL_PLACEMENT": "expected-cost"}


def _cheapest_zone_first(home: Path, env: dict[str, str]) -> None:
    """local-east has one zone, the cheapest; local-west is a hair dearer; local-eu is out."""
    cloud = LocalCloud(Spot(home, env).settings)
    cloud.config()  # writes the default file
    data = yaml.safe_load(cloud.config_path.read_text())
    data["regions"]["local-east"]["zones"] = ["local-east-1a"]
    data["regions"]["local-west"]["price_factor"] = 1.005
    del data["regions"]["local-eu"]
    cloud.config_path.write_text(yaml.safe_dump(data))


@contextmanager
def _running(home: Path, env: dict[str, str]) -> Iterator[Spot]:
    with embedded_spot(home, env) as spot:
        yield spot


def _no_leftovers(spot: Spot) -> None:
    deadline = time.monotonic() + 15
    while spot.alive_instances() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert spot.alive_instances() == []
    for inst in spot.cloud.list_instances(alive_only=False):
        assert processes_of(inst.id) == [], f"processes left on {inst.id}"


def _verbose(spot: Spot, job_id: int) -> str:
    result = spot.run("status", "-v", str(job_id))
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.timeout(600)
def test_a_preempted_zone_ranks_lower_for_the_next_job_and_the_memory_outlives_a_restart(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = _learning_env(home)
    _cheapest_zone_first(home, env)
    with _running(home, env) as spot:
        dry = spot.run("launch", "--dry-run", "echo hi")
        assert dry.exit_code == 0, dry.output
        assert "no fleet history yet" in dry.stdout
        # Job 1 stays in its zone (FAILOVER: the same zone first) and is preempted there twice.
        first = spot.launch_detached("--job-recovery", "FAILOVER", "-n", "victim", "sleep 1000")
        job = spot.wait_running(first)
        assert job["zone"] == "local-east-1a"
        for attempt in (1, 2):
            assert spot.run("debug", "preempt", str(first), "--notice", "0").exit_code == 0
            job = spot.wait_running(first, attempt=attempt + 1)
            assert job["zone"] == "local-east-1a", "FAILOVER keeps SkyPilot's meaning: the same zone first"
        assert spot.run("cancel", "-y", str(first)).exit_code == 0
        spot.wait_status(first, "CANCELLED")

        # What the next launch is told, before it starts.
        dry = spot.run("launch", "--dry-run", "echo hi")
        assert dry.exit_code == 0, dry.output
        assert "local-east-1a: 2 preemptions in 6 h" in dry.stdout, dry.stdout
        assert "Placement candidates" in dry.stdout
        table = dry.stdout.split("Placement candidates", 1)[1]
        assert table.index("local-west") < table.index("local-east-1a"), "the learned order is the one shown"

        # Job 2, another job, lands elsewhere though the preempted zone is cheaper.
        second = spot.launch_detached("-n", "next", "echo hi")
        job = spot.wait_status(second, "SUCCEEDED", timeout=60)
        assert job["region"] == "local-west", job
        shown = _verbose(spot, second)
        assert "Placement" in shown and "by expected cost" in shown
        assert "local-east-1a: 2 preemptions in 6 h" in shown, shown
        _no_leftovers(spot)

    # A new server and a new worker: the memory is a file, so job 3 still avoids the zone.
    with _running(home, env) as spot:
        third = spot.launch_detached("-n", "after-restart", "echo hi")
        job = spot.wait_status(third, "SUCCEEDED", timeout=90)
        assert job["region"] == "local-west", job
        assert "local-east-1a: 2 preemptions in 6 h" in _verbose(spot, third)
        _no_leftovers(spot)


def test_ranked_by_price_the_next_job_takes_the_cheapest_zone_as_before(tmp_path: Path) -> None:
    """The switch off (`fleet.ranking: price`, the default): the memory is still fed and shown,
    but the job orders its candidates by price, as it always did."""
    home = tmp_path / "home"
    env = spotctl_env(home)
    _cheapest_zone_first(home, env)
    with _running(home, env) as spot:
        first = spot.launch_detached("--job-recovery", "FAILOVER", "-n", "victim", "sleep 1000")
        spot.wait_running(first)
        assert spot.run("debug", "preempt", str(first), "--notice", "0").exit_code == 0
        spot.wait_running(first, attempt=2)
        assert spot.run("cancel", "-y", str(first)).exit_code == 0
        spot.wait_status(first, "CANCELLED")
        dry = spot.run("launch", "--dry-run", "echo hi")
        assert "local-east-1a: 1 preemption in 6 h" in dry.stdout, dry.stdout
        assert "ranking: price" in dry.stdout
        second = spot.launch_detached("-n", "next", "echo hi")
        job = spot.wait_status(second, "SUCCEEDED", timeout=60)
        assert job["zone"] == "local-east-1a", job
        assert "Placement" not in _verbose(spot, second).replace("Placement candidates", "")
        _no_leftovers(spot)



def test_a_corrupt_memory_never_fails_a_job(tmp_path: Path) -> None:
    """The memory is advice: a file that is not a database is logged and read as nothing, by
    the worker (the job runs, by price) and by the dry run (which says so)."""
    home = tmp_path / "home"
    env = _learning_env(home)
    _cheapest_zone_first(home, env)
    (home / "fleet.db").write_bytes(b"not a database " * 100)
    with _running(home, env) as spot:
        dry = spot.run("launch", "--dry-run", "echo hi")
        assert dry.exit_code == 0, dry.output
        assert "Fleet history: unreadable" in dry.stdout and "candidates in price order" in dry.stdout
        job_id = spot.launch_detached("-n", "carries-on", "echo hi")
        job = spot.wait_status(job_id, "SUCCEEDED", timeout=60)
        assert job["zone"] == "local-east-1a", job  # no figures: price order
        assert "no fleet history" in _verbose(spot, job_id)  # the order's figures: nothing known
        _no_leftovers(spot)
    assert (home / "fleet.db").read_bytes().startswith(b"not a database")  # left for the operator to look at


def test_capacity_failures_launches_and_ends_are_remembered_once(tmp_path: Path) -> None:
    """create_cluster writes each candidate without capacity and the launch (with its price);
    the teardown writes the instance's end with its lifetime; nothing twice."""
    home = tmp_path / "home"
    env = spotctl_env(home)
    _cheapest_zone_first(home, env)
    cloud = LocalCloud(Spot(home, env).settings)
    data = yaml.safe_load(cloud.config_path.read_text())
    data["regions"]["local-east"]["capacity"] = 0
    cloud.config_path.write_text(yaml.safe_dump(data))
    with _running(home, env) as spot:
        job_id = spot.launch_detached("-n", "elsewhere", "sleep 1")
        job = spot.wait_status(job_id, "SUCCEEDED", timeout=60)
        assert job["region"] == "local-west"
        events = [(e.place.zone, e.kind.value) for e in FleetStore(home / "fleet.db").events()]
        assert sorted(events) == [("local-east-1a", "no_capacity"), ("local-west-1a", "ended"),
                                  ("local-west-1a", "launched")], events
        ended = next(e for e in FleetStore(home / "fleet.db").events() if e.kind.value == "ended")
        assert ended.lifetime_s is not None and ended.lifetime_s >= 1.0
        launched = next(e for e in FleetStore(home / "fleet.db").events() if e.kind.value == "launched")
        assert launched.price == pytest.approx(0.01005)
        dry = spot.run("launch", "--dry-run", "echo hi")
        assert "local-east-1a: 0 preemptions in 6 h, 1 capacity failure" in dry.stdout, dry.stdout
        _no_leftovers(spot)
