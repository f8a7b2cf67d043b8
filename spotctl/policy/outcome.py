"""What a finished attempt means for the job: done, failed, or try again.

SkyPilot's rules: exit 0 succeeds; a non-zero exit restarts the job while
`max_restarts_on_errors` allows, or always when the code is in `recover_on_exit_codes`
(those do not use up the restart budget); otherwise the job is FAILED.
"""

from __future__ import annotations

from enum import Enum

from spotctl.models import RecoveryConfig


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
