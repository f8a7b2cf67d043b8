"""The workflow runner of spotctl's worker: Temporal's sandbox, with spotctl's workflow-side
packages passed through (issue 27).

The sandbox re-executes every module it does not pass through for each workflow run it
starts: for spotctl that was the workflows' own modules (the rest was already passed through
by their `workflow.unsafe.imports_passed_through()` blocks), about half of the worker CPU
replaying a workflow costs (BENCHMARKS.md, "Workflow CPU: the sandbox"). Passed through, they
are loaded once per process, outside the sandbox.

What that gives up, and what keeps it: the sandbox still runs every workflow (its restricted
builtins such as open() still apply to passed-through code, and determinism checks on replay
are the SDK's), but its run-time check on module members (datetime.now, time, random, os, ...)
and its per-run copy of module globals no longer cover passed-through modules. The static check
tests/test_workflow_purity.py keeps both guarantees for exactly these packages: it walks every
module they import and refuses clocks, randomness, I/O, dynamic imports and writes to module
state; spotctl.activities is passed through for its typed references only (the check refuses a
call into it from workflow code).
"""

from __future__ import annotations

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

PASSED_THROUGH = ("spotctl.workflows", "spotctl.models", "spotctl.policy", "spotctl.activities")
"""Passed through the sandbox (with their submodules): the workflows, the pure packages they
use, and the activities for their typed references. Add a package here only with the static
check covering it (tests/test_workflow_purity.py reads this tuple)."""


def workflow_runner() -> SandboxedWorkflowRunner:
    """The sandbox with PASSED_THROUGH passed through; the SDK's defaults otherwise (the
    standard library and temporalio pass through, every member restriction stays)."""
    return SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSED_THROUGH))
