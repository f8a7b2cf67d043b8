"""The orphan sweeper against a real embedded Temporal + worker: it terminates instances and
deletes ephemeral buckets of jobs that are over or never existed, and spares the rest."""

from __future__ import annotations

import asyncio
import logging

import pytest

from spotctl.client import SpotClient, connect
from spotctl.clouds.base import InstanceState
from spotctl.config import ConfigError, default, env_value
from spotctl.launch import ephemeral_bucket
from spotctl.models import Candidate
from spotctl.models.naming import job_of_cluster, parse_ephemeral_bucket
from spotctl.storage.local import LocalStore
from spotctl.worker import SweepReport, sweep_once

from conftest import Spot

CAND = Candidate(cloud="local", region="local-east", zone="local-east-1a", instance_type="local.small",
                 use_spot=True, price=0.01)


def sweep(spot: Spot, grace_s: float, *, spot_client: bool = False) -> SweepReport:
    """One sweep_once on its own event loop (the CLI the tests drive runs asyncio.run too),
    with a bare Temporal client or spotctl's facade (both are accepted)."""
    async def go() -> SweepReport:
        client = await SpotClient.connect(spot.settings) if spot_client else await connect(spot.settings)
        return await sweep_once(client, spot.settings, grace_s=grace_s)

    return asyncio.run(go())


def store(spot: Spot) -> LocalStore:
    return LocalStore(spot.settings.home / "local_buckets")


def state(spot: Spot, iid: str) -> InstanceState:
    return spot.cloud.instance_states([iid])[iid]


def test_names_and_interval() -> None:
    assert job_of_cluster("spotctl-12-3") == 12 and job_of_cluster("my-cluster") is None
    assert job_of_cluster("spotctl-12") is None and parse_ephemeral_bucket("spotctl-job-7-files") == 7
    assert parse_ephemeral_bucket("spotctl-job-7") is None
    # The worker reads its interval from its settings (config/table.py), nowhere else.
    assert default("worker.sweep_interval_s") == 300
    assert env_value("SPOTCTL_SWEEP_INTERVAL_S", {}) is None
    assert env_value("SPOTCTL_SWEEP_INTERVAL_S", {"SPOTCTL_SWEEP_INTERVAL_S": "0"}) == 0
    with pytest.raises(ConfigError, match="^SPOTCTL_SWEEP_INTERVAL_S='soon': expected a number"):
        env_value("SPOTCTL_SWEEP_INTERVAL_S", {"SPOTCTL_SWEEP_INTERVAL_S": "soon"})


def test_instance_of_unknown_job_is_terminated(spot_clean: Spot, caplog: pytest.LogCaptureFixture) -> None:
    iid = spot_clean.cloud.provision("spotctl-987654-1", CAND, 1).instance_ids[0]
    with caplog.at_level(logging.WARNING, logger="spotctl.sweeper"):
        report = sweep(spot_clean, 0)
    assert iid in report.terminated and report.errors == []
    assert state(spot_clean, iid) == InstanceState.TERMINATED
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and iid in r.getMessage()]
    assert len(lines) == 1 and "spotctl-987654-1" in lines[0] and "job 987654 does not exist" in lines[0]


def test_leftovers_of_a_finished_job_go(spot_clean: Spot, caplog: pytest.LogCaptureFixture) -> None:
    job_id = spot_clean.launch_detached("echo hi")
    spot_clean.wait_status(job_id, "SUCCEEDED")
    iid = spot_clean.cloud.provision(f"spotctl-{job_id}-9", CAND, 1).instance_ids[0]
    bucket = ephemeral_bucket(job_id)
    store(spot_clean).create_bucket(bucket)
    (spot_clean.settings.home / "local_buckets" / bucket / "left.txt").write_text("over")
    with caplog.at_level(logging.WARNING, logger="spotctl.sweeper"):
        report = sweep(spot_clean, 0)
    assert iid in report.terminated and bucket in report.deleted_buckets and report.errors == []
    assert state(spot_clean, iid) == InstanceState.TERMINATED
    assert not store(spot_clean).bucket_exists(bucket)
    text = caplog.text
    assert f"{iid} of cluster spotctl-{job_id}-9" in text and f"job {job_id} is SUCCEEDED" in text
    assert f"deleted ephemeral bucket {bucket}: job {job_id} is SUCCEEDED" in text


def test_running_job_is_left_alone(spot_clean: Spot) -> None:
    job_id = spot_clean.launch_detached("sleep 1000")
    spot_clean.wait_status(job_id, "RUNNING")
    ids = spot_clean.cloud.find_cluster(f"spotctl-{job_id}-1")
    bucket = ephemeral_bucket(job_id)
    store(spot_clean).create_bucket(bucket)
    try:
        report = sweep(spot_clean, 0)
        assert ids and not set(ids) & set(report.terminated) and bucket not in report.deleted_buckets
        assert spot_clean.cloud.instance_states(ids) == {i: InstanceState.RUNNING for i in ids}
        assert spot_clean.job(job_id)["status"] == "RUNNING" and store(spot_clean).bucket_exists(bucket)
    finally:
        assert spot_clean.run("cancel", "-y", str(job_id)).exit_code == 0
        spot_clean.wait_status(job_id, "CANCELLED")
        store(spot_clean).delete_bucket(bucket)  # not the job's own (staging did not make it)


def test_young_orphans_are_spared(spot_clean: Spot) -> None:
    iid = spot_clean.cloud.provision("spotctl-987655-1", CAND, 1).instance_ids[0]
    bucket = ephemeral_bucket(987655)
    store(spot_clean).create_bucket(bucket)
    try:
        report = sweep(spot_clean, 3600, spot_client=True)
        assert iid not in report.terminated and bucket not in report.deleted_buckets
        assert state(spot_clean, iid) == InstanceState.RUNNING and store(spot_clean).bucket_exists(bucket)
    finally:
        spot_clean.cloud.terminate([iid])
        store(spot_clean).delete_bucket(bucket)


def test_trouble_with_one_cloud_does_not_stop_the_sweep(spot_clean: Spot) -> None:
    iid = spot_clean.cloud.provision("spotctl-987656-1", CAND, 1).instance_ids[0]
    settings = spot_clean.settings.model_copy(update={"clouds": ["nosuchcloud", "local"]})

    async def go() -> SweepReport:
        return await sweep_once(await connect(settings), settings, grace_s=0)

    report = asyncio.run(go())
    assert iid in report.terminated and state(spot_clean, iid) == InstanceState.TERMINATED
    assert len(report.errors) == 1 and "cloud nosuchcloud" in report.errors[0] and "not supported" in report.errors[0]
