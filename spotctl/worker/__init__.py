"""The worker process (worker side): `spotctl worker` / `python -m spotctl.worker` runs the workflows
and activities with bounded slots per queue (pool.py), and sweeps what no job owns (worker/sweeper.py).
"""

from spotctl.worker.main import EXIT_UNREACHABLE, TemporalUnreachable, exit_now, run_worker
from spotctl.worker.pool import MONITOR_HEARTBEAT_THROTTLE, job_workers, running
from spotctl.worker.sweeper import SweepReport, sweep_once

__all__ = [
    "EXIT_UNREACHABLE",
    "MONITOR_HEARTBEAT_THROTTLE",
    "SweepReport",
    "TemporalUnreachable",
    "exit_now",
    "job_workers",
    "run_worker",
    "running",
    "sweep_once",
]
