"""FleetStore: the fleet's events in one SQLite file, bounded in time and size.

Why SQLite (stdlib): every worker process of a machine (and, on a shared volume, of several
machines) writes here at once, a crash may retry any write, and the file must outlive workers
and the Temporal server. So:
- an event's id is its primary key and every write is INSERT OR IGNORE: a retried activity
  never counts twice (ids name the job, its attempt, the kind and the place; a capacity
  failure also names the activity, so each round of a wait counts once);
- WAL, a busy timeout and one short transaction per write: several writers take turns, a
  reader never waits for a writer;
- each write prunes: events older than HORIZON, past MAX_PER_PLACE for its place and past
  MAX_EVENTS in all (the oldest go first), so the file stays small whatever the fleet does;
- every failure (locked past the timeout, a corrupt or unreadable file, a full disk) is a
  FleetStoreError: callers log it and go on without figures. The memory is advice.
A connection per call: cheap next to a cloud call, and nothing to share between threads.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from spotctl.config import Settings
from spotctl.policy import FleetEvent, FleetEventKind, Place, PlaceOutlook, outlooks
from spotctl.policy.fleet import WINDOW

HORIZON = timedelta(hours=24)
"""Events older than this are pruned (the outlooks look back policy.fleet.WINDOW, less)."""
MAX_PER_PLACE = 500
"""Events kept per place (the newest)."""
MAX_EVENTS = 50_000
"""Events kept in all (the newest): a few MB."""
BUSY_TIMEOUT_S = 2.0
"""How long a call waits for another process's write before it gives up (advice: no figures)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    cloud TEXT NOT NULL, zone TEXT NOT NULL, instance_type TEXT NOT NULL, spot INTEGER NOT NULL,
    kind TEXT NOT NULL, at REAL NOT NULL, lifetime_s REAL, price REAL,
    job INTEGER, attempt INTEGER
);
CREATE INDEX IF NOT EXISTS events_place ON events (cloud, zone, instance_type, spot, at);
CREATE INDEX IF NOT EXISTS events_at ON events (at);
CREATE INDEX IF NOT EXISTS events_job ON events (job, attempt);
"""
_ENDS = (FleetEventKind.PREEMPTED.value, FleetEventKind.ENDED.value)


class FleetStoreError(Exception):
    """The store cannot be used now (locked, corrupt, unreadable, full): no figures this time."""


@dataclass(frozen=True)
class Entry:
    """A FleetEvent as stored: its idempotency key, and the job attempt it was seen in (which
    lets an instance's end find its launch, for its lifetime)."""

    id: str
    event: FleetEvent
    job_id: int | None = None
    attempt: int | None = None


def place_key(p: Place) -> str:
    """A place in an event id."""
    return f"{p.cloud}/{p.zone}/{p.instance_type}/{'spot' if p.spot else 'on-demand'}"


def _epoch(at: datetime) -> float:
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


class FleetStore:
    def __init__(self, path: Path, *, horizon: timedelta = HORIZON, max_per_place: int = MAX_PER_PLACE,
                 max_events: int = MAX_EVENTS, busy_timeout_s: float = BUSY_TIMEOUT_S) -> None:
        self.path = path
        self.horizon = horizon
        self.max_per_place = max_per_place
        self.max_events = max_events
        self.busy_timeout_s = busy_timeout_s

    @contextmanager
    def _db(self, *, create: bool) -> Iterator[sqlite3.Connection]:
        """One connection, one transaction (committed on leaving); every failure a FleetStoreError."""
        if not create and not self.path.exists():
            raise FleetStoreError(f"{self.path}: no fleet history yet")
        try:
            if create:
                self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None)
        except (sqlite3.Error, OSError) as exc:
            raise FleetStoreError(f"{self.path}: {exc}") from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
            if create:
                if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    conn.execute("PRAGMA journal_mode = WAL")
                conn.executescript(_SCHEMA)
            conn.execute("BEGIN IMMEDIATE" if create else "BEGIN")
            yield conn
            conn.execute("COMMIT")
        except (sqlite3.Error, OSError) as exc:
            raise FleetStoreError(f"{self.path}: {exc}") from exc
        finally:
            conn.close()

    # ---- writes ----------------------------------------------------------------------
    def record(self, entries: Iterable[Entry], now: datetime | None = None) -> int:
        """Add what is new among `entries` (an id already stored is skipped); prune; how many were added."""
        rows = [(e.id, e.event.place.cloud, e.event.place.zone, e.event.place.instance_type, int(e.event.place.spot),
                 e.event.kind.value, _epoch(e.event.at), e.event.lifetime_s, e.event.price, e.job_id, e.attempt)
                for e in entries]
        with self._db(create=True) as db:
            before = db.total_changes
            db.executemany("INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            added = db.total_changes - before
            self._prune(db, {tuple(r[1:5]) for r in rows}, now or datetime.now(UTC))
        return added

    def end_lives(self, job_id: int, attempts: Iterable[int] | None, kind: FleetEventKind, at: datetime,
                  place: Place | None = None, attempt: int | None = None) -> int:
        """Record the end (`kind`: PREEMPTED or ENDED) of the job's instances launched in
        `attempts` (None: every attempt of the job), each with its lifetime since its LAUNCHED
        event. One end per attempt, whichever comes first (a preemption, then the teardown that
        follows it, count once). With `place` and `attempt`, an attempt whose launch the store
        never saw still gets its end (a preemption counts without a lifetime)."""
        wanted = None if attempts is None else sorted(set(attempts))
        with self._db(create=True) as db:
            query = "SELECT attempt, cloud, zone, instance_type, spot, at FROM events WHERE job = ? AND kind = ?"
            launched = db.execute(query, (job_id, FleetEventKind.LAUNCHED.value)).fetchall()
            rows = []
            seen: set[int] = set()
            for a, cloud, zone, itype, spot, started in launched:
                if wanted is not None and a not in wanted:
                    continue
                seen.add(a)
                rows.append((f"{job_id}/{a}/end", cloud, zone, itype, spot, kind.value, _epoch(at),
                             max(0.0, _epoch(at) - started), None, job_id, a))
            if place is not None and attempt is not None and attempt not in seen:
                rows.append((f"{job_id}/{attempt}/end", place.cloud, place.zone, place.instance_type, int(place.spot),
                             kind.value, _epoch(at), None, None, job_id, attempt))
            before = db.total_changes
            db.executemany("INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            added = db.total_changes - before
            self._prune(db, {tuple(r[1:5]) for r in rows}, at)
        return added

    def _prune(self, db: sqlite3.Connection, places: set[tuple], now: datetime) -> None:
        db.execute("DELETE FROM events WHERE at < ?", (_epoch(now - self.horizon),))
        for cloud, zone, itype, spot in places:
            db.execute("DELETE FROM events WHERE rowid IN (SELECT rowid FROM events WHERE cloud = ? AND zone = ? "
                       "AND instance_type = ? AND spot = ? ORDER BY at DESC LIMIT -1 OFFSET ?)",
                       (cloud, zone, itype, spot, self.max_per_place))
        (count,) = db.execute("SELECT count(*) FROM events").fetchone()
        if count > self.max_events:
            db.execute("DELETE FROM events WHERE rowid IN (SELECT rowid FROM events ORDER BY at ASC LIMIT ?)",
                       (count - self.max_events,))

    # ---- reads -----------------------------------------------------------------------
    def events(self, places: Iterable[Place] | None = None, since: datetime | None = None) -> list[FleetEvent]:
        """The stored events (of `places`, since `since`), oldest first. No file: none."""
        if not self.path.exists():
            return []
        cols = "SELECT cloud, zone, instance_type, spot, kind, at, lifetime_s, price FROM events WHERE at >= ?"
        start = _epoch(since) if since else 0.0
        with self._db(create=False) as db:
            if places is None:
                rows = db.execute(cols, (start,)).fetchall()
            else:  # one indexed query per place: a job has tens of candidates, the store thousands of events
                rows = [row for p in sorted(set(places), key=place_key) for row in db.execute(
                    cols + " AND cloud = ? AND zone = ? AND instance_type = ? AND spot = ?",
                    (start, p.cloud, p.zone, p.instance_type, int(p.spot))).fetchall()]
        found = [FleetEvent(place=Place(cloud=cloud, zone=zone, instance_type=itype, spot=bool(spot)),
                            kind=FleetEventKind(kind), at=datetime.fromtimestamp(at, UTC), lifetime_s=lifetime,
                            price=price)
                 for cloud, zone, itype, spot, kind, at, lifetime, price in rows]
        return sorted(found, key=lambda e: e.at)

    def outlooks(self, places: Iterable[Place], now: datetime | None = None,
                 window: timedelta = WINDOW) -> dict[Place, PlaceOutlook]:
        """Each place's outlook (policy.outlooks) from its events of the last `window`."""
        now = now or datetime.now(UTC)
        return outlooks(self.events(places, now - window), now, window)

    def count(self) -> int:
        if not self.path.exists():
            return 0
        with self._db(create=False) as db:
            return int(db.execute("SELECT count(*) FROM events").fetchone()[0])


def open_fleet(settings: Settings) -> FleetStore:
    """The deployment's store (`fleet.path`, else fleet.db in the state dir); nothing is made
    until the first write."""
    return FleetStore(settings.fleet_db)
