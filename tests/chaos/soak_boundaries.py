"""The chaos soak's cancels timed at continue-as-new boundaries (issue 22, item 1).

Why: a continued run (continue-as-new) starts from the state its predecessor carried; a
cancel that reaches it in its first workflow task (sent during the hand-over: milliseconds
while a worker runs, minutes while none polls) must not be erased by that carried state. The
focused tests script that moment; here it happens among preemptions, worker kills and a
Temporal restart, through the CLI and the client a user has.

These jobs run the soak's program for far longer than the soak and continue as new after
every attempt (JobSpec.continue_as_new_after_attempts = 1: there is no setting for it, so they
are started the way `spotctl launch` starts a job, with that one field changed); the cloud's
preemptions end their attempts. Each gets one cancel. A thread follows each job's runs with a
long poll for the current run's close event (what `handle.result()` waits on), so a
continue-as-new is seen within milliseconds, about when the new run's first workflow task goes
to the worker.
- "new run" jobs: at the first new run after a point in the chaos (spread over it, earliest_s),
  the cancel is sent at once through the client (what `spotctl cancel` calls);
- "worker down" jobs: at a worker kill, the kill waits (ALIGN_S at most) for one of them to
  continue as new, and the watcher SIGKILLs the worker the moment it sees that; `spotctl cancel
  ID` of that job then runs while no worker polls (the supervisor brings one back within
  seconds), and only then is a new worker asked for. A first task in flight when its worker
  dies times out and is given again with the cancel in it: what a continued run meets while
  its workers are down or redeployed.
Whatever has no cancel when the chaos ends gets one then (counted apart: not at a boundary).

Asserted: each ends CANCELLED within CANCEL_BOUND_S of its cancel, with no instance of it
alive and no copy of its program running. A job still going after that is cancelled a second
time (so the rest of the soak's checks see what a second cancel leaves). Where each cancel
landed is read back from the histories: in a run's first workflow task or later.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus, WorkflowHistoryEventFilterType

from spotctl.client import SpotClient, workflow_id
from spotctl.config import Settings
from spotctl.launch import Overrides, bucket_regions, plan, stage_tasks
from spotctl.models.naming import job_of_cluster

from conftest import pid_dead

CANCEL_BOUND_S = 120.0
"""A cancelled job must be CANCELLED this soon after its cancel (worker kills included)."""
ALIGN_S = 20.0
"""At a worker kill, how long the soak waits for a "worker down" job to continue as new."""
LONG_POLL_TIMEOUT = timedelta(seconds=60)
"""Each long poll (the server answers one after ~20 s when nothing happened): a connection that
died with the Temporal server fails, and the watcher reconnects."""
PROGRAM_STEPS = 1_000_000
"""The program's steps: it never ends by itself within a soak; only the cancel ends the job."""


@dataclass
class BoundaryJob:
    key: str
    bucket: str
    task: Path
    group: str
    """"new run" or "worker down": how its cancel is timed."""
    earliest_s: float
    """Seconds into the chaos: a "new run" job is cancelled at its first new run after this."""
    job_id: int | None = None
    launch_error: str | None = None
    run_id: str | None = None
    runs_seen: int = 0
    """Runs the watcher saw begin (after the first it saw)."""
    runs_before_cancel: int = 0
    cancel_how: str | None = None
    cancel_wall: datetime | None = None
    """When the cancel was about to be sent (the CLI's or the client's call began)."""
    cancel_mono: float | None = None
    boundary_at: float | None = None
    """time.monotonic() when the new run its cancel was timed at was seen."""
    boundary_s: float | None = None
    """From that moment to the cancel's call (for a worker kill: the kill comes first)."""
    status_at_bound: str | None = None
    """Its status CANCEL_BOUND_S after the cancel (or once every job ended)."""
    landed: str | None = None
    """From the history: "first task" or "later" (in which run's task the cancel was seen)."""


