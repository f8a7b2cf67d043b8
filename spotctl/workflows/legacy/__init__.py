"""The frozen first controller (v1), kept so jobs started under it finish the way they began.

SpotJobWorkflow composes ControllerV1 (through V1Host) for a job whose history has no
`controller-v2` marker; nothing else imports this package. It depends on nothing live but the
wire types of spotctl.models: the helpers it calls are frozen copies beside it (policy_v1,
job_summary_v1). README.md beside this file is the checklist of everything to delete, and which
`workflow.deprecate_patch` to call, once no v1 job runs.
"""

from spotctl.workflows.legacy.controller_v1 import ControllerV1, V1Host

__all__ = ["ControllerV1", "V1Host"]
