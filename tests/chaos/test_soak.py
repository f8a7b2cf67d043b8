"""The chaos soak: many checkpointing jobs on a local cloud that takes VMs back at random,
while the controller is crashed over and over. Nothing may be lost.

Why a soak on top of the focused tests: each fault is proven alone elsewhere (a killed worker
in test_durability.py, random preemption in test_checkpoint_resume.py, a moody cloud in
test_moody_jobs.py). Faults that overlap (a preemption while no worker runs, a launch burst
while instances die, a Temporal restart with fifty monitors attached) are where races hide.

What happens (scale with SPOTCTL_SOAK_JOBS, default 50, and SPOTCTL_SOAK_SECONDS, default 300):
- a private embedded server + worker (this test kills them; other tests must not notice), the
  orphan sweeper off (it would hide leaks), TMPDIR inside the test dir (stray temp files show);
- every region preempts spot VMs at random, mean MTBF_S each; local-west gives a notice
  (SIGTERM, checkpoint, exit 143), the others kill at once;
- JOBS - BURST jobs are launched, then a burst of BURST concurrent `spotctl launch -y -d`;
- the worker is SIGKILLed and restarted every KILL_EVERY_S, the Temporal server SIGKILLed and
  restarted once, between two worker kills;
- after SOAK_SECONDS the cloud calms down (no new random preemptions) and every job must end;
- BOUNDARY_JOBS more jobs continue as new after every attempt, and each is cancelled at a
  continue-as-new boundary: the moment a new run shows, or in a worker kill window right after
  one (soak_boundaries.py);
- a three-task pipeline runs through the chaos while its webhook answers 503 to everything;
  the webhook comes back when the cloud calms down (soak_pipeline.py).

What is asserted (every finding is collected first, so one run shows all of them):
- every job SUCCEEDED with the result of an uninterrupted run, and printed it;
- no violation file: no two copies of a job's program ever ran at once (soak_program.py);
- logs are complete and byte-exact: each attempt's stored log is exactly the records the
  program wrote (its own copy, outside the instance; at most the one record being written
  at a kill may be missing from the copy), every record is the one expected at that point
  (non-UTF-8 bytes included), the final attempt has every step from its resume point to the
  result, each resume is at most one step behind what was printed, and
  `spotctl logs --no-follow ID` prints each attempt's stored bytes unchanged;
- each job cancelled at a boundary ends CANCELLED within soak_boundaries.CANCEL_BOUND_S of its
  cancel, none of its clusters alive, none of its programs running;
- the pipeline's tasks follow one another without waiting for the webhook, it ends SUCCEEDED
  with the other jobs, and once the webhook is back every event of it arrives, in order, none
  lost (soak_pipeline.py says exactly what is checked);
- no instance alive, no instance process, no instance disk, no ephemeral bucket, no process
  of the soak left, the server and worker gone after stop, nothing left in the private TMPDIR
  and nothing new in /tmp, /var/tmp, /dev/shm or ~/.spotctl.

The summary (jobs, preemptions, worker kills, server restarts, launches, recoveries, lost,
duration; cancels_at_boundaries and pipeline_events for the two parts above) is written as
JSON to $SPOTCTL_SOAK_REPORT when set (bench/reliability.py reads it);
when something was found and $SPOTCTL_SOAK_ARTIFACTS is set, what explains it is copied there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import soak_boundaries
import soak_program as prog
import yaml
from click.testing import CliRunner
from soak_boundaries import BoundaryCancels
from soak_pipeline import PipelineUnderOutage
from webhook_receiver import running_receiver

from spotctl.cli.main import cli
from spotctl.clouds.base import InstanceState
from spotctl.clouds.local import LocalCloud
from spotctl.clouds.local_processes import processes_of
from spotctl.config import load_settings
from spotctl.embedded import EmbeddedServer
from spotctl.models.naming import cluster_name, parse_ephemeral_bucket
from spotctl.storage.log_store import LogStore

from conftest import pid_dead, spotctl_env

JOBS = int(os.environ.get("SPOTCTL_SOAK_JOBS", "50"))
SOAK_SECONDS = float(os.environ.get("SPOTCTL_SOAK_SECONDS", "300"))
BURST = min(30, JOBS * 3 // 5)
"""Concurrent launches in the burst: 30 of the default 50."""
KILL_EVERY_S = min(60.0, SOAK_SECONDS / 3)
"""The worker is SIGKILLed this often (every minute at full scale, at least twice a soak)."""
SERVER_RESTART_AT_S = (max(0, round(SOAK_SECONDS / 2 / KILL_EVERY_S - 0.5)) + 0.5) * KILL_EVERY_S
"""Halfway between two worker kills, near the middle of the soak."""
MTBF_S = 20.0
"""Mean life of a spot VM before the local cloud takes it back."""
NOTICE_S = 2.0
"""local-west warns this long before a preemption; the other regions kill at once."""
STEP_S = 0.5
STEPS = max(20, int(0.6 * SOAK_SECONDS / STEP_S))
"""Work per job: 60% of the soak, so jobs run through the chaos and finish soon after it."""
TAIL_S = max(180.0, SOAK_SECONDS * 0.8)
"""After the chaos, how long every job gets to end on a calm cloud."""
INITIAL_LAUNCH_THREADS = 4
WORKER_KILLS = [k * KILL_EVERY_S for k in range(1, int(SOAK_SECONDS // KILL_EVERY_S) + 1)
                if k * KILL_EVERY_S < SOAK_SECONDS]
"""When the worker is SIGKILLed, in seconds into the chaos."""
BOUNDARY_JOBS = max(4, JOBS // 8)
"""Jobs that continue as new after every attempt, each cancelled at a boundary: 6 of the default 50."""
WORKER_DOWN_CANCELS = min(len(WORKER_KILLS), BOUNDARY_JOBS // 2)
"""Of them, cancelled in a worker kill window (one per kill); the others when a new run shows."""
PIPELINE_STEPS = max(10, int(0.1 * SOAK_SECONDS / STEP_S))
"""Work per pipeline task: three tasks of 10% of the soak each, all within the chaos."""
PREEMPTION_REASON = "local.SpotInstanceTermination"

MARKER = re.compile(rb"^--- recovery \d+: [^\n]* ---\n", re.MULTILINE)
"""`spotctl logs`' line between two attempts (cli/follow.py recovery_marker)."""
OURS = re.compile(r"spotctl|soak|temporal|sky|agent|job|ckpt|checkpoint", re.IGNORECASE)
"""A new entry in /tmp with such a name is taken for the soak's. Other programs on a shared
machine (other test runs, editors) make entries in /tmp meanwhile, so an entry is only blamed
on the soak by its name or its content (below); spotctl's processes get a private TMPDIR in
the test dir, so whatever they make through tempfile shows there, where any file counts."""
WATCHED_DIRS = (Path("/tmp"), Path("/var/tmp"), Path("/dev/shm"))


