"""What the dashboard's pages show, as JSON-ready dicts made from JobState (pure: no I/O, no clock
of its own; `now` is passed in). The browser only lays these out: every figure (costs, durations,
slack) is computed here, the way `status` computes it (policy/costs.py), so the page and the CLI
agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from spotctl.models import DEFAULT_PRIORITY, AttemptRecord, JobState, hours_text
from spotctl.policy import FleetEvent, FleetEventKind, PriceKey, attempt_cost, job_cost, money, percent

TEXT_LIMIT = 2_000
"""The most characters of one user-provided text (a name, a failure reason) a page is sent."""
SERIES_POINTS = 120
"""The most points of the fleet's spend-over-time line (sampled evenly between its first launch and now)."""

_UNITS = ((86400, "d"), (3600, "h"), (60, "m"), (1, "s"))


def duration(seconds: float | None) -> str:
    """As `status` writes durations: 45s, 3m 2s, 1h 5m, 2d 3h."""
    if seconds is None:
        return "-"
    s = max(0, int(seconds))
    for i, (size, short) in enumerate(_UNITS):
        if s >= size or size == 1:
            if size == 1:
                return f"{s}{short}"
            nxt, nshort = _UNITS[i + 1]
            return f"{s // size}{short} {s % size // nxt}{nshort}"
    return "-"  # pragma: no cover (the loop always returns)


def bounded_text(value: str | None) -> str:
    """User-provided text, bounded (the browser escapes it: it is set as text, never as HTML)."""
    if not value:
        return "-"
    return value if len(value) <= TEXT_LIMIT else value[: TEXT_LIMIT - 1] + "…"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _ms(moment: datetime) -> float:
    """Milliseconds since the epoch: the charts' time axis."""
    return moment.timestamp() * 1000.0


def _job_seconds(job: JobState, now: datetime) -> float | None:
    """Time spent RUNNING, the current period included (status's JOB DURATION)."""
    if job.started_at is None:
        return None
    running = (now - job.run_started_at).total_seconds() if job.run_started_at and not job.ended_at else 0.0
    return job.job_duration_s + running


def _total_seconds(job: JobState, now: datetime, task: bool) -> float | None:
    """TOT. DURATION: a job's from its submission; a pipeline task's from its first launch."""
    if not task:
        return ((job.ended_at or now) - job.submitted_at).total_seconds()
    launches = [t for r in job.history if (t := r.launched_at or r.started_at) is not None]
    start = min(launches) if launches else job.started_at
    return None if start is None else max(0.0, ((job.ended_at or now) - start).total_seconds())


def _failure(job: JobState) -> str:
    """The FAILURE cell: why an ended job failed (first line), or what an unfinished one waits for."""
    if not job.status.is_terminal:
        return bounded_text(job.detail)
    lines = (job.failure_reason or "").splitlines()
    return bounded_text(lines[0] + (" …" if len(lines) > 1 else "")) if lines else "-"


def job_row(job: JobState, now: datetime, prices: Mapping[PriceKey, float], *, task: int | None = None) -> dict[str, Any]:
    """One line of the jobs table: `status -a`'s columns (a pipeline adds its tasks' lines)."""
    cost = job_cost(job, now, prices)
    row: dict[str, Any] = {
        "id": job.job_id, "task": task, "name": bounded_text(job.name), "status": job.status.value,
        "terminal": job.status.is_terminal, "resources": bounded_text(job.resources), "submitted": _iso(job.submitted_at),
        "total": duration(_total_seconds(job, now, task is not None)), "job_duration": duration(_job_seconds(job, now)),
        "recoveries": job.recoveries, "cost": money(cost.cost), "ondemand": money(cost.ondemand),
        "saved": percent(cost.saved_pct), "cloud": bounded_text(job.cloud), "region": bounded_text(job.region),
        "market": job.market or "-", "slack": "-" if job.slack_s is None else hours_text(job.slack_s),
        "priority": job.priority, "array": job.array_first_id, "rank": job.array_rank, "pool": job.pool,
        "failure": _failure(job),
    }
    if task is None:
        row["tasks"] = [job_row(t, now, prices, task=i) for i, t in enumerate(job.tasks)]
    return row


