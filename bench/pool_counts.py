"""What one pool job costs the controller, counted from real histories (load-independent).

Used by bench/pool_throughput.py after a run: for a sample of the jobs, each job workflow's
history, and for the pool, every run of its workflow (continue-as-new makes several), counted
by event: workflow tasks, activities, signals received and sent, timers, search-attribute and
memo upserts. The pool's counts are divided by the jobs it served. A workflow task costs the
server at least two calls (the worker's poll and its answer), an activity two more; heartbeats
and the monitor's node polls scale with the program's run time and are counted apart.
"""

from __future__ import annotations

from collections import Counter
from statistics import mean

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from spotctl.models import search_attributes as sa

COUNTED = {
    "workflow_tasks": "EVENT_TYPE_WORKFLOW_TASK_COMPLETED",
    "activities": "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED",
    "signals_received": "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED",
    "signals_sent": "EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED",
    "timers": "EVENT_TYPE_TIMER_STARTED",
    "search_attribute_upserts": "EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES",
    "memo_upserts": "EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED",
}


async def history_counts(client: Client, workflow_id: str, run_id: str | None = None) -> Counter:
    """Events of one workflow run by the names of COUNTED (and `events`, all of them), plus
    the activities by type."""
    history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    names = Counter(EventType.Name(e.event_type) for e in history.events)
    out = Counter({k: names.get(v, 0) for k, v in COUNTED.items()})
    out["events"] = len(history.events)
    for e in history.events:
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            out["activity:" + e.activity_task_scheduled_event_attributes.activity_type.name] += 1
    return out


async def per_job(client: Client, job_workflow_ids: list[str], pool_workflow_id: str, jobs_served: int) -> dict:
    """Mean counts per job on the job's own workflow (over the sample) and on the pool's (all
    its runs, divided by the jobs it served)."""
    jobs = [await history_counts(client, wid) for wid in job_workflow_ids]
    keys = sorted(set().union(*jobs)) if jobs else []
    job = {k: mean(c.get(k, 0) for c in jobs) for k in keys}
    pool: Counter = Counter()
    runs = 0
    async for wf in client.list_workflows(sa.internal(f"WorkflowId = '{pool_workflow_id}'")):  # pools are internal
        pool += await history_counts(client, pool_workflow_id, wf.run_id)
        runs += 1
    served = max(1, jobs_served)
    return {"sampled_jobs": len(jobs), "job": job, "pool_runs": runs,
            "pool": {k: v / served for k, v in sorted(pool.items())},
            "server_calls_lower_bound": 2 * (job.get("workflow_tasks", 0) + pool["workflow_tasks"] / served)
            + 2 * (job.get("activities", 0) + pool["activities"] / served)}