def now() -> float:
    return time.monotonic()


def chain(key: str, steps: int) -> list[str]:
    """The state after each step 0..steps, as soak_program computes it."""
    states = [""]
    for step in range(1, steps + 1):
        states.append(prog.next_state(states[-1], key, step))
    return states


def first_difference(a: bytes, b: bytes) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def snapshot_dirs() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for d in WATCHED_DIRS:
        try:
            out[str(d)] = set(os.listdir(d))
        except OSError:
            out[str(d)] = set()
    return out


def soak_pids(token: str) -> list[int]:
    """Live processes whose environment carries the soak's token (the jobs' programs and their
    shells), found without asking spotctl or the local cloud."""
    marker = f"SOAK_TOKEN={token}".encode()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if marker in f.read().split(b"\0") and not pid_dead(int(entry)):
                    pids.append(int(entry))
        except OSError:
            continue
    return pids


@dataclass
class Job:
    key: str
    bucket: str
    task: Path
    burst: bool
    job_id: int | None = None
    launch_error: str | None = None


@dataclass
class AttemptLog:
    """What one attempt's stored log says: where it resumed, the last step it printed, how
    it ended ('result', 'notice' or None when it was killed)."""

    attempt: int
    resumed: int
    last: int
    ended: str | None


@dataclass
class Soak:
    """One soak: its private spotctl, its jobs, the faults it injected and what it found.
    Findings are collected (not asserted one by one) so one run reports all of them."""

    root: Path
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    problems: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    jobs: list[Job] = field(default_factory=list)
    procs: list[subprocess.Popen] = field(default_factory=list)
    procs_lock: threading.Lock = field(default_factory=threading.Lock)
    stats: dict[str, Any] = field(default_factory=dict)
    final_states: dict[int, dict] = field(default_factory=dict)
    started: float = field(default_factory=now)

    def __post_init__(self) -> None:
        self.home = self.root / "home"
        self.out = self.root / "out"
        self.locks = self.root / "locks"
        self.tmpdir = self.root / "tmp"
        self.workdir = self.root / "work"
        for d in (self.out, self.locks, self.tmpdir, self.workdir):
            d.mkdir(parents=True)
        self.env = spotctl_env(self.home) | {
            "SPOTCTL_SWEEP_INTERVAL_S": "0",  # a sweeper would clean up the leaks the soak looks for
            "TMPDIR": str(self.tmpdir),
        }
        self.server: EmbeddedServer | None = None
        self.stack = ExitStack()
        self.boundaries = BoundaryCancels(settings=lambda: load_settings(self.home), note=self.note,
                                          problem=self.problem)
        self.pipeline: PipelineUnderOutage | None = None
        self.stats.update(jobs=JOBS, burst_launches=BURST, soak_seconds=SOAK_SECONDS, mtbf_s=MTBF_S,
                          steps_per_job=STEPS, step_s=STEP_S, worker_kills=0, server_restarts=0,
                          lost_log_attempts=0, resume_gaps=0, results_reprinted=0)

    # -- helpers ---------------------------------------------------------------------------
    def note(self, text: str) -> None:
        line = f"[{now() - self.started:7.1f}s] {text}"
        self.events.append(line)
        print(line, flush=True)

    def problem(self, text: str) -> None:
        self.problems.append(text)
        self.note(f"PROBLEM: {text}")

    def cli(self, *args: str) -> Any:
        """A spotctl command in this process (main thread only: CliRunner swaps sys.stdout)."""
        return CliRunner().invoke(cli, list(args), env=self.env, catch_exceptions=True)

    def statuses(self) -> dict[int, dict] | None:
        result = self.cli("status", "--json", "--all")
        if result.exit_code != 0:
            return None  # e.g. while the Temporal server is down
        try:
            return {j["job_id"]: j for j in json.loads(result.stdout)}
        except ValueError:
            return None

    @property
    def cloud(self) -> LocalCloud:
        return LocalCloud(load_settings(self.home))

    def set_regions(self, **fields: Any) -> None:
        cloud = self.cloud
        cloud.config()  # writes the defaults first
        data = yaml.safe_load(cloud.config_path.read_text())
        for name, region in data["regions"].items():
            region.update({k: (v(name) if callable(v) else v) for k, v in fields.items()})
        cloud.config_path.write_text(yaml.safe_dump(data))

    # -- set-up ----------------------------------------------------------------------------
    def task_text(self, key: str, bucket: str, steps: int) -> str:
        """One task of soak_program.py (a job, or a document of the pipeline)."""
        return textwrap.dedent(f"""\
            name: soak-{key}
            resources:
              cpus: 1+
            workdir: {self.workdir}
            file_mounts:
              ~/ckpt:
                name: {bucket}
                mode: MOUNT
            envs:
              SOAK_KEY: {key}
              SOAK_TOKEN: {self.token}
              SOAK_STEPS: "{steps}"
              SOAK_STEP_S: "{STEP_S}"
              SOAK_LOCK: {self.locks / (key + '.lock')}
              SOAK_OUT: {self.out}
            run: |
              python3 soak_program.py
            """)

    def prepare(self) -> None:
        shutil.copy(Path(__file__).with_name("soak_program.py"), self.workdir / "soak_program.py")
        self.set_regions(capacity=max(8, JOBS + BOUNDARY_JOBS + 1), preemption_mtbf_s=MTBF_S,
                         preemption_notice_s=lambda name: NOTICE_S if name == "local-west" else 0.0)
        (self.root / "tasks").mkdir()
        for i in range(JOBS):
            key = f"k{i:03d}"
            bucket = f"soak-{self.token}-{key}"
            task = self.root / "tasks" / f"{key}.yaml"
            task.write_text(self.task_text(key, bucket, STEPS))
            self.jobs.append(Job(key, bucket, task, burst=i >= JOBS - BURST))
        at_new_run = BOUNDARY_JOBS - WORKER_DOWN_CANCELS
        for i in range(BOUNDARY_JOBS):
            key = f"c{i:03d}"
            task = self.root / "tasks" / f"{key}.yaml"
            task.write_text(self.task_text(key, f"soak-{self.token}-{key}", soak_boundaries.PROGRAM_STEPS))
            n = i - WORKER_DOWN_CANCELS
            self.boundaries.add(key, f"soak-{self.token}-{key}", task,
                                "worker down" if i < WORKER_DOWN_CANCELS else "new run",
                                earliest_s=SOAK_SECONDS * (0.1 + 0.4 * n / max(1, at_new_run - 1)))
        receiver = self.stack.enter_context(running_receiver())
        keys = [f"p{i}" for i in range(3)]
        self.pipeline = PipelineUnderOutage(receiver, keys, [f"soak-{self.token}-{k}" for k in keys], PIPELINE_STEPS,
                                            settings=lambda: load_settings(self.home), note=self.note,
                                            problem=self.problem)
        self.pipeline.write(self.root / "tasks" / "pipeline.yaml", self.task_text)
        self.server = EmbeddedServer(load_settings(self.home))
        self.server.ensure_running()
        self.note(f"server up: temporal {self.server.temporal.pid()}, worker {self.server.worker.pid()}")

    def launch(self, job: Job) -> None:
        """`spotctl launch -y -d` in its own process, as a user or a script would."""
        argv = [sys.executable, "-m", "spotctl", "launch", "-y", "-d", str(job.task)]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ),
                                cwd=self.root)
        with self.procs_lock:
            self.procs.append(proc)
        try:
            stdout, stderr = proc.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        if proc.returncode == 0 and stdout.strip().isdigit():
            job.job_id = int(stdout.strip())
        else:
            job.launch_error = f"exit {proc.returncode}: {stderr.decode(errors='replace')[-500:]}"

    def launch_all(self, jobs: list[Job], threads: int) -> float:
        t0 = now()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(self.launch, jobs))
        return now() - t0

    # -- chaos -----------------------------------------------------------------------------
    def kill_worker(self) -> None:
        """SIGKILL the worker and start a new one; while a "worker down" job is left, the kill
        comes when one of them continues as new (soak_boundaries.ALIGN_S at most), and that job
        is cancelled before the new worker starts."""
        assert self.server is not None
        killed: list[int | None] = []
        target = self.boundaries.kill_at_a_boundary(lambda: killed.append(self._sigkill_worker()))
        pid = killed[0] if killed else None
        if target is not None:
            self.boundaries.cancel_by_cli(target, "while no worker ran", self.cli)
        t0 = now()
        self.server.ensure_running()
        self.stats["worker_kills"] += 1
        self.note(f"worker {pid} SIGKILLed; worker {self.server.worker.pid()} up in {now() - t0:.1f}s")

    def _sigkill_worker(self) -> int | None:
        assert self.server is not None
        pid = self.server.worker.pid()
        if pid is None:
            self.problem("no worker to kill: it died by itself")
        else:
            os.killpg(pid, signal.SIGKILL)
            wait_dead(pid)
        return pid

    def restart_server(self) -> None:
        assert self.server is not None
        pid = self.server.temporal.pid()
        worker = self.server.worker.pid()
        if pid is None:
            self.problem("no Temporal server to kill: it died by itself")
        else:
            os.killpg(pid, signal.SIGKILL)
            wait_dead(pid)
        t0 = now()
        self.server.ensure_running()
        self.stats["server_restarts"] += 1
        self.note(f"temporal {pid} SIGKILLed; temporal {self.server.temporal.pid()} up in {now() - t0:.1f}s "
                  f"(worker {'kept' if self.server.worker.pid() == worker else 'replaced'})")

    def run(self) -> None:
        self.prepare()
        assert self.pipeline is not None
        self.pipeline.launch(self.home, self._launch_pipeline)
        self.boundaries.launch()
        self.note(f"pipeline {self.pipeline.job_id} launched (its webhook down); {BOUNDARY_JOBS} jobs that continue "
                  f"as new after every attempt: {[j.job_id for j in self.boundaries.jobs]}")
        first = [j for j in self.jobs if not j.burst]
        wall = self.launch_all(first, INITIAL_LAUNCH_THREADS)
        self.note(f"{len(first)} jobs launched ({INITIAL_LAUNCH_THREADS} at a time) in {wall:.1f}s")

        t0 = now()
        self.stats["chaos_started_s"] = t0 - self.started
        burst_jobs = [j for j in self.jobs if j.burst]
        burst = threading.Thread(target=self._burst, args=(burst_jobs,), name="soak-burst")
        burst.start()
        self.boundaries.start_watching(t0)
        schedule: list[tuple[float, str, Callable[[], None]]] = sorted(
            [(at, "kill worker", self.kill_worker) for at in WORKER_KILLS]
            + [(SERVER_RESTART_AT_S, "restart server", self.restart_server)],
            key=lambda e: e[0],
        )
        last_poll = 0.0
        try:
            while now() - t0 < SOAK_SECONDS:
                if schedule and now() - t0 >= schedule[0][0]:
                    if burst.is_alive():  # launches need a worker; a burst still running delays the fault
                        burst.join(timeout=1)
                        continue
                    _, _, action = schedule.pop(0)
                    action()
                if now() - last_poll >= 10:
                    last_poll = now()
                    if self._all_done(self.statuses()):
                        self.note("every job ended before the chaos did")
                        break
                time.sleep(0.5)
        finally:
            burst.join()
        for at, what, _ in schedule:
            self.note(f"not done (jobs ended first): {what} at {at:.0f}s")
        self.stats["chaos_s"] = round(now() - t0, 1)
        self.boundaries.cancel_the_rest(self.cli)

        self.set_regions(preemption_mtbf_s=None)  # calm: new VMs live; the ones alive keep their draw
        self.pipeline.webhook_up()
        self.note("chaos over: no new random preemptions")
        deadline = now() + TAIL_S
        states = self.statuses()
        while not self._all_done(states) and now() < deadline:
            time.sleep(3)
            states = self.statuses() or states
        self.stats["duration_s"] = round(now() - self.started, 1)
        self.stats["tail_s"] = round(now() - t0 - self.stats["chaos_s"], 1)
        if not self._all_done(states):
            self.problem(f"jobs not ended {TAIL_S:.0f}s after the chaos: "
                         + ", ".join(f"{j}={s['status']}" for j, s in sorted((states or {}).items())
                                     if s["status"] not in TERMINAL))

    def _launch_pipeline(self) -> tuple[int | None, str | None]:
        job = Job("pipeline", "", self.root / "tasks" / "pipeline.yaml", burst=False)
        self.launch(job)
        return job.job_id, job.launch_error

    def _burst(self, jobs: list[Job]) -> None:
        time.sleep(3)
        wall = self.launch_all(jobs, max(1, len(jobs)))
        self.stats["burst_wall_s"] = round(wall, 1)
        self.note(f"burst: {len(jobs)} concurrent launches in {wall:.1f}s")

    def _all_done(self, states: dict[int, dict] | None) -> bool:
        if states is None:
            return False
        ids = [j.job_id for j in self.jobs if j.job_id is not None]
        if self.pipeline is not None and self.pipeline.job_id is not None:
            ids.append(self.pipeline.job_id)  # it must end in the same time as the jobs
        return all(states.get(i, {}).get("status") in TERMINAL for i in ids)

    # -- verification ----------------------------------------------------------------------
    def verify(self) -> None:
        for job in self.jobs:
            if job.launch_error:
                self.problem(f"{job.key}: launch failed: {job.launch_error}")
        states = self.statuses() or {}
        self.final_states = states
        self.stats.update(recovery_latency(states))
        store = LogStore(self.home / "logs")
        preempted = recoveries = recomputed = succeeded = log_bytes = 0
        for job in self.jobs:
            if job.job_id is None:
                continue
            state = states.get(job.job_id)
            if state is None:
                self.problem(f"{job.key}: job {job.job_id} missing from `spotctl status`")
                continue
            recoveries += state["recoveries"]
            preempted += sum(1 for r in state["history"] if r["outcome"] == "preempted")
            other = [r for r in state["history"][:-1] if r["outcome"] != "preempted"]
            if other:
                self.problem(f"{job.key}: job {job.job_id} recovered from something else than a preemption: {other}")
            if state["status"] != "SUCCEEDED":
                self.problem(f"{job.key}: job {job.job_id} ended {state['status']}: {state.get('failure_reason')}")
                continue
            succeeded += 1
            r, b = self.verify_job(job, state, store)
            recomputed += r
            log_bytes += b
        violations = sorted(p.name for p in (self.out / "violations").glob("*")) if (self.out / "violations").exists() else []
        for v in violations:
            self.problem(f"ran twice at once: {v}: {(self.out / 'violations' / v).read_text().strip()}")
        instances = self.cloud.list_instances(alive_only=False)
        # Really preempted: taken back by the cloud, or given a notice (spotctl may then end the
        # attempt and terminate the VM before the deadline, as the program's exit after a notice
        # counts as the preemption).
        really_preempted = {i.cluster_name for i in instances
                            if i.state_reason == PREEMPTION_REASON or i.preempt_deadline is not None}
        cloud_preemptions = sum(1 for i in instances if i.state_reason == PREEMPTION_REASON)
        false_recoveries = 0
        for job in self.jobs:
            for record in (states.get(job.job_id) or {}).get("history", []) if job.job_id else []:
                cluster = cluster_name(job.job_id, record["attempt"])
                if record["outcome"] == "preempted" and cluster not in really_preempted:
                    false_recoveries += 1
                    reasons = [(i.id, i.state.value, i.state_reason) for i in instances if i.cluster_name == cluster]
                    self.problem(f"{job.key}: job {job.job_id} attempt {record['attempt']} recovered as preempted, "
                                 f"but the cloud never preempted {cluster}: {reasons} ({record})")
        self.stats.update(jobs_succeeded=succeeded, preemptions=preempted, cloud_preemptions=cloud_preemptions,
                          recoveries=recoveries, false_recoveries=false_recoveries, steps_recomputed=recomputed, log_bytes_checked=log_bytes,
                          violations=len(violations),
                          launches=sum(1 for j in self.jobs if j.job_id is not None))
        self.boundaries.verify(self.statuses, self.cli, self.alive_clusters, self.token)
        self.stats["cancels_at_boundaries"] = self.boundaries.stats
        assert self.pipeline is not None
        self.pipeline.verify(states.get(self.pipeline.job_id or -1), self.pipeline_result)
        self.stats["pipeline_events"] = self.pipeline.stats
        self.verify_no_leaks()

    def alive_clusters(self) -> set[str]:
        return {i.cluster_name for i in self.cloud.list_instances(alive_only=True)}

    def pipeline_result(self, key: str) -> str | None:
        """The result a pipeline task left in its bucket, if it is an uninterrupted run's."""
        want = prog.result_of(chain(key, PIPELINE_STEPS)[PIPELINE_STEPS])
        try:
            got = json.loads((self.home / "local_buckets" / f"soak-{self.token}-{key}" / "result.json").read_text())
        except (OSError, ValueError):
            return None
        return want if got.get("result") == want and got.get("steps") == PIPELINE_STEPS else None

    def verify_job(self, job: Job, state: dict, store: LogStore) -> tuple[int, int]:
        """Result, logs and resume points of one SUCCEEDED job; returns (steps recomputed,
        log bytes checked)."""
        assert job.job_id is not None
        jid, key = job.job_id, job.key
        states = chain(key, STEPS)
        expected = prog.result_of(states[STEPS])
        try:
            got = json.loads((self.home / "local_buckets" / job.bucket / "result.json").read_text())
        except (OSError, ValueError) as exc:
            self.problem(f"{key}: job {jid}: no result in its bucket: {exc}")
            got = {}
        if got.get("result") != expected or got.get("steps") != STEPS:
            self.problem(f"{key}: job {jid}: result {got} != {expected} after {STEPS} steps")

        attempts = sorted(set(store.attempts(jid)) | {r["attempt"] for r in state["history"]}
                          | {int(p.stem.split("-")[1]) for p in (self.out / key).glob("attempt-*.out")})
        logs: list[AttemptLog] = []
        stored: dict[int, bytes] = {}
        checked = 0
        for a in attempts:
            data = store.read(jid, a)
            stored[a] = data
            checked += len(data)
            if store.ranks(jid, a) not in ([], [0]):
                self.problem(f"{key}: job {jid} attempt {a}: log ranks {store.ranks(jid, a)} on a 1-node job")
            copy_path = self.out / key / f"attempt-{a}.out"
            copy = copy_path.read_bytes() if copy_path.exists() else b""
            if not data.startswith(copy) or data[len(copy):].count(b"\n") > 1:
                self.stats["lost_log_attempts"] += 1
                self.problem(f"{key}: job {jid} attempt {a}: stored log ({len(data)} B) is not what the program "
                             f"wrote ({len(copy)} B); first difference at byte "
                             f"{first_difference(data, copy)}")
            if data:
                parsed = self.parse_attempt(key, jid, a, data, states)
                if parsed is not None:
                    logs.append(parsed)
        recomputed = 0
        for prev, nxt in pairwise(logs):
            # Printed then checkpointed: a kill in between recomputes one step, never more, never a gap.
            if not (max(prev.resumed, prev.last - 1) <= nxt.resumed <= prev.last):
                self.stats["resume_gaps"] += 1
                self.problem(f"{key}: job {jid}: attempt {nxt.attempt} resumed from step {nxt.resumed} but attempt "
                             f"{prev.attempt}'s stored log has steps {prev.resumed + 1}..{prev.last}")
            else:
                recomputed += prev.last - nxt.resumed
        if not logs or logs[0].resumed != 0:
            self.problem(f"{key}: job {jid}: no attempt started from step 0: {logs[:1]}")
        final = state["history"][-1]["attempt"] if state["history"] else None
        if not logs or logs[-1].attempt != final or logs[-1].ended != "result" or logs[-1].last != STEPS:
            self.problem(f"{key}: job {jid}: the final attempt {final}'s log does not run to the result: "
                         f"{logs[-1] if logs else None}")
        for log, nxt in pairwise(logs):
            # The VM can go between the program's last print and its exit code being recorded
            # (a few ms: the interpreter and bash exiting): that attempt did not end, so a new
            # one is right, and it must only print the result again from the last checkpoint.
            # A recorded exit code taken for a preemption is the monitor's bug, tested alone in
            # test_activities_on_preempted_nodes.py.
            if log.ended == "result":
                self.stats["results_reprinted"] += 1
                if nxt.resumed != STEPS:
                    self.problem(f"{key}: job {jid}: attempt {log.attempt} printed the result, yet attempt "
                                 f"{nxt.attempt} resumed from step {nxt.resumed}")

        cli_out = self.cli("logs", "--no-follow", str(jid))
        if cli_out.exit_code != 0:
            self.problem(f"{key}: `spotctl logs --no-follow {jid}` exited {cli_out.exit_code}: {cli_out.output[-300:]}")
        else:
            parts = MARKER.split(cli_out.stdout_bytes)
            want = [stored[a] for a in attempts]
            if parts != want:
                self.problem(f"{key}: `spotctl logs {jid}` is not the stored bytes: {len(parts)} parts of "
                             f"{[len(p) for p in parts]} B, stored {[len(w) for w in want]} B")
        return recomputed, checked

    def parse_attempt(self, key: str, jid: int, attempt: int, data: bytes, states: list[str]) -> AttemptLog | None:
        """Check every record of one attempt's log against what the program must have written."""
        lines = data.splitlines(keepends=True)
        m = re.fullmatch(rb"soak (\S+) job (\S+) attempt (\S+): resumed from step (\d+)\n", lines[0])
        if not m or m.groups()[:3] != (key.encode(), str(jid).encode(), str(attempt).encode()):
            self.problem(f"{key}: job {jid} attempt {attempt}: first line is not this attempt's header: {lines[0]!r}")
            return None
        resumed = last = int(m.group(4))
        ended = None
        for n, line in enumerate(lines[1:], 2):
            if ended is not None:
                self.problem(f"{key}: job {jid} attempt {attempt}: line {n} after the end: {line!r}")
                return None
            if last < STEPS and line == prog.step_record(key, last + 1, states[last + 1]):
                last += 1
            elif line == prog.notice_record(key, last):
                ended = "notice"
            elif last == STEPS and line == prog.result_record(key, prog.result_of(states[STEPS])):
                ended = "result"
            else:
                self.problem(f"{key}: job {jid} attempt {attempt}: line {n} is {line!r}, expected step {last + 1}")
                return None
        return AttemptLog(attempt, resumed, last, ended)

    def verify_no_leaks(self) -> None:
        deadline = now() + 20
        while self.cloud.list_instances(alive_only=True) and now() < deadline:
            time.sleep(0.5)
        alive = [i.id for i in self.cloud.list_instances(alive_only=True)]
        if alive:
            self.problem(f"instances left alive: {alive}")
        not_terminated = []
        for inst in self.cloud.list_instances(alive_only=False):
            if inst.state != InstanceState.TERMINATED:
                not_terminated.append(f"{inst.id} ({inst.cluster_name}, {inst.state.value})")
            if pids := processes_of(inst.id):
                self.problem(f"processes left on {inst.id}: {pids}")
        if not_terminated:
            # Teardown did terminate them (their disks are gone, checked below), but a record
            # that is not TERMINATED is still listed by find_cluster and tagged_instances: the
            # orphan sweeper would "terminate" it again at every sweep, forever.
            self.problem(f"{len(not_terminated)} instance(s) never marked terminated: {', '.join(not_terminated)}")
        disks = self.home / "local_cloud" / "instances"
        if disks.exists() and (left := sorted(p.name for p in disks.iterdir())):
            self.problem(f"instance disks left: {left}")
        buckets = self.home / "local_buckets"
        if ephemeral := sorted(b.name for b in buckets.glob("*") if parse_ephemeral_bucket(b.name) is not None):
            self.problem(f"ephemeral buckets left: {ephemeral}")
        if pids := soak_pids(self.token):
            self.problem(f"soak programs still running: {pids}")

    def stop_and_verify(self, before: dict[str, set[str]], had_home: bool) -> None:
        """Stop the server and worker; then nothing of them may run, and nothing may have been
        written outside the state dir and the test dir."""
        assert self.server is not None
        pids = [self.server.temporal.pid(), self.server.worker.pid()]
        self.server.stop()
        for pid in pids:
            if pid is not None and not pid_dead(pid):
                self.problem(f"process {pid} still running after `server stop`")
        if left := sorted(p.name for p in self.tmpdir.iterdir()):
            self.problem(f"files left in the processes' TMPDIR: {left}")
        after = snapshot_dirs()
        ignored = []
        for d, names in after.items():
            for name in sorted(names - before[d]):
                if self.looks_ours(Path(d) / name):
                    self.problem(f"new entry outside the state and test dirs: {d}/{name}")
                else:
                    ignored.append(f"{d}/{name}")
        self.stats["tmp_entries_ignored"] = ignored
        default_home = Path.home() / ".spotctl"
        if default_home.exists() and not had_home:
            self.problem(f"{default_home} was created (the soak's state dir is {self.home})")

    def looks_ours(self, path: Path) -> bool:
        """Whether a new entry outside the test dir was made by the soak: its name says so, or
        a file in it (the first 200, first 64 KiB each) names the soak's token or dirs."""
        if OURS.search(path.name):
            return True
        needles = [self.token.encode(), str(self.root).encode()]
        files = [path] if not path.is_dir() else [p for _, p in zip(range(200), path.rglob("*"), strict=False)]
        for f in files:
            if OURS.search(f.name):
                return True
            try:
                with open(f, "rb") as fh:
                    head = fh.read(1 << 16)
            except OSError:
                continue
            if any(n in head for n in needles):
                return True
        return False

    # -- clean-up --------------------------------------------------------------------------
    def cleanup(self) -> None:
        """Whatever happened: no launch, job, instance, process or bucket of the soak is left."""
        with self.procs_lock:
            for proc in self.procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        self.boundaries.stop_watching()
        self.stack.close()  # the pipeline's webhook
        if self.server is not None:
            try:
                self.server.ensure_running()
                self.cli("cancel", "-a", "-y")
                deadline = now() + 60
                while not self._all_done(self.statuses()) and now() < deadline:
                    time.sleep(1)
            except Exception as exc:  # noqa: BLE001 - the forced clean-up below still runs
                self.note(f"clean-up: could not cancel the jobs: {exc!r}")
            finally:
                self.server.stop()
        cloud = self.cloud
        if cloud.state_path.exists():
            cloud.terminate([i.id for i in cloud.list_instances(alive_only=False)
                             if i.state != InstanceState.TERMINATED])
        for pid in soak_pids(self.token):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        buckets = [j.bucket for j in self.jobs] + [j.bucket for j in self.boundaries.jobs]
        for bucket in buckets + (self.pipeline.buckets if self.pipeline else []):
            shutil.rmtree(self.home / "local_buckets" / bucket, ignore_errors=True)

    def keep_artifacts(self) -> None:
        """When something went wrong, copy what explains it (the programs' copies, the log store,
        the server's and worker's logs, the cloud's records, the jobs' histories) to
        $SPOTCTL_SOAK_ARTIFACTS: pytest's tmp dirs are recycled by the next runs."""
        dest = os.environ.get("SPOTCTL_SOAK_ARTIFACTS")
        if not dest or not self.problems:
            return
        target = Path(dest)
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for src, name in ((self.out, "out"), (self.home / "logs", "logs"), (self.home / "server", "server")):
            if src.exists():
                shutil.copytree(src, target / name, ignore=shutil.ignore_patterns("*.db*", "*.pid"))
        if (state := self.home / "local_cloud" / "state.json").exists():
            shutil.copy(state, target / "cloud-state.json")
        (target / "jobs.json").write_text(json.dumps({
            "keys": {j.key: j.job_id for j in self.jobs} | {j.key: j.job_id for j in self.boundaries.jobs}
            | {"pipeline": self.pipeline.job_id if self.pipeline else None},
            "states": self.final_states,
        }, indent=1, default=str))
        self.note(f"artifacts kept in {target}")

    def write_report(self) -> None:
        self.stats.setdefault("duration_s", round(now() - self.started, 1))
        # Lost: a job that did not succeed (launch failures included), an attempt whose stored
        # log is not what its program wrote, a resume more than one step behind its output.
        self.stats["lost"] = (JOBS - self.stats.get("jobs_succeeded", 0) + self.stats["lost_log_attempts"]
                              + self.stats["resume_gaps"])
        self.stats.setdefault("cancels_at_boundaries", self.boundaries.stats)
        self.stats.setdefault("pipeline_events", self.pipeline.stats if self.pipeline else {})
        self.stats["problems"] = len(self.problems)
        self.stats["problem_list"] = self.problems[:50]
        self.stats["events"] = self.events
        path = os.environ.get("SPOTCTL_SOAK_REPORT")
        if path:
            Path(path).write_text(json.dumps(self.stats, indent=2) + "\n")


