"""COST and SAVED (issue 10): the sums over a job's attempts, by hand and on the local cloud.

Attempt cost = price x nodes x hours from the create call to the attempt's end (or now);
on-demand equivalent = the catalog's on-demand price of the same place and type x the same
node-hours; SAVED = 1 - cost / on-demand."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from spotctl.cli.render import as_json
from spotctl.clouds.ondemand import ondemand_prices
from spotctl.models import AttemptRecord, JobState, JobStatus
from spotctl.policy import attempt_hours, job_cost, money, percent

from conftest import Spot

pytestmark = pytest.mark.quick  # `pytest -m quick`: the fast loop (README, Tests)

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
PRICES = {
    ("aws", "us-east-1", "us-east-1a", "p3.2xlarge"): 3.06,
    ("aws", "us-west-2", "us-west-2b", "p3.2xlarge"): 3.06,
    ("gcp", "us-central1", "us-central1-a", "n1-standard-8"): 0.38,
}


def record(attempt: int, start_min: float, end_min: float | None, *, price: float | None, use_spot: bool = True,
           nodes: int = 1, where: tuple[str, str, str, str] = ("aws", "us-east-1", "us-east-1a", "p3.2xlarge"),
           outcome: str | None = "preempted") -> AttemptRecord:
    cloud, region, zone, itype = where
    return AttemptRecord(attempt=attempt, cloud=cloud, region=region, zone=zone, instance_type=itype,
                         launched_at=T0 + timedelta(minutes=start_min),
                         started_at=T0 + timedelta(minutes=start_min + 2),
                         ended_at=None if end_min is None else T0 + timedelta(minutes=end_min),
                         outcome=outcome if end_min is not None else None, price=price, use_spot=use_spot, nodes=nodes)


def two_recoveries() -> JobState:
    """Three attempts: spot at $0.90/h for 1 h, spot at $1.20/h on 2 nodes for 30 min, then
    on demand at $0.38/h for 2 h, still running."""
    history = [
        record(1, 0, 60, price=0.90),
        record(2, 61, 91, price=1.20, nodes=2, where=("aws", "us-west-2", "us-west-2b", "p3.2xlarge")),
        record(3, 92, None, price=0.38, use_spot=False, where=("gcp", "us-central1", "us-central1-a", "n1-standard-8")),
    ]
    return JobState(job_id=7, name="train", status=JobStatus.RUNNING, submitted_at=T0, recoveries=2, attempt=3,
                    history=history)


def test_two_recoveries_at_different_prices() -> None:
    now = T0 + timedelta(minutes=212)  # the third attempt has lived 2 h
    cost = job_cost(two_recoveries(), now, PRICES)
    assert [a.hours for a in cost.attempts] == pytest.approx([1.0, 0.5, 2.0])
    assert [a.cost for a in cost.attempts] == pytest.approx([0.90, 1.20 * 2 * 0.5, 0.38 * 2])
    assert cost.cost == pytest.approx(0.90 + 1.20 + 0.76)
    # On demand: the catalog's price for the spot attempts, the price paid for the on-demand one.
    assert [a.ondemand for a in cost.attempts] == pytest.approx([3.06, 3.06 * 2 * 0.5, 0.76])
    assert cost.ondemand == pytest.approx(3.06 + 3.06 + 0.76)
    assert cost.saved_pct == pytest.approx(100 * (1 - 2.86 / 6.88))
    assert percent(cost.saved_pct) == "58%" and money(cost.cost) == "$2.86"


def test_provisioning_is_billed_and_old_records_fall_back() -> None:
    rec = record(1, 0, 60, price=1.0)
    assert attempt_hours(rec, T0) == pytest.approx(1.0)  # from the create call, not from "running"
    old = rec.model_copy(update={"launched_at": None, "price": None, "use_spot": None, "nodes": None})
    assert attempt_hours(old, T0) == pytest.approx(58 / 60)
    job = JobState(job_id=1, name="old", submitted_at=T0, history=[old, rec])
    cost = job_cost(job, T0, PRICES)
    assert cost.cost is None and cost.saved_pct is None  # a partial sum would understate the bill
    assert cost.ondemand == pytest.approx(3.06 * (58 / 60 + 1))


def test_the_web_ui_details_show_cost_and_saving() -> None:
    """The workflow's own view (the Temporal UI's current details) sums the ended attempts,
    with the on-demand prices recorded at launch: no catalog read inside the workflow."""
    from spotctl.workflows.job_summary import details

    job = two_recoveries()
    for r, od in zip(job.history, (3.06, 3.06, None), strict=True):
        r.ondemand_price = od
    job.history[2].ended_at = T0 + timedelta(minutes=212)
    job.status = JobStatus.SUCCEEDED
    text = details(job)
    assert "cost of the attempts: $2.86 (on demand $6.88, saved 58%)" in text
    assert "$0.9/h spot" in text and "$0.38/h on-demand" in text


def test_a_job_that_never_got_a_cluster_cost_nothing() -> None:
    cost = job_cost(JobState(job_id=1, name="waiting", submitted_at=T0), T0, PRICES)
    assert cost.cost == 0.0 and cost.saved_pct is None and money(cost.cost) == "$0.00"


def test_money_shows_fractions_of_a_cent() -> None:
    assert [money(v) for v in (None, 0.42, 0.0042, 2.2e-05, 1234.5)] == ["-", "$0.42", "$0.0042", "$0.000022",
                                                                       "$1,234.50"]


def test_json_carries_costs_per_attempt_and_per_job() -> None:
    now = T0 + timedelta(minutes=212)
    data = as_json(two_recoveries(), now=now, prices=PRICES)
    assert [r["cost_usd"] for r in data["history"]] == pytest.approx([0.90, 1.20, 0.76])
    assert [r["ondemand_usd"] for r in data["history"]] == pytest.approx([3.06, 3.06, 0.76])
    assert data["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in data["history"]))
    assert data["saved_pct"] == pytest.approx(58.4, abs=0.05)
    for key in ("job_id", "attempt", "recoveries"):
        assert type(data[key]) is int
    assert all(type(r["attempt"]) is int and type(r["nodes"]) is int for r in data["history"])


def test_catalog_lookup_reads_the_shipped_and_the_local_catalogs(settings) -> None:
    prices = ondemand_prices(["local", "aws", "gcp", "nosuchcloud"], settings)
    local = {k: v for k, v in prices.items() if k[0] == "local"}
    assert local[("local", "local-east", "local-east-1a", "local.small")] == pytest.approx(0.04)
    assert any(k[0] == "aws" for k in prices) and any(k[0] == "gcp" for k in prices)


def test_cost_on_the_local_cloud_matches_prices_and_durations(spot_clean: Spot, tmp_path: Path) -> None:
    """Preempted twice (EAGER_NEXT_REGION: three regions, three price factors): `status --json`
    has each attempt's price, and COST = sum(price x nodes x hours lived)."""
    task = tmp_path / "task.yaml"
    task.write_text(textwrap.dedent("""
        name: priced
        resources:
          cpus: 1+
        run: |
          for i in $(seq 1 12); do echo "tick $i"; sleep 0.25; done
          # the two attempts to preempt wait for it: no race with their end on a loaded machine
          if [ "$SPOTCTL_RECOVERY_COUNT" -lt 2 ]; then while true; do sleep 0.1; done; fi
    """))
    job_id = spot_clean.launch_detached(str(task))
    for attempt in (1, 2):
        spot_clean.wait_running(job_id, attempt)
        assert spot_clean.run("debug", "preempt", str(job_id), "--notice", "0").exit_code == 0
        spot_clean.wait_status(job_id, "RECOVERING", "STARTING", "RUNNING", timeout=30)
        spot_clean.wait_running(job_id, attempt + 1)
    job = spot_clean.wait_status(job_id, "SUCCEEDED", timeout=90)
    history = job["history"]
    assert job["recoveries"] == 2 and len(history) == 3
    assert len({r["price"] for r in history}) >= 2, history  # different regions, different prices
    local = ondemand_prices(["local"], spot_clean.settings)
    for r in history:
        start = datetime.fromisoformat(r["launched_at"])
        hours = (datetime.fromisoformat(r["ended_at"]) - start).total_seconds() / 3600
        assert start <= datetime.fromisoformat(r["started_at"])
        assert r["use_spot"] is True and r["nodes"] == 1
        assert r["cost_usd"] == pytest.approx(r["price"] * hours, rel=1e-3, abs=1e-9)
        od = local[(r["cloud"], r["region"], r["zone"], r["instance_type"])]
        assert r["ondemand_price"] == od  # recorded by the workflow from the launch's candidates
        assert r["ondemand_usd"] == pytest.approx(od * hours, rel=1e-3, abs=1e-9)
    assert job["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in history), rel=1e-3)
    assert 0 < job["saved_pct"] < 100
    shown = spot_clean.run("status", "-a").stdout
    row = next(line for line in shown.splitlines() if line.split() and line.split()[0] == str(job_id))
    assert money(job["cost_usd"]) in row and percent(job["saved_pct"]) in row
