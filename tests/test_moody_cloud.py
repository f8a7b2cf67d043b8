"""The local cloud's moods: boot delay, API latency, throttling, hangs, a concurrency cap, and
`create`'s idempotency by token. Rates are 0 or 1 so every outcome is deterministic."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from spotctl.activities.cloud_calls import patient_call
from spotctl.clouds.base import CloudError, ErrorKind, ErrorScope, InstanceState, NoCapacity, Throttled
from spotctl.clouds.local import LocalCloud
from spotctl.models import Candidate
from spotctl.remote.base import NodeUnreachable

from conftest import SetMood


def cand(region: str = "local-east", zone: str | None = None, itype: str = "local.small") -> Candidate:
    return Candidate(
        cloud="local", region=region, zone=zone or f"{region}-1a", instance_type=itype, use_spot=True, price=0.01
    )



def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.monotonic()
    result = fn()
    return time.monotonic() - t0, result


def test_defaults_are_calm(cloud: LocalCloud) -> None:
    region = cloud.config().regions["local-east"]
    assert region.provision_delay_s == 0 and region.api_latency_s == 0 and region.throttle_rate == 0
    assert region.api_hang_rate == 0 and region.api_hang_calls is None and region.max_concurrent_api_calls is None
    h = cloud.create("c", cand(), 1, token="t")
    assert cloud.instance_states(h.instance_ids) == {h.instance_ids[0]: InstanceState.RUNNING}


def test_provision_delay_boots_pending_then_running(cloud: LocalCloud, mood: SetMood) -> None:
    mood("local-east", provision_delay_s=1.0)
    t0 = time.monotonic()
    h = cloud.create("booting", cand(), 1, token="tok-boot")
    assert time.monotonic() - t0 < 0.5  # create returns at once
    iid = h.instance_ids[0]
    assert cloud.instance_states([iid]) == {iid: InstanceState.PENDING}
    runner = cloud.runner(h, 0)
    with pytest.raises(NodeUnreachable, match="booting"):
        runner.run(["true"])
    with pytest.raises(NodeUnreachable, match="booting"):
        runner.write_file("~/x", b"x")
    with pytest.raises(NodeUnreachable, match="booting"):
        runner.read_file("~/x")
    while cloud.instance_states([iid])[iid] == InstanceState.PENDING:
        assert time.monotonic() - t0 < 5, "never booted"
        time.sleep(0.05)
    assert time.monotonic() - t0 >= 1.0
    assert cloud.instance_states([iid]) == {iid: InstanceState.RUNNING}
    assert runner.run(["echo", "up"]).stdout.strip() == "up"
    west = cloud.create("west", cand("local-west"), 1, token="tok-west").instance_ids  # no delay there
    assert cloud.instance_states(west) == {west[0]: InstanceState.RUNNING}


def test_pending_holds_capacity(cloud: LocalCloud, mood: SetMood) -> None:
    mood("local-east", provision_delay_s=30, capacity=1)
    cloud.create("a", cand(), 1, token="a")
    with pytest.raises(NoCapacity, match=r"\(1/1 in use\)"):
        cloud.create("b", cand(), 1, token="b")


def test_latency_is_added_to_calls_of_the_region(cloud: LocalCloud, mood: SetMood) -> None:
    """A call pays the latency of the regions it touches, and only those. Bounds are half the
    latency apart, not a tight time: a busy CI machine may take a few hundred ms for a call."""
    east = cloud.provision("east", cand(), 1).instance_ids
    west = cloud.provision("west", cand("local-west"), 1).instance_ids
    mood("local-east", api_latency_s=1.0)
    slow, states = timed(lambda: cloud.instance_states(east))
    fast, _ = timed(lambda: cloud.instance_states(west))
    assert states == {east[0]: InstanceState.RUNNING}
    assert slow >= 1.0 and fast < 0.5
    mixed, _ = timed(lambda: cloud.instance_states(east + west))  # the worst region counts
    assert mixed >= 1.0
    unknown, _ = timed(lambda: cloud.tagged_instances())  # no region: the worst of all
    assert unknown >= 1.0
    listed, _ = timed(lambda: cloud.list_instances())  # the debugging helpers stay prompt
    assert listed < 0.5


def test_throttled_call_does_nothing(cloud: LocalCloud, mood: SetMood) -> None:
    mood("local-east", throttle_rate=1.0)
    with pytest.raises(Throttled, match="RequestLimitExceeded") as info:
        cloud.create("t", cand(), 1, token="tok-t")
    assert info.value.kind == ErrorKind.THROTTLED and info.value.retryable
    assert cloud.list_instances(alive_only=False) == []
    assert cloud.create("w", cand("local-west"), 1, token="tok-w").region == "local-west"  # other regions calm


def test_hang_fails_late_and_does_nothing(cloud: LocalCloud, mood: SetMood) -> None:
    mood("local-east", api_hang_s=0.5, api_hang_rate=1.0)
    t0 = time.monotonic()
    with pytest.raises(CloudError, match=r"timed out after 0.5s \(simulated hang\)") as info:
        cloud.create("h", cand(), 1, token="tok-h")
    assert time.monotonic() - t0 >= 0.5 and info.value.kind == ErrorKind.UNAVAILABLE and info.value.retryable
    assert cloud.list_instances(alive_only=False) == []


def test_hang_calls_restricts_the_hang(cloud: LocalCloud, mood: SetMood) -> None:
    mood("local-east", api_hang_s=0.3, api_hang_rate=1.0, api_hang_calls=["terminate"])
    h = cloud.create("h", cand(), 1, token="tok-h")
    assert cloud.instance_states(h.instance_ids) == {h.instance_ids[0]: InstanceState.RUNNING}
    t0 = time.monotonic()
    with pytest.raises(CloudError, match="simulated hang"):
        cloud.terminate(h.instance_ids)
    assert time.monotonic() - t0 >= 0.3
    assert cloud.instance_states(h.instance_ids) == {h.instance_ids[0]: InstanceState.RUNNING}


def test_bad_hang_call_name_is_a_config_error(cloud: LocalCloud, mood: SetMood) -> None:
    mood("local-east", api_hang_calls=["provison"])
    with pytest.raises(CloudError, match="regions.local-east.api_hang_calls"):
        cloud.config()


def test_concurrency_cap_throttles_the_extra_calls(cloud: LocalCloud, mood: SetMood) -> None:
    ids = cloud.provision("c", cand(), 1).instance_ids
    cap = 3
    mood("local-east", max_concurrent_api_calls=cap, api_latency_s=1.2)
    start = threading.Barrier(cap + 2)
    outcomes: list[tuple[str, float]] = []

    def call() -> None:
        start.wait()
        t0 = time.monotonic()
        try:
            cloud.instance_states(ids)
            outcomes.append(("ok", time.monotonic() - t0))
        except Throttled:
            outcomes.append(("throttled", time.monotonic() - t0))

    threads = [threading.Thread(target=call) for _ in range(cap + 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert sorted(o for o, _ in outcomes) == ["ok"] * cap + ["throttled"] * 2
    assert all(took < 0.6 for o, took in outcomes if o == "throttled")  # refused at once, not after 1.2 s
    cloud.instance_states(ids)  # the slots are free again


def test_create_is_idempotent_by_token(cloud: LocalCloud) -> None:
    first = cloud.create("spotctl-1-1", cand(), 1, token="job-1-attempt-1")
    again = cloud.create("spotctl-1-1", cand("local-west"), 1, token="job-1-attempt-1")
    assert again.instance_ids == first.instance_ids and again.region == "local-east"
    assert len(cloud.list_instances(alive_only=False)) == 1
    cloud.terminate(first.instance_ids)
    gone = cloud.create("spotctl-1-1", cand(), 1, token="job-1-attempt-1")  # like AWS ClientToken
    assert gone.instance_ids == first.instance_ids
    assert cloud.instance_states(gone.instance_ids) == {first.instance_ids[0]: InstanceState.TERMINATED}
    other = cloud.create("spotctl-1-1", cand(), 1, token="job-1-attempt-1-retry")
    assert other.instance_ids != first.instance_ids
    assert len(cloud.list_instances(alive_only=False)) == 2


def test_tagged_instances_lists_the_unterminated(cloud: LocalCloud) -> None:
    a = cloud.create("spotctl-5-1", cand(), 2, token="a")
    b = cloud.create("spotctl-6-1", cand("local-west"), 1, token="b")
    cloud.terminate(b.instance_ids)
    tagged = cloud.tagged_instances()
    assert sorted(t.id for t in tagged) == sorted(a.instance_ids)
    assert {(t.cluster_name, t.region, t.state) for t in tagged} == {
        ("spotctl-5-1", "local-east", InstanceState.RUNNING)
    }
    assert all(time.time() - t.created_at.timestamp() < 30 for t in tagged)


def test_error_kinds_and_scopes(cloud: LocalCloud, mood: SetMood) -> None:
    cases = [
        (cand("mars"), "no region", ErrorScope.REGION),
        (cand(zone="local-west-1a"), "no zone", ErrorScope.ZONE),
        (cand(itype="p5.48xlarge"), "no instance type", ErrorScope.ZONE),
    ]
    for candidate, message, scope in cases:
        with pytest.raises(CloudError, match=message) as info:
            cloud.create("x", candidate, 1, token="x")
        assert (info.value.kind, info.value.scope, info.value.retryable) == (ErrorKind.INVALID, scope, False)
    mood("local-east", capacity=0)
    with pytest.raises(NoCapacity, match="no capacity in local-east") as full:
        cloud.create("x", cand(), 1, token="x")
    assert (full.value.kind, full.value.scope, full.value.retryable) == (ErrorKind.CAPACITY, ErrorScope.REGION, True)
    assert cloud.list_instances(alive_only=False) == []


async def test_idempotent_calls_ride_out_throttling_in_place(cloud: LocalCloud) -> None:
    """A terminate answered "slow down" three times still goes through within one activity
    try (before, one throttled call failed the whole teardown, and Temporal's backoff kept a
    finished job RUNNING for minutes)."""
    h = cloud.create("c", cand(), 1, token="t")
    answers = iter([Throttled("RequestLimitExceeded"), Throttled("RequestLimitExceeded"),
                    Throttled("RequestLimitExceeded")])

    def busy_terminate(ids: list[str]) -> None:
        error = next(answers, None)
        if error is not None:
            raise error
        cloud.terminate(ids)

    await patient_call(busy_terminate, h.instance_ids)
    assert not cloud.instance_states(h.instance_ids)[h.instance_ids[0]].is_alive
