"""JobIdAllocator: hands out job ids 1, 2, 3 ... through Temporal itself (no side database).

One long-lived workflow with a fixed id holds the counter; `allocate` is an update, so each
call gets a unique id even from concurrent launches. A launch that fails after `allocate`
(staging or start) gives its id back with `release`, so failed launches leave no gaps in the
ids users see. It continues-as-new every few hundred
allocations to keep its history short, carrying the counter.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from spotctl.models import AllocatorState

ALLOCATOR_WORKFLOW_ID = "spotctl-job-id-allocator"
ALLOCATIONS_PER_RUN = 500


@workflow.defn(name="JobIdAllocator")
class JobIdAllocator:
    @workflow.init
    def __init__(self, state: AllocatorState) -> None:
        self._next_id = state.next_id
        self._allocated_this_run = 0

    @workflow.run
    async def run(self, state: AllocatorState) -> None:
        await workflow.wait_condition(
            lambda: self._allocated_this_run >= ALLOCATIONS_PER_RUN and workflow.all_handlers_finished()
        )
        workflow.continue_as_new(AllocatorState(next_id=self._next_id))

    @workflow.update
    def allocate(self) -> int:
        job_id = self._next_id
        self._next_id += 1
        self._allocated_this_run += 1
        return job_id

    @workflow.update
    def release(self, job_id: int) -> bool:
        """Give back an id whose launch failed, so the next launch gets it; only the last id
        handed out can come back (a later one was given to someone else meanwhile). Returns
        whether it came back. Added after the first release: a new handler, so old histories
        (which never call it) replay unchanged."""
        if job_id != self._next_id - 1:
            return False
        self._next_id = job_id
        return True

    @workflow.query
    def peek(self) -> int:
        """The id the next allocation will return."""
        return self._next_id