def jobs_page(jobs: list[JobState], total: int, now: datetime, prices: Mapping[PriceKey, float]) -> dict[str, Any]:
    """The jobs page: a line per job, and which optional columns are worth showing (as `status`
    shows MARKET/SLACK, PRIORITY, ARRAY/RANK, POOL only when a listed job has them)."""
    return {
        "now": _iso(now), "total": total, "jobs": [job_row(j, now, prices) for j in jobs],
        "columns": {
            "task": any(j.is_pipeline for j in jobs),
            "deadline": any(j.deadline_at is not None for j in jobs),
            "priority": any(j.priority != DEFAULT_PRIORITY for j in jobs),
            "array": any(j.array_first_id is not None for j in jobs),
            "pool": any(j.pool for j in jobs),
        },
    }


def place(record: AttemptRecord) -> str:
    """Where an attempt ran: the timeline's row."""
    return "/".join(p for p in (record.cloud, record.region, record.zone) if p)


def _attempts(job: JobState, now: datetime) -> list[AttemptRecord]:
    """Every attempt kept, a pipeline's tasks' too (the pipeline's own history is its tasks')."""
    seen: dict[int, AttemptRecord] = {}
    for record in [*job.history, *(r for t in job.tasks for r in t.history)]:
        seen[record.attempt] = record
    return [seen[a] for a in sorted(seen)]


def timeline(job: JobState, now: datetime, prices: Mapping[PriceKey, float]) -> dict[str, Any]:
    """The one-job picture: a bar per attempt (time across, place down; spot or on-demand), a mark
    per preemption (the attempt's end) and per market switch, each with its reason."""
    attempts = []
    marks = []
    records = _attempts(job, now)
    for r in records:
        start = r.launched_at or r.started_at
        if start is None:
            continue
        end = r.ended_at or (now if not job.status.is_terminal else job.ended_at or now)
        c = attempt_cost(r, now, prices)
        attempts.append({
            "attempt": r.attempt, "task": r.task, "place": bounded_text(place(r)), "start": _ms(start), "end": _ms(end),
            "market": "-" if r.use_spot is None else ("spot" if r.use_spot else "on-demand"),
            "instance_type": bounded_text(r.instance_type or "-"), "price": r.price, "nodes": r.nodes or 1,
            "cost": money(c.cost), "outcome": bounded_text(r.outcome or "running"),
        })
        if r.outcome and "preempt" in r.outcome.lower() and r.ended_at is not None:
            marks.append({"kind": "preemption", "at": _ms(r.ended_at), "place": bounded_text(place(r)),
                          "reason": bounded_text(f"attempt {r.attempt} {r.outcome}")})
    for w in job.switches:
        where = _place_at(records, w.at) or (place(records[-1]) if records else "-")
        marks.append({"kind": "switch", "at": _ms(w.at), "place": bounded_text(where), "reason": bounded_text(w.text())})
    places = list(dict.fromkeys(a["place"] for a in attempts))
    return {"attempts": attempts, "marks": marks, "places": places}


def _place_at(records: list[AttemptRecord], at: datetime) -> str | None:
    """The place of the attempt alive at `at` (or the last one that started before it)."""
    before = [r for r in records if (r.launched_at or r.started_at) and (r.launched_at or r.started_at) <= at]  # type: ignore[operator]
    return place(before[-1]) if before else None


def cost_at(job: JobState, at: datetime, prices: Mapping[PriceKey, float]) -> tuple[float | None, float | None]:
    """(cost, on-demand equivalent) the job had accrued by `at`: each attempt's bill cut at `at`."""
    cost: float | None = job.earlier_cost
    ondemand: float | None = job.earlier_ondemand
    for r in _attempts(job, at):
        start = r.launched_at or r.started_at
        if start is None or start > at:
            continue
        cut = r.model_copy(update={"ended_at": min(r.ended_at, at) if r.ended_at else at})
        c = attempt_cost(cut, at, prices)
        cost = None if cost is None or c.cost is None else cost + c.cost
        ondemand = None if ondemand is None or c.ondemand is None else ondemand + c.ondemand
    return cost, ondemand


