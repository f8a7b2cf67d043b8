"""Placement: which (cloud, region, zone, instance type) to try, in which order.

Pure functions over catalog offerings, so they are unit-tested without I/O and can run
inside a workflow (e.g. to drop regions blocked after a preemption).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from spotctl.models import Candidate, Offering, ResourceRequest


def _fits_number(have: float, want: float | None, at_least: bool) -> bool:
    if want is None:
        return True
    return have >= want if at_least else abs(have - want) < 1e-9


def _fits_accelerators(have: dict[str, int], want: dict[str, float] | None) -> bool:
    if not want:
        return True
    for name, count in want.items():
        got = next((n for k, n in have.items() if k.lower() == name.lower()), 0)
        # Fractional requests (T4:0.5) share one device; they need at least one.
        if got < max(count, 1e-9) and not (count < 1 and got >= 1):
            return False
    return True


def fits(offering: Offering, req: ResourceRequest) -> bool:
    """Whether an offering satisfies one resource request."""
    if req.cloud and offering.cloud != req.cloud.lower():
        return False
    if req.region and offering.region != req.region:
        return False
    if req.zone and offering.zone != req.zone:
        return False
    if req.instance_type and offering.instance_type != req.instance_type:
        return False
    # An explicit instance type decides cpus/memory; otherwise the request's numbers do.
    if not req.instance_type:
        if req.cpus is not None and not _fits_number(offering.cpus, req.cpus, req.cpus_at_least):
            return False
        if req.memory_gb is not None and not _fits_number(
            offering.memory_gb, req.memory_gb, req.memory_at_least
        ):
            return False
    if not _fits_accelerators(offering.accelerators, req.accelerators):
        return False
    if not req.accelerators and offering.accelerators and not req.instance_type:
        return False  # never hand out a GPU machine to a CPU job
    price = offering.spot_price if req.use_spot else offering.ondemand_price
    return price is not None


def _to_candidate(offering: Offering, req: ResourceRequest) -> Candidate:
    price = offering.spot_price if req.use_spot else offering.ondemand_price
    assert price is not None
    return Candidate(
        cloud=offering.cloud,
        region=offering.region,
        zone=offering.zone,
        instance_type=offering.instance_type,
        use_spot=req.use_spot,
        price=price,
        accelerators=offering.accelerators,
        cpus=offering.cpus,
        memory_gb=offering.memory_gb,
        ondemand_price=offering.ondemand_price,
    )


def rank_candidates(
    offerings: Iterable[Offering],
    requests: Sequence[ResourceRequest],
    *,
    ordered: bool = False,
) -> list[Candidate]:
    """Every offering that fits any request, cheapest first.

    With `ordered` (SkyPilot's `resources.ordered`), the user's order of requests wins and
    price only orders candidates within one request. Duplicates keep their best position.
    """
    offerings = list(offerings)
    ranked: list[tuple[tuple, Candidate]] = []
    for index, req in enumerate(requests or [ResourceRequest()]):
        for offering in offerings:
            if fits(offering, req):
                cand = _to_candidate(offering, req)
                key = ((index,) if ordered else ()) + (cand.price, cand.cloud, cand.region, cand.zone, cand.instance_type)
                ranked.append((key, cand))
    ranked.sort(key=lambda item: item[0])
    seen: set[tuple] = set()
    result: list[Candidate] = []
    for _, cand in ranked:
        ident = (cand.cloud, cand.region, cand.zone, cand.instance_type, cand.use_spot)
        if ident not in seen:
            seen.add(ident)
            result.append(cand)
    return result


def region_key(cloud: str, region: str) -> str:
    """How a region is named when it is blocked: 'cloud/region'."""
    return f"{cloud}/{region}"


def without_blocked(candidates: Sequence[Candidate], blocked_regions: Iterable[str]) -> list[Candidate]:
    """Candidates outside the blocked 'cloud/region' keys, order kept."""
    blocked = set(blocked_regions)
    return [c for c in candidates if region_key(c.cloud, c.region) not in blocked]


def repriced(candidates: Sequence[Candidate], live: dict[tuple[str, str, str, str], float],
             ordered: bool = False) -> list[Candidate]:
    """Spot candidates with the live price of their (cloud, region, zone, type) where one is
    known, cheapest first (equal prices keep their order), or in the same order when the user
    ordered them. Spot prices move by the hour; the ranking made at launch may be days old."""
    out = [c.model_copy(update={"price": live[key]}) if c.use_spot and (key := (c.cloud, c.region, c.zone,
                                                                                  c.instance_type)) in live else c
           for c in candidates]
    return out if ordered else sorted(out, key=lambda c: c.price)
