# ruff: noqa: F811  (pytest fixtures imported from moto_lab)
"""The cloud activities against moto, called as Temporal calls them: a retried create_cluster
(its first try made the cluster, then died before it returned) and the final teardown by tag,
across regions. What is looked at is what a user would see: the instances left in EC2."""

from __future__ import annotations

import dataclasses

from moto_lab import (  # noqa: F401 - fixtures
    AwsLab,
    aws_env,
    aws_lab,
    failing_run_instances,
    moto_instances,
    moto_server,
)
from temporalio.testing import ActivityEnvironment

from spotctl.activities.deps import Deps
from spotctl.activities.provision import ProvisionActivities
from spotctl.activities.teardown import TeardownActivities
from spotctl.models import Candidate, Location, ProvisionRequest, TeardownRequest


def cand(region: str, zone: str, price: float) -> Candidate:
    return Candidate(cloud="aws", region=region, zone=zone, instance_type="g4dn.xlarge", use_spot=True, price=price)


EAST1 = cand("us-east-1", "us-east-1a", 0.16)
EAST2 = cand("us-east-2", "us-east-2a", 0.18)


def request(job_id: int, attempt: int = 1) -> ProvisionRequest:
    return ProvisionRequest(job_id=job_id, attempt=attempt, candidates=[EAST1, EAST2], num_nodes=1)


def retry_of(env: ActivityEnvironment) -> ActivityEnvironment:
    """The same activity's next try, as Temporal starts it (attempt 2)."""
    again = ActivityEnvironment()
    again.info = dataclasses.replace(env.info, attempt=env.info.attempt + 1)
    return again


async def test_a_retried_create_adopts_the_cluster_its_first_try_made_in_another_region(aws_lab: AwsLab) -> None:
    """The first try finds no capacity in us-east-1, makes the VM in us-east-2 and dies before
    it returns; its retry (capacity is back in us-east-1) gets that VM, not a second one."""
    activities = ProvisionActivities(Deps(aws_lab.settings))
    first = ActivityEnvironment()
    with failing_run_instances("us-east-1", "us-east-1a") as refused:
        made = await first.run(activities.create_cluster, request(31))
    assert refused[0] == 1 and made.cluster is not None and made.cluster.region == "us-east-2"

    again = await retry_of(first).run(activities.create_cluster, request(31))

    alive = moto_instances()
    assert [i.id for i in alive] == made.cluster.instance_ids  # one VM, the first try's
    assert again.cluster is not None
    assert (again.cluster.instance_ids, again.cluster.region, again.cluster.price) == (
        made.cluster.instance_ids, "us-east-2", EAST2.price)
    aws_lab.cloud.terminate(made.cluster.instance_ids, Location(cloud="aws", region="us-east-2"))


async def test_a_first_try_scans_from_the_first_candidate(aws_lab: AwsLab) -> None:
    """Adoption is for retries only: a first try never lists regions it need not."""
    activities = ProvisionActivities(Deps(aws_lab.settings))
    made = await ActivityEnvironment().run(activities.create_cluster, request(32))
    assert made.cluster is not None and made.cluster.region == "us-east-1"
    aws_lab.cloud.terminate(made.cluster.instance_ids, Location(cloud="aws", region="us-east-1"))


async def test_the_final_teardown_finds_every_attempt_of_the_job_by_its_tag(aws_lab: AwsLab) -> None:
    """Attempts nobody recorded (3 and 7, in two regions) are found by the job's tag; another
    job's instance is left alone."""
    cloud = aws_lab.cloud
    mine = [cloud.create("spotctl-33-3", EAST1, 2, "t3"), cloud.create("spotctl-33-7", EAST2, 1, "t7")]
    other = cloud.create("spotctl-333-1", EAST1, 1, "o1")
    deps = Deps(aws_lab.settings)
    req = TeardownRequest(job_id=33, first_attempt=1, last_attempt=1, by_tag=True,
                          regions=[Location(cloud="aws", region=r) for r in ("us-east-1", "us-east-2")])

    terminated = await ActivityEnvironment().run(TeardownActivities(deps).teardown, req)

    assert terminated == 3
    assert [i.id for i in moto_instances()] == other.instance_ids
    assert all(i.state in ("terminated", "shutting-down") for i in moto_instances(alive_only=False)
               if i.id in {iid for h in mine for iid in h.instance_ids})
    cloud.terminate(other.instance_ids, Location(cloud="aws", region="us-east-1"))
