"""How jobs look in a terminal and in JSON.

A managed pipeline (client/pipeline_view.py merges its rows) is one job: one line like any job's,
then a `↳` line per task as SkyPilot shows them (a TASK column appears when a pipeline is
listed), and in JSON the job's object plus a `tasks` list, one object per task with the keys
of a job's object and `task` (its 0-based index). Single-task jobs look as they always did."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from rich.console import Group
from rich.table import Table
from rich.text import Text

from spotctl.models import DEFAULT_PRIORITY, JobFailure, JobState, JobStatus, hours_text
from spotctl.policy import PriceKey, job_cost, money, percent

NAME_WIDTH = 40
RESOURCES_WIDTH = 60
PLACE_WIDTH = 24

# Characters a terminal acts on instead of showing: C0/C1 controls (ESC starts colour and
# cursor sequences, CR/LF move the line), DEL, and the bidi and line-separator marks that
# reorder or split what is shown.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# What json.dumps leaves raw inside strings (it escapes C0 controls itself; outside strings
# JSON has only ASCII punctuation and its own newlines).
_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _visible(ch: str) -> str:
    return _NAMED.get(ch) or (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")


def safe(text: str) -> str:
    """User-provided text (names, failure reasons, resources) as it may be printed: control
    characters become visible escapes (ESC -> `\\x1b`, newline -> `\\n`), so a job's name
    cannot recolour the terminal, move the cursor or fake extra rows."""
    return _UNSAFE.sub(lambda m: _visible(m.group()), text)


def clip(text: str, width: int) -> str:
    """At most `width` characters, the cut marked with `…`: one long value must not push the
    other columns of a table out of sight."""
    return text if len(text) <= width else text[: width - 1] + "…"


def jobs_json(jobs: list[JobState], prices: Mapping[PriceKey, float] | None = None) -> str:
    """`status --json`: the JSON list scripts read. json.dumps escapes C0 controls; the other
    characters of `safe`'s set are escaped here too (as \\uXXXX, still valid JSON)."""
    now = _now()
    text = json.dumps([as_json(j, now=now, prices=prices or {}) for j in jobs], indent=2, ensure_ascii=False)
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


STATUS_STYLE = {
    JobStatus.SUCCEEDED: "green",
    JobStatus.RUNNING: "cyan",
    JobStatus.CANCELLED: "yellow",
    JobStatus.CANCELLING: "yellow",
    JobStatus.RECOVERING: "magenta",
}


def _now() -> datetime:
    return datetime.now(UTC)


_UNITS = ((86400, "d", "days"), (3600, "h", "hrs"), (60, "m", "mins"), (1, "s", "secs"))
"""(seconds, short name, word) of the units durations and ages are told in, largest first."""


def _unit(s: int) -> int:
    """The index in _UNITS of the largest unit that fits in `s` seconds (seconds themselves
    below a minute, also for a negative `s`)."""
    return next(i for i, (size, _, _) in enumerate(_UNITS) if s >= size or size == 1)


def duration(seconds: float | None) -> str:
    """SkyPilot-like short durations: 45s, 3m 2s, 1h 5m, 2d 3h (the largest unit that fits
    and the next one)."""
    if seconds is None:
        return "-"
    s = int(seconds)
    i = _unit(s)
    size, short, _ = _UNITS[i]
    if size == 1:
        return f"{s}{short}"
    next_size, next_short, _ = _UNITS[i + 1]
    return f"{s // size}{short} {s % size // next_size}{next_short}"


def ago(when: datetime | None) -> str:
    """How long ago, in the largest unit that fits: 45 secs ago, 3 mins ago, 2 days ago."""
    if when is None:
        return "-"
    s = int((_now() - when).total_seconds())
    size, _, word = _UNITS[_unit(s)]
    return f"{s // size} {word} ago"


def total_seconds(job: JobState) -> float:
    return ((job.ended_at or _now()) - job.submitted_at).total_seconds()


def job_seconds(job: JobState) -> float | None:
    """Time spent RUNNING only, the current period included."""
    if job.started_at is None:
        return None
    running = (_now() - job.run_started_at).total_seconds() if job.run_started_at and not job.ended_at else 0.0
    return job.job_duration_s + running


