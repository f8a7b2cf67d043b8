"""The first controller is frozen: nothing live can change what jobs started under it do.

Replay checks a workflow's commands, not their arguments, so a recorded history alone does not
notice an edit of a helper the old controller calls (a backoff, a candidate order, a failure
reason). workflows/legacy/ therefore imports nothing live but the wire types of spotctl.models
(checked on the source, and on what its names are at run time); only SpotJobWorkflow composes
it (SpotTaskWorkflow never ran under it); the first controller's recorded histories replay
through it, with the activity names it calls as literals; and replaying them, it passes exactly
the arguments it passed when it was frozen (tests/histories/frozen/v1_arguments.json).
"""

from __future__ import annotations

import ast
import inspect
import json
import sys
import types
from datetime import datetime
from pathlib import Path

import pytest
from pydantic import BaseModel
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.common import SearchAttributeUpdate
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner
from test_replay import V1_HISTORIES, replay

from spotctl.codec import data_converter_for_key
from spotctl.models import JobSpec, JobState
from spotctl.workflows import ALL_WORKFLOWS, JobIdAllocator, SpotJobWorkflow, SpotTaskWorkflow
from spotctl.workflows.legacy import ControllerV1, controller_v1, job_summary_v1, policy_v1

pytestmark = pytest.mark.quick  # `pytest -m quick`: the fast loop (README, Tests)

SPOTCTL = Path(__file__).parent.parent / "spotctl"
LEGACY = SPOTCTL / "workflows" / "legacy"
LEGACY_MODULES = [controller_v1, job_summary_v1, policy_v1]
ALLOWED_SPOTCTL = ("spotctl.models", "spotctl.workflows.legacy")
"""What legacy/ may import of spotctl: the wire types, and itself."""


def _imports(path: Path) -> list[str]:
    """Every module a file imports (`from x import y` gives x and x.y), relative ones resolved."""
    package = ".".join(("spotctl", *path.relative_to(SPOTCTL).parts[:-1]))
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            found += [base, *(f"{base}.{alias.name}" for alias in node.names)]
    return found


def _allowed(module: str) -> bool:
    top = module.split(".")[0]
    if top == "spotctl":
        return module.startswith(ALLOWED_SPOTCTL)
    return top in ("__future__", "temporalio") or top in sys.stdlib_module_names


def test_legacy_imports_nothing_live() -> None:
    """No import of spotctl.policy, workflows/job_summary.py or any other live module: only the
    standard library, temporalio, spotctl.models and legacy/ itself."""
    files = sorted(LEGACY.glob("*.py"))
    assert {p.stem for p in files} >= {"__init__", "controller_v1", "policy_v1", "job_summary_v1"}
    for path in files:
        imported = _imports(path)
        assert not [m for m in imported if m.startswith(("spotctl.policy", "spotctl.workflows.job_summary"))], path.name
        live = sorted({m for m in imported if not _allowed(m)})
        assert not live, f"workflows/legacy/{path.name} imports live code {live}: copy what it needs beside it (frozen)"


def test_legacy_names_are_its_own_at_run_time() -> None:
    """What legacy/'s module names are bound to is defined in legacy/, spotctl.models, temporalio
    or the standard library: a helper re-exported through models would be caught here."""
    for module in LEGACY_MODULES:
        for name, value in vars(module).items():
            if isinstance(value, types.ModuleType):
                origin = value.__name__
            elif inspect.isclass(value) or inspect.isfunction(value):
                origin = value.__module__
            else:
                continue
            assert _allowed(origin) or origin == "builtins", f"{module.__name__}.{name} comes from {origin}"


def test_only_the_job_workflow_composes_the_first_controller() -> None:
    """Composition, not inheritance: neither workflow class is a ControllerV1 or carries its
    methods; only workflows/spot_job.py imports legacy/; a task refuses the v1 path."""
    for cls in (SpotJobWorkflow, SpotTaskWorkflow):
        assert ControllerV1 not in cls.__mro__, cls.__name__
        assert not [n for n in dir(cls) if n.startswith("_v1_")], cls.__name__
    importers = sorted(str(p.relative_to(SPOTCTL)) for p in SPOTCTL.rglob("*.py")
                       if LEGACY not in p.parents and any(m.startswith("spotctl.workflows.legacy") for m in _imports(p)))
    assert importers == ["workflows/spot_job.py"], importers
    assert SpotTaskWorkflow._run_v1 is not SpotJobWorkflow._run_v1


def test_the_first_controllers_activity_names_are_those_it_recorded() -> None:
    """Its activity names are literals (frozen), and exactly the ones its histories scheduled."""
    frozen = {controller_v1.PROVISION, controller_v1.SETUP, controller_v1.START_RUN, controller_v1.MONITOR,
              controller_v1.TEARDOWN}
    recorded = set()
    for path in V1_HISTORIES:
        for event in json.loads(path.read_text())["events"]:
            scheduled = event.get("activityTaskScheduledEventAttributes")
            if scheduled:
                recorded.add(scheduled["activityType"]["name"])
    assert recorded and recorded <= frozen, recorded - frozen
    assert "provision" in recorded and "teardown" in recorded


