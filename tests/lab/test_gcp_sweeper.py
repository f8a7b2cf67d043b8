# ruff: noqa: F811  (pytest fixtures imported from gce_lab)
"""The orphan sweeper on GCP: a VM of a job that never existed (a worker lost mid-provision, a
bug) is deleted from the fake GCE; a VM of a job that still runs is left alone."""

from __future__ import annotations

import asyncio

from gce_lab import GcpLab, gce_server, gcp_lab  # noqa: F401 - fixtures

from spotctl.client import connect
from spotctl.clouds.gcp import GcpCloud
from spotctl.models import Candidate
from spotctl.worker import SweepReport, sweep_once

from conftest import Spot

CAND = Candidate(cloud="gcp", region="us-central1", zone="us-central1-a", instance_type="n2-standard-2",
                 use_spot=True, price=0.02)


def test_sweeper_deletes_the_vm_of_a_job_that_never_existed(spot_clean: Spot, gcp_lab: GcpLab) -> None:
    settings = spot_clean.settings.model_copy(update={"clouds": ["gcp"], "gcp": gcp_lab.settings.gcp,
                                                      "home": gcp_lab.settings.home})
    cloud = GcpCloud(settings)
    orphan = cloud.create("spotctl-987655-1", CAND, 2, "spotctl-987655-1")
    not_ours = cloud.create("someone-elses", CAND, 1, "someone-elses")  # labelled, but no job id in it

    async def go() -> SweepReport:
        return await sweep_once(await connect(spot_clean.settings), settings, grace_s=0)

    report = asyncio.run(go())
    assert sorted(report.terminated) == sorted(orphan.instance_ids) and report.errors == []
    assert [i["name"] for i in gcp_lab.fake.instances()] == ["someone-elses-0"]
    cloud.terminate(not_ours.instance_ids)
