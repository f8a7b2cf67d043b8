"""How the workflow and the dry run apply the fleet's memory (policy/fleet_summary.py): by
expected cost within what the recovery strategy fixes, the user's order kept, the figures."""

from __future__ import annotations

import pytest

from spotctl.models import Candidate
from spotctl.policy import FleetOutlooks, Place, PlaceOutlook, WorkAhead, figures, rank_within_strategy

pytestmark = pytest.mark.quick


def cand(region: str, zone: str, price: float) -> Candidate:
    return Candidate(cloud="local", region=region, zone=zone, instance_type="local.small", use_spot=True, price=price)


A1, A2 = cand("east", "east-1a", 0.0100), cand("east", "east-1b", 0.0101)
B1 = cand("west", "west-1a", 0.0102)
BAD = {Place.of(A1): PlaceOutlook(place=Place.of(A1), window_h=6, launches=4, preemptions=4, observed_h=0.5)}


def order(cands: list[Candidate], strategy: str = "EAGER_NEXT_REGION", last=None, ordered: bool = False) -> list[str]:
    return [r.candidate.zone for r in rank_within_strategy(cands, BAD, WorkAhead(), strategy=strategy, last=last,
                                                           ordered=ordered)]


def test_a_zone_that_preempts_ranks_below_dearer_quiet_ones() -> None:
    assert order([A1, A2, B1]) == ["east-1b", "west-1a", "east-1a"]


def test_no_history_keeps_the_price_order() -> None:
    assert [r.candidate.zone for r in rank_within_strategy([A1, A2, B1], {}, WorkAhead(), strategy="FAILOVER",
                                                           last=None, ordered=False)] == ["east-1a", "east-1b",
                                                                                         "west-1a"]


def test_failover_keeps_skypilots_meaning_the_preempted_zone_first() -> None:
    """FAILOVER: the same zone, then the same region, then the rest; cost orders only within each."""
    assert order([A1, A2, B1], "FAILOVER", last=("local", "east", "east-1a")) == ["east-1a", "east-1b", "west-1a"]
    assert order([A2, B1, A1], "FAILOVER", last=("local", "west", "west-1a")) == ["west-1a", "east-1b", "east-1a"]


def test_the_users_order_is_kept_with_its_figures() -> None:
    ranked = rank_within_strategy([A1, B1], BAD, WorkAhead(), strategy="EAGER_NEXT_REGION", last=None, ordered=True)
    assert [r.candidate.zone for r in ranked] == ["east-1a", "west-1a"]
    shown = figures(ranked)
    assert shown[0].startswith("east-1a: 4 preemptions in 6 h, spot lifetime ~0.1 h; expected $")
    assert shown[1].startswith("west-1a: no fleet history; expected $")


def test_figures_are_few() -> None:
    many = [cand("r", f"z{i}", 0.01 + i / 1000) for i in range(12)]
    assert len(figures(rank_within_strategy(many, {}, WorkAhead(), strategy="FAILOVER", last=None,
                                            ordered=False))) == 5


def test_the_activity_answer_round_trips() -> None:
    answer = FleetOutlooks(outlooks=list(BAD.values()))
    assert FleetOutlooks.model_validate_json(answer.model_dump_json()).known() == BAD


def test_status_verbose_shows_the_figures_of_the_last_placement_and_nothing_for_others() -> None:
    """`status -v` reads them from the job's state (no store: works against a remote deployment);
    a job ranked by price (or from before the field) shows what it always did."""
    import io
    from datetime import UTC, datetime

    from rich.console import Console

    from spotctl.cli.render import job_in_full
    from spotctl.models import JobState, JobStatus

    def verbose(state: JobState) -> str:
        out = Console(file=io.StringIO(), width=200, color_system=None)
        out.print(job_in_full(state))
        return out.file.getvalue()

    plain = JobState(job_id=3, name="train", status=JobStatus.RUNNING, submitted_at=datetime.now(UTC))
    lines = figures(rank_within_strategy([A1, B1], BAD, WorkAhead(), strategy="EAGER_NEXT_REGION", last=None,
                                         ordered=False))
    learned = plain.model_copy(update={"placement": lines})
    assert "Placement" not in verbose(plain)
    shown = verbose(learned)
    assert any(line.startswith("Placement ") and line.rstrip().endswith("by expected cost, from the fleet's memory:")
               for line in shown.splitlines()), shown
    assert shown.index("west-1a: no fleet history") < shown.index("east-1a: 4 preemptions in 6 h, spot lifetime ~0.1 h")
    assert verbose(plain) == verbose(JobState.model_validate({k: v for k, v in learned.model_dump().items()
                                                              if k != "placement"}))
