"""The job-aware web dashboard (`spotctl dashboard`; CLI side): a jobs page (status's table, live,
with filters), a page per job (a timeline of its attempts by place, cost against on-demand over
time, deadline and slack, log tail, a link to its workflow in the Temporal UI) and a fleet page
(spend, preemptions and capacity failures by zone, pools). Starlette served by uvicorn; the chart
library (Chart.js) is vendored in static/vendor/, so a page loads nothing from outside the server.
It reads through spotctl.client and spotctl.fleet only. See docs/dashboard.md.
"""

from spotctl.config import SETTINGS
from spotctl.dashboard.app import MAX_ROWS, create_app
from spotctl.dashboard.reads import Reader
from spotctl.dashboard.serve import bind, is_loopback, serve, url_of

DEFAULT_DASHBOARD_PORT: int = next(s.default for s in SETTINGS if s.env == "SPOTCTL_DASHBOARD_PORT")
"""SPOTCTL_DASHBOARD_PORT's default (config/table.py)."""

__all__ = ["DEFAULT_DASHBOARD_PORT", "MAX_ROWS", "Reader", "bind", "create_app", "is_loopback", "serve", "url_of"]
