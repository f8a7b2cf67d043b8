"""A deadline job's side of SpotJobWorkflow: which market the next attempt takes, how far the
job has come, and the record of every switch (docs/deadlines.md).

The rules are policy/deadline.py's (`decide`, `slack_h`), asked, never copied; this module only
turns the workflow's facts into a `Moment` and the answer into candidates and records. Pure and
deterministic (the workflow passes workflow.now()); everything it knows lives in the JobState
(`progress_s`, `market`, `slack_s`, `switches`), so it crosses continue-as-new with the state.

Progress (the compute done and kept) is counted when an attempt's run ends short of success:
- what the job reported: the fraction in [0, 1] it wrote to $SPOTCTL_PROGRESS_FILE as of its
  last checkpoint, read by the monitor when the node was lost (the Preempted error's details);
- else, with `checkpoint_every`: the run's time rounded down to a whole number of intervals
  (the work since the last checkpoint is lost);
- else nothing: a job that neither checkpoints on a declared interval nor reports its progress
  is taken to restart from the beginning (the safe rule: its slack is never overestimated).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from spotctl.models import (
        Candidate,
        ClusterHandle,
        DeadlineSpec,
        JobState,
        JobStatus,
        MarketSwitch,
        ProvisionRequest,
        hours_text,
    )
    from spotctl.policy import DeadlineJob, Market, Moment, SpotOutlook, decide, order_candidates, slack_h

SWITCHES_KEPT = 100
"""Switch records kept in the job state (a policy without flapping makes a handful)."""
MAX_PROGRESS_REPORT_CHARS = 32
"""A progress report longer than this is garbage, ignored."""


def reported_fraction(details: object) -> float | None:
    """The progress a Preempted error's details carry (the monitor's read of the job's file),
    or None when there is none or it is not a number in [0, 1]."""
    if not isinstance(details, dict):
        return None
    value = details.get("progress")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if 0.0 <= value <= 1.0 else None


class DeadlineDriver:
    """One deadline job's decisions; state in `host_state()` (the workflow's JobState)."""

    def __init__(self, spec: DeadlineSpec, submitted_at: datetime, has_spot: bool = True) -> None:
        self.spec = spec
        self.has_spot = has_spot
        """Whether the job has spot candidates at all (a task with `use_spot: false` has none:
        the policy is then told spot can never be had)."""
        self.start = submitted_at
        self.job = DeadlineJob(compute_h=spec.compute_s / 3600,
                               deadline_h=(spec.by - submitted_at).total_seconds() / 3600,
                               changeover_h=spec.changeover_s / 3600)
        self.spells = False
        """The `deadline-spells` patch: the policy is told how long this job's spot lives lasted
        (`spot_outlook`) and spot's price as a share of on-demand; before it, neither."""
        self.spot_share = DeadlineJob.spot_share
        """Spot's price as a share of on-demand's (set by `learn_spells` from the candidates)."""
        self.measures = False
        """The `deadline-restarts` patch: the policy is told the restarts this job measured and
        the work a preemption may lose (`learn`); before it, the declared figures only."""
        self.reported: float | None = None
        """The fraction the last lost attempt's job reported (None: it did not)."""
        self._reason: str | None = None
        """Why the last decision chose its market (for the switch it may become)."""
        self.last: Market = Market.NONE
        """The market the last decision chose."""

    def learn(self) -> None:
        """Turn on the measured figures (the workflow's `deadline-restarts` patch)."""
        self.measures = True

    def learn_spells(self, spot: list[Candidate], ondemand: list[Candidate]) -> None:
        """Turn on what the job sees of spot's lives (the workflow's `deadline-spells` patch),
        with spot's price share from the cheapest candidates of each market."""
        self.spells = True
        spot_price = min((c.price for c in spot if c.use_spot), default=None)
        od_price = min((c.price for c in ondemand), default=None) or min(
            (c.ondemand_price for c in spot if c.ondemand_price), default=None)
        if spot_price is not None and od_price:
            self.spot_share = min(max(spot_price / od_price, 0.0), 0.95)

    def spot_outlook(self, state: JobState) -> SpotOutlook | None:
        """What this job has seen of spot: the hours its spot attempts lived per preemption
        (the estimator of policy/fleet.py: lives that ended otherwise count their hours, not a
        preemption); None before the patch or before any preemption (spot then counts as
        paying). Only the attempts' own times: pure."""
        if not self.spells:
            return None
        hours, preempted = 0.0, 0
        for r in state.history:
            if r.use_spot and r.started_at is not None and r.ended_at is not None:
                hours += max((r.ended_at - r.started_at).total_seconds(), 0.0) / 3600
                preempted += r.outcome == "preempted"
        return SpotOutlook(mean_lifetime_h=hours / preempted) if preempted else None

    def changeover_s(self, state: JobState) -> float:
        """d: the declared changeover, or the longest restart measured, whichever is longer."""
        measured = (state.restart_s or 0.0) if self.measures else 0.0
        return max(self.spec.changeover_s, measured)

    def _job(self, state: JobState) -> DeadlineJob:
        """The job as the policy is asked about it. With the measured figures: d is
        `changeover_s`, and the safety net also keeps in hand the work a preemption may lose
        (up to a checkpoint interval): a spot run is not asked again until it is lost, so the
        slack it starts with must still cover the on-demand restart after that loss."""
        job = replace(self.job, spot_share=self.spot_share) if self.spells else self.job
        if not self.measures:
            return job
        return replace(job, changeover_h=self.changeover_s(state) / 3600,
                       check_h=(self.spec.checkpoint_every_s or 0.0) / 3600)

    def wait_cap_s(self, state: JobState, now: datetime) -> float | None:
        """How long a wait for capacity may last before the safety net must be asked again:
        the slack above the net, spent hour for hour while the job waits (None: no cap)."""
        if not self.measures:
            return None
        job = self._job(state)
        m = self.moment(state, now, Market.NONE, False)
        return max((slack_h(job, m) - 2 * job.changeover_h - job.check_h) * 3600, 0.0)

    def restarted(self, state: JobState, requested_at: datetime | None, now: datetime) -> JobState:
        """An attempt's program runs (`now`); its cluster was asked for at `requested_at`: the
        restart it took, kept when it is the longest yet (pure: both times are workflow facts)."""
        if not self.measures or requested_at is None:
            return state
        took = max((now - requested_at).total_seconds(), 0.0)
        return state.model_copy(update={"restart_s": max(state.restart_s or 0.0, took)})

    # ---- the Moment ------------------------------------------------------------------
    def elapsed_s(self, now: datetime) -> float:
        return (now - self.start).total_seconds()

    def moment(self, state: JobState, now: datetime, holding: Market, spot_available: bool) -> Moment:
        return Moment(elapsed_h=self.elapsed_s(now) / 3600, done_h=(state.progress_s or 0.0) / 3600,
                      holding=holding, spot_available=spot_available)

    def choose(self, state: JobState, now: datetime, *, holding: Market = Market.NONE,
               spot_available: bool = True) -> tuple[Market, JobState]:
        """The policy's market at this decision point, and the state with its slack."""
        m = self.moment(state, now, holding, spot_available and self.has_spot)
        job = self._job(state)
        market = self.last = decide(self.spec.policy, job, m, self.spot_outlook(state))
        slack = slack_h(job, m) * 3600
        self._reason = self._why(market, slack, spot_available, job)
        return market, state.model_copy(update={"slack_s": slack, "progress_s": state.progress_s or 0.0,
                                                "deadline_at": self.spec.by})

    @property
    def reason(self) -> str:
        """Why the last decision chose its market."""
        return self._reason or ""

    def running(self, state: JobState, run_s: float) -> JobState:
        """`state` with the progress the running attempt has kept so far (its checkpoints
        by `checkpoint_every`; none without), for a decision while it runs."""
        every = self.spec.checkpoint_every_s
        kept = (max(run_s, 0.0) // every) * every if every else 0.0
        return state.model_copy(update={"progress_s": min((state.progress_s or 0.0) + kept, self.spec.compute_s)})

    def _why(self, market: Market, slack_s: float, spot_available: bool, job: DeadlineJob) -> str:
        d = job.changeover_h * 3600
        if market == Market.ONDEMAND:
            if slack_s < 2 * d + job.check_h * 3600:
                held = f", {hours_text(job.check_h * 3600)} held back" if job.check_h else ""
                return f"slack {hours_text(slack_s)} no longer covers a restart ({hours_text(d)} x 2){held}"
            if not spot_available:
                return f"no spot capacity (slack {hours_text(slack_s)})"
            return f"the {self.spec.policy} policy holds on-demand (slack {hours_text(slack_s)})"
        if market == Market.SPOT:
            return f"ahead of pace: slack {hours_text(slack_s)} covers restarts ({hours_text(d)} each)"
        return f"waiting for spot (slack {hours_text(slack_s)})"

    @staticmethod
    def pool(market: Market, spot: list[Candidate], ondemand: list[Candidate]) -> list[Candidate]:
        """The candidates of `market`."""
        return ondemand if market == Market.ONDEMAND else spot

    # ---- records ---------------------------------------------------------------------
    def opened(self, state: JobState, now: datetime, use_spot: bool) -> JobState:
        """An attempt got its cluster: the market it holds, and the switch if it moved."""
        market = (Market.SPOT if use_spot else Market.ONDEMAND).value
        update: dict = {"market": market, "deadline_at": self.spec.by}
        if state.market not in (None, Market.NONE.value, market):
            switch = MarketSwitch(at=now, elapsed_s=self.elapsed_s(now), from_market=state.market,
                                  to_market=market, reason=self._reason or "")
            update["switches"] = (state.switches + [switch])[-SWITCHES_KEPT:]
        return state.model_copy(update=update)

    def ran(self, state: JobState, run_s: float) -> JobState:
        """An attempt's run ended short of success after `run_s` seconds: the progress it kept."""
        done = state.progress_s or 0.0
        if self.reported is not None:
            done = self.reported * self.spec.compute_s
        elif self.spec.checkpoint_every_s:
            every = self.spec.checkpoint_every_s
            done += (max(run_s, 0.0) // every) * every
        self.reported = None
        return state.model_copy(update={"progress_s": min(done, self.spec.compute_s)})


class OnDemandWatch:
    """A deadline job's run on on-demand, watched for a return to spot (the workflow's
    DEADLINE_RETURNS patch): the monitor runs while a durable timer asks the policy every
    `check_every_s`; when it says spot (the job is ahead of its pace), one provisioning round
    gets a spot cluster up while the on-demand one keeps running. Only a spot cluster that is
    ready ends the on-demand run (the caller tears it down; the job resumes from its checkpoint
    there); no spot capacity keeps on-demand and checks again later (backing off, bounded).

    `host` is the SpotJobWorkflow (its activities, timers, state and attempts); `run()` returns
    the monitor's outcome, or the ready spot cluster to move to. The monitor's own errors
    (a preemption, a node failure, a cancel) come out of `run()` as they would without it."""

    MAX_CHECK_EVERY_S = 1800.0
    """The longest wait between two checks (after spot had no capacity several times)."""

    @staticmethod
    def check_every_s(spec: DeadlineSpec) -> float:
        """How often the policy is asked while on on-demand: a changeover (a return sooner
        could not pay for its restart), and at most about a hundred times over the compute,
        so a long run's history stays small (each check is a timer and a state update)."""
        return max(spec.changeover_s, spec.compute_s / 100, 1.0)

    def __init__(self, host: Any, driver: DeadlineDriver) -> None:
        self.host = host
        self.driver = driver

    async def run(self, monitoring: Awaitable[Any]) -> Any:
        monitor = asyncio.ensure_future(monitoring)
        every = first = self.check_every_s(self.driver.spec)
        try:
            while True:
                if self.host._history_is_long():  # no continue-as-new while a cluster runs: no more checks
                    return await monitor
                try:
                    await workflow.wait_condition(lambda: monitor.done(), timeout=timedelta(seconds=every))
                except TimeoutError:
                    pass
                if monitor.done():
                    return monitor.result()
                spot = await self._try_spot()
                if monitor.done():
                    return monitor.result()  # the job ended meanwhile; a spot cluster made goes with the attempt
                if isinstance(spot, ClusterHandle):
                    return spot
                every = first if spot is False else min(every * 2, max(first, self.MAX_CHECK_EVERY_S))
        finally:
            if not monitor.done():
                monitor.cancel()
                with contextlib.suppress(BaseException):
                    await monitor

    async def _try_spot(self) -> ClusterHandle | bool | None:
        """The policy's answer now; when it is spot, one round for a spot cluster. The ready
        cluster; False: the policy keeps on-demand; None: spot was tried and not had."""
        host, now = self.host, workflow.now()
        state = host._state
        running = (now - state.run_started_at).total_seconds() if state.run_started_at else 0.0
        market, host._state = self.driver.choose(self.driver.running(state, running), now, holding=Market.ONDEMAND)
        host._state = host._state.model_copy(update={"progress_s": state.progress_s})  # banked only
        if market != Market.SPOT:
            host._publish()
            return False
        candidates = order_candidates(host._candidates, strategy=host._spec.recovery.strategy,
                                      blocked=host._blocked_regions, now=now, last=host._last_location)
        host._attempt += 1
        detail = state.detail
        host._set(JobStatus.RUNNING, detail=f"on-demand, {self.driver.reason}: trying spot "
                                            f"({len(candidates)} candidates, first {candidates[0].location})")
        req = ProvisionRequest(job_id=host._spec.job_id, attempt=host._attempt, num_nodes=host._spec.num_nodes,
                               candidates=candidates)
        launched = workflow.now()
        result = await host._create_cluster(req, JobStatus.RUNNING)
        ready = await host._wait_ready(result.cluster) if result.cluster is not None else None
        if ready is None:
            _, host._state = self.driver.choose(self.driver.running(host._state, running), workflow.now(),
                                                holding=Market.ONDEMAND, spot_available=False)
            host._state = host._state.model_copy(update={"progress_s": state.progress_s})
            host._set(JobStatus.RUNNING, detail=detail)
            return None
        host._launched_at = launched
        return ready