def task_seconds(task: JobState, now: datetime | None = None) -> float | None:
    """A pipeline task's TOT. DURATION: from its first launch (or its start, when nothing was
    launched) to its end or now; None for a task that never started. Its submitted time is
    the pipeline's, which would count the tasks before it."""
    launches = [t for r in task.history if (t := r.launched_at or r.started_at) is not None]
    start = min(launches) if launches else task.started_at
    if start is None:
        return None
    return max(0.0, ((task.ended_at or now or _now()) - start).total_seconds())


def last_run_started_at(job: JobState) -> datetime | None:
    """When the job's last run began, kept after it ended (`run_started_at` is None whenever the
    job is not RUNNING): the current period's start while it runs, else when its last attempt's
    cluster was running (setup included; the workflow records no later time per attempt)."""
    if job.run_started_at is not None:
        return job.run_started_at
    return next((r.started_at for r in reversed(job.history) if r.started_at), None)


def as_json(job: JobState, *, now: datetime | None = None, prices: Mapping[PriceKey, float] | None = None) -> dict:
    """One job of `status --json`: the state as the workflow keeps it (every count an int),
    plus what the CLI derives: durations, last_run_started_at, and the cost per attempt and
    per job (USD; see spotctl/clouds/ondemand.py). A pipeline adds `tasks`: each task's object, made
    the same way, with its `task` index; a single-task job has neither key."""
    now = now or _now()
    data = _json_of(job, now, prices or {}, total_seconds(job))
    del data["task"]  # a job's is always None: only the objects of `tasks` have one
    if job.is_pipeline:
        data["tasks"] = [_json_of(row, now, prices or {}, task_seconds(row, now)) for row in job.tasks]
    return data


def _json_of(job: JobState, now: datetime, prices: Mapping[PriceKey, float], total: float | None) -> dict:
    """A job's or a task's object, without `tasks`."""
    data = job.model_dump(mode="json", exclude={"tasks", "failure", "placement"} | (
        DEADLINE_KEYS if job.deadline_at is None else set()))
    # `failure` repeats failure_reason as data for the tables, `placement` is for `status -v`;
    # --json keeps the keys it always had (scripts read them); a deadline job's figures are
    # there only for deadline jobs
    data["total_duration_s"] = None if total is None else round(total, 3)
    data["job_duration_s"] = round(job_seconds(job) or 0.0, 3)
    last = last_run_started_at(job)
    data["last_run_started_at"] = last.isoformat().replace("+00:00", "Z") if last else None
    costs = job_cost(job, now, prices or {})
    for record, cost in zip(data["history"], costs.attempts, strict=True):
        record.update(hours=cost.hours, cost_usd=cost.cost, ondemand_usd=cost.ondemand)  # unrounded: cents of cents
    data.update(cost_usd=costs.cost, ondemand_usd=costs.ondemand,
                saved_pct=None if costs.saved_pct is None else round(costs.saved_pct, 2))
    return data


# ---- the status table ------------------------------------------------------------------

DEADLINE_KEYS = {"market", "deadline_at", "slack_s", "progress_s", "switches", "restart_s", "done_at"}
"""JobState's deadline figures: in `status --json` only for jobs with a deadline."""

ALWAYS_SHOWN = ("ID", "NAME", "STATUS")
"""What `status` shows at any width: what every other command takes, and the answer."""
GIVE_WAY_ORDER = ("RANK", "ARRAY", "PRIORITY", "POOL", "SLACK", "MARKET", "REGION", "CLOUD", "TOT. DURATION", "SUBMITTED", "ON-DEMAND", "RESOURCES", "JOB DURATION",
                  "SAVED", "#RECOVERIES", "COST", "FAILURE")
"""The order in which columns are dropped when the table is wider than the terminal, first
dropped first (the README's status section says the same)."""
SHRINKS_TO = {"NAME": 16, "RESOURCES": 12, "FAILURE": 24}
"""Columns first clipped (with `…`) down to this many characters before any column is
dropped; NAME is clipped further only when ID, NAME and STATUS alone do not fit."""
GAP = 2
"""Blank characters between two columns (rich's padding of 1 on each side, no edge)."""


@dataclass
class _Column:
    header: str
    cells: list[str] = field(default_factory=list)
    """Plain text, already made safe: rendered as rich Text, so never taken as markup."""
    styles: list[str] = field(default_factory=list)

    @property
    def natural(self) -> int:
        return max([len(self.header), *(len(c) for c in self.cells)])

    @property
    def least(self) -> int:
        return min(self.natural, SHRINKS_TO.get(self.header, self.natural))


