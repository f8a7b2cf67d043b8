"""The orphan sweeper: terminates instances, and deletes ephemeral buckets, of jobs that are
over or never existed.

Teardown runs on every path of a job, but a worker lost mid-provision, a workflow terminated
from outside spotctl, or a bug can still leave a tagged instance with no live job, and a VM
nobody watches costs money until someone notices. So every worker runs this in the
background: every `interval_s` it lists each enabled cloud's tagged instances, reads the job
id from the cluster name (`spotctl-<job id>-<attempt>`), and asks Temporal about the job's
workflow with `describe` (strongly consistent, unlike visibility). An instance whose workflow
is closed or unknown, and older than a grace period (so a launch is never raced), is
terminated, and a WARNING names it and why. Ephemeral buckets (`spotctl-job-<id>-files`) of
such jobs are deleted the same way. Several workers sweeping at once is harmless: terminating
and deleting what is gone are no-ops.

Every cloud and store call runs in a thread under a time-out, and an error on one cloud, job
or bucket is logged and reported; the sweep goes on with the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar, runtime_checkable

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from spotctl.client.pools import pool_of_number
from spotctl.clouds.base import Cloud, TaggedInstance
from spotctl.clouds.registry import get_cloud
from spotctl.config import Settings, default
from spotctl.models import Location
from spotctl.models import search_attributes as sa
from spotctl.models.naming import job_of_cluster, job_workflow_id, parse_ephemeral_bucket
from spotctl.storage.registry import get_store

log = logging.getLogger("spotctl.sweeper")

INTERVAL_ENV = "SPOTCTL_SWEEP_INTERVAL_S"
DEFAULT_INTERVAL_S: float = default("worker.sweep_interval_s")
DEFAULT_GRACE_S = 120.0
"""Younger leftovers are spared: a launch may be between making them and starting its job."""
CALL_TIMEOUT_S = 20.0

T = TypeVar("T")


@dataclass
class SweepReport:
    """What one sweep did."""

    terminated: list[str] = field(default_factory=list)
    """Instance ids."""
    deleted_buckets: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class ClientFacade(Protocol):
    """A Temporal client facade (client.SpotClient) handed in instead of a bare Client: the
    sweeper needs only the client inside it."""

    @property
    def temporal(self) -> Client: ...


@runtime_checkable
class SweepableStore(Protocol):
    """A store whose buckets can be listed (the local store; S3/GCS ones will be too)."""

    def list_buckets(self) -> list[str]: ...

    def last_changed(self, name: str) -> float: ...

    def delete_bucket(self, name: str) -> None: ...


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"


class _Sweep:
    """One sweep: the clouds, the store, a time-out per call, and each job's fate, asked once."""

    def __init__(self, client: Client, settings: Settings, cloud: Callable[[str], Cloud], grace_s: float,
                 timeout_s: float) -> None:
        self.client = client
        self.settings = settings
        self.cloud = cloud
        self.grace_s = grace_s
        self.timeout_s = timeout_s
        self.report = SweepReport()
        self._fates: dict[int, str | None | BaseException] = {}

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """A blocking cloud or store call, in a thread, given up after timeout_s (the thread may
        linger; the sweep does not wait for it)."""
        return await asyncio.wait_for(asyncio.to_thread(fn, *args), self.timeout_s)

    def error(self, message: str) -> None:
        log.error("sweeper: %s", message)
        self.report.errors.append(message)

    async def why_over(self, job_id: int) -> str | None:
        """None while the job's workflow runs; else why its leftovers may go. Raises when
        Temporal cannot tell (the error is remembered for this sweep)."""
        if job_id not in self._fates:
            try:
                self._fates[job_id] = await self._ask(job_id)
            except Exception as exc:  # noqa: BLE001 - reported per job by the callers
                self._fates[job_id] = exc
        fate = self._fates[job_id]
        if isinstance(fate, BaseException):
            raise fate
        return fate

    async def _ask(self, job_id: int) -> str | None:
        handle = self.client.get_workflow_handle(job_workflow_id(job_id))
        try:
            desc = await asyncio.wait_for(handle.describe(), self.timeout_s)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                if await asyncio.wait_for(pool_of_number(self.client, job_id), self.timeout_s):
                    return None  # a running pool's worker (client/pools.py), or its staged files
                return f"job {job_id} does not exist"
            raise
        if desc.status == WorkflowExecutionStatus.RUNNING:
            return None
        status = desc.typed_search_attributes.get(sa.STATUS)
        name = desc.status.name if desc.status is not None else "closed"
        return f"job {job_id} is {status}" if status else f"job {job_id}'s workflow is {name}"

    def old_enough(self, when: float) -> bool:
        return time.time() - when >= self.grace_s

    async def instances(self, cloud_name: str) -> None:
        try:
            cloud = self.cloud(cloud_name)
            if cloud.check() is not None:
                return  # no credentials: spotctl cannot have made anything there
            tagged: list[TaggedInstance] = await self.call(cloud.tagged_instances)
        except Exception as exc:  # noqa: BLE001 - one cloud's trouble must not stop the sweep
            self.error(f"cloud {cloud_name}: cannot list instances: {_error_text(exc)}")
            return
        doomed: dict[str, tuple[str, list[TaggedInstance]]] = {}  # cluster -> (why, instances)
        for inst in tagged:
            job_id = job_of_cluster(inst.cluster_name)
            if job_id is None or not self.old_enough(inst.created_at.timestamp()):
                continue
            try:
                why = await self.why_over(job_id)
            except Exception as exc:  # noqa: BLE001
                self.error(f"instance {inst.id} ({inst.cluster_name}): cannot ask about job {job_id}: "
                           f"{_error_text(exc)}")
                continue
            if why is not None:
                doomed.setdefault(inst.cluster_name, (why, []))[1].append(inst)
        for cluster, (why, insts) in doomed.items():
            ids = [i.id for i in insts]
            try:
                # A cluster lives in one region; the call names it (a real cloud's ids are per region).
                await self.call(cloud.terminate, ids, Location(cloud=cloud_name, region=insts[0].region))
            except Exception as exc:  # noqa: BLE001
                self.error(f"cloud {cloud_name}: cannot terminate {', '.join(ids)} ({cluster}): {_error_text(exc)}")
                continue
            for inst in insts:
                age = datetime.now(UTC) - inst.created_at
                log.warning("sweeper: terminated orphan instance %s of cluster %s (%s, %s, %s, up %ds): %s",
                            inst.id, cluster, cloud_name, inst.region, inst.state.value, age.total_seconds(), why)
                self.report.terminated.append(inst.id)

    async def buckets(self) -> None:
        try:
            store = get_store(self.settings)
            if not isinstance(store, SweepableStore):
                return  # cannot list its buckets; teardown alone deletes them
            names: list[str] = await self.call(store.list_buckets)
        except Exception as exc:  # noqa: BLE001
            self.error(f"cannot list buckets: {_error_text(exc)}")
            return
        for name in names:
            job_id = parse_ephemeral_bucket(name)
            if job_id is None:
                continue
            try:
                why = await self.why_over(job_id)
                if why is None or not self.old_enough(await self.call(store.last_changed, name)):
                    continue
                await self.call(store.delete_bucket, name)
            except Exception as exc:  # noqa: BLE001
                self.error(f"bucket {name}: {_error_text(exc)}")
                continue
            log.warning("sweeper: deleted ephemeral bucket %s: %s", name, why)
            self.report.deleted_buckets.append(name)


