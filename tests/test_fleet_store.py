"""The fleet's memory (spotctl/fleet/store.py) on a real SQLite file: idempotent writes, bounded
in time and size, several processes writing at once, and a file that cannot be used is advice
lost (a FleetStoreError), never a crash."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from spotctl.fleet import Entry, FleetStore, FleetStoreError
from spotctl.policy import FleetEvent, FleetEventKind, Place

pytestmark = pytest.mark.quick

EAST = Place(cloud="local", zone="local-east-1a", instance_type="local.small", spot=True)
WEST = Place(cloud="local", zone="local-west-1a", instance_type="local.small", spot=True)
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def launch(job: int, attempt: int, place: Place = EAST, at: datetime = NOW, price: float = 0.01) -> Entry:
    return Entry(id=f"{job}/{attempt}/launched", event=FleetEvent(place, FleetEventKind.LAUNCHED, at, price=price),
                 job_id=job, attempt=attempt)


def test_a_retried_write_counts_once(tmp_path: Path) -> None:
    store = FleetStore(tmp_path / "fleet.db")
    assert store.record([launch(1, 1, at=NOW - timedelta(hours=2))], now=NOW) == 1
    assert store.record([launch(1, 1, at=NOW - timedelta(hours=2))], now=NOW) == 0  # the activity's retry
    # The instance's end: the monitor's preemption, then the teardown that follows it: one end, the first.
    assert store.end_lives(1, [1], FleetEventKind.PREEMPTED, NOW, place=EAST, attempt=1) == 1
    assert store.end_lives(1, [1], FleetEventKind.PREEMPTED, NOW, place=EAST, attempt=1) == 0
    assert store.end_lives(1, None, FleetEventKind.ENDED, NOW + timedelta(minutes=1)) == 0
    seen = store.outlooks([EAST, WEST], now=NOW)
    assert list(seen) == [EAST]
    east = seen[EAST]
    assert (east.launches, east.preemptions, east.observed_h, east.last_price) == (1, 1, 2.0, 0.01)
    assert east.explain() == "local-east-1a: 1 preemption in 6 h, spot lifetime ~2.0 h"


def test_an_end_without_a_recorded_launch_still_counts_the_preemption(tmp_path: Path) -> None:
    store = FleetStore(tmp_path / "fleet.db")
    store.end_lives(7, [3], FleetEventKind.PREEMPTED, NOW, place=WEST, attempt=3)
    store.end_lives(7, None, FleetEventKind.ENDED, NOW)  # nothing launched on record: nothing to end
    west = store.outlooks([WEST], now=NOW)[WEST]
    assert (west.preemptions, west.observed_h, west.mean_lifetime_h) == (1, 0.0, 0.0)


def test_ended_lives_count_hours_without_a_preemption(tmp_path: Path) -> None:
    store = FleetStore(tmp_path / "fleet.db")
    store.record([launch(2, 1, at=NOW - timedelta(hours=3)), launch(2, 2, WEST, at=NOW - timedelta(hours=1))], now=NOW)
    assert store.end_lives(2, range(1, 2), FleetEventKind.ENDED, NOW) == 1  # attempt 1 only
    assert store.end_lives(2, None, FleetEventKind.ENDED, NOW) == 1  # the rest
    seen = store.outlooks([EAST, WEST], now=NOW)
    assert (seen[EAST].preemptions, seen[EAST].observed_h) == (0, 3.0)
    assert (seen[WEST].preemptions, seen[WEST].observed_h) == (0, 1.0)


def test_old_events_are_pruned(tmp_path: Path) -> None:
    store = FleetStore(tmp_path / "fleet.db", horizon=timedelta(hours=24))
    store.record([launch(1, 1, at=NOW - timedelta(hours=30)), launch(1, 2, at=NOW - timedelta(hours=23))], now=NOW)
    assert store.count() == 1
    assert [e.at for e in store.events()] == [NOW - timedelta(hours=23)]
    assert store.outlooks([EAST], now=NOW) == {}  # 23 h ago is outside the outlook's window too


def test_the_store_is_bounded_per_place_and_in_all(tmp_path: Path) -> None:
    store = FleetStore(tmp_path / "fleet.db", max_per_place=10, max_events=15)
    store.record([launch(1, a, at=NOW - timedelta(minutes=60 - a)) for a in range(1, 31)], now=NOW)
    assert store.count() == 10
    kept = store.events([EAST])
    assert [e.at for e in kept] == [NOW - timedelta(minutes=60 - a) for a in range(21, 31)]  # the newest
    store.record([launch(2, a, WEST, at=NOW - timedelta(minutes=30 - a)) for a in range(1, 11)], now=NOW)
    assert store.count() == 15
    assert len(store.events([WEST])) == 10 and len(store.events([EAST])) == 5  # the oldest went first


def test_two_processes_write_at_once_and_nothing_is_lost(tmp_path: Path) -> None:
    db = tmp_path / "fleet.db"
    writer = textwrap.dedent(f"""
        import sys
        from datetime import UTC, datetime, timedelta
        from pathlib import Path
        from spotctl.fleet import Entry, FleetStore
        from spotctl.policy import FleetEvent, FleetEventKind, Place
        job = int(sys.argv[1])
        store = FleetStore(Path({str(db)!r}), busy_timeout_s=10)
        place = Place("local", f"zone-{{job}}", "local.small", True)
        now = datetime.now(UTC)
        for attempt in range(1, 101):
            store.record([Entry(f"{{job}}/{{attempt}}/launched",
                                FleetEvent(place, FleetEventKind.LAUNCHED, now - timedelta(seconds=attempt)),
                                job, attempt)])
    """)
    procs = [subprocess.Popen([sys.executable, "-c", writer, str(job)], stderr=subprocess.PIPE) for job in (1, 2, 3)]
    errors = [p.communicate(timeout=120)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    assert FleetStore(db).count() == 300


def test_a_corrupt_or_locked_file_is_a_store_error_not_a_crash(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"this is not a database, " * 200)
    store = FleetStore(corrupt)
    with pytest.raises(FleetStoreError, match="corrupt.db"):
        store.record([launch(1, 1)])
    with pytest.raises(FleetStoreError):
        store.outlooks([EAST])
    # Held by another writer past the busy time-out: an error too, after the time-out only.
    db = tmp_path / "fleet.db"
    FleetStore(db).record([launch(1, 1)], now=NOW)
    import sqlite3

    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(FleetStoreError, match="locked"):
            FleetStore(db, busy_timeout_s=0.2).record([launch(1, 2)])
        assert FleetStore(db, busy_timeout_s=0.2).count() == 1  # WAL: readers do not wait for the writer
    finally:
        holder.close()


def test_reading_a_store_that_does_not_exist_makes_nothing(tmp_path: Path) -> None:
    store = FleetStore(tmp_path / "none" / "fleet.db")
    assert store.outlooks([EAST]) == {} and store.events() == [] and store.count() == 0
    assert not (tmp_path / "none").exists()
