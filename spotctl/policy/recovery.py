"""Recovery strategies: where to relaunch after a preemption. Pure, so workflows can use them.

- EAGER_NEXT_REGION (default): the preempted region is blocked for a while and the next launch
  goes elsewhere at once (SkyPilot's #10021: it never really excluded the region).
- FAILOVER: try the same zone, then the same region, then the rest (cheapest first within each).
- NONE: a preemption fails the job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from spotctl.models import Candidate
from spotctl.policy.placement import region_key, without_blocked

STRATEGIES = ("EAGER_NEXT_REGION", "FAILOVER", "NONE")
BLOCK_FOR = timedelta(minutes=30)
"""How long a preempted region stays blocked under EAGER_NEXT_REGION."""


def block_region(blocked: Mapping[str, datetime], cloud: str, region: str, now: datetime) -> dict[str, datetime]:
    """A new blocked-regions map with (cloud, region) blocked until now + BLOCK_FOR."""
    updated = {k: v for k, v in blocked.items() if v > now}
    updated[region_key(cloud, region)] = now + BLOCK_FOR
    return updated


def order_candidates(
    candidates: Sequence[Candidate],
    *,
    strategy: str,
    blocked: Mapping[str, datetime],
    now: datetime,
    last: tuple[str, str, str] | None = None,
) -> list[Candidate]:
    """The candidates to try next, in order.

    `last` is the (cloud, region, zone) of the attempt that was just preempted, if any.
    Blocked regions are left out while their block lasts; if that leaves nothing, every
    candidate is tried again (waiting for a blocked region beats waiting for nothing).
    """
    active = {k for k, until in blocked.items() if until > now}
    allowed = without_blocked(candidates, active) or list(candidates)
    if strategy.upper() == "FAILOVER" and last is not None:
        cloud, region, zone = last

        def rank(c: Candidate) -> int:
            if (c.cloud, c.region, c.zone) == (cloud, region, zone):
                return 0
            return 1 if (c.cloud, c.region) == (cloud, region) else 2

        return sorted(allowed, key=rank)  # stable: price order kept within each rank
    return allowed
