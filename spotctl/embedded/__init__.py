"""The embedded deployment (CLI side): `temporal server start-dev` plus a worker, kept running by a
supervisor (`python -m spotctl.embedded.supervisor`, not re-exported here), one per state dir;
its lock, its process files, the nftables guard of its ports, the state dir's disk check.
"""

from spotctl.embedded.disk_space import low_space_note
from spotctl.embedded.procs import cmdline, temporal_binary, worker_env
from spotctl.embedded.server import EmbeddedServer, ServerError

__all__ = [
    "EmbeddedServer",
    "ServerError",
    "cmdline",
    "low_space_note",
    "temporal_binary",
    "worker_env",
]
