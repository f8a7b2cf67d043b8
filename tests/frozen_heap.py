"""Keep the suite's own heap out of every in-process `spotctl` command's garbage collection.

Each command ends with a full gc.collect() (cli/common.py: the Temporal client must be gone
before the exit), and the tests run commands in the pytest process (CliRunner: every
`Spot.run`, every `status` poll of `wait_status`). A full collection walks every object the
process holds, so late in the suite each command also walks what the earlier tests left
alive: test_jobs.py took 52 s alone and 98 s beside a heap of a million objects, the fuzz
file 35 s alone and 162 s in the whole suite.

`frozen_suite_heap` moves what is alive when a module starts into the permanent generation
(gc.freeze), so the module's collections walk only what the module made. Once per module it
unfreezes and collects first, so garbage of earlier modules is still freed: one full
collection per module instead of one per command.

To use it for every test, conftest.py imports it: `from frozen_heap import frozen_suite_heap
# noqa: F401` (it is autouse)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="module", autouse=True)
def frozen_suite_heap() -> Iterator[None]:
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    yield
