"""JobIdAllocator: hands out job ids 1, 2, 3 ... through Temporal itself (no side database).

One long-lived workflow with a fixed id holds the counter; `allocate` is an update, so each
call gets a unique id even from concurrent launches. A launch that fails after `allocate`
(staging or start) gives its id back with `release`, so failed launches leave no gaps in the
ids users see. It continues-as-new every few hundred
allocations to keep its history short, carrying the counter.

Each launch names its allocation with a request id (a uuid): a retried `allocate` (its first
try landed but the answer was lost, so the client sent it again under a new update id) gets
the id the first try got instead of burning another. The last REQUESTS_REMEMBERED request ids
are carried across continue-as-new. `at_least` moves the counter past an id that turned out
to be an existing job's (client/jobs.py), so no id is ever handed out twice.

A job array (`launch --num-jobs N`) takes its N consecutive ids in one update,
`allocate_block`: one round trip and one history event pair for 10,000 ids, never
interleaved with another launch's, remembered under its request id like `allocate` (a retry
gets the same block). A new handler: old histories never call it and replay unchanged.

The allocator is not a job: it starts with Temporal's namespace-division search attribute
(models.search_attributes.DIVISION), which keeps it out of the web UI's list of workflows. One
started before that is given it by `hide` (an update the client sends when it finds the running
allocator without it): a new handler, so old histories never call it and replay unchanged, and
continue-as-new carries the attribute on.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from spotctl.models import search_attributes as sa
    from spotctl.workflows.allocator_state import AllocatorState

ALLOCATOR_WORKFLOW_ID = "spotctl-job-id-allocator"
ALLOCATIONS_PER_RUN = 500
REQUESTS_REMEMBERED = 1000
"""Request ids -> ids kept for retries: far more than launches in flight at once, and small
(~50 bytes each) in the carried state."""
MAX_REQUEST_ID = 100
"""A request id's length bound (a uuid is 36)."""
MAX_BLOCK = 10_000
"""The most ids one `allocate_block` hands out: models.MAX_ARRAY_JOBS."""


@workflow.defn(name="JobIdAllocator")
class JobIdAllocator:
    @workflow.init
    def __init__(self, state: AllocatorState) -> None:
        self._next_id = state.next_id
        self._allocated_this_run = 0
        self._recent: dict[str, int] = dict(state.recent)

    @workflow.run
    async def run(self, state: AllocatorState) -> None:
        await workflow.wait_condition(
            lambda: self._allocated_this_run >= ALLOCATIONS_PER_RUN and workflow.all_handlers_finished()
        )
        workflow.continue_as_new(AllocatorState(next_id=self._next_id, recent=self._recent))

    @workflow.update
    def allocate(self, request_id: str = "", at_least: int = 0) -> int:
        """The next id, at least `at_least`; the same id again for a request id already
        answered (unless below `at_least`). Arguments added later with defaults: old
        histories (which call it without any) replay unchanged, a worker from before them
        ignores them (plain ids, as before: tests/test_job_ids.py), and nothing here is a
        command."""
        known = self._recent.get(request_id) if request_id else None
        if known is not None and known >= at_least:
            return known
        job_id = max(self._next_id, at_least)
        self._next_id = job_id + 1
        self._allocated_this_run += 1
        if request_id:
            self._recent.pop(request_id, None)
            self._recent[request_id] = job_id
            while len(self._recent) > REQUESTS_REMEMBERED:
                del self._recent[next(iter(self._recent))]
        return job_id

    @allocate.validator
    def _check_allocate(self, request_id: str = "", at_least: int = 0) -> None:
        if len(request_id) > MAX_REQUEST_ID or not 0 <= at_least < 2**62:
            raise ValueError(f"bad allocation request ({len(request_id)} chars, at least {at_least})")

    @workflow.update
    def allocate_block(self, request_id: str, count: int, at_least: int = 0) -> int:
        """The first of `count` consecutive ids (at least `at_least`), all the caller's; the
        same block again for a request id already answered (unless below `at_least`). Counted
        as one allocation towards continue-as-new: it is one update in the history."""
        known = self._recent.get(request_id) if request_id else None
        if known is not None and known >= at_least:
            return known
        first = max(self._next_id, at_least)
        self._next_id = first + count
        self._allocated_this_run += 1
        if request_id:
            self._recent.pop(request_id, None)
            self._recent[request_id] = first
            while len(self._recent) > REQUESTS_REMEMBERED:
                del self._recent[next(iter(self._recent))]
        return first

    @allocate_block.validator
    def _check_allocate_block(self, request_id: str, count: int, at_least: int = 0) -> None:
        if len(request_id) > MAX_REQUEST_ID or not 1 <= count <= MAX_BLOCK or not 0 <= at_least < 2**62:
            raise ValueError(f"bad block request ({len(request_id)} chars, {count} ids, at least {at_least})")

    @workflow.update
    def release(self, job_id: int, count: int = 1) -> bool:
        """Give back an id whose launch failed, so the next launch gets it; only the last id
        handed out can come back (a later one was given to someone else meanwhile). Returns
        whether it came back. Added after the first release: a new handler, so old histories
        (which never call it) replay unchanged. `count` (added later, default 1): a whole
        block from `allocate_block`, back only when it is the last handed out."""
        if job_id + count != self._next_id or count < 1:
            return False
        self._next_id = job_id
        for request_id in [r for r, given in self._recent.items() if given == job_id]:
            del self._recent[request_id]
        return True

    @workflow.update
    def hide(self) -> bool:
        """Take the allocator out of the web UI's list of jobs (models.search_attributes.DIVISION);
        whether it was still in it. Idempotent: a second call changes nothing."""
        if workflow.info().typed_search_attributes.get(sa.DIVISION) == sa.INTERNAL_DIVISION:
            return False
        workflow.upsert_search_attributes([sa.DIVISION.value_set(sa.INTERNAL_DIVISION)])
        return True

    @workflow.query
    def peek(self) -> int:
        """The id the next allocation will return."""
        return self._next_id
