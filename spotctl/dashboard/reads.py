"""What the dashboard reads, and how it keeps one slow read from starving the rest: every read
goes through spotctl.client (jobs, pools, logs) or spotctl.fleet (the placement memory), under a
time limit (READ_TIMEOUT_S) and a bound on how many run at once (READS_AT_ONCE); the blocking
ones (the log store, the fleet's SQLite file, the catalog) run in threads, never on the loop that
serves the pages.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from spotctl.catalog import catalog_info, has_catalog
from spotctl.client import (
    JobNotFound,
    PoolNotAnswering,
    SpotClient,
    jobs_filter,
    pool_names,
    pool_state,
)
from spotctl.clouds.ondemand import ondemand_prices
from spotctl.config import Settings
from spotctl.dashboard import views
from spotctl.fleet import HORIZON, FleetStoreError, open_fleet
from spotctl.models import JobState, JobStatus
from spotctl.models.naming import job_workflow_id
from spotctl.policy import PriceKey, money

T = TypeVar("T")

READ_TIMEOUT_S = 15.0
"""The longest one page's read may take; past it the page shows an error line and tries again."""
READS_AT_ONCE = 8
"""Reads of Temporal, the logs and the fleet store running at the same time, whoever asked."""
LOG_TAIL_BYTES = 64 * 1024
"""The most bytes of a job's log a page is sent (the end of its last attempt's output)."""
FLEET_JOBS = 200
"""The newest jobs the fleet page sums spend over."""
POOLS_SHOWN = 50
"""The most pools the fleet page lists."""


class ReadError(Exception):
    """A read failed in a way the page should say in one line (not found, timed out, refused)."""

    def __init__(self, message: str, status: int = 502) -> None:
        super().__init__(message)
        self.status = status


class Reader:
    """The dashboard's reads of one deployment, bounded and timed."""

    def __init__(self, client: SpotClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.gate = asyncio.Semaphore(READS_AT_ONCE)

    async def _bounded(self, what: str, work: Callable[[], Awaitable[T]]) -> T:
        async with self.gate:
            try:
                return await asyncio.wait_for(work(), READ_TIMEOUT_S)
            except TimeoutError:
                raise ReadError(f"{what}: no answer in {READ_TIMEOUT_S:g} s (is the server up? "
                                "`spotctl server status`)", 504) from None
            except JobNotFound as exc:
                raise ReadError(str(exc), 404) from None

    async def _prices(self, jobs: list[JobState]) -> dict[PriceKey, float]:
        clouds = {r.cloud for j in jobs for r in [*j.history, *(r for t in j.tasks for r in t.history)]}
        return await asyncio.to_thread(ondemand_prices, clouds, self.settings) if clouds else {}

    def workflow_url(self, job_id: int | None = None) -> str:
        """The Temporal UI's page of the jobs' workflows (of job `job_id`'s when given)."""
        url = f"{self.settings.ui_url}/namespaces/{self.settings.temporal.namespace}/workflows"
        return url + (f"/{job_workflow_id(job_id)}" if job_id is not None else "")

    async def jobs(self, *, limit: int, status: str | None, name: str | None, array: int | None,
                   pool: str | None) -> dict[str, Any]:
        async def work() -> dict[str, Any]:
            query = await jobs_filter(self.client, status=status, name=name, array=array, pool=pool)
            page = await self.client.page_jobs(query, limit=limit)
            now = datetime.now(UTC)
            data = views.jobs_page(page.jobs, page.total, now, await self._prices(page.jobs))
            for row in data["jobs"]:
                row["workflow"] = self.workflow_url(row["id"])
            data["stale"] = bool(self.client.unanswered)
            return data

        return await self._bounded("listing the jobs", work)

    async def job(self, job_id: int) -> dict[str, Any]:
        async def work() -> dict[str, Any]:
            job = await self.client.get_job(job_id)
            now = datetime.now(UTC)
            return views.job_page(job, now, await self._prices([job]), self.workflow_url(job_id))

        return await self._bounded(f"reading job {job_id}", work)

    async def log_tail(self, job_id: int) -> dict[str, Any]:
        """The end of the job's newest attempt's output (its head node's), as text."""

        def read() -> dict[str, Any]:
            store = self.client.logs
            attempts = store.attempts(job_id)
            if not attempts:
                return {"attempt": None, "text": "", "truncated": False}
            attempt = max(attempts)
            size = store.size(job_id, attempt)
            start = max(0, size - LOG_TAIL_BYTES)
            data = store.read(job_id, attempt, 0, start)[:LOG_TAIL_BYTES]
            return {"attempt": attempt, "text": data.decode("utf-8", "replace"), "truncated": start > 0}

        async def work() -> dict[str, Any]:
            await self.client.get_job(job_id, live=False)  # a job that does not exist: 404, not an empty log
            return await asyncio.to_thread(read)

        return await self._bounded(f"reading job {job_id}'s log", work)

    def _price_dates(self) -> list[str]:
        """Where each enabled cloud's prices come from and how old they are (`launch --dry-run`'s
        lines): the costs on these pages are only as true as those figures."""
        today = datetime.now(UTC).date()
        return [catalog_info(c, self.settings.home).line(today) if has_catalog(c)
                else f"{c}: the cloud's own prices (its config), no catalog" for c in self.settings.clouds]

    async def fleet(self) -> dict[str, Any]:
        async def events() -> list:
            try:
                return await asyncio.to_thread(open_fleet(self.settings).events, None, datetime.now(UTC) - HORIZON)
            except FleetStoreError:
                return []

        async def one_pool(name: str) -> dict[str, Any] | None:
            try:
                st = await asyncio.wait_for(pool_state(self.client.temporal, name), READ_TIMEOUT_S / 3)
            except (TimeoutError, PoolNotAnswering):
                return {"name": name, "status": "not answering", "workers": [], "queued": 0, "spend": "-",
                        "resources": "-", "min": None, "max": None}
            if st is None:  # gone since it was listed
                return None
            return {
                "name": st.name, "status": st.status, "min": st.min_workers, "max": st.max_workers,
                "resources": views.bounded_text(st.resources), "queued": st.queued, "spend": money(st.spend),
                "workers": [{"slot": w.slot, "phase": w.phase, "job": w.job_id,
                             "cluster": w.cluster.cluster_name if w.cluster else None,
                             "place": views.bounded_text(f"{w.cluster.cloud}/{w.cluster.region}/{w.cluster.zone}"
                                                         if w.cluster else None)} for w in st.workers],
            }

        async def pools() -> list[dict[str, Any]]:
            names = (await pool_names(self.client.temporal))[:POOLS_SHOWN]
            return [p for p in await asyncio.gather(*(one_pool(n) for n in names)) if p is not None]

        async def work() -> dict[str, Any]:
            page = await self.client.page_jobs(None, limit=FLEET_JOBS)
            now = datetime.now(UTC)
            prices = await self._prices(page.jobs)
            found, listed, dated = await asyncio.gather(events(), pools(), asyncio.to_thread(self._price_dates))
            by_status: dict[str, int] = {}
            for j in page.jobs:
                by_status[j.status.value] = by_status.get(j.status.value, 0) + 1
            return {
                "now": now.isoformat(), "jobs": len(page.jobs), "total": page.total,
                "spend": views.spend_series(page.jobs, now, prices), "zones": views.zone_counts(found),
                "horizon_h": HORIZON / timedelta(hours=1), "pools": listed, "prices": dated,
                "by_status": [{"status": s.value, "count": by_status[s.value]} for s in JobStatus if s.value in by_status],
            }

        return await self._bounded("reading the fleet", work)
