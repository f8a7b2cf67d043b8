"""Activities (worker side): thin, idempotent adapters over clouds/, remote/, storage/ and notify/.
No policy here: each does one step a workflow asks for and reports what it saw.
"""

from __future__ import annotations

from collections.abc import Callable

from spotctl.activities.deps import Deps
from spotctl.activities.fleet import FleetActivities
from spotctl.activities.job_array import ArrayActivities
from spotctl.activities.job_end import ask_canceled_end
from spotctl.activities.monitor import MonitorActivities
from spotctl.activities.notify import NotifyActivities
from spotctl.activities.pool_probe import PoolActivities
from spotctl.activities.pricing import PricingActivities
from spotctl.activities.provision import ProvisionActivities
from spotctl.activities.run import RunActivities
from spotctl.activities.setup import SetupActivities
from spotctl.activities.teardown import TeardownActivities


def all_activities(deps: Deps) -> list[Callable]:
    """Every activity callable, bound to the worker's dependencies."""
    return [
        ProvisionActivities(deps).provision,
        ProvisionActivities(deps).create_cluster,
        ProvisionActivities(deps).wait_cluster_ready,
        SetupActivities(deps).setup,
        RunActivities(deps).start_run,
        RunActivities(deps).stop_run,
        MonitorActivities(deps).monitor,
        TeardownActivities(deps).teardown,
        PricingActivities(deps).price_candidates,
        NotifyActivities(deps).deliver_webhook,
        NotifyActivities(deps).deliver_chat,
        NotifyActivities(deps).run_event_callback,
        FleetActivities(deps).fleet_outlooks,
        ArrayActivities(deps).start_array_jobs,
        ArrayActivities(deps).end_array,
        PoolActivities(deps).dead_workers,
        ask_canceled_end,
    ]