def cost_series(job: JobState, now: datetime, prices: Mapping[PriceKey, float]) -> list[dict[str, Any]]:
    """The job's cost and its on-demand equivalent over time, at each attempt's start and end
    (the bill grows linearly in between) and now (or the job's end)."""
    end = job.ended_at or now
    moments = {job.submitted_at, end}
    for r in _attempts(job, now):
        for t in (r.launched_at or r.started_at, r.ended_at):
            if t is not None and t <= end:
                moments.add(t)
    points = []
    for t in sorted(moments):
        cost, ondemand = cost_at(job, t, prices)
        points.append({"at": _ms(t), "cost": cost, "ondemand": ondemand})
    return points


def job_page(job: JobState, now: datetime, prices: Mapping[PriceKey, float], ui_url: str) -> dict[str, Any]:
    """The one-job page: its line, the facts `status -v` gives, the timeline, the cost over time,
    the deadline and slack (when set) and the link to its workflow in the Temporal UI."""
    cost = job_cost(job, now, prices)
    deadline = None
    if job.deadline_at is not None:
        deadline = {
            "at": _iso(job.deadline_at), "at_ms": _ms(job.deadline_at), "market": job.market or "-",
            "slack": "-" if job.slack_s is None else hours_text(job.slack_s),
            "progress": "-" if job.progress_s is None else hours_text(job.progress_s),
            "done_at": _iso(job.done_at), "switches": len(job.switches),
        }
    return {
        "now": _iso(now), "row": job_row(job, now, prices), "temporal_ui": ui_url,
        "place": bounded_text("/".join(p for p in (job.cloud, job.region, job.zone) if p) or None),
        "exit_code": job.exit_code, "detail": bounded_text(job.detail), "failure_full": bounded_text(job.failure_reason),
        "cost_text": f"{money(cost.cost)} (on demand {money(cost.ondemand)}"
                     + (f", saved {percent(cost.saved_pct)})" if cost.saved_pct is not None else ")"),
        "worker": job.worker, "placement": [bounded_text(line) for line in job.placement[:20]],
        "deadline": deadline, "switches": [{"at": _iso(w.at), "text": bounded_text(w.text())} for w in job.switches],
        "timeline": timeline(job, now, prices), "costs": cost_series(job, now, prices),
    }


def spend_series(jobs: Iterable[JobState], now: datetime, prices: Mapping[PriceKey, float]) -> list[dict[str, Any]]:
    """The fleet's spend and its on-demand equivalent over time (the listed jobs' sum), sampled at
    SERIES_POINTS moments from the first launch to now."""
    jobs = list(jobs)
    starts = [t for j in jobs for r in _attempts(j, now) if (t := r.launched_at or r.started_at) is not None]
    if not starts:
        return []
    first = min(starts)
    span = (now - first).total_seconds()
    steps = max(1, min(SERIES_POINTS - 1, int(span)))
    points = []
    for i in range(steps + 1):
        t = first + (now - first) * (i / steps)
        cost = ondemand = 0.0
        for j in jobs:
            c, o = cost_at(j, t, prices)
            cost += c or 0.0
            ondemand += o or 0.0
        points.append({"at": _ms(t), "cost": cost, "ondemand": ondemand})
    return points


def zone_counts(events: Iterable[FleetEvent]) -> list[dict[str, Any]]:
    """Launches, preemptions and capacity failures per zone, from the fleet's memory, most troubled first."""
    counts: dict[str, dict[str, Any]] = {}
    for e in events:
        key = f"{e.place.cloud}/{e.place.zone}"
        row = counts.setdefault(key, {"zone": bounded_text(key), "launched": 0, "preempted": 0, "no_capacity": 0})
        if e.kind == FleetEventKind.LAUNCHED:
            row["launched"] += 1
        elif e.kind == FleetEventKind.PREEMPTED:
            row["preempted"] += 1
        elif e.kind == FleetEventKind.NO_CAPACITY:
            row["no_capacity"] += 1
    return sorted(counts.values(), key=lambda r: (-(r["preempted"] + r["no_capacity"]), r["zone"]))
