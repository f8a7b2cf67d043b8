"""The time-skipping dev server, made quick per skip: for the workflow tests whose waits are
many timers in a row (a month of backoff rounds, 26 retried activities, an event's deadline
across continue-as-new).

Why a fixture of its own: the dev server loads due timer tasks in batches that look ahead up
to `history.timerProcessorMaxTimeShift` (1 s by default), so under time skipping each skipped
timer still cost about a second of wall time: 85 backoff rounds took 90 s. At 10 ms the same
timers fire at the same workflow times, in the same order, in a tenth of the wall time (10
throttled rounds: 13.3 s -> 1.8 s). Nothing a workflow sees changes, only how soon the server
looks for the next due timer.

A test module uses it by importing the fixture, which overrides conftest's `skipping_env` of
the same name in that module: `from timeskip import quick_skipping_env  # noqa: F401`. When
conftest's own fixture passes QUICK_TIMER_ARGS, these imports can go."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.testing import WorkflowEnvironment

from spotctl.codec import data_converter_for_key
from spotctl.embedded import temporal_binary
from spotctl.models import search_attributes as sa

QUICK_TIMER_ARGS = ["--dynamic-config-value", 'history.timerProcessorMaxTimeShift="10ms"']
"""Dev-server arguments: look for due timers every 10 ms instead of every second."""
SKIPPING_ARGS = ["--dynamic-config-value", "frontend.WorkflowTimeSkippingEnabled=true", *QUICK_TIMER_ARGS]


@pytest.fixture(scope="module", name="skipping_env")
async def quick_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """conftest's `skipping_env` (timers of days fire at once), with QUICK_TIMER_ARGS."""
    async with await WorkflowEnvironment.start_time_skipping_v2(
        dev_server_existing_path=temporal_binary(), data_converter=data_converter_for_key(bytes(32)),
        search_attributes=list(sa.ALL), dev_server_extra_args=SKIPPING_ARGS,
    ) as e:
        yield e
