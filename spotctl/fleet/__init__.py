"""The fleet's memory (shared: written by the workers' activities, read by them before each
placement and by the CLI for `launch --dry-run`): what each place (cloud, zone, instance
type, market) did recently, kept in one SQLite file in the state dir (`fleet.path`). It is
advice: a store that cannot be read or written is logged and placement goes on by price.
Not a workflow: it never shows in the jobs list or the Temporal UI. See docs/placement.md.
"""

from spotctl.fleet.store import (
    HORIZON,
    MAX_EVENTS,
    MAX_PER_PLACE,
    Entry,
    FleetStore,
    FleetStoreError,
    open_fleet,
)

__all__ = ["HORIZON", "MAX_EVENTS", "MAX_PER_PLACE", "Entry", "FleetStore", "FleetStoreError", "open_fleet"]