TAKEN: list[int] = []
"""Job ids whose replay went through _run_v1 (the first controller)."""


@workflow.defn(name="SpotJobWorkflow", sandboxed=False)
class _NotesTheV1Path(SpotJobWorkflow):
    """SpotJobWorkflow, noting when the version branch chooses the first controller."""

    @workflow.run
    async def run(self, spec: JobSpec) -> JobState:
        return await super().run(spec)

    async def _run_v1(self, spec: JobSpec) -> JobState:
        TAKEN.append(spec.job_id)
        return await super()._run_v1(spec)


@pytest.mark.parametrize("path", V1_HISTORIES, ids=[p.stem for p in V1_HISTORIES])
async def test_v1_histories_replay_through_the_frozen_controller(path: Path) -> None:
    """Each of the first controller's histories replays, and takes the v1 branch to do so."""
    assert len(V1_HISTORIES) >= 6
    TAKEN.clear()
    result = await replay(path, [_NotesTheV1Path, JobIdAllocator])
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure!r}"
    assert TAKEN, f"{path.name} did not take the first controller's path"
    assert (await replay(path, ALL_WORKFLOWS)).replay_failure is None


ARGUMENTS = Path(__file__).parent / "histories" / "frozen" / "v1_arguments.json"
"""Every call the first controller makes into temporalio while it replays each of its histories,
with its arguments: what the freeze keeps (replay alone compares commands, not arguments).
Written by `python tests/test_legacy_frozen.py` from the code as it was frozen, never again."""
CAPTURED = ("start_activity", "execute_activity", "upsert_search_attributes", "upsert_memo", "set_current_details",
            "continue_as_new")


def _plain(value: object) -> object:
    """A JSON form of an argument that does not depend on where a type lives or on fields added
    later with their defaults (a wire type may grow; what v1 passes may not change)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_defaults=True)
    if isinstance(value, dict) and set(value) == {"state"}:  # the memo: a JobState dumped by the controller
        return {"state": _plain(JobState.model_validate(value["state"]))}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, type):
        return value.__name__
    if isinstance(value, SearchAttributeUpdate):
        return [value.key.name, _plain(value.value)]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return repr(value)  # RetryPolicy, timedelta: dataclass and stdlib reprs


async def _capture(monkeypatch: pytest.MonkeyPatch | None = None) -> dict[str, list]:
    """Replay each v1 history (unsandboxed, so the calls can be seen) and note every call."""
    calls: list = []
    patch = monkeypatch or pytest.MonkeyPatch()
    for name in CAPTURED:
        real = getattr(workflow, name)

        def noted(*args, _name=name, _real=real, **kwargs):
            calls.append([_name, _plain(list(args)), {k: _plain(v) for k, v in sorted(kwargs.items())}])
            return _real(*args, **kwargs)

        patch.setattr(workflow, name, noted)
    found = {}
    try:
        for path in V1_HISTORIES:
            calls.clear()
            history = WorkflowHistory.from_json(f"replay-{path.stem}", path.read_text())
            replayer = Replayer(workflows=ALL_WORKFLOWS, data_converter=data_converter_for_key(bytes(32)),
                                workflow_runner=UnsandboxedWorkflowRunner())
            result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
            assert result.replay_failure is None, f"{path.name}: {result.replay_failure!r}"
            found[path.stem] = [*calls]
    finally:
        if monkeypatch is None:
            patch.undo()
    return found


async def test_v1_passes_the_arguments_it_was_frozen_with(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replaying its histories, the first controller passes exactly the arguments it passed when
    it was frozen: activity inputs and options, search attributes, memo and details."""
    frozen = json.loads(ARGUMENTS.read_text())
    now = await _capture(monkeypatch)
    assert sorted(now) == sorted(frozen)
    for name, calls in frozen.items():
        assert len(calls) > 10, name
        assert [c[0] for c in now[name]] == [c[0] for c in calls], f"{name}: other calls"
        for i, (was, is_) in enumerate(zip(calls, now[name], strict=True)):
            assert is_ == was, f"{name}, call {i} ({was[0]}): v1 now passes other arguments"


if __name__ == "__main__":  # write the frozen arguments (done once, when the controller was frozen)
    import asyncio

    ARGUMENTS.parent.mkdir(exist_ok=True)
    captured = asyncio.run(_capture())
    ARGUMENTS.write_text("{\n" + ",\n".join(
        f"{json.dumps(name)}: [\n" + ",\n".join(json.dumps(c, sort_keys=True) for c in calls) + "\n]"
        for name, calls in sorted(captured.items())) + "\n}\n")
    print(f"wrote {ARGUMENTS}: {sum(len(c) for c in captured.values())} calls")
