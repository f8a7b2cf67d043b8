"""What a failed cloud call means for the provisioning scan, and what it rules out.

Pure: the provision activity asks these functions, so the rules are unit-tested without a
cloud. They follow SkyPilot's blocklist: a failure has a kind (capacity, quota, price,
throttled, unavailable, invalid) and a scope (zone, region, cloud, request), and the scope
says which other candidates the same failure rules out for the rest of the scan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

from spotctl.models import Candidate, CandidateFailure, ErrorKind, ErrorScope


class OnError(str, Enum):
    RECORD = "record"
    """Note the failure, rule out its scope, go on with the next candidate."""
    RETRY_THEN_RECORD = "retry_then_record"
    """Try the same candidate again a few times (the cloud said "later"), then record."""
    RETRY_THEN_RAISE = "retry_then_raise"
    """Try the same candidate again; if the answer stays unknown, fail the activity so
    Temporal retries it. A call that timed out may have made a VM: moving on to another
    region with the same token could make a second one there."""


IN_PLACE_TRIES = 4
"""How often one candidate is asked in a row after a throttled or unknown answer."""


def on_create_error(kind: ErrorKind) -> OnError:
    if kind == ErrorKind.THROTTLED:
        return OnError.RETRY_THEN_RECORD
    if kind == ErrorKind.UNAVAILABLE:
        return OnError.RETRY_THEN_RAISE
    return OnError.RECORD


def in_place_delay(tries: int) -> float:
    """Seconds before asking the same candidate again (0.5, 1, 2, ... capped at 8)."""
    return min(0.5 * 2**tries, 8.0)


def is_fatal(kind: ErrorKind) -> bool:
    """Retrying later cannot help: the request is invalid where it was made."""
    return kind == ErrorKind.INVALID


def _key(cand: Candidate, scope: ErrorScope) -> tuple:
    if scope == ErrorScope.ZONE:
        return (cand.cloud, cand.region, cand.zone, cand.instance_type)
    if scope == ErrorScope.REGION:
        return (cand.cloud, cand.region)
    if scope == ErrorScope.CLOUD:
        return (cand.cloud,)
    return ()


@dataclass
class Blocklist:
    """The scopes ruled out during one scan of the candidates, with the failure that did it."""

    _blocked: dict[tuple, CandidateFailure] = field(default_factory=dict)

    def add(self, cand: Candidate, failure: CandidateFailure) -> None:
        self._blocked.setdefault(_key(cand, failure.scope), failure)

    def why_blocked(self, cand: Candidate) -> CandidateFailure | None:
        """The earlier failure that rules this candidate out, if any."""
        for scope in ErrorScope:
            hit = self._blocked.get(_key(cand, scope))
            if hit is not None:
                return hit
        return None


def skipped(cand: Candidate, because: CandidateFailure) -> CandidateFailure:
    """The record of a candidate that was not asked because `because` ruled it out."""
    return CandidateFailure(
        location=cand.location, instance_type=cand.instance_type, kind=because.kind, scope=because.scope,
        fatal=because.fatal, reason=f"skipped: {because.kind.value} at {because.scope.value} {because.location}",
    )


def all_fatal(failures: Sequence[CandidateFailure]) -> bool:
    """No candidate can ever be provisioned: the job fails its prechecks instead of waiting."""
    return bool(failures) and all(f.fatal for f in failures)
