"""The fleet's memory, from the activities: what they saw goes in, what placement needs comes out.

The facts are seen here: create_cluster sees capacity failures and launches (with the price),
the monitor and wait_cluster_ready see preemptions, teardown sees the ends spotctl made. Each
writes them with one short call (spotctl/fleet/: idempotent, so a retried activity never counts
twice) in a thread. The memory is advice: a store that fails (locked, corrupt, full) is logged
and the activity goes on as if it were not there; it never fails, slows or retries a job.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TypeVar

from temporalio import activity

from spotctl.activities.deps import Deps
from spotctl.activities.heartbeat import heartbeating
from spotctl.fleet import Entry, FleetStoreError
from spotctl.fleet.store import place_key
from spotctl.models import ActivityNames, Candidate, ClusterHandle, OutlookRequest
from spotctl.policy import FleetEvent, FleetEventKind, FleetOutlooks, Place, PlaceOutlook

T = TypeVar("T")


async def _advice(deps: Deps, what: str, call: Callable[[], T], default: T) -> T:
    """`call()` in a thread; any failure is logged (once a line) and gives `default`."""
    try:
        return await asyncio.to_thread(call)
    except FleetStoreError as exc:
        activity.logger.warning("fleet memory: %s: %s (carrying on without it)", what, exc)
    except Exception:  # the memory is advice: a bug in it must not fail a job either
        activity.logger.exception("fleet memory: %s failed (carrying on without it)", what)
    return default


def _place(c: Candidate | ClusterHandle) -> Place:
    return Place(cloud=c.cloud, zone=c.zone, instance_type=c.instance_type, spot=c.use_spot)


def launched(job_id: int, attempt: int, cluster: ClusterHandle, price: float) -> Entry:
    """The attempt's cluster came up (created: its lifetime starts now)."""
    event = FleetEvent(place=_place(cluster), kind=FleetEventKind.LAUNCHED, at=datetime.now(UTC), price=price)
    return Entry(id=f"{job_id}/{attempt}/launched", event=event, job_id=job_id, attempt=attempt)


def no_capacity(job_id: int, attempt: int, cand: Candidate) -> Entry:
    """A create that failed for want of capacity. The id names this activity (a retry of it
    counts once; the next round of a wait, a new activity, counts again)."""
    info = activity.info()
    event = FleetEvent(place=_place(cand), kind=FleetEventKind.NO_CAPACITY, at=datetime.now(UTC), price=cand.price)
    return Entry(id=f"{info.workflow_run_id}/{info.activity_id}/no_capacity/{place_key(event.place)}", event=event,
                 job_id=job_id, attempt=attempt)


async def note(deps: Deps, entries: Iterable[Entry]) -> None:
    """Add what was seen; never raises."""
    rows = list(entries)
    if rows:
        await _advice(deps, "recording", lambda: deps.fleet.record(rows), 0)


async def note_preempted(deps: Deps, job_id: int, attempt: int, cluster: ClusterHandle) -> None:
    """The attempt's instance was taken back: a preemption, with its lifetime since its launch."""
    now = datetime.now(UTC)
    await _advice(deps, "recording a preemption", lambda: deps.fleet.end_lives(
        job_id, [attempt], FleetEventKind.PREEMPTED, now, place=_place(cluster), attempt=attempt), 0)


async def note_ended(deps: Deps, job_id: int, attempts: range | None) -> None:
    """spotctl ended the job's instances of `attempts` (None: all): their lives, unpreempted."""
    now = datetime.now(UTC)
    await _advice(deps, "recording the ends", lambda: deps.fleet.end_lives(
        job_id, attempts, FleetEventKind.ENDED, now), 0)


class FleetActivities:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @activity.defn(name=ActivityNames.FLEET_OUTLOOKS)
    async def fleet_outlooks(self, req: OutlookRequest) -> FleetOutlooks:
        """What the fleet saw recently at each candidate's place (none where it saw nothing,
        and none at all when the store cannot be read: placement then goes by price)."""
        async with heartbeating() as progress:
            progress(f"reading the fleet's memory of {len(req.candidates)} candidates")
            places = {_place(c) for c in req.candidates}
            nothing: dict[Place, PlaceOutlook] = {}
            known = await _advice(self.deps, "reading", lambda: self.deps.fleet.outlooks(places), nothing)
            return FleetOutlooks(outlooks=[known[p] for p in sorted(known, key=place_key)])
