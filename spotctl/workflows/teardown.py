"""The teardown activity as the job and pipeline workflows call it, and their final teardown.

A job (SpotJobWorkflow, and so each pipeline task) tears down an attempt's clusters when the
attempt ends and every cluster tagged with it when it ends; a pipeline checks them all gone
once more when its last task has ended. Both ask for the same activity with the same options,
built here once; the final one is shielded: a second cancel arriving meanwhile is noted and
the teardown awaited again, so a job never ends with something left. Deterministic, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from temporalio import workflow
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from spotctl.activities import TeardownActivities  # its typed reference only (passed through)
    from spotctl.models import Candidate, Location, TeardownRequest
    from spotctl.workflows.retry import HEARTBEAT, INFRA_RETRY
    from spotctl.workflows.shielded import shielded

TEARDOWN_TIMEOUT = timedelta(minutes=10)


def teardown_request(job_id: int, candidates: Iterable[Candidate], *, first_attempt: int, last_attempt: int,
                     delete_buckets: list[str], by_tag: bool) -> TeardownRequest:
    """The request for the job's clusters, looked for only in the regions of its candidates."""
    regions = sorted({(c.cloud, c.region) for c in candidates})
    return TeardownRequest(job_id=job_id, first_attempt=first_attempt, last_attempt=last_attempt,
                           delete_buckets=delete_buckets, by_tag=by_tag,
                           regions=[Location(cloud=c, region=r) for c, r in regions])


async def teardown(req: TeardownRequest, *, summary: str | None = None) -> None:
    """Run the teardown activity, retried until the cloud confirms nothing is left; a cancel
    waits until it has stopped."""
    await workflow.execute_activity_method(
        TeardownActivities.teardown, req, start_to_close_timeout=TEARDOWN_TIMEOUT,
        heartbeat_timeout=HEARTBEAT, retry_policy=INFRA_RETRY,
        cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED, summary=summary,
    )


async def final_teardown(req: TeardownRequest, *, summary: str | None = None) -> None:
    """The last teardown of a job or pipeline, run to its end whatever cancel arrives meanwhile."""
    await shielded(teardown(req, summary=summary))