async def sweep_once(client: Client | ClientFacade, settings: Settings, *,
                     cloud: Callable[[str], Cloud] | None = None,
                     grace_s: float = DEFAULT_GRACE_S, timeout_s: float = CALL_TIMEOUT_S) -> SweepReport:
    """Terminate the tagged instances and delete the ephemeral buckets of every job whose
    workflow is closed or unknown, if older than `grace_s`. Never raises for a cloud, job or
    bucket in trouble: that is logged and listed in the report's errors. `cloud` gives a
    cloud by name (e.g. a worker's cached ones; by default a new one per sweep)."""
    temporal = client if isinstance(client, Client) else client.temporal
    if cloud is None:
        cloud = lambda name: get_cloud(name, settings)  # noqa: E731
    sweep = _Sweep(temporal, settings, cloud, grace_s, timeout_s)
    for name in settings.clouds:
        await sweep.instances(name)
    await sweep.buckets()
    return sweep.report


async def sweep_forever(client: Client | ClientFacade, settings: Settings, *,
                        cloud: Callable[[str], Cloud] | None = None,
                        interval_s: float = DEFAULT_INTERVAL_S, grace_s: float = DEFAULT_GRACE_S) -> None:
    """Sweep every interval_s (the first after one interval: a starting worker has enough to
    do) until cancelled."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            report = await sweep_once(client, settings, cloud=cloud, grace_s=grace_s)
        except Exception:  # noqa: BLE001 - the sweeper must outlive a bad sweep
            log.exception("sweeper: sweep failed")
            continue
        if report.terminated or report.deleted_buckets:
            log.info("sweeper: terminated %d instance(s), deleted %d bucket(s)",
                     len(report.terminated), len(report.deleted_buckets))


def start_sweeper(client: Client | ClientFacade, settings: Settings, *,
                  cloud: Callable[[str], Cloud] | None = None) -> asyncio.Task[None] | None:
    """Start sweep_forever in the background at SPOTCTL_SWEEP_INTERVAL_S (`worker.sweep_interval_s`);
    None when that is 0."""
    interval = settings.worker.sweep_interval_s
    if interval == 0:
        log.info("sweeper disabled (%s=0)", INTERVAL_ENV)
        return None
    return asyncio.create_task(sweep_forever(client, settings, cloud=cloud, interval_s=interval),
                               name="spotctl-sweeper")


async def stop_sweeper(task: asyncio.Task[None] | None) -> None:
    """Cancel the background sweeper and wait until it is gone."""
    if task is None:
        return
    task.cancel()
    await asyncio.wait([task])  # unlike `await task`, never swallows our own cancellation
