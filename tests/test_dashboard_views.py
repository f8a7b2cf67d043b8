"""The dashboard's figures are `status`'s: the same durations, the same costs (at any moment of
the cost line, its last point is the job's COST), and a timeline that marks each preemption and
market switch with its reason. Pure functions, no server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from spotctl.cli.render import duration as status_duration
from spotctl.dashboard.views import cost_series, duration, job_page, jobs_page, zone_counts
from spotctl.models import AttemptRecord, JobState, JobStatus, MarketSwitch
from spotctl.policy import FleetEvent, FleetEventKind, Place, job_cost

pytestmark = pytest.mark.quick

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def story() -> JobState:
    """3 h spot in us-east-1a, preempted; back on spot in us-west-2b, then moved to on-demand."""
    return JobState(
        job_id=7, name="train", status=JobStatus.RUNNING, submitted_at=T0, started_at=T0, recoveries=1,
        cloud="aws", region="us-west-2", zone="us-west-2b", deadline_at=T0 + timedelta(hours=70),
        slack_s=1.5 * 3600, market="on-demand",
        history=[
            AttemptRecord(attempt=1, cloud="aws", region="us-east-1", zone="us-east-1a", instance_type="p3.2xlarge",
                          launched_at=T0, started_at=T0, ended_at=T0 + timedelta(hours=3), outcome="preempted",
                          use_spot=True, price=1.0, nodes=1, ondemand_price=3.06),
            AttemptRecord(attempt=2, cloud="aws", region="us-west-2", zone="us-west-2b", instance_type="p3.2xlarge",
                          launched_at=T0 + timedelta(hours=3), started_at=T0 + timedelta(hours=3),
                          ended_at=T0 + timedelta(hours=5), outcome="switched to on-demand", use_spot=True, price=0.9,
                          nodes=1, ondemand_price=3.06),
            AttemptRecord(attempt=3, cloud="aws", region="us-west-2", zone="us-west-2b", instance_type="p3.2xlarge",
                          launched_at=T0 + timedelta(hours=5), started_at=T0 + timedelta(hours=5), use_spot=False,
                          price=3.06, nodes=1),
        ],
        switches=[MarketSwitch(at=T0 + timedelta(hours=5), elapsed_s=5 * 3600, from_market="spot",
                               to_market="on-demand", reason="slack 1.5h no longer covers a restart")],
    )


@pytest.mark.parametrize("seconds", [0, 5, 59, 60, 61, 3599, 3600, 3725, 86399, 86400, 200_000])
def test_durations_read_as_in_status(seconds: int) -> None:
    assert duration(seconds) == status_duration(seconds)


def test_the_cost_line_ends_at_the_jobs_cost() -> None:
    job, now = story(), T0 + timedelta(hours=6)
    points = cost_series(job, now, {})
    total = job_cost(job, now, {})
    assert points[-1]["cost"] == pytest.approx(total.cost) and points[-1]["ondemand"] == pytest.approx(total.ondemand)
    assert [p["cost"] for p in points] == sorted(p["cost"] for p in points)  # a bill only grows
    at_preemption = next(p for p in points if p["at"] == (T0 + timedelta(hours=3)).timestamp() * 1000)
    assert at_preemption["cost"] == pytest.approx(3.0) and at_preemption["ondemand"] == pytest.approx(3 * 3.06)


def test_the_timeline_marks_preemptions_and_switches_with_their_reasons() -> None:
    page = job_page(story(), T0 + timedelta(hours=6), {}, "http://ui/namespaces/default/workflows/spotctl-job-7")
    line = page["timeline"]
    assert line["places"] == ["aws/us-east-1/us-east-1a", "aws/us-west-2/us-west-2b"]
    assert [a["market"] for a in line["attempts"]] == ["spot", "spot", "on-demand"]
    kinds = {m["kind"]: m for m in line["marks"]}
    assert kinds["preemption"]["place"] == "aws/us-east-1/us-east-1a" and "preempted" in kinds["preemption"]["reason"]
    assert kinds["switch"]["reason"] == "spot -> on-demand at 5h: slack 1.5h no longer covers a restart"
    assert page["deadline"]["slack"] == "1.5h" and page["deadline"]["market"] == "on-demand"
    assert page["temporal_ui"].endswith("/spotctl-job-7")


def test_the_jobs_page_shows_optional_columns_only_when_a_job_has_them() -> None:
    plain = story().model_copy(update={"deadline_at": None, "job_id": 8})
    page = jobs_page([plain], 1, T0 + timedelta(hours=6), {})
    assert page["columns"] == {"task": False, "deadline": False, "priority": False, "array": False, "pool": False}
    page = jobs_page([story(), plain], 2, T0 + timedelta(hours=6), {})
    assert page["columns"]["deadline"] and page["jobs"][0]["slack"] == "1.5h"
    long = plain.model_copy(update={"name": "n" * 10_000})
    assert len(jobs_page([long], 1, T0, {})["jobs"][0]["name"]) == 2_000  # user text is bounded


def test_zone_counts_put_the_troubled_zones_first() -> None:
    def event(zone: str, kind: FleetEventKind) -> FleetEvent:
        return FleetEvent(place=Place(cloud="aws", zone=zone, instance_type="m5.large", spot=True), kind=kind, at=T0)

    rows = zone_counts([event("a", FleetEventKind.LAUNCHED), event("b", FleetEventKind.PREEMPTED),
                        event("b", FleetEventKind.NO_CAPACITY), event("a", FleetEventKind.ENDED)])
    assert rows == [{"zone": "aws/b", "launched": 0, "preempted": 1, "no_capacity": 1},
                    {"zone": "aws/a", "launched": 1, "preempted": 0, "no_capacity": 0}]
