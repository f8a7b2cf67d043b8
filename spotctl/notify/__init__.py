"""Status events as the outside sees them (worker side): a webhook's JSON body and an event_callback's
environment, Slack's and Discord's messages (pure), and the cgroup that confines a callback's processes.
"""

from spotctl.notify.chat import chat_body, link_for
from spotctl.notify.payloads import callback_env, one_line, payload

__all__ = [
    "callback_env",
    "chat_body",
    "link_for",
    "one_line",
    "payload",
]
