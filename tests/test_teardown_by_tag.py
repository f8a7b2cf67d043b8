"""The teardown activity on the local cloud: the final teardown finds a job's clusters by its
tag (whatever attempt made them), a retry resumes after the regions it finished, and a
request made before `by_tag` still means what it meant (recorded histories carry them)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable

import pytest
from temporalio.testing import ActivityEnvironment

from spotctl.activities.deps import Deps
from spotctl.activities.teardown import TeardownActivities
from spotctl.clouds.base import CloudError
from spotctl.clouds.local import LocalCloud
from spotctl.config import Settings
from spotctl.models import Candidate, Location, TeardownRequest

EAST = Candidate(cloud="local", region="local-east", zone="local-east-1a", instance_type="local.small",
                 use_spot=True, price=0.01)
WEST = EAST.model_copy(update={"region": "local-west", "zone": "local-west-1a"})
REGIONS = [Location(cloud="local", region=r) for r in ("local-east", "local-west")]



def alive(cloud: LocalCloud) -> set[str]:
    return {i.cluster_name for i in cloud.list_instances()}


async def test_by_tag_finds_every_attempt_of_the_job_and_no_other_jobs(settings: Settings, cloud: LocalCloud) -> None:
    for name, where in (("spotctl-41-2", EAST), ("spotctl-41-6", WEST), ("spotctl-410-1", EAST)):
        cloud.provision(name, where, 1)
    req = TeardownRequest(job_id=41, last_attempt=1, by_tag=True, regions=REGIONS)  # attempt 1: a stale row
    terminated = await ActivityEnvironment().run(TeardownActivities(Deps(settings)).teardown, req)
    assert terminated == 2 and alive(cloud) == {"spotctl-410-1"}


async def test_a_request_made_before_by_tag_still_tears_down_its_attempt_range(
        settings: Settings, cloud: LocalCloud) -> None:
    cloud.provision("spotctl-43-2", EAST, 1)
    cloud.provision("spotctl-43-6", WEST, 1)
    old = TeardownRequest.model_validate_json(json.dumps({"job_id": 43, "first_attempt": 1, "last_attempt": 3,
                                                          "regions": [r.model_dump() for r in REGIONS]}))
    assert old.by_tag is False
    terminated = await ActivityEnvironment().run(TeardownActivities(Deps(settings)).teardown, old)
    assert terminated == 1 and alive(cloud) == {"spotctl-43-6"}


async def test_a_retried_teardown_resumes_after_the_regions_it_finished(
        settings: Settings, cloud: LocalCloud, mood: Callable[..., None]) -> None:
    """The first try finishes local-east, then local-west's API hangs and the try fails; the
    retry starts at local-west, so local-east's API hanging by then does not hold it up."""
    cloud.provision("spotctl-42-1", EAST, 1)
    cloud.provision("spotctl-42-3", WEST, 1)
    activities = TeardownActivities(Deps(settings))
    req = TeardownRequest(job_id=42, last_attempt=3, by_tag=True, regions=REGIONS)
    beats: list[list] = []
    first = ActivityEnvironment()
    first.on_heartbeat = lambda *details: beats.append(json.loads(json.dumps(details)))  # as sent
    mood("local-west", api_hang_s=4.5, api_hang_rate=1.0, api_hang_calls=["find_cluster"])
    with pytest.raises(CloudError, match="timed out"):
        await first.run(activities.teardown, req)
    assert alive(cloud) == {"spotctl-42-3"}
    assert beats and beats[-1][1] == ["local/local-east"]

    mood("local-west", api_hang_rate=0.0)
    mood("local-east", api_hang_s=30, api_hang_rate=1.0, api_hang_calls=["find_cluster"])
    again = ActivityEnvironment()
    again.info = dataclasses.replace(first.info, attempt=2, heartbeat_details=beats[-1])
    assert await again.run(activities.teardown, req) == 1
    assert alive(cloud) == set()
