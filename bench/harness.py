"""What every benchmark starts with: a private state dir (deleted at the end), a roomy local
cloud, a private Temporal dev server (SQLite in memory, headless) and an in-process worker."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from temporalio.testing import WorkflowEnvironment  # noqa: E402

from spotctl.activities import all_activities  # noqa: E402
from spotctl.activities.deps import Deps  # noqa: E402
from spotctl.client import SpotClient  # noqa: E402
from spotctl.clouds.local import LocalCloud  # noqa: E402
from spotctl.codec import data_converter  # noqa: E402
from spotctl.config import load_settings  # noqa: E402
from spotctl.embedded import temporal_binary  # noqa: E402
from spotctl.models import TASK_QUEUE, Candidate  # noqa: E402
from spotctl.models import search_attributes as sa  # noqa: E402
from spotctl.policy import rank_candidates  # noqa: E402
from spotctl.worker import job_workers, running  # noqa: E402
from spotctl.workflows import ALL_WORKFLOWS  # noqa: E402


@dataclass
class Bench:
    client: SpotClient
    cloud: LocalCloud
    deps: Deps
    candidates: list[Candidate]


@asynccontextmanager
async def bench_environment(name: str, capacity: int) -> AsyncIterator[Bench]:
    settings = load_settings(Path(tempfile.mkdtemp(prefix=f"spotctl-{name}-")))
    cloud = LocalCloud(settings)
    cloud.offerings()  # writes the default config
    cloud.config_path.write_text(cloud.config_path.read_text().replace("capacity: 8", f"capacity: {capacity}"))
    deps = Deps(settings)
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(), data_converter=data_converter(settings),
        search_attributes=list(sa.ALL), dev_server_extra_args=["--headless"],
    )
    try:
        async with env, running(job_workers(env.client, TASK_QUEUE, ALL_WORKFLOWS, all_activities(deps))):
            yield Bench(SpotClient(env.client, settings), cloud, deps, rank_candidates(cloud.offerings(), []))
    finally:
        shutil.rmtree(settings.home, ignore_errors=True)  # its local cloud and buckets: nothing is kept
