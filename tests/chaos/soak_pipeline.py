"""The chaos soak's pipeline under a webhook outage (issue 22, item 3).

Why: a job's status events are delivered in order, retried while the webhook is down, and
README promises that delivery never holds a job up. A pipeline is where holding up would show:
if a task's workflow waited for its events before it ended, the next task would start only
when the webhook came back. Here a three-task pipeline of the soak's checkpointing program
runs through the chaos (preemptions, worker kills, a Temporal restart) while its webhook (a
receiver on 127.0.0.1, tests/webhook_receiver.py) answers 503 to everything; the webhook comes
back when the chaos ends.

Asserted:
- each task starts (its workflow, a child of the pipeline's) within NEXT_TASK_BOUND_S of the
  end of the one before it (its row's ended_at), and the pipeline ends SUCCEEDED in the same
  time as the soak's other jobs, each task with its uninterrupted result;
- once the webhook is back, within DELIVERY_BOUND_S: every event of every task (`on:` every
  status) and the pipeline's own end arrive, each event id answered 200 at least once, per
  task numbered 1..n in the order they first arrived, each repeat the same body, and the
  statuses a chain (each event's `previous` is the status before it) from PENDING to
  SUCCEEDED with as many RECOVERING events as the task had recoveries; every event the webhook
  refused during the outage is among them.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from webhook_receiver import Receiver

from spotctl.client import SpotClient
from spotctl.config import Settings
from spotctl.models import search_attributes as sa
from spotctl.models.naming import task_workflow_id

NEXT_TASK_BOUND_S = 60.0
"""A task's workflow starts this soon after the task before it ended (a worker kill or the
Temporal restart in between included)."""
DELIVERY_BOUND_S = 150.0
"""After the webhook is back, every event has arrived this soon (the retries back off to a
minute apart)."""
TASKS = 3
ALL_STATUSES = ["PENDING", "STARTING", "RUNNING", "RECOVERING", "SUCCEEDED", "FAILED", "CANCELLING", "CANCELLED"]
EVENT_ID = re.compile(r"^(\d+)-(?:task(\d+)-)?(\d+)$")
"""`<job>-<n>` (the pipeline's own events) or `<job>-task<i>-<n>` (a task's)."""


@dataclass
class PipelineUnderOutage:
    receiver: Receiver
    keys: list[str]
    buckets: list[str]
    steps: int
    settings: Callable[[], Settings]
    note: Callable[[str], None]
    problem: Callable[[str], None]
    job_id: int | None = None
    launch_error: str | None = None
    down_at: float = field(default_factory=time.monotonic)
    up_at: float | None = None
    stats: dict[str, Any] = field(default_factory=dict)

    def write(self, path: Path, task_text: Callable[[str, str, int], str]) -> Path:
        """The pipeline file: its name, then one soak task per document."""
        docs = ["name: soak-pipeline\n"] + [task_text(k, b, self.steps) for k, b in zip(self.keys, self.buckets,
                                                                                         strict=True)]
        path.write_text("---\n".join(docs))
        return path

    def launch(self, home: Path, launch: Callable[[], tuple[int | None, str | None]]) -> None:
        """`spotctl launch` with `notify:` (every status, to the receiver) in config.yaml for
        this launch only: the soak's other jobs have no webhook."""
        config = home / "config.yaml"
        assert not config.exists(), "the soak's home has a config.yaml of its own"
        config.write_text(yaml.safe_dump({"notify": {"url": self.receiver.url(), "on": ALL_STATUSES}}))
        try:
            self.receiver.answer = 503
            self.down_at = time.monotonic()
            self.job_id, self.launch_error = launch()
        finally:
            config.unlink()
        if self.launch_error:
            self.problem(f"pipeline: launch failed: {self.launch_error}")

    def webhook_up(self) -> None:
        self.receiver.answer = 200
        self.up_at = time.monotonic()
        refused = len(self.requests())
        self.note(f"pipeline {self.job_id}: webhook back after {self.up_at - self.down_at:.0f}s down "
                  f"({refused} deliveries refused meanwhile)")

    def requests(self) -> list[tuple[dict, Any]]:
        """(body, answer) of every POST about this job, in arrival order."""
        out = []
        for r in list(self.receiver.requests):
            body = json.loads(r["body"])
            if body.get("job_id") == self.job_id:
                out.append((body, r["answer"]))
        return out

    def _all_arrived(self) -> bool:
        delivered = {b["event_id"] for b, a in self.requests() if a == 200}
        ends = {(b["task"], b["status"]) for b, a in self.requests() if a == 200}
        return {(i, "SUCCEEDED") for i in [*range(TASKS), None]} <= ends and delivered >= {
            b["event_id"] for b, _ in self.requests()}

    def verify(self, state: dict | None, result_of: Callable[[str], str | None]) -> None:
        """Everything above; `state` is the pipeline's row of `status --json`, `result_of(key)`
        the result its task left in its bucket (None if none)."""
        if self.job_id is None:
            return
        assert self.up_at is not None
        while not self._all_arrived() and time.monotonic() < self.up_at + DELIVERY_BOUND_S:
            time.sleep(1)
        try:
            starts = asyncio.run(self._task_starts())
        except Exception as exc:  # noqa: BLE001 - a finding; the rest is still checked
            self.problem(f"pipeline: could not read its tasks' workflows: {exc!r}")
            starts = [None] * TASKS
        gaps = self._check_state(state or {}, result_of, starts)
        self._check_events(state or {})
        reqs = self.requests()
        self.stats.update(
            job_id=self.job_id, tasks=TASKS, steps_per_task=self.steps,
            status=(state or {}).get("status"), webhook_down_s=round(self.up_at - self.down_at, 1),
            next_task_s=[round(g, 1) if g is not None else None for g in gaps],
            next_cluster_s=self._first_cluster_gaps(state or {}),
            posts=len(reqs), refused_during_outage=sum(1 for _, a in reqs if a != 200),
            events=len({b["event_id"] for b, _ in reqs}),
            delivered=len({b["event_id"] for b, a in reqs if a == 200}),
            repeats=sum(1 for _, a in reqs if a == 200) - len({b["event_id"] for b, a in reqs if a == 200}),
        )

    async def _task_starts(self) -> list[datetime | None]:
        """When each task's workflow started (its first run: a task may continue as new)."""
        assert self.job_id is not None
        client = await SpotClient.connect(self.settings())
        starts: list[datetime | None] = []
        for i in range(TASKS):
            # a task is an internal workflow (out of the UI's list): the query must name its division
            query = sa.internal(f"WorkflowId = '{task_workflow_id(self.job_id, i)}'")
            runs = [r async for r in client.temporal.list_workflows(query)]
            starts.append(min((r.start_time for r in runs), default=None))
        return starts

    def _check_state(self, state: dict, result_of: Callable[[str], str | None],
                     starts: list[datetime | None]) -> list[float | None]:
        if state.get("status") != "SUCCEEDED":
            self.problem(f"pipeline: job {self.job_id} ended {state.get('status')}: {state.get('failure_reason')}")
        rows = state.get("tasks") or []
        if [r.get("status") for r in rows] != ["SUCCEEDED"] * TASKS:
            self.problem(f"pipeline: job {self.job_id}'s tasks are {[r.get('status') for r in rows]}")
        for key in self.keys:
            if result_of(key) is None:
                self.problem(f"pipeline: task {key} left no right result in its bucket")
        gaps: list[float | None] = []
        for i, prev in enumerate(rows[:-1], 1):
            begun = starts[i] if i < len(starts) else None
            if not prev.get("ended_at") or begun is None:
                gaps.append(None)
                self.problem(f"pipeline: job {self.job_id}: task {i - 1} ended at {prev.get('ended_at')}, "
                             f"task {i}'s workflow started at {begun}")
                continue
            gap = (begun - datetime.fromisoformat(prev["ended_at"])).total_seconds()
            gaps.append(gap)
            if gap > NEXT_TASK_BOUND_S:
                self.problem(f"pipeline: job {self.job_id}: task {i} started {gap:.0f}s after task {i - 1} ended "
                             f"(bound {NEXT_TASK_BOUND_S:.0f}s; the webhook was down)")
        return gaps

    @staticmethod
    def _first_cluster_gaps(state: dict) -> list[float | None]:
        """For the report: from a task's end to the next task's first cluster asked for (its
        first attempt's launched_at; provisioning rounds that failed are inside)."""
        rows = state.get("tasks") or []
        out: list[float | None] = []
        for prev, nxt in zip(rows, rows[1:], strict=False):
            first = (nxt.get("history") or [{}])[0]
            begun = first.get("launched_at") or first.get("started_at")
            out.append(round((datetime.fromisoformat(begun) - datetime.fromisoformat(prev["ended_at"])).total_seconds(), 1)
                       if begun and prev.get("ended_at") else None)
        return out

    def _check_events(self, state: dict) -> None:
        reqs = self.requests()
        bodies: dict[str, dict] = {}
        order: dict[int | None, list[int]] = {}
        for body, answer in reqs:
            eid = body["event_id"]
            if eid in bodies and bodies[eid] != body:
                self.problem(f"pipeline: event {eid} sent twice with different bodies: {bodies[eid]} != {body}")
            bodies.setdefault(eid, body)
            m = EVENT_ID.match(eid)
            if not m or int(m.group(1)) != self.job_id:
                self.problem(f"pipeline: event id {eid!r} is not this job's")
                continue
            task = int(m.group(2)) if m.group(2) is not None else None
            if answer == 200 and int(m.group(3)) not in order.get(task, []):
                order.setdefault(task, []).append(int(m.group(3)))
        delivered = {b["event_id"] for b, a in reqs if a == 200}
        if lost := sorted(set(bodies) - delivered):
            self.problem(f"pipeline: events tried during the outage and never delivered: {lost}")
        rows = state.get("tasks") or []
        for task in [*range(TASKS), None]:
            seqs = order.get(task, [])
            what = f"task {task}" if task is not None else "the pipeline's own"
            if seqs != list(range(1, len(seqs) + 1)):
                self.problem(f"pipeline: {what} events first arrived as {seqs} (a gap or out of order)")
                continue
            prefix = f"{self.job_id}-task{task}-" if task is not None else f"{self.job_id}-"
            events = [bodies[f"{prefix}{n}"] for n in seqs]
            statuses = [e["status"] for e in events]
            want_first = "PENDING" if task is not None else "SUCCEEDED"
            if not statuses or statuses[0] != want_first or statuses[-1] != "SUCCEEDED":
                self.problem(f"pipeline: {what} events are {statuses}: not {want_first} .. SUCCEEDED")
                continue
            if task is None:
                continue
            broken = [e["event_id"] for p, e in zip(events, events[1:], strict=False) if e["previous"] != p["status"]]
            if broken:
                self.problem(f"pipeline: task {task}: events {broken} do not follow the one before ({statuses})")
            recoveries = rows[task].get("recoveries") if task < len(rows) else None
            if recoveries is not None and statuses.count("RECOVERING") != recoveries:
                self.problem(f"pipeline: task {task} had {recoveries} recoveries but its events say "
                             f"{statuses.count('RECOVERING')}: {statuses}")
