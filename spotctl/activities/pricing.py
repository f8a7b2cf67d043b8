"""price_candidates: the job's candidates re-priced with live spot prices before a recovery.

The ranking made at launch used the prices of that day; a job that runs for weeks recovers
into whatever is cheapest now. One `spot_prices` call per candidate region (each cloud caches
them for minutes). A cloud that does not answer keeps its old prices: a price lookup must
never hold up a recovery.
"""

from __future__ import annotations

from temporalio import activity

from spotctl.activities.cloud_calls import cloud_call
from spotctl.activities.deps import Deps
from spotctl.activities.heartbeat import heartbeating
from spotctl.clouds.base import CloudError
from spotctl.models import ActivityNames, PricedCandidates, PriceRequest
from spotctl.policy import repriced


class PricingActivities:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def _live_prices(self, req: PriceRequest) -> dict[tuple[str, str, str, str], float]:
        live: dict[tuple[str, str, str, str], float] = {}
        for cloud_name, region in sorted({(c.cloud, c.region) for c in req.candidates if c.use_spot}):
            try:
                cloud = self.deps.cloud(cloud_name)
                prices = await cloud_call(cloud.spot_prices, region)
            except CloudError as exc:
                activity.logger.warning("live spot prices of %s/%s: %s (keeping the old ones)", cloud_name, region, exc)
                continue
            live.update({(cloud_name, region, zone, itype): price for (zone, itype), price in prices.items()})
        return live

    @activity.defn(name=ActivityNames.PRICE_CANDIDATES)
    async def price_candidates(self, req: PriceRequest) -> PricedCandidates:
        """The candidates with live spot prices, cheapest first (or in the user's order)."""
        async with heartbeating() as progress:
            progress(f"looking up spot prices in {len({(c.cloud, c.region) for c in req.candidates})} regions")
            return PricedCandidates(candidates=repriced(req.candidates, await self._live_prices(req), req.ordered))
