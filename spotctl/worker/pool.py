"""The Temporal workers one spotctl worker process runs: which activity polls which task
queue, with how many slots.

Four queues, four slot pools (models.monitor_queue / launch_queue / notify_queue):
- the job queue: the workflows and the short activities (setup, start, teardown, pricing,
  waiting for VMs to boot), `max_concurrent_activities` at once;
- the monitor queue: one year-long poll loop per running job, `max_concurrent_monitors`, so
  1,000 running jobs never hold the slots a preempted job's teardown and relaunch need;
- the launch queue: cluster creation, `max_concurrent_launches`, so a burst of launches waits
  in Temporal (the jobs show PENDING) instead of flooding the cloud APIs;
- the notify queue: status events' webhook POSTs and event_callbacks,
  `max_concurrent_notifications`, so a slow or hostile receiver (anyone who launches a job
  names one) holds at most these slots, never the job queue's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta

from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

from spotctl.activities import (
    ArrayActivities,
    MonitorActivities,
    NotifyActivities,
    ProvisionActivities,
    ask_canceled_end,
)
from spotctl.activities.heartbeat import HEARTBEAT_THROTTLE
from spotctl.config import WorkerConfig
from spotctl.models import MONITOR_HEARTBEAT_TIMEOUT_S, launch_queue, monitor_queue, notify_queue
from spotctl.worker.sandbox import workflow_runner


def activity_name(fn: Callable) -> str:
    """The name `fn` is registered under: its `@activity.defn` name, else its own.

    The one place spotctl reads the SDK's private `activity._Definition`: temporalio (1.x)
    has no public way to ask a callable for its activity name, and the routing below must go
    by name, since a test double (`@activity.defn(name=...)` on a plain function) stands for
    an implementation's method under the same name. If an SDK release moves it, only this
    function changes (tests/test_typed_calls.py checks it against models.ActivityNames)."""
    defn = activity._Definition.from_callable(fn)
    return defn.name if defn is not None and defn.name else getattr(fn, "__name__", "")


ON_MONITOR_QUEUE = frozenset({activity_name(MonitorActivities.monitor), activity_name(ArrayActivities.end_array)})
"""A job array's wait for its jobs' end (year-long, like a monitor) runs there too."""
MONITOR_HEARTBEAT_THROTTLE = timedelta(seconds=MONITOR_HEARTBEAT_TIMEOUT_S / 3)
"""Monitors heartbeat at most this often (12 s, a third of their 36 s heartbeat time-out:
two beats may be missed before a time-out, models.MONITOR_HEARTBEAT_TIMEOUT_S): every
heartbeat is a write in Temporal's database, and with 1,000 running jobs at the job queue's
3 s they were most of the server's work. A monitor needs no faster cancel: the workflow does
not wait for it (it makes nothing to tear down). A monitor scheduled with the earlier 15 s
time-out gets 0.8 of that from the SDK: 12 s too."""
ON_LAUNCH_QUEUE = frozenset({activity_name(ProvisionActivities.create_cluster)})
ON_NOTIFY_QUEUE = frozenset({activity_name(NotifyActivities.deliver_webhook),
                             activity_name(NotifyActivities.deliver_chat),
                             activity_name(NotifyActivities.run_event_callback)})


def job_workers(client: Client, task_queue: str, workflows: Sequence[type], activities: Sequence[Callable],
                limits: WorkerConfig | None = None, **worker_args) -> list[Worker]:
    """The Worker of each queue. The monitor, create and notify activities also stay
    registered on the job queue: a job started before the queues were split schedules them
    there. On
    shutdown, running activities get `limits.drain_timeout_s` (monitors hand over at once:
    activities/drain.py). The workflows run in the sandbox of worker/sandbox.py (spotctl's
    workflow-side packages passed through) unless `worker_args` names a `workflow_runner`."""
    limits = limits or WorkerConfig()
    if activity_name(ask_canceled_end) not in {activity_name(fn) for fn in activities}:
        activities = [*activities, ask_canceled_end]  # every job's end may need it (workflows/job_end.py)
    graceful_shutdown = timedelta(seconds=limits.drain_timeout_s)
    on_monitor = [fn for fn in activities if activity_name(fn) in ON_MONITOR_QUEUE]
    on_launch = [fn for fn in activities if activity_name(fn) in ON_LAUNCH_QUEUE]
    on_notify = [fn for fn in activities if activity_name(fn) in ON_NOTIFY_QUEUE]
    common = {"max_heartbeat_throttle_interval": HEARTBEAT_THROTTLE, "graceful_shutdown_timeout": graceful_shutdown,
              **worker_args}
    runner = {"workflow_runner": worker_args.get("workflow_runner") or workflow_runner()}
    workers = [Worker(client, task_queue=task_queue, workflows=workflows, activities=list(activities),
                      max_concurrent_activities=limits.max_concurrent_activities,
                      max_cached_workflows=limits.max_cached_workflows, **{**common, **runner})]
    if on_monitor:
        monitor_args = {**common, "max_heartbeat_throttle_interval": MONITOR_HEARTBEAT_THROTTLE, **worker_args}
        workers.append(Worker(client, task_queue=monitor_queue(task_queue), activities=on_monitor,
                              max_concurrent_activities=limits.max_concurrent_monitors, **monitor_args))
    if on_launch:
        workers.append(Worker(client, task_queue=launch_queue(task_queue), activities=on_launch,
                              max_concurrent_activities=limits.max_concurrent_launches, **common))
    if on_notify:
        workers.append(Worker(client, task_queue=notify_queue(task_queue), activities=on_notify,
                              max_concurrent_activities=limits.max_concurrent_notifications, **common))
    return workers


@asynccontextmanager
async def running(workers: Sequence[Worker]) -> AsyncIterator[None]:
    """Run every worker for the block; on the way out they shut down together (each waits up
    to its graceful time-out for its activities, so one after the other would add up)."""
    async with AsyncExitStack() as stack:
        for worker in workers:
            await stack.enter_async_context(worker)
        try:
            yield
        finally:
            await asyncio.gather(*(worker.shutdown() for worker in workers))
