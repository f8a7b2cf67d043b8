"""Policy is pure: placement order, backoff, and what an exit code means."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spotctl.models import Offering, RecoveryConfig, ResourceRequest
from spotctl.policy import Backoff, Decision, after_exit, rank_candidates, without_blocked

pytestmark = pytest.mark.quick  # `pytest -m quick`: the fast loop (README, Tests)


def offer(region: str, itype: str, cpus: float, spot: float, acc: dict | None = None, cloud: str = "local") -> Offering:
    return Offering(cloud=cloud, region=region, zone=f"{region}-a", instance_type=itype, cpus=cpus,
                    memory_gb=cpus * 4, accelerators=acc or {}, spot_price=spot, ondemand_price=spot * 4)


OFFERS = [
    offer("west", "small", 1, 0.011),
    offer("east", "small", 1, 0.010),
    offer("east", "big", 4, 0.040),
    offer("east", "gpu", 4, 0.120, {"T4": 1}),
    offer("eu", "gpu", 4, 0.100, {"T4": 1}),
]


def test_cheapest_first_and_cpu_jobs_never_get_gpus() -> None:
    cands = rank_candidates(OFFERS, [ResourceRequest()])
    assert [(c.region, c.instance_type) for c in cands] == [("east", "small"), ("west", "small"), ("east", "big")]


def test_cpus_at_least_and_exact() -> None:
    assert [c.instance_type for c in rank_candidates(OFFERS, [ResourceRequest(cpus=2, cpus_at_least=True)])] == ["big"]
    assert rank_candidates(OFFERS, [ResourceRequest(cpus=2)]) == []


def test_accelerators_and_fractions() -> None:
    cands = rank_candidates(OFFERS, [ResourceRequest(accelerators={"T4": 1})])
    assert [c.region for c in cands] == ["eu", "east"]
    assert len(rank_candidates(OFFERS, [ResourceRequest(accelerators={"t4": 0.5})])) == 2
    assert rank_candidates(OFFERS, [ResourceRequest(accelerators={"T4": 2})]) == []


def test_region_cloud_and_on_demand_prices() -> None:
    cands = rank_candidates(OFFERS, [ResourceRequest(region="west", use_spot=False)])
    assert [(c.region, c.price, c.use_spot) for c in cands] == [("west", 0.044, False)]
    assert rank_candidates(OFFERS, [ResourceRequest(cloud="aws")]) == []


def test_ordered_keeps_the_users_order() -> None:
    reqs = [ResourceRequest(instance_type="big"), ResourceRequest(instance_type="small")]
    assert [c.instance_type for c in rank_candidates(OFFERS, reqs, ordered=True)] == ["big", "small", "small"]
    assert [c.instance_type for c in rank_candidates(OFFERS, reqs, ordered=False)] == ["small", "small", "big"]


def test_blocked_regions_are_left_out() -> None:
    cands = rank_candidates(OFFERS, [ResourceRequest()])
    assert [c.region for c in without_blocked(cands, {"local/east"})] == ["west"]


@given(st.integers(min_value=0, max_value=50), st.floats(min_value=0, max_value=0.999))
def test_backoff_grows_and_is_capped(retry: int, jitter: float) -> None:
    b = Backoff(initial_s=10, factor=1.6, max_s=300, jitter_fraction=0.2)
    delay = b.delay(retry, jitter)
    assert 0 < delay <= 300 * 1.2
    assert b.delay(retry, 0.5) <= b.delay(retry + 1, 0.5) or b.delay(retry, 0.5) == 300


def test_exit_code_decisions_follow_skypilot() -> None:
    none = RecoveryConfig()
    assert after_exit(0, none, 0) == Decision.SUCCEED
    assert after_exit(1, none, 0) == Decision.FAIL
    two = RecoveryConfig(max_restarts_on_errors=2)
    assert [after_exit(1, two, used) for used in range(3)] == [Decision.RESTART, Decision.RESTART, Decision.FAIL]
    codes = RecoveryConfig(recover_on_exit_codes=[33])
    assert after_exit(33, codes, 99) == Decision.RESTART
    assert after_exit(34, codes, 0) == Decision.FAIL


def test_a_failure_rules_out_its_scope_for_the_rest_of_the_scan() -> None:
    from spotctl.models import Candidate, CandidateFailure, ErrorKind, ErrorScope
    from spotctl.policy import Blocklist, skipped

    def c(cloud: str, region: str, zone: str, itype: str = "t1") -> Candidate:
        return Candidate(cloud=cloud, region=region, zone=zone, instance_type=itype, use_spot=True, price=1)

    def fail(cand: Candidate, scope: ErrorScope, kind: ErrorKind = ErrorKind.CAPACITY) -> CandidateFailure:
        return CandidateFailure(location=cand.location, instance_type=cand.instance_type, reason="x",
                                kind=kind, scope=scope)

    zone_a, zone_a_other_type, zone_b = c("aws", "us", "us-a"), c("aws", "us", "us-a", "t2"), c("aws", "us", "us-b")
    other_region, other_cloud = c("aws", "eu", "eu-a"), c("gcp", "us", "us-a")
    blocks = Blocklist()
    blocks.add(zone_a, fail(zone_a, ErrorScope.ZONE))
    assert blocks.why_blocked(zone_a) and not blocks.why_blocked(zone_a_other_type) and not blocks.why_blocked(zone_b)
    blocks.add(zone_b, fail(zone_b, ErrorScope.REGION, ErrorKind.QUOTA))
    assert blocks.why_blocked(zone_a_other_type).kind == ErrorKind.QUOTA and not blocks.why_blocked(other_region)
    blocks.add(other_region, fail(other_region, ErrorScope.CLOUD, ErrorKind.THROTTLED))
    assert blocks.why_blocked(c("aws", "ap", "ap-a")) and not blocks.why_blocked(other_cloud)
    blocks.add(other_cloud, fail(other_cloud, ErrorScope.REQUEST, ErrorKind.INVALID))
    assert blocks.why_blocked(c("azure", "x", "y")).scope == ErrorScope.REQUEST
    note = skipped(zone_a_other_type, blocks.why_blocked(zone_a_other_type))
    assert note.reason.startswith("skipped: quota at region") and note.kind == ErrorKind.QUOTA


def test_what_a_create_error_means() -> None:
    from spotctl.models import CandidateFailure, ErrorKind
    from spotctl.policy import OnError, all_fatal, in_place_delay, on_create_error

    assert on_create_error(ErrorKind.THROTTLED) == OnError.RETRY_THEN_RECORD
    assert on_create_error(ErrorKind.UNAVAILABLE) == OnError.RETRY_THEN_RAISE  # it may have made a VM
    for kind in (ErrorKind.CAPACITY, ErrorKind.QUOTA, ErrorKind.PRICE, ErrorKind.INVALID):
        assert on_create_error(kind) == OnError.RECORD
    assert [in_place_delay(n) for n in range(6)] == [0.5, 1, 2, 4, 8, 8]

    def f(fatal: bool) -> CandidateFailure:
        return CandidateFailure(location="a/b/c", instance_type="t", reason="r", fatal=fatal)

    assert all_fatal([f(True), f(True)]) and not all_fatal([f(True), f(False)]) and not all_fatal([])


def test_live_spot_prices_rerank_the_candidates() -> None:
    from spotctl.models import Candidate
    from spotctl.policy import repriced

    def c(zone: str, price: float, spot: bool = True) -> Candidate:
        return Candidate(cloud="aws", region=zone[:-1], zone=zone, instance_type="g5.xlarge", use_spot=spot, price=price)

    launch_day = [c("us-east-1a", 0.30), c("us-east-1b", 0.31), c("us-west-2a", 0.40), c("eu-west-1a", 0.50, spot=False)]
    now = {("aws", "us-east-1", "us-east-1a", "g5.xlarge"): 0.90, ("aws", "us-west-2", "us-west-2a", "g5.xlarge"): 0.20,
           ("aws", "eu-west-1", "eu-west-1a", "g5.xlarge"): 0.01}  # on-demand: a spot price does not apply
    ranked = repriced(launch_day, now)
    assert [(x.zone, x.price) for x in ranked] == [("us-west-2a", 0.20), ("us-east-1b", 0.31), ("eu-west-1a", 0.50),
                                                   ("us-east-1a", 0.90)]
    kept = repriced(launch_day, now, ordered=True)  # the user's order wins; prices are still today's
    assert [(x.zone, x.price) for x in kept] == [("us-east-1a", 0.90), ("us-east-1b", 0.31), ("us-west-2a", 0.20),
                                                 ("eu-west-1a", 0.50)]
    assert repriced(launch_day, {}) == launch_day  # no live prices (the local cloud): nothing moves
