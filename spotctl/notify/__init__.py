"""Status events as the outside sees them (worker side): a webhook's JSON body and an event_callback's
environment (pure), and the cgroup that confines a callback's processes.
"""

from spotctl.notify.payloads import callback_env, one_line, payload

__all__ = [
    "callback_env",
    "one_line",
    "payload",
]