@dataclass
class BoundaryCancels:
    """The jobs, the watcher thread, and what they found."""

    settings: Callable[[], Settings]
    note: Callable[[str], None]
    problem: Callable[[str], None]
    jobs: list[BoundaryJob] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    chaos_t0: float = 0.0
    stats: dict[str, Any] = field(default_factory=dict)
    kill: Callable[[], None] | None = None
    """Set while a worker kill waits for a boundary: the watcher calls it (once) at one."""
    killed: threading.Event = field(default_factory=threading.Event)
    kill_target: BoundaryJob | None = None

    def add(self, key: str, bucket: str, task: Path, group: str, earliest_s: float) -> None:
        self.jobs.append(BoundaryJob(key, bucket, task, group, earliest_s))

    # -- launching -------------------------------------------------------------------------
    def launch(self) -> None:
        """Start every job as `spotctl launch` does (plan, id, staged files, start), with
        continue-as-new after every attempt."""
        asyncio.run(self._launch_all())

    async def _launch_all(self) -> None:
        settings = self.settings()
        client = await SpotClient.connect(settings)
        for job in self.jobs:
            try:
                p = plan(str(job.task), Overrides(), settings)
                job_id = await client.allocate_job_id()
                staged = await asyncio.to_thread(stage_tasks, [p.task], job_id, settings, bucket_regions(p.candidates))
                spec = p.to_spec(job_id, staged[0]).model_copy(update={"continue_as_new_after_attempts": 1})
                await client.start_job(spec)
                job.job_id = job_id
            except Exception as exc:  # noqa: BLE001 - reported as the job's finding
                job.launch_error = repr(exc)
                self.problem(f"{job.key}: could not start the job that continues as new: {exc!r}")

    # -- the watcher -----------------------------------------------------------------------
    def start_watching(self, chaos_t0: float) -> None:
        self.chaos_t0 = chaos_t0
        self.thread = threading.Thread(target=lambda: asyncio.run(self._watch()), name="soak-boundaries",
                                       daemon=True)
        self.thread.start()

    def stop_watching(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(30)

    async def _watch(self) -> None:
        followers = [asyncio.create_task(self._follow(j)) for j in self.jobs if j.job_id is not None]
        while not self.stop.is_set() and not all(f.done() for f in followers):
            await asyncio.sleep(0.2)
        for f in followers:
            f.cancel()
        await asyncio.gather(*followers, return_exceptions=True)

    async def _follow(self, job: BoundaryJob) -> None:
        """Until the job has its cancel: wait for its current run to close; a continue-as-new
        is a boundary."""
        assert job.job_id is not None
        client: SpotClient | None = None
        while job.cancel_how is None:
            try:
                client = client or await SpotClient.connect(self.settings())
                desc = await client.temporal.get_workflow_handle(workflow_id(job.job_id)).describe()
                if desc.status != WorkflowExecutionStatus.RUNNING:
                    return
                job.run_id = desc.run_id
                run = client.temporal.get_workflow_handle(workflow_id(job.job_id), run_id=desc.run_id)
                closing = run.fetch_history_events(wait_new_event=True, rpc_timeout=LONG_POLL_TIMEOUT,
                                                   event_filter_type=WorkflowHistoryEventFilterType.CLOSE_EVENT)
                async for event in closing:
                    if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
                        new = event.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
                        await self._boundary(client, job, new)
                    break
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the worker and server are killed during the soak
                if client is not None:
                    self.note(f"{job.key}: boundary watcher: {type(exc).__name__}: {str(exc)[:120]}; reconnecting")
                client = None
                await asyncio.sleep(1)

    async def _boundary(self, client: SpotClient, job: BoundaryJob, new_run: str) -> None:
        """Job's run continued as new (seen just now): kill the worker if a kill waits for this,
        or cancel a "new run" job whose time has come."""
        seen = time.monotonic()
        with self.lock:
            job.run_id, job.runs_seen = new_run, job.runs_seen + 1
            kill = None
            if job.group == "worker down" and job.cancel_how is None:
                kill, self.kill = self.kill, None
                if kill is not None:
                    self.kill_target, job.boundary_at = job, seen
            cancel = (job.group == "new run" and job.cancel_how is None
                      and seen - self.chaos_t0 >= job.earliest_s)
            if cancel:
                job.cancel_how, job.boundary_at = "at a new run", seen
        if kill is not None:
            try:
                kill()  # at once: the new run's first task is to come or in flight
            finally:
                self.killed.set()
        if cancel:
            sent = (datetime.now(UTC), time.monotonic())
            await client.cancel(job.job_id or -1)
            self._sent(job, sent)

    def _sent(self, job: BoundaryJob, sent: tuple[datetime, float]) -> None:
        """Record a cancel sent (`sent`: wall and monotonic time just before it was)."""
        job.cancel_wall, job.cancel_mono = sent
        job.runs_before_cancel = job.runs_seen
        if job.boundary_at is not None:
            job.boundary_s = round(job.cancel_mono - job.boundary_at, 3)
        after = f", {job.boundary_s * 1000:.0f} ms after it was seen" if job.boundary_s is not None else ""
        self.note(f"{job.key}: job {job.job_id} cancelled {job.cancel_how} (run {job.run_id}{after}; "
                  f"{job.runs_before_cancel} new runs seen)")

    # -- the main thread's cancels ---------------------------------------------------------
    def kill_at_a_boundary(self, kill: Callable[[], None]) -> BoundaryJob | None:
        """Run `kill` (SIGKILL the worker) once: the moment a "worker down" job continues as
        new (the watcher runs it), or after ALIGN_S. Returns the job to cancel while no worker
        runs (None when every one has had its cancel)."""
        with self.lock:
            self.kill_target = None
            waiting = [j for j in self.jobs if j.group == "worker down" and j.job_id is not None and j.cancel_how is None]
            armed = bool(waiting) and self.thread is not None and self.thread.is_alive()
            if armed:
                self.killed.clear()
                self.kill = kill
        if armed and self.killed.wait(ALIGN_S):
            return self.kill_target
        with self.lock:
            mine, self.kill = self.kill is not None or not armed, None
        if mine:
            kill()
        else:
            self.killed.wait()  # the watcher took it at the last moment: wait for its kill to end
        return self.kill_target or (waiting[0] if waiting else None)

    def cancel_by_cli(self, job: BoundaryJob, how: str, cli: Callable[..., Any]) -> None:
        """`spotctl cancel ID` (main thread: the CLI runs in this process)."""
        with self.lock:
            if job.cancel_how is not None:
                return
            job.cancel_how = how
        sent = (datetime.now(UTC), time.monotonic())
        result = cli("cancel", "-y", str(job.job_id))
        self._sent(job, sent)
        if result.exit_code not in (0, 1) or "ancel" not in result.output:  # 1: "no worker polls"
            self.problem(f"{job.key}: `spotctl cancel {job.job_id}` {how} exited {result.exit_code}: "
                         f"{result.output[-300:]}")

    def cancel_the_rest(self, cli: Callable[..., Any]) -> None:
        self.stop_watching()
        for job in self.jobs:
            if job.job_id is not None and job.cancel_how is None:
                self.cancel_by_cli(job, "after the chaos (no boundary seen)", cli)

    # -- verification ----------------------------------------------------------------------
    def verify(self, statuses: Callable[[], dict[int, dict] | None], cli: Callable[..., Any],
               alive_clusters: Callable[[], set[str]], token: str) -> None:
        """Each cancelled job CANCELLED within CANCEL_BOUND_S of its cancel, nothing of it
        left; where each cancel landed; a second cancel for any job still going."""
        jobs = [j for j in self.jobs if j.job_id is not None and j.cancel_mono is not None]
        deadline = max([j.cancel_mono + CANCEL_BOUND_S for j in jobs], default=0.0)
        states = statuses() or {}
        while time.monotonic() < deadline and not all(_ended(states, j) for j in jobs):
            time.sleep(2)
            states = statuses() or states
        asyncio.run(self._read_histories())
        ended_s: list[float] = []
        going: list[BoundaryJob] = []
        alive = alive_clusters()
        for job in jobs:
            assert job.job_id is not None and job.cancel_wall is not None
            state = states.get(job.job_id) or {}
            job.status_at_bound = state.get("status")
            seen_in = {"first task": "its run's first workflow task", "later": "a later workflow task"}.get(
                job.landed or "", "no history read")
            where = f"cancel sent {job.cancel_how}, {job.runs_before_cancel} new runs seen before it, in {seen_in}"
            if state.get("status") != "CANCELLED":
                going.append(job)
                self.problem(f"{job.key}: job {job.job_id} (continues as new every attempt) is "
                             f"{state.get('status')} (cancel_requested {state.get('cancel_requested')}, attempt "
                             f"{state.get('attempt')}) {CANCEL_BOUND_S:.0f}s after its cancel: {where}")
                continue
            took = (datetime.fromisoformat(state["ended_at"]) - job.cancel_wall).total_seconds()
            ended_s.append(took)
            if took > CANCEL_BOUND_S:
                self.problem(f"{job.key}: job {job.job_id} took {took:.0f}s to be CANCELLED ({where})")
            if left := sorted(c for c in alive if job_of_cluster(c) == job.job_id):
                self.problem(f"{job.key}: job {job.job_id} is CANCELLED but its clusters are alive: {left}")
            if pids := env_pids([f"SOAK_TOKEN={token}", f"SOAK_KEY={job.key}"]):
                self.problem(f"{job.key}: job {job.job_id} is CANCELLED but its program runs: {pids}")
        for job in going:
            cli("cancel", "-y", str(job.job_id))
        deadline = time.monotonic() + 60
        while going and time.monotonic() < deadline and not all(_ended(states, j) for j in going):
            time.sleep(2)
            states = statuses() or states
        for job in going:
            self.note(f"{job.key}: after a second cancel, job {job.job_id} is "
                      f"{(states.get(job.job_id) or {}).get('status')}")
        ended_s.sort()
        self.stats = {
            "jobs": len(self.jobs),
            "sent": len(jobs),
            "at_new_run": sum(1 for j in jobs if j.cancel_how == "at a new run"),
            "worker_down": sum(1 for j in jobs if j.cancel_how == "while no worker ran"),
            "not_at_boundary": sum(1 for j in jobs if j.cancel_how and j.cancel_how.startswith("after")),
            "in_first_task": sum(1 for j in jobs if j.landed == "first task"),
            "in_a_later_task": sum(1 for j in jobs if j.landed == "later"),
            "new_runs_seen": sum(j.runs_before_cancel for j in self.jobs),
            "cancelled": len(jobs) - len(going),
            "lost": len(going),
            "cancelled_s_max": round(ended_s[-1], 1) if ended_s else None,
            "cancelled_s_median": round(ended_s[len(ended_s) // 2], 1) if ended_s else None,
            "per_job": [{"job_id": j.job_id, "sent": j.cancel_how, "after_boundary_s": j.boundary_s,
                         "landed": j.landed, "new_runs_before": j.runs_before_cancel,
                         "status": j.status_at_bound} for j in self.jobs],
        }

    async def _read_histories(self) -> None:
        """For each job, the task its first cancel was seen in: the first workflow task of a
        run (before that run's first WorkflowTaskCompleted), or a later one."""
        try:
            client = await SpotClient.connect(self.settings())
            for job in self.jobs:
                if job.job_id is None or job.cancel_mono is None:
                    continue
                runs = [e async for e in client.temporal.list_workflows(f"WorkflowId = '{workflow_id(job.job_id)}'")]
                for run in sorted(runs, key=lambda r: r.start_time):
                    history = await client.temporal.get_workflow_handle(run.id, run_id=run.run_id).fetch_history()
                    completed = False
                    for event in history.events:
                        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                            completed = True
                        elif (event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
                              and event.workflow_execution_signaled_event_attributes.signal_name == "cancel"):
                            job.landed = "later" if completed else "first task"
                            break
                    if job.landed:
                        break
        except Exception as exc:  # noqa: BLE001 - a finding of its own, the rest still runs
            self.problem(f"could not read the boundary jobs' histories: {exc!r}")


def _ended(states: dict[int, dict], job: BoundaryJob) -> bool:
    return (states.get(job.job_id or -1) or {}).get("status") in ("CANCELLED", "SUCCEEDED", "FAILED",
                                                                   "FAILED_CONTROLLER", "FAILED_SETUP",
                                                                   "FAILED_NO_RESOURCE", "FAILED_PRECHECKS")


def env_pids(entries: list[str]) -> list[int]:
    """Live processes whose environment has every one of `entries` (KEY=VALUE)."""
    wanted = [e.encode() for e in entries]
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if all(w in env for w in wanted) and not pid_dead(int(entry)):
            pids.append(int(entry))
    return pids
