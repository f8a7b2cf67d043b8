"""`launch --dry-run` shows what the fleet's memory says of each candidate: its expected cost
and the figures behind the order, read from the local store (never created by a dry run); with
`fleet.ranking: expected-cost` the candidates are listed (and tried) in that order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from spotctl.cli.main import cli
from spotctl.fleet import Entry, FleetStore
from spotctl.policy import FleetEvent, FleetEventKind, Place

pytestmark = pytest.mark.quick

EAST_1A = Place(cloud="local", zone="local-east-1a", instance_type="local.small", spot=True)


def dry_run(home: Path, ranking: str | None = None, *args: str) -> str:
    env = {"SPOTCTL_HOME": str(home), "SPOTCTL_CLOUDS": "local"}
    if ranking:
        env["SPOTCTL_PLACEMENT"] = ranking
    result = CliRunner().invoke(cli, ["launch", "--dry-run", *args, "echo hi"], env=env)
    assert result.exit_code == 0, result.output
    return result.stdout


def candidates(out: str) -> list[str]:
    """The zones of the 'Placement candidates' table, in order (local.small only)."""
    table = out.split("Placement candidates", 1)[1].split("Fleet history", 1)[0]
    return [line.split()[1].rsplit("/", 1)[1] for line in table.splitlines()
            if line.strip()[:1].isdigit() and "local.small" in line]


def preempted_twice(home: Path) -> None:
    store = FleetStore(home / "fleet.db")
    now = datetime.now(UTC)
    for attempt in (1, 2):
        store.record([Entry(f"9/{attempt}/launched", FleetEvent(EAST_1A, FleetEventKind.LAUNCHED,
                                                                now - timedelta(minutes=90 - 30 * attempt)), 9, attempt)])
        store.end_lives(9, [attempt], FleetEventKind.PREEMPTED, now - timedelta(minutes=60 - 30 * attempt))


def test_no_history_says_so_keeps_the_price_order_and_makes_no_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    out = dry_run(home, "expected-cost")
    assert "Fleet history: no fleet history yet (ranking: expected-cost); candidates in price order" in out
    assert candidates(out)[:3] == ["local-east-1a", "local-east-1b", "local-west-1a"]
    assert not (home / "fleet.db").exists()


def test_the_figures_and_the_learned_order(tmp_path: Path) -> None:
    home = tmp_path / "home"
    preempted_twice(home)
    ranked = dry_run(home, "expected-cost")
    assert "Fleet history (last 6 h; ranking: expected-cost, the job uses this order):" in ranked
    assert "local-east-1a: 2 preemptions in 6 h, spot lifetime ~0.5 h" in ranked
    assert candidates(ranked)[:2] == ["local-east-1b", "local-east-1a"]  # same price: the quiet zone first
    # Ranked by price (the default), the table keeps the price order; the figures are shown beside it.
    priced = dry_run(home)
    assert "ranking: price, the job uses price order above" in priced
    assert "local-east-1a: 2 preemptions in 6 h" in priced
    assert candidates(priced)[:2] == ["local-east-1a", "local-east-1b"]
    # The user's own order (`resources.ordered`) is never re-sorted; its figures are still shown.
    task = tmp_path / "ordered.yaml"
    task.write_text("resources:\n  instance_type: local.small\n  ordered:\n    - infra: local/local-east/local-east-1a\n"
                    "    - infra: local/local-east/local-east-1b\nrun: echo hi\n")
    env = {"SPOTCTL_HOME": str(home), "SPOTCTL_CLOUDS": "local", "SPOTCTL_PLACEMENT": "expected-cost"}
    ordered = CliRunner().invoke(cli, ["launch", "--dry-run", str(task)], env=env)
    assert ordered.exit_code == 0, ordered.output
    assert candidates(ordered.stdout) == ["local-east-1a", "local-east-1b"]
    assert "local-east-1a: 2 preemptions" in ordered.stdout


def test_an_unreadable_store_is_said_and_changes_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "fleet.db").write_bytes(b"garbage " * 100)
    out = dry_run(home, "expected-cost")
    assert "Fleet history: unreadable (" in out and "candidates in price order" in out
    assert candidates(out)[:2] == ["local-east-1a", "local-east-1b"]
