"""Renewing the short-lived bucket credentials of a job's nodes while a phase runs.

A node's sync.json carries credentials that reach only its job's bucket prefixes and expire
(an hour by default: mounts.py, clouds/aws_node_creds.py), so a VM never holds a key that
outlives its need. The agent on the VM cannot ask for new ones (it must hold nothing that
could), so the worker watching a phase rewrites sync.json with fresh ones at about half of
their remaining life; the agent's bucket clients re-read the file as theirs near expiry.

When `run` has ended on every node, the watcher deletes sync.json once more (`forget`): the agent
deletes it as the phase ends, but a renewal written just before the watcher saw that end would
outlive the attempt (a retried watch, after a worker crash, deletes it too).

The first check of a watch renews at once: a watch retried after a worker crash does not
know when the file was written. Issuers cache what they issued while more than half its
life is left, so that check costs a file write, not an STS call. A renewal that fails (a
node unreachable, STS slow or refusing) is logged and tried again a minute later; the phase
keeps running on what it has.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import math
import time

from temporalio import activity

from spotctl.activities.deps import Deps
from spotctl.activities.mounts import MOUNT_MODES, SYNC_FILE, job_mounts, sync_entries
from spotctl.activities.node import Node
from spotctl.models import AttemptRef

RETRY_S = 60.0
"""After a failed renewal, the next try."""
MIN_WAIT_S = 60.0
"""Least time between two renewals (credentials about to expire are not re-issued in a loop)."""


def expiry_of(entry: dict) -> float | None:
    """When an entry's credentials expire (epoch seconds), None when they do not (none given,
    or an instance role's, which the VM renews itself)."""
    when = entry.get("expiration") or (entry.get("token_expiry") if entry.get("access_token") else None)
    if not when:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(str(when).replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)).timestamp()


class CredentialRenewer:
    """Keeps the nodes' sync.json credentials fresh for one watched phase."""

    def __init__(self, deps: Deps, ref: AttemptRef) -> None:
        self.deps, self.ref = deps, ref
        self.mounts = [m for m in job_mounts(ref.job.file_mounts, ref.job.workdir_mount)
                       if m.mode in MOUNT_MODES and m.bucket]
        self.renew_at = 0.0 if self.mounts else math.inf

    async def renew_if_due(self, nodes: list[Node], done: set[int] | dict[int, int]) -> None:
        """Rewrite sync.json on every node whose phase has not ended, when it is time."""
        now = time.time()
        if now < self.renew_at:
            return
        expiries: list[float] = []
        try:
            for node in nodes:
                if node.rank in done:
                    continue
                entries = await asyncio.to_thread(sync_entries, self.deps.settings, node.runner, self.mounts,
                                                  self.ref.cluster.cloud)
                if not entries:  # a node sharing this host's files: no credentials at all
                    self.renew_at = math.inf
                    return
                await node.write(SYNC_FILE, json.dumps(entries, indent=1))
                expiries += [e for e in map(expiry_of, entries) if e is not None]
        except Exception as exc:  # noqa: BLE001 - an unreachable node, STS: never ends the watch
            activity.logger.warning("job %s: cannot renew the nodes' bucket credentials (%s); again in %gs",
                                    self.ref.job.job_id, exc, RETRY_S)
            self.renew_at = now + RETRY_S
            return
        soonest = min(expiries, default=math.inf)
        self.renew_at = math.inf if soonest == math.inf else now + max(MIN_WAIT_S, (soonest - now) / 2)

    async def forget(self, nodes: list[Node]) -> None:
        """Delete sync.json on every node of a phase that has ended (best effort: a node that
        cannot be reached is being taken away, and the credentials expire anyway)."""
        if not self.mounts:
            return
        for node in nodes:
            try:
                await asyncio.to_thread(node.runner.remove_file, f"{node.attempt_dir}/{SYNC_FILE}")
            except Exception as exc:  # noqa: BLE001 - never fails the watch
                activity.logger.info("job %s: sync.json not removed from node %d (%s)", self.ref.job.job_id,
                                     node.rank, exc)
