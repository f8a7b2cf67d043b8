"""The failure taxonomy: what a failed cloud call means and how far it reaches, and the
named activity errors that end an attempt (everything else is retried forever).
"""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel


class ErrorKind(str, Enum):
    """What a failed cloud call means (see clouds/base.py CloudError and policy/failures.py)."""

    CAPACITY = "capacity"
    """No capacity there now; another place or a later try may have some."""
    QUOTA = "quota"
    """The account's limit is reached there."""
    PRICE = "price"
    """The spot price is above what the request allows."""
    THROTTLED = "throttled"
    """The cloud said "retry later" (rate limit, too many concurrent calls)."""
    UNAVAILABLE = "unavailable"
    """The call failed or timed out for a reason of the moment (network, 5xx)."""
    INVALID = "invalid"
    """The request can never succeed there (unknown type or region, no credentials)."""


class ErrorScope(str, Enum):
    """How far a failure reaches: the candidate's zone, its region, its whole cloud, or the
    whole request."""

    ZONE = "zone"
    REGION = "region"
    CLOUD = "cloud"
    REQUEST = "request"


class CandidateFailure(BaseModel):
    """Why one candidate could not be provisioned (capacity, quota, price ...)."""

    location: str
    instance_type: str
    reason: str
    fatal: bool = False
    """Retrying cannot help (no credentials, unknown cloud, broken configuration)."""
    kind: ErrorKind = ErrorKind.CAPACITY
    scope: ErrorScope = ErrorScope.ZONE


MOUNT_ERROR = "MountError"
"""ApplicationError type raised by setup when the job's file mounts cannot be made."""


PREEMPTED_ERROR = "Preempted"
"""ApplicationError type raised by setup/monitor when the cloud says an instance is gone."""


NOT_READY_ERROR = "ClusterNotReady"
"""ApplicationError type raised by wait_cluster_ready when the cloud never ran the instances
in time: the cluster is torn down and the next placement tried."""


NODE_FAILURE_ERROR = "NodeFailure"
"""ApplicationError type (non-retryable) raised by setup/monitor when spotctl's own machinery
on a live node lost the phase (its processes were killed, no exit code was recorded): the
attempt is recovered like a preemption, without using the restart budget, and no exit code
is reported."""


WEBHOOK_REJECTED_ERROR = "WebhookRejected"
"""ApplicationError type (non-retryable) of deliver_webhook when the receiver refuses an event
for good (a 4xx other than 408/429, a redirect, a URL that is not http(s)): the event is dropped."""


CHAT_REJECTED_ERROR = "ChatRejected"
"""ApplicationError type (non-retryable) of deliver_chat when Slack or Discord refuses an event
for good (a 4xx other than 408/429: a deleted webhook's 404, a bad payload's 400): the event is
dropped for that target, named in the worker's log; the job goes on."""


JOB_ENDING_ERRORS = (PREEMPTED_ERROR, MOUNT_ERROR, NOT_READY_ERROR)
"""The only activity error types that are not retried: each is a decision for the workflow.
Everything else (a worker redeploy, a heartbeat time-out, a stray OSError, a cloud that
throttles) is an infrastructure failure, retried forever."""
