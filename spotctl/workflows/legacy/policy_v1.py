"""FROZEN copies of the policy/ decisions the first controller takes (controller_v1.py).

Why a copy: replay checks a workflow's commands, not their arguments. While controller_v1
called spotctl.policy, an edit there (a longer backoff, another candidate order, a new
restart rule) would silently change what jobs started under it do next, and no recorded
history would notice. These are the bodies as they were when the controller was frozen
(spotctl/policy/backoff.py, outcome.py, recovery.py, placement.py). Do not edit them, and do
not import them from live code: change spotctl/policy/ instead. Deleted with the rest of
workflows/legacy/ (its README.md). Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from spotctl.models import Candidate, RecoveryConfig

# ---- backoff (policy/backoff.py) -------------------------------------------------------


@dataclass(frozen=True)
class Backoff:
    initial_s: float = 10.0
    factor: float = 1.6
    max_s: float = 300.0
    jitter_fraction: float = 0.2

    def delay(self, retry: int, jitter: float = 0.5) -> float:
        """Seconds to wait before retry number `retry` (0-based). `jitter` is uniform in [0, 1)."""
        base = min(self.initial_s * (self.factor**retry), self.max_s)
        spread = base * self.jitter_fraction
        return max(0.0, base - spread + 2 * spread * jitter)


# ---- what an exit means (policy/outcome.py) --------------------------------------------


class Decision(str, Enum):
    SUCCEED = "succeed"
    RESTART = "restart"
    FAIL = "fail"


def after_exit(exit_code: int, recovery: RecoveryConfig, restarts_on_errors_used: int) -> Decision:
    """Decide what to do when the user's program exited with `exit_code`."""
    if exit_code == 0:
        return Decision.SUCCEED
    if exit_code in recovery.recover_on_exit_codes:
        return Decision.RESTART
    if restarts_on_errors_used < recovery.max_restarts_on_errors:
        return Decision.RESTART
    return Decision.FAIL


def uses_restart_budget(exit_code: int, recovery: RecoveryConfig) -> bool:
    """Whether restarting after this exit counts against max_restarts_on_errors."""
    return exit_code not in recovery.recover_on_exit_codes


# ---- where to relaunch (policy/recovery.py, policy/placement.py) -----------------------

BLOCK_FOR = timedelta(minutes=30)
"""How long a preempted region stays blocked under EAGER_NEXT_REGION."""


def region_key(cloud: str, region: str) -> str:
    """How a region is named when it is blocked: 'cloud/region'."""
    return f"{cloud}/{region}"


def without_blocked(candidates: Sequence[Candidate], blocked_regions: Iterable[str]) -> list[Candidate]:
    """Candidates outside the blocked 'cloud/region' keys, order kept."""
    blocked = set(blocked_regions)
    return [c for c in candidates if region_key(c.cloud, c.region) not in blocked]


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