TERMINAL = {"SUCCEEDED", "FAILED", "FAILED_SETUP", "FAILED_NO_RESOURCE", "FAILED_PRECHECKS", "FAILED_CONTROLLER",
            "CANCELLED"}


def recovery_latency(states: dict[int, dict]) -> dict[str, float | None]:
    """Seconds from the end of a preempted attempt to the start of the next one (median, p90,
    max): how long a preemption costs a job, chaos included."""
    gaps = []
    for state in states.values():
        history = state.get("history") or []
        for prev, nxt in pairwise(history):
            if prev.get("outcome") == "preempted" and prev.get("ended_at") and nxt.get("started_at"):
                gaps.append((datetime.fromisoformat(nxt["started_at"]) - datetime.fromisoformat(prev["ended_at"]))
                            .total_seconds())
    gaps.sort()
    if not gaps:
        return {"recovery_s_median": None, "recovery_s_p90": None, "recovery_s_max": None}
    return {"recovery_s_median": round(gaps[len(gaps) // 2], 1), "recovery_s_p90": round(gaps[int(0.9 * (len(gaps) - 1))], 1),
            "recovery_s_max": round(gaps[-1], 1)}


def wait_dead(pid: int, timeout: float = 10) -> None:
    """Wait for a SIGKILLed child of ours to go, and reap it (the embedded server was started
    by this process)."""
    deadline = now() + timeout
    while now() < deadline:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        if pid_dead(pid):
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} survived SIGKILL for {timeout}s")


@pytest.mark.timeout(int(SOAK_SECONDS + TAIL_S + 600))
def test_chaos_soak(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = snapshot_dirs()
    had_home = (Path.home() / ".spotctl").exists()
    soak = Soak(tmp_path)
    for k, v in soak.env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(tempfile, "tempdir", None)  # this process's temp files go to the private TMPDIR too
    try:
        soak.run()
        soak.verify()
        soak.stop_and_verify(before, had_home)
    except BaseException as exc:
        soak.problem(f"the soak stopped early: {exc!r}")
        raise
    finally:
        try:
            soak.keep_artifacts()
            soak.cleanup()
        finally:
            soak.write_report()
    summary = {k: soak.stats.get(k) for k in ("jobs", "jobs_succeeded", "preemptions", "cloud_preemptions",
                                              "worker_kills", "server_restarts", "launches", "recoveries",
                                              "steps_recomputed", "lost", "duration_s",
                                              "cancels_at_boundaries", "pipeline_events")}
    print("soak summary:", json.dumps(summary))
    problems = list(soak.problems)
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(p[:1000] for p in problems[:40])
