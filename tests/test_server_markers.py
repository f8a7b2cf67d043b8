"""A cancel that reaches an activity no worker has started yet ends the job.

The Temporal server cancels such an activity itself and writes the cancellation's details in
clear ("ACTIVITY_ID_NOT_STARTED", json/plain). The worker refuses payloads in clear (only work
made with its codec key runs); it refused this one too, so the job's workflow task failed on
every retry and the job sat in its last status forever, its cancel unseen (found by the chaos
soak: a job cancelled while its create_cluster waited for a launch slot). The worker's codec
passes exactly the server's own markers and still refuses any other payload in clear.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from test_workflow_races import FakeCloud, job_spec

from spotctl.client import job_end
from spotctl.codec import EncryptionCodec, data_converter_for_key
from spotctl.codec.encryption import PlaintextPayloadError
from spotctl.models import ActivityNames, JobState, JobStatus
from spotctl.worker import job_workers, running
from spotctl.workflows import ALL_WORKFLOWS

pytestmark = pytest.mark.quick

KEY = bytes(32)


def refusing_client(client: Client) -> Client:
    """The client a worker runs on: its codec refuses payloads in clear (worker/main.py)."""
    converter = data_converter_for_key(KEY)
    assert isinstance(converter.payload_codec, EncryptionCodec)
    converter.payload_codec.refuse_plaintext = True
    return Client(**{**client.config(), "data_converter": converter})


async def test_cancel_of_a_job_whose_create_cluster_no_worker_started(env: WorkflowEnvironment) -> None:
    client = refusing_client(env.client)
    cloud = FakeCloud()
    # No worker polls the launch queue: create_cluster is scheduled and never started.
    activities = [fn for fn in cloud.activities() if getattr(fn, "__name__", "") != ActivityNames.CREATE_CLUSTER]
    queue = f"markers-{uuid.uuid4()}"
    async with running(job_workers(client, queue, ALL_WORKFLOWS, activities)):
        handle = await client.start_workflow("SpotJobWorkflow", job_spec(), id=f"markers-{uuid.uuid4()}",
                                             task_queue=queue, result_type=JobState)
        for _ in range(200):  # until create_cluster is scheduled
            events = [e.event_type async for e in handle.fetch_history_events()]
            if EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED in events:
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("create_cluster was never scheduled")
        await handle.signal("cancel")
        state = await asyncio.wait_for(job_end(handle), timeout=30)
    assert state.status == JobStatus.CANCELLED
    assert cloud.instances == {}


async def test_the_worker_still_refuses_any_other_payload_in_clear() -> None:
    codec = data_converter_for_key(KEY).payload_codec
    assert isinstance(codec, EncryptionCodec)
    codec.refuse_plaintext = True
    marker = Payload(metadata={"encoding": b"json/plain"}, data=b'"ACTIVITY_ID_NOT_STARTED"')
    assert await codec.decode([marker]) == [marker]
    for data in (b'"ACTIVITY_ID_NOT_STARTED "', b'{"job_id": 1}', b'"anything else"'):
        with pytest.raises(PlaintextPayloadError):
            await codec.decode([Payload(metadata={"encoding": b"json/plain"}, data=data)])
    with pytest.raises(PlaintextPayloadError):
        await codec.decode([Payload(metadata={"encoding": b"binary/plain"}, data=b'"ACTIVITY_ID_NOT_STARTED"')])