def output_width() -> int | None:
    """How wide `status` may print: COLUMNS when set (honoured for a pipe too), else the
    terminal's width; None for a pipe or a file: scripts and `| less -S` get the whole table,
    as SkyPilot prints it."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return None


def fit_columns(columns: list[_Column], width: int | None) -> dict[str, int]:
    """The width of each column shown (in table order) so the table fits in `width`.

    ID, NAME and the full STATUS always show. First NAME, RESOURCES and FAILURE are clipped
    down to SHRINKS_TO; then columns are dropped in GIVE_WAY_ORDER until the rest fits; room
    left over goes back to NAME, FAILURE, RESOURCES (in that order); if ID, NAME and STATUS
    alone are too wide, NAME is clipped further (to 4 characters at least)."""
    if width is None:
        return {c.header: c.natural for c in columns}
    by_header = {c.header: c for c in columns}
    kept = [c.header for c in columns]

    def total(widths: dict[str, int]) -> int:
        return sum(widths.values()) + GAP * (len(widths) - 1)

    for header in GIVE_WAY_ORDER:
        if total({h: by_header[h].least for h in kept}) <= width:
            break
        if header in kept:
            kept.remove(header)
    widths = {h: by_header[h].least for h in kept}
    spare = width - total(widths)
    for header in ("NAME", "FAILURE", "RESOURCES"):
        if header in widths and spare > 0:
            grow = min(spare, by_header[header].natural - widths[header])
            widths[header] += grow
            spare -= grow
    if spare < 0 and "NAME" in widths:
        widths["NAME"] = max(4, widths["NAME"] + spare)
    return widths


def job_short_failure(job: JobState) -> str:
    """A job's failure reason in a few words for the table: the candidates that provisioning
    could not get become 'no capacity for 120s in 3 region(s): reason'; other reasons keep
    their first line. The full text is in `status -v ID` and `--json`."""
    failure = job.failure_data
    return _short(failure) if failure is not None else short_failure(job.failure_reason)


def _short(failure: JobFailure) -> str:
    if failure.task:  # a pipeline's: 'task 1/3 'eval': <the task's reason>'
        return f"{failure.task}: {_short(failure.model_copy(update={'task': None}))}"
    if not failure.candidates:
        lines = failure.text().splitlines() or [""]
        return lines[0] + (" …" if len(lines) > 1 else "")
    return _in_short(failure.head, [(c.location, c.reason) for c in failure.candidates])


def _in_short(head: str | None, entries: list[tuple[str, str]]) -> str:
    """`<head, or how many failed> in <regions> region(s): <first reason> (+n more)`."""
    regions = len({loc.rsplit("/", 1)[0] for loc, _ in entries})
    reasons = list(dict.fromkeys(why.splitlines()[0] if why else "" for _, why in entries))
    more = f" (+{len(reasons) - 1} more)" if len(reasons) > 1 else ""
    what = head or f"{len(entries)} candidate(s) failed"
    return f"{what} in {regions} region(s): {reasons[0]}{more}"


# ---- legacy: failure reasons of states from before JobState.failure, read back from their text.
# Delete with the fallbacks in job_short_failure and _job_full_failure once no such state is kept.

def short_failure(text: str | None) -> str:
    """Legacy: job_short_failure of a reason known only as text, parsed back: the per-candidate
    list provisioning wrote ('cloud/region/zone type: reason; ...') is found by its shape."""
    if not text:
        return "-"
    task = _TASK_PREFIX.match(text)
    if task:  # a pipeline's: 'task 1/3 'eval': <the task's reason>'
        return f"{task['label']}: {short_failure(text[task.end():])}"
    head, entries = _split_failure(text)
    if not entries:
        lines = text.splitlines() or [""]
        return lines[0] + (" …" if len(lines) > 1 else "")
    return _in_short(head, entries)


_TASK_PREFIX = re.compile(r"""(?P<label>task \d+/\d+ (?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")): """)
"""pipeline_view.task_label's prefix of a pipeline's failure reason and detail."""
_FAILURE_ENTRY = re.compile(r"(?P<loc>[^\s/]+/[^\s/]+/\S+) \S+: (?P<why>.*)", re.DOTALL)


def _split_failure(text: str) -> tuple[str, list[tuple[str, str]]]:
    """(head, [(location, reason)]) of provisioning's failure list, with or without a head
    ('no capacity for 120s: a/b/c t: why; ...'); ('', []) when `text` is not one."""
    head, sep, rest = text.partition(": ")
    entries = _failure_list(rest) if sep else []
    if entries:
        return head, entries
    return "", _failure_list(text)


def _failure_list(text: str) -> list[tuple[str, str]]:
    """[(location, reason)] of a '; '-joined candidate failure list, [] when `text` is not
    one (a reason containing '; ' stays whole)."""
    entries: list[tuple[str, str]] = []
    for piece in text.split("; "):
        m = _FAILURE_ENTRY.fullmatch(piece)
        if m:
            entries.append((m["loc"], m["why"]))
        elif entries:
            entries[-1] = (entries[-1][0], f"{entries[-1][1]}; {piece}")
        else:
            return []
    return entries


def _full_failure(text: str) -> str:
    """Legacy: _job_full_failure of a reason known only as text."""
    task = _TASK_PREFIX.match(text)
    if task:
        return f"{safe(task['label'])}: {_full_failure(text[task.end():])}"
    head, entries = _split_failure(text)
    if head:
        rest = text.partition(": ")[2]
        return safe(head + ":") + "".join("\n  " + safe(piece) for piece in rest.split("; "))
    if entries:
        return "\n".join(safe(piece) for piece in text.split("; "))
    return "\n".join(safe(line) for line in text.splitlines())

# ---- end of legacy


def table_reason(job: JobState) -> str:
    """The FAILURE cell: why an ended job failed, or what an unfinished one waits for
    (its detail: 'no capacity in 3 region(s), retry in 16s'), in short."""
    if not job.status.is_terminal:
        return job.detail or "-"
    return job_short_failure(job)


TASK_MARK = " ↳"
"""The ID cell of a pipeline's task line, as SkyPilot's `jobs queue` draws it: scripts that
read lines starting with a job id see one line per job."""


def status_table(jobs: list[JobState], *, show_all: bool, width: int | None = None,
                 prices: Mapping[PriceKey, float] | None = None, now: datetime | None = None) -> Table:
    """`status`: one row per job, and a `↳` row per task of a pipeline, fitted to `width`
    (None: no limit) by fit_columns. COST is what the job's attempts were paid so far; -a adds
    the on-demand equivalent, the saving, where the job runs and a short failure reason. A
    TASK column (a task's 0-based index) shows only when a pipeline is listed."""
    now = now or _now()
    headers = ["ID", "NAME", "RESOURCES", "SUBMITTED", "TOT. DURATION", "JOB DURATION", "#RECOVERIES", "STATUS",
               "COST"]
    if any(j.is_pipeline for j in jobs):
        headers.insert(1, "TASK")
    if any(j.deadline_at is not None for j in jobs):  # shown only when a deadline job is listed
        headers += ["MARKET", "SLACK"]
    if any(j.priority != DEFAULT_PRIORITY for j in jobs):  # shown only when a job has a priority of its own
        headers += ["PRIORITY"]
    if any(j.array_first_id is not None for j in jobs):  # a job array's: its first id and the job's rank
        headers += ["ARRAY", "RANK"]
    if any(j.pool for j in jobs):  # shown only when a job on a pool is listed (`launch -p POOL`)
        headers += ["POOL"]
    if show_all:
        headers += ["ON-DEMAND", "SAVED", "CLOUD", "REGION", "FAILURE"]
    columns = {h: _Column(h) for h in headers}
    lines = [line for j in jobs for line in [(j, None), *((row, i) for i, row in enumerate(j.tasks))]]
    for j, index in lines:
        values = _row_values(j, index, now, prices or {})
        style = STATUS_STYLE.get(j.status, "red" if j.status.is_failure else "")
        for h, col in columns.items():
            col.cells.append(values[h])
            col.styles.append(style if h == "STATUS" else "")
    widths = fit_columns(list(columns.values()), width)
    table = Table(box=None, header_style="bold", pad_edge=False, show_edge=False)
    for h, w in widths.items():
        table.add_column(h, width=w, no_wrap=True, overflow="ellipsis",
                         justify="right" if h in ("COST", "ON-DEMAND", "SAVED") else "left")
    for i in range(len(lines)):
        table.add_row(*(Text(clip(columns[h].cells[i], w), style=columns[h].styles[i]) for h, w in widths.items()))
    return table


def _row_values(j: JobState, index: int | None, now: datetime, prices: Mapping[PriceKey, float]) -> dict[str, str]:
    """The cells of a job's line (`index` None) or of its task `index`'s line (`j` the task)."""
    cost = job_cost(j, now, prices)
    total = total_seconds(j) if index is None else task_seconds(j, now)
    return {
        "ID": str(j.job_id) if index is None else TASK_MARK, "TASK": "" if index is None else str(index),
        "NAME": clip(safe(j.name), NAME_WIDTH),
        "RESOURCES": clip(safe(j.resources or "-"), RESOURCES_WIDTH), "SUBMITTED": ago(j.submitted_at),
        "TOT. DURATION": duration(total), "JOB DURATION": duration(job_seconds(j)),
        "#RECOVERIES": str(j.recoveries), "STATUS": j.status.value, "COST": money(cost.cost),
        "ON-DEMAND": money(cost.ondemand), "SAVED": percent(cost.saved_pct),
        "CLOUD": clip(safe(j.cloud or "-"), PLACE_WIDTH), "REGION": clip(safe(j.region or "-"), PLACE_WIDTH),
        "FAILURE": safe(table_reason(j)),
        "MARKET": j.market or "-", "SLACK": "-" if j.slack_s is None else hours_text(j.slack_s),
        "PRIORITY": str(j.priority),
        "ARRAY": "-" if j.array_first_id is None else str(j.array_first_id),
        "RANK": "-" if j.array_rank is None else str(j.array_rank),
        "POOL": clip(safe(j.pool), NAME_WIDTH) if j.pool else "-",
    }


def page_footer(shown: int, total: int, *, unfinished: bool = False) -> str | None:
    """The line under a `status` that lists only some of the jobs, so a limited list is never
    taken for all of them; None when every job is shown."""
    if total <= shown:
        return None
    what = "unfinished jobs" if unfinished else "jobs"
    return f"Showing the newest {shown:,} of {total:,} {what}; --limit N or --all for more."


# ---- one job, in full (`status -v ID`) -------------------------------------------------------

def job_in_full(job: JobState, *, prices: Mapping[PriceKey, float] | None = None, now: datetime | None = None) -> Group:
    """Everything about one job: its facts, the full failure reason (one candidate per line),
    and every attempt kept: where, on what, at what price, how long and how it ended."""
    now = now or _now()
    cost = job_cost(job, now, prices or {})
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold", no_wrap=True)
    facts.add_column(overflow="fold")
    style = STATUS_STYLE.get(job.status, "red" if job.status.is_failure else "")
    rows: list[tuple[str, Text | str]] = [
        ("Job", f"{job.job_id} {safe(job.name)}"),
        ("Status", Text(job.status.value, style=style)),
        ("Resources", safe(job.resources or "-")),
        ("Submitted", f"{_when(job.submitted_at)} ({ago(job.submitted_at)})"),
        ("Durations", f"total {duration(total_seconds(job))}, running {duration(job_seconds(job))}"),
        ("Recoveries", str(job.recoveries)),
        ("Priority", f"{job.priority}{' (default)' if job.priority == DEFAULT_PRIORITY else ''}"),
    ]
    if job.array_first_id is not None:
        rows.append(("Array", f"job array {job.array_first_id}, rank {job.array_rank}"))
    if job.pool:
        rows.append(("Pool", safe(f"{job.pool}, " + (f"on worker {job.worker}" if job.worker else
                                                      "waiting for a worker" if not job.status.is_terminal else
                                                      "no worker now"))))
    if job.cloud:
        rows.append(("Place", safe("/".join(p for p in (job.cloud, job.region, job.zone) if p))))
    if job.placement:  # the figures behind the order of its last placement (ranked by expected cost)
        rows.append(("Placement", "by expected cost, from the fleet's memory:\n" + "\n".join(
            f"  {safe(line)}" for line in job.placement)))
    if job.exit_code is not None:
        rows.append(("Exit code", str(job.exit_code)))
    if job.detail:
        rows.append(("Now", safe(job.detail)))
    if job.failure_reason:
        rows.append(("Failure", _job_full_failure(job)))
    if job.deadline_at is not None:
        rows.append(("Deadline", _deadline_facts(job)))
    saved = f", saved {percent(cost.saved_pct)}" if cost.saved_pct is not None else ""
    rows.append(("Cost", f"{money(cost.cost)} (on demand {money(cost.ondemand)}{saved})"))
    for label, value in rows:
        facts.add_row(label, value if isinstance(value, Text) else Text(value))
    attempts = Table(box=None, header_style="bold", pad_edge=False, title=None)
    task_column = ("TASK",) if job.is_pipeline else ()  # which task made each attempt
    for h in ("#", *task_column, "PLACE", "INSTANCE TYPE", "NODES", "SPOT", "$/HOUR", "LAUNCHED", "LIVED", "COST",
              "OUTCOME"):
        attempts.add_column(h, no_wrap=h != "OUTCOME", overflow="fold",
                            justify="right" if h in ("NODES", "$/HOUR", "COST") else "left")
    for record, c in zip(job.history, cost.attempts, strict=True):
        spot = "-" if record.use_spot is None else ("spot" if record.use_spot else "on-demand")
        price = "-" if record.price is None else f"${record.price:.4g}"
        lived = duration(c.hours * 3600) if c.hours is not None else "-"
        task = ("-" if record.task is None else str(record.task),) if task_column else ()
        attempts.add_row(*(Text(v) for v in (
            str(record.attempt), *task, safe(f"{record.cloud}/{record.region}/{record.zone}"),
            safe(record.instance_type or "-"), str(record.nodes or "-"), spot, price,
            _when(record.launched_at or record.started_at), lived, money(c.cost), safe(record.outcome or "running"))))
    parts: list = [facts, Text("")]
    if job.switches:
        parts += [Text("Market switches:", style="bold"),
                  *(Text(f"  {_when(w.at)}  {safe(w.text())}") for w in job.switches), Text("")]
    if job.is_pipeline:
        parts += [_tasks_table(job, now, prices or {}), Text("")]
    parts.append(attempts if job.history else Text("No attempt got a cluster yet."))
    return Group(*parts)


def _deadline_facts(job: JobState) -> str:
    """A deadline job's line of `status -v`: by when, where it runs, its slack and progress."""
    slack = "-" if job.slack_s is None else hours_text(job.slack_s)
    done = "-" if job.progress_s is None else hours_text(job.progress_s)
    finished = ""
    if job.done_at is not None and job.deadline_at is not None:
        early = (job.deadline_at - job.done_at).total_seconds()
        finished = (f"; done at {_when(job.done_at)}, "
                    + (f"{hours_text(early)} early" if early >= 0 else f"{hours_text(-early)} LATE"))
    return (f"{_when(job.deadline_at)}; market {job.market or '-'}, slack {slack} and progress {done} at the "
            f"last decision; {len(job.switches)} switch(es)" + finished)


def _tasks_table(job: JobState, now: datetime, prices: Mapping[PriceKey, float]) -> Table:
    """A pipeline's tasks in `status -v`: what each is, how it stands, what it cost."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    for h in ("TASK", "NAME", "RESOURCES", "STATUS", "#RECOVERIES", "DURATION", "JOB DURATION", "COST", "FAILURE"):
        table.add_column(h, no_wrap=h != "FAILURE", overflow="fold", justify="right" if h == "COST" else "left")
    for i, row in enumerate(job.tasks):
        v = _row_values(row, i, now, prices)
        style = STATUS_STYLE.get(row.status, "red" if row.status.is_failure else "")
        table.add_row(*(Text(v[h]) for h in ("TASK", "NAME", "RESOURCES")), Text(row.status.value, style=style),
                      *(Text(v[h]) for h in ("#RECOVERIES", "TOT. DURATION", "JOB DURATION", "COST", "FAILURE")))
    return table


def _when(moment: datetime | None) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def _job_full_failure(job: JobState) -> str:
    """The whole reason, a candidate per line when provisioning failed."""
    failure = job.failure_data
    return _full(failure) if failure is not None else _full_failure(job.failure_reason or "")


def _full(failure: JobFailure) -> str:
    if failure.task:
        return f"{safe(failure.task)}: {_full(failure.model_copy(update={'task': None}))}"
    if not failure.candidates:
        return "\n".join(safe(line) for line in failure.text().splitlines())
    # A reason with '; ' in it goes on over lines, as the text's pieces always did.
    pieces = [p for c in failure.candidates for p in f"{c.location} {c.instance_type}: {c.reason}".split("; ")]
    if failure.head:
        return safe(failure.head + ":") + "".join("\n  " + safe(piece) for piece in pieces)
    return "\n".join(safe(piece) for piece in pieces)
