"""Regenerate RELIABILITY.md: what was thrown at spotctl, how often, and what was lost.

    python bench/reliability.py [--soak-jobs 50] [--soak-seconds 300] [--skip-soak] [--skip-tests]
    python bench/reliability.py --whole-suite

Runs, from the repo root:
1. the chaos soak (tests/chaos/test_soak.py) with SPOTCTL_SOAK_REPORT, for its numbers;
2. the bad-input and fault tests that exist in tests/ (FILES below), in one pytest run with
   --junitxml (tests counted per file) and --hypothesis-show-statistics (examples counted);
and writes RELIABILITY.md at the repo root: one table for the soak's faults, one for the
defects that hostile testing found (DEFECTS below: each row's tests must pass), one for the test
files. `--skip-soak` / `--skip-tests` leave a part out (its files are then only counted with
`pytest --collect-only`, and shown as not run), for a shared machine where the whole takes
too long. `--whole-suite` runs the README's whole test command once instead (the soak is part
of it) and takes both parts from that run: the numbers and the proof that CI's run passes come
from one run. The pytest runs' output goes to $TMPDIR/spotctl-reliability/ for a look at failures.

Why counts from junit rather than from the test names: the numbers in RELIABILITY.md must be
the ones pytest ran this time, skips and failures included, not what a list says should run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = Path(tempfile.gettempdir()) / "spotctl-reliability"
"""pytest logs, junit files and the soak's report: kept outside the repo, overwritten each run."""
SOAK = "tests/chaos/test_soak.py"

FILES: dict[str, tuple[str, str]] = {
    # file: (kind, what it throws at spotctl)
    "tests/test_bad_input.py": ("bad input", "malformed task YAML and CLI arguments"),
    "tests/test_task_limits.py": ("bad input", "oversized and pathological task files (parser limits)"),
    "tests/test_fuzz_dry_run.py": ("bad input", "fuzzed task YAML through `launch --dry-run`"),
    "tests/test_display.py": ("bad input", "names with escapes, newlines, 500 characters; a 600 KB spec"),
    "tests/test_output_bytes.py": ("bad input", "output that is not UTF-8, a character split across writes"),
    "tests/test_job_ids.py": ("fault", "launches that fail after taking an id; an allocator terminated mid-launch; "
                              "starts racing for one id; retried allocations"),
    "tests/test_supervisor.py": ("fault", "embedded worker, server and supervisor SIGKILLed; 8 concurrent starts"),
    "tests/test_secrets.py": ("fault", "secrets and env values looked for in history, SQLite, logs, output"),
    "tests/test_permissions.py": ("fault", "state dir and files readable by other users"),
    "tests/test_instance_confinement.py": ("fault", "programs escaping their instance (processes, cgroups)"),
    "tests/test_workflow_races.py": ("fault", "cancels, preemptions and launches racing the workflow"),
    "tests/test_moody_jobs.py": ("fault", "a slow, throttling, hanging cloud API"),
    "tests/test_durability.py": ("fault", "worker SIGKILL and Temporal server restart mid-job"),
    "tests/test_worker_fleet.py": ("fault", "three workers; one drained by SIGTERM and one SIGKILLed mid-run"),
    "tests/test_activities_on_preempted_nodes.py": ("fault", "a node preempted while no worker watched it"),
    "tests/test_local_preemption.py": ("fault", "preemptions with and without notice, a program saving on SIGTERM"),
    "tests/test_notify_bulkhead.py": ("fault", "a webhook trickling a byte every 2 s to 6 jobs on a worker with 4 threads"),
    "tests/test_local_users.py": ("fault", "another local user (uid 65534) decoding, connecting, starting a job without the key"),
    "tests/test_codec_key.py": ("bad input", "codec.key deleted over history, swapped, a directory, FIFO, /dev/zero, 4 MiB"),
    "tests/test_callback_confinement.py": ("fault", "event_callbacks starting setsid and double-forked processes; their worker killed"),
    "tests/test_local_sandbox.py": ("fault", "a local job reading the spotctl home, credentials, /proc/1/root; absolute mount targets"),
    "tests/test_task_file_problems.py": ("bad input", "YAML 1.1 and duplicate keys, FIFOs, sparse files, the state dir in a workdir"),
    "tests/test_launch_cli_inputs.py": ("bad input", "pipes as task and env files, empty and full-width flag values, no terminal"),
    "tests/test_status_paused_worker.py": ("fault", "the worker SIGSTOPped while status asks a running job"),
    "tests/lab/test_node_credentials.py": ("fault", "a job's program reading its VM's bucket credentials; STS refusing"),
    "tests/test_node_faults.py": ("fault", "the node agent's supervisor SIGKILLed mid-run; every spotctl process on a node killed"),
    "tests/test_agent_faults.py": ("fault", "the agent's supervisor and keeper killed while the program runs or ends; a full disk"),
    "tests/test_full_disk.py": ("fault", "a job filling the disk its neighbours, the cloud's state and the log store share"),
    "tests/test_full_state_dir.py": ("fault", "a command run with its state dir on a full disk"),
    "tests/test_continued_runs.py": ("fault", "a cancel or note in a continued run's first workflow task (v2 and v1 paths)"),
    "tests/test_died_before_ready.py": ("fault", "clusters created then preempted or never ready, round after round (time skipping)"),
    "tests/test_memo_cost.py": ("fault", "a running job with 15 ended attempts (the memo keeps 10); a pipeline task the same"),
    "tests/test_pipeline_races.py": ("fault", "cancels racing a pipeline task's start, its cancel signal and its end"),
    "tests/test_cancel_continued.py": ("fault", "cancel -a while a job continues as new every second"),
    "tests/test_monitor_heartbeat.py": ("fault", "the worker SIGSTOPped 18 s while a monitor runs"),
    "tests/test_event_handoff.py": ("fault", "a webhook answering 503 while a two-task pipeline runs to its end, and is cancelled"),
    "tests/test_event_deadlines.py": ("fault", "a webhook down for hours while a job waits and continues as new (time skipping)"),
    "tests/test_teardown_by_tag.py": ("fault", "a retried teardown; instances of attempts nobody recorded, in two regions"),
}


@dataclass(frozen=True)
class Defect:
    """One defect that hostile testing found, and the tests that failed before its fix."""

    issue: str  # "21.1": issue 21, item 1
    what: str  # what broke, as the user met it
    lost_before: str  # what was lost (or at risk) before the fix
    tests: tuple[str, ...]  # "tests/file.py::test_name" (a prefix: parametrized cases count too)


_TFP = "tests/test_task_file_problems.py::"
_CLI = "tests/test_launch_cli_inputs.py::"
DEFECTS: list[Defect] = [
    Defect("21.1", "a webhook trickling its answer froze every job of a worker (64 threads held)",
           "jobs hung in STARTING while it lasted; a quickstart timed out",
           ("tests/test_notify_bulkhead.py::test_jobs_launch_and_finish_in_normal_time_while_a_webhook_trickles",
            "tests/test_notify_delivery.py::test_a_trickling_webhook_is_cut_off_at_its_total_deadline")),
    Defect("21.2", "any local user decoded a job's secrets through the codec endpoint, and reached the frontend",
           "the job's secrets; other users could end the owner's jobs",
           ("tests/test_local_users.py::test_other_user_cannot_decode_with_the_embedded_endpoint",
            "tests/test_local_users.py::test_other_user_cannot_decode_with_codec_server_command",
            "tests/test_local_users.py::test_other_user_cannot_reach_the_embedded_server",
            "tests/test_local_users.py::test_worker_refuses_a_job_started_without_the_codec_key")),
    Defect("21.3", "a SIGKILLed node-agent supervisor failed a healthy job as 'run exited with code 137'",
           "the job (FAILED, its program killed after 201 of 300 lines); the restart budget",
           ("tests/test_node_faults.py::test_a_killed_supervisor_does_not_fail_a_healthy_job",
            "tests/test_node_faults.py::test_a_lost_node_agent_is_recovered_without_the_restart_budget",
            "tests/test_agent_faults.py::test_a_killed_supervisor_is_replaced_and_the_program_runs_on_once",
            "tests/test_agent_faults.py::test_an_end_nobody_saw_is_lost_not_an_exit_code")),
    Defect("21.4", "a job that filled the disk stayed RUNNING in silence; its neighbour FAILED 137; cancel left it running",
           "the last 1.9 MB of output; the neighbour job; a VM billing after cancel",
           ("tests/test_full_disk.py::test_a_disk_hog_waits_visibly_keeps_its_output_and_ends_with_its_own_code",
            "tests/test_full_disk.py::test_a_job_that_filled_the_disk_is_cancelled_while_it_is_full",
            "tests/test_full_disk.py::test_a_job_launched_onto_a_full_disk_says_so_and_starts_once_there_is_room",
            "tests/test_agent_faults.py::test_the_exit_code_is_recorded_on_a_full_disk",
            "tests/test_full_state_dir.py::test_a_full_state_dir_is_one_line_and_leaves_nothing_half_written",
            "tests/test_full_state_dir.py::test_status_says_why_jobs_wait_on_a_full_state_dir")),
    Defect("21.5", "processes an event_callback started with setsid outlived the job and `server stop`",
           "3-4 processes left running each time",
           ("tests/test_callback_confinement.py::test_nothing_a_callback_started_outlives_it",
            "tests/test_callback_confinement.py::test_a_killed_workers_callbacks_are_swept",
            "tests/test_callback_confinement.py::test_server_stop_leaves_no_callback_process")),
    Defect("21.6", "a deleted codec.key was silently recreated over encrypted history; a bad key file was read unbounded",
           "every command failed; a running job stalled; 2.7 GB read from /dev/zero",
           ("tests/test_codec_key.py::test_deleted_key_is_never_recreated_and_the_worker_stops_until_it_is_back",
            "tests/test_codec_key.py::test_bad_key_file_is_one_line_and_exit_2",
            "tests/test_codec_key.py::test_worker_with_another_key_stops_naming_both_keys")),
    Defect("21.7", "YAML 1.1 keys silently renamed (NO: becomes False), duplicate keys taken",
           "the user's variables and mount targets, silently",
           (_TFP + "test_boolean_env_keys_are_refused_not_renamed", _TFP + "test_keys_that_are_not_text_are_refused",
            _TFP + "test_duplicate_keys_are_refused_with_both_lines")),
    Defect("21.7", "a FIFO in a workdir, a workdir holding the state dir, a 2 GB sparse file: tracebacks or 4 GB of disk",
           "a traceback after a dry run that said fine; disk",
           (_TFP + "test_special_files_in_the_workdir_are_refused", _TFP + "test_the_state_dir_is_never_uploaded",
            _TFP + "test_a_sparse_file_is_refused_and_a_dense_one_is_not",
            _TFP + "test_a_launch_with_a_fifo_in_its_workdir_is_one_line_and_no_job")),
    Defect("21.7", "local-cloud jobs wrote absolute mount targets into the host's /etc and read the state dir",
           "the host's files; the codec key and history",
           ("tests/test_local_sandbox.py::test_a_job_cannot_read_the_spotctl_home",
            "tests/test_local_sandbox.py::test_an_absolute_target_is_made_in_the_sandbox")),
    Defect("21.7", "a webhook URL with user:pass@ failed every POST for a day; callback envs over 16 KiB dropped silently",
           "every notification; the callback's variables",
           (_TFP + "test_a_webhook_url_with_a_password_is_taken", _TFP + "test_callback_envs_over_their_bound_are_refused",
            "tests/test_notify_delivery.py::test_credentials_in_the_url_are_sent_as_basic_auth")),
    Defect("21.7", "--env-file on a FIFO hung; <(...) and /dev/stdin were 'no such file'; --gpus '' and full-width digits",
           "a hung CLI; a wrong GPU count",
           (_CLI + "test_task_file_from_process_substitution_is_read", _CLI + "test_task_file_on_stdin_is_read",
            _CLI + "test_a_fifo_nobody_writes_is_refused_in_time", _CLI + "test_an_empty_flag_value_is_refused_not_ignored",
            _CLI + "test_counts_must_be_ascii_digits",
            "tests/test_task_limits.py::test_non_ascii_digits_in_resources_refused")),
    Defect("21.7", "a pipeline task without run, reserved mount targets, a mount on the workdir; checks stopped at the first",
           "a failed setup after a dry run that said fine; one problem shown per run",
           (_TFP + "test_a_pipeline_task_without_run_is_named_with_its_line", _TFP + "test_reserved_mount_targets_are_refused",
            _TFP + "test_a_mount_at_the_workdirs_target_is_refused", _TFP + "test_every_problem_of_a_file_is_reported_at_once",
            _TFP + "test_placement_problems_come_with_the_launch_checks")),
    Defect("21.7", "`--secret K=V` showed the value in ps; `--secret K` was not recommended",
           "the secret, to every local user while the CLI ran",
           (_CLI + "test_secret_value_on_the_command_line_is_warned_about",
            _CLI + "test_secret_by_name_takes_the_environment_and_is_not_warned_about")),
    Defect("21.8", "a job's VM held the worker's own AWS keys (and a worker GCS token; GCE VMs the default account)",
           "the worker's account, to any task file's program",
           ("tests/lab/test_node_credentials.py::test_a_node_gets_short_lived_credentials_never_the_workers_keys",
            "tests/lab/test_node_credentials.py::test_the_session_policy_reaches_only_the_mounts_prefix",
            "tests/lab/test_aws_jobs.py::test_a_vm_holds_scoped_short_lived_credentials_never_the_workers_keys",
            "tests/lab/test_gcs_store.py::test_node_sync_on_real_gcp_carries_a_downscoped_token",
            "tests/lab/test_gcp_cloud.py::test_vms_run_with_no_service_account_by_default",
            "tests/lab/test_gcp_cloud.py::test_vms_run_as_the_configured_service_account",
            "tests/lab/test_gcs_sync.py::test_a_vm_without_a_service_account_gives_gcsfuse_the_shipped_token")),
    Defect("21.9", "launch without a terminal: 'Aborted!', exit 1; `status ID` took 31 s with the worker paused",
           "nothing; time and a confusing exit code",
           (_CLI + "test_launch_without_a_terminal_says_to_give_y", _CLI + "test_cancel_without_a_terminal_says_to_give_y",
            "tests/test_status_paused_worker.py::test_status_of_a_running_job_is_quick_and_marked_stale_while_the_worker_is_paused")),
    Defect("22.1", "a cancel that reached a continued run in its first task was lost (the job ran on RUNNING)",
           "the cancel: the VM billed and the program trained to its end",
           ("tests/test_continued_runs.py::test_cancel_in_a_continued_runs_first_task_is_kept",
            "tests/test_continued_runs.py::test_cancel_in_a_continued_first_controller_run_is_kept",
            "tests/test_continued_runs.py::test_a_note_in_a_continued_runs_first_task_is_shown")),
    Defect("22.2", "clusters that died before they ran looped with no backoff, no max_wait, no continue-as-new",
           "the job (terminated at 51,200 events, no final teardown): 12,743 events in one run in 2 min",
           ("tests/test_died_before_ready.py::test_dying_clusters_count_toward_max_wait",
            "tests/test_died_before_ready.py::test_dying_clusters_back_off_and_continue_as_new",
            "tests/test_died_before_ready.py::test_dying_clusters_count_toward_the_attempts_per_run")),
    Defect("22.4", "pipeline cancels racing a task's start, a second cancel, a task that had ended",
           "the final teardown and end event; a pipeline FAILED instead of CANCELLED",
           ("tests/test_pipeline_races.py::test_temporal_cancel_while_the_first_task_starts",
            "tests/test_pipeline_races.py::test_a_second_cancel_while_the_task_is_told",
            "tests/test_pipeline_races.py::test_a_cancel_that_meets_a_task_already_ended")),
    Defect("22.5", "a task workflow terminated outside spotctl: its clusters escaped the pipeline's final teardown",
           "a VM billing on after the pipeline ended",
           ("tests/test_pipelines.py::test_a_task_workflow_terminated_outside_spotctl_leaves_no_instance",
            "tests/lab/test_aws_activities.py::test_the_final_teardown_finds_every_attempt_of_the_job_by_its_tag",
            "tests/test_teardown_by_tag.py::test_by_tag_finds_every_attempt_of_the_job_and_no_other_jobs",
            "tests/test_teardown_by_tag.py::test_a_retried_teardown_resumes_after_the_regions_it_finished")),
    Defect("22.6", "a retried create made a second VM in another region (AWS)",
           "a duplicate VM, billed until the final teardown",
           ("tests/lab/test_aws_activities.py::test_a_retried_create_adopts_the_cluster_its_first_try_made_in_another_region",)),
    Defect("22.8", "status under-reported the cost of running jobs with more than 10 attempts",
           "the cost of the cut attempts, in listings and pipeline rows",
           ("tests/test_memo_cost.py::test_memo_and_live_query_show_the_same_cost",
            "tests/test_memo_cost.py::test_a_pipeline_sums_its_tasks_cut_records")),
    Defect("22.10", "a partial GCE multi-node create left rank 0 up; running pipelines never RUNNING in visibility",
           "rank 0 billed through the capacity wait; running pipelines missing from filters",
           ("tests/lab/test_gcp_cloud.py::test_a_node_refused_at_once_takes_the_nodes_made_before_it_down",
            "tests/test_pipeline_races.py::test_a_running_pipeline_is_found_by_its_status")),
    Defect("22.9", "job ids: a retried allocation burnt an id; an ended allocator restarted at 1; a start shadowed a closed job",
           "ids; a second job's run and logs appended to an old job's",
           ("tests/test_job_ids.py::test_a_retried_allocation_returns_the_same_id",
            "tests/test_job_ids.py::test_a_terminated_allocator_does_not_hand_out_ids_again",
            "tests/test_job_ids.py::test_a_start_never_shadows_a_closed_job",
            "tests/test_job_ids.py::test_a_launch_whose_id_another_start_took_takes_the_next")),
    Defect("22.10", "`cancel -a` missed a job while it continued as new (3 of 2,512 listings)",
           "the cancel: the job ran on, billing",
           ("tests/test_cancel_continued.py::test_cancel_all_cancels_a_job_while_it_continues_as_new",)),
    Defect("22.10", "a monitor had 3 s of heartbeat slack: any 3 s stall of its worker restarted it",
           "a monitor restart (and its log tail) per stall",
           ("tests/test_monitor_heartbeat.py::test_a_stalled_worker_keeps_its_monitor",
            "tests/test_monitor_heartbeat.py::test_monitor_heartbeat_settings_leave_two_beats_of_slack")),
    Defect("22.3", "a webhook outage held each pipeline task's end (so the next task) and a cancel for up to a day",
           "a day of progress per task; the cancel",
           ("tests/test_event_handoff.py::test_a_pipeline_goes_on_and_ends_while_its_webhook_is_down",
            "tests/test_event_handoff.py::test_a_cancel_during_a_webhook_outage_ends_the_pipeline_at_once")),
    Defect("22.7", "events outlived their give-up time across continue-as-new (then the queue dropped later ones)",
           "events beyond the 500 queued, silently",
           ("tests/test_event_deadlines.py::test_the_head_event_is_given_up_at_its_deadline_across_continue_as_new",)),
]
"""Each defect's row says 'nothing' lost only when every one of its tests ran and passed in this run."""


@dataclass
class FileResult:
    tests: int = 0
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    examples: int = 0
    failures: list[str] = field(default_factory=list)


def run_pytest(args: list[str], log: Path, env: dict[str, str] | None = None) -> int:
    """pytest from the repo root, output to `log` (and a line per run to the terminal)."""
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]
    print("+", " ".join(cmd), flush=True)
    with open(log, "wb") as out:
        return subprocess.run(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                              env={**os.environ, **(env or {})}).returncode


def junit_results(path: Path) -> dict[str, FileResult]:
    """Per test file: test cases, passed, failed (failures and errors), skipped, seconds."""
    results: dict[str, FileResult] = {}
    if not path.exists():
        return results
    for case in ET.parse(path).getroot().iter("testcase"):
        module = case.get("classname", "").split(".")
        # classname is the dotted module path, plus the class for tests in a class
        file = next((f"{'/'.join(module[:i])}.py" for i in range(len(module), 0, -1)
                     if (REPO / f"{'/'.join(module[:i])}.py").exists()), case.get("file", "?"))
        r = results.setdefault(file, FileResult())
        r.tests += 1
        r.seconds += float(case.get("time", 0))
        if case.find("skipped") is not None:
            r.skipped += 1
        elif case.find("failure") is not None or case.find("error") is not None:
            r.failed += 1
            bad = case.find("failure") if case.find("failure") is not None else case.find("error")
            message = (bad.get("message") or "").splitlines()[0][:200] if bad is not None else ""
            r.failures.append(f"{case.get('name', '?')}: {message}")
        else:
            r.passed += 1
    return results


def case_outcomes(path: Path) -> dict[str, str]:
    """Per test case ("tests/file.py::name[param]"): passed, failed or skipped."""
    outcomes: dict[str, str] = {}
    if not path.exists():
        return outcomes
    for case in ET.parse(path).getroot().iter("testcase"):
        module = case.get("classname", "").split(".")
        file = next((f"{'/'.join(module[:i])}.py" for i in range(len(module), 0, -1)
                     if (REPO / f"{'/'.join(module[:i])}.py").exists()), "?")
        if case.find("skipped") is not None:
            outcome = "skipped"
        elif case.find("failure") is not None or case.find("error") is not None:
            outcome = "failed"
        else:
            outcome = "passed"
        outcomes[f"{file}::{case.get('name', '?')}"] = outcome
    return outcomes


def defects_section(outcomes: dict[str, str], ran: bool) -> list[str]:
    """One row per defect: its tests' outcomes in this run, and what is lost now."""
    if not DEFECTS:
        return []
    lines = [
        "## Defects found by hostile testing",
        "",
        "Each was reproduced by a test that failed before the fix; the row says what that test and its "
        "neighbours did in this run.",
        "",
        "| issue.item | what broke | lost before the fix | tests | passed | lost now |",
        "|---|---|---|---|---|---|",
    ]
    for d in sorted(DEFECTS, key=lambda d: tuple(int(n) for n in d.issue.split("."))):  # item order
        found = [o for name, o in outcomes.items() for t in d.tests if name == t or name.startswith(t + "[")]
        passed = sum(o == "passed" for o in found)
        if not ran:
            now = "not run"
        elif found and passed == len(found):
            now = "nothing"
        elif any(o == "failed" for o in found):
            now = "see the failures"
        else:
            now = "not run" if not found else "skipped here"
        shown = "<br>".join(f"`{t.split('::')[0].removeprefix('tests/')}::{t.split('::')[1]}`" for t in d.tests)
        lines.append(f"| {d.issue} | {d.what} | {d.lost_before} | {shown} | {passed}/{len(found)} | {now} |")
    return [*lines, ""]


def hypothesis_examples(log: Path) -> dict[str, int]:
    """Per test file, the examples Hypothesis ran (passing + failing + invalid), from
    --hypothesis-show-statistics."""
    counts: dict[str, int] = {}
    current = None
    for line in log.read_text(errors="replace").splitlines():
        m = re.match(r"^(tests/\S+\.py)::\S+:\s*$", line.strip())
        if m:
            current = m.group(1)
            continue
        m = re.search(r"(\d+) passing(?: examples?)?, (\d+) failing(?: examples?)?,? (?:and )?(\d+) invalid", line)
        if m and current:
            counts[current] = counts.get(current, 0) + sum(int(g) for g in m.groups())
    return counts


def collected(files: list[str]) -> dict[str, int]:
    """Tests per file as pytest collects them, for parts that were not run."""
    if not files:
        return {}
    out = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q", *files],
                         cwd=REPO, capture_output=True, text=True).stdout
    counts: dict[str, int] = {}
    for line in out.splitlines():
        if "::" in line:
            f = line.split("::")[0]
            counts[f] = counts.get(f, 0) + 1
    return counts


def git_describe() -> str:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                           capture_output=True, text=True).stdout.strip()
    return f"{head or 'unknown'}{' + uncommitted changes' if dirty else ''}"


def soak_section(report: dict | None, soak_junit: dict[str, FileResult], ran: bool) -> list[str]:
    if not ran:
        return ["The chaos soak was not run this time (`--skip-soak`).", ""]
    if report is None:
        r = soak_junit.get(SOAK, FileResult())
        return [f"The chaos soak did not write its report (pytest: {r.passed} passed, {r.failed} failed); "
                f"see {OUT / 'soak.log'}.", ""]
    ok = report.get("problems", 1) == 0
    jobs, done = report.get("jobs", 0), report.get("jobs_succeeded", 0)
    latency = ""
    if report.get("recovery_s_median") is not None:
        latency = (f"; preemption to next attempt running: median {report['recovery_s_median']} s, "
                   f"p90 {report['recovery_s_p90']} s, max {report['recovery_s_max']} s")
    recomputed = report.get("steps_recomputed", 0)
    lines = [
        f"`{SOAK}`: {jobs} checkpointing jobs on the local cloud, {report.get('chaos_s', '?')} s of chaos "
        f"then a calm tail until every job ended ({report.get('duration_s', '?')} s in all; {report.get('steps_per_job')} "
        f"steps of {report.get('step_s')} s per job). Result: **{'passed' if ok else 'FAILED'}**.",
        "",
        "| fault injected | times | outcome |",
        "|---|---|---|",
        f"| random spot preemption (mean {report.get('mtbf_s'):g} s per VM; local-west with a 2 s notice) "
        f"| {report.get('cloud_preemptions', 0)} by the cloud, {report.get('preemptions', 0)} during a run "
        f"| {report.get('recoveries', 0)} recoveries, {report.get('false_recoveries', 0)} without a preemption{latency} |",
        f"| worker SIGKILLed, a new one started | {report.get('worker_kills', 0)} | jobs carried on |",
        f"| Temporal server SIGKILLed and restarted | {report.get('server_restarts', 0)} | jobs carried on |",
        f"| concurrent `spotctl launch -y -d` | {report.get('burst_launches', 0)} at once, "
        f"{report.get('burst_wall_s', '?')} s | {report.get('launches', 0)}/{jobs} jobs launched in all |",
        *boundary_rows(report),
        "",
        "| checked | found |",
        "|---|---|",
        f"| jobs SUCCEEDED with an uninterrupted run's result | {done}/{jobs} |",
        f"| two copies of a job's program at once (flock) | {report.get('violations', '?')} |",
        f"| attempts whose stored log differs from what the program wrote | "
        f"{report.get('lost_log_attempts', '?')} ({report.get('log_bytes_checked', 0)} bytes compared) |",
        f"| resumes that do not follow the printed output (a gap, or more than one step redone) | {report.get('resume_gaps', '?')}"
        + (f" ({recomputed} steps recomputed in all)" if recomputed >= 0 else "") + " |",
        f"| attempts that printed the result but whose VM went before the exit was recorded (rerun from the last "
        f"checkpoint: only the result printed again) | {report.get('results_reprinted', '?')} |",
        f"| **lost** (jobs not succeeded + attempts with lost log bytes + resume gaps) | **{report.get('lost', '?')}** |",
        "",
        "Afterwards the soak also asserts that no instance is alive or left unterminated, and that no instance "
        "process, instance disk, ephemeral bucket, soak process or temp file is left.",
        "",
    ]
    if not ok:
        lines += ["Problems found:", ""] + [f"- {p if len(p) < 400 else p[:400] + ' ...'}"
                                            for p in report.get("problem_list", [])] + [""]
    return lines


def boundary_rows(report: dict) -> list[str]:
    """The soak's issue-22 faults: cancels at continue-as-new boundaries, a pipeline whose
    webhook is down (absent from reports written before them)."""
    rows = []
    c = report.get("cancels_at_boundaries")
    if c:
        rows.append(f"| cancel the moment a job continues as new ({c.get('at_new_run', 0)} at once, "
                    f"{c.get('worker_down', 0)} in a worker SIGKILL window) | {c.get('sent', 0)} sent, "
                    f"{c.get('in_first_task', 0)} reached the new run's first task | {c.get('cancelled', 0)} CANCELLED "
                    f"(slowest {c.get('cancelled_s_max', '?')} s), {c.get('lost', '?')} lost |")
    p = report.get("pipeline_events")
    if p:
        waits = p.get("next_task_s") or []
        rows.append(f"| webhook answering 503 under a {p.get('tasks', '?')}-task pipeline | "
                    f"{p.get('webhook_down_s', '?')} s, {p.get('refused_during_outage', '?')} posts refused | "
                    f"{p.get('status', '?')}; next task started after at most {max(waits) if waits else '?'} s; "
                    f"{p.get('delivered', '?')}/{p.get('events', '?')} events delivered once it was back |")
    return rows


def tests_section(results: dict[str, FileResult], examples: dict[str, int], counted: dict[str, int],
                  present: list[str], ran: bool) -> list[str]:
    lines = [
        "| kind | what is thrown at spotctl | file | tests | examples | passed | failed | skipped | lost |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for f in present:
        kind, what = FILES[f]
        if not ran:
            lines.append(f"| {kind} | {what} | `{f}` | {counted.get(f, 0)} | - | not run | - | - | - |")
            continue
        r = results.get(f, FileResult())
        ex = examples.get(f)
        lost = "nothing" if r.failed == 0 and r.passed else "-" if not r.passed and not r.failed else "see the failures"
        lines.append(f"| {kind} | {what} | `{f}` | {r.tests} | {ex if ex is not None else '-'} | {r.passed} "
                     f"| {r.failed} | {r.skipped} | {lost} |")
    missing = [f for f in FILES if f not in present]
    lines.append("")
    if missing:
        lines += [f"Not in the tree yet, so not run: {', '.join(f'`{f}`' for f in missing)}.", ""]
    failed = {f: r.failures for f, r in results.items() if r.failures}
    if failed:
        lines += ["Failed tests:", ""] + [f"- `{f}::{n.split(':', 1)[0]}`: {n.split(':', 1)[1].strip()}"
                                          for f, names in failed.items() for n in names] + [""]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--soak-jobs", type=int, default=50)
    parser.add_argument("--soak-seconds", type=float, default=300)
    parser.add_argument("--skip-soak", action="store_true", help="do not run the chaos soak")
    parser.add_argument("--skip-tests", action="store_true", help="do not run the bad-input and fault tests")
    parser.add_argument("--whole-suite", action="store_true",
                        help="run the whole test suite once (the soak is in it) and take both parts from it")
    parser.add_argument("--reuse", action="store_true",
                        help="run nothing: rewrite RELIABILITY.md from the last run's files in " + str(OUT))
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")

    report_path = OUT / "soak.json"
    report: dict | None = None
    soak_junit: dict[str, FileResult] = {}
    whole: dict[str, FileResult] = {}
    if args.whole_suite:
        report_path.unlink(missing_ok=True)
        run_pytest([f"--junitxml={OUT / 'all.xml'}", "--hypothesis-show-statistics"], OUT / "all.log", env={
            "SPOTCTL_SOAK_REPORT": str(report_path),
            "SPOTCTL_SOAK_ARTIFACTS": str(OUT / "soak-artifacts"),
        })
        whole = junit_results(OUT / "all.xml")
        soak_junit = {SOAK: whole.get(SOAK, FileResult())}
        report = json.loads(report_path.read_text()) if report_path.exists() else None
    elif args.reuse and (OUT / "all.xml").exists() and json.loads((OUT / "meta.json").read_text()).get(
            "command", "").endswith("--whole-suite"):
        args.whole_suite = True  # the last run was of the whole suite: rewrite from its files
        whole = junit_results(OUT / "all.xml")
        soak_junit = {SOAK: whole.get(SOAK, FileResult())}
        report = json.loads(report_path.read_text()) if report_path.exists() else None
    elif args.reuse:
        soak_junit = junit_results(OUT / "soak.xml")
        report = json.loads(report_path.read_text()) if report_path.exists() else None
        args.skip_soak = report is None and not soak_junit
    elif not args.skip_soak:
        report_path.unlink(missing_ok=True)
        run_pytest([SOAK, f"--junitxml={OUT / 'soak.xml'}"], OUT / "soak.log", env={
            "SPOTCTL_SOAK_REPORT": str(report_path),
            "SPOTCTL_SOAK_JOBS": str(args.soak_jobs),
            "SPOTCTL_SOAK_SECONDS": str(args.soak_seconds),
            "SPOTCTL_SOAK_ARTIFACTS": str(OUT / "soak-artifacts"),
        })
        soak_junit = junit_results(OUT / "soak.xml")
        if report_path.exists():
            report = json.loads(report_path.read_text())

    present = [f for f in FILES if (REPO / f).exists()]
    results: dict[str, FileResult] = {}
    examples: dict[str, int] = {}
    counted: dict[str, int] = {}
    outcomes: dict[str, str] = {}
    if args.whole_suite:
        results = whole
        examples = hypothesis_examples(OUT / "all.log")
        outcomes = case_outcomes(OUT / "all.xml")
    elif args.reuse and (OUT / "tests.xml").exists():
        results = junit_results(OUT / "tests.xml")
        examples = hypothesis_examples(OUT / "tests.log") if (OUT / "tests.log").exists() else {}
        outcomes = case_outcomes(OUT / "tests.xml")
    elif args.skip_tests or args.reuse:
        args.skip_tests = True
        counted = collected(present)
    elif present:
        defect_files = sorted({t.split("::")[0] for d in DEFECTS for t in d.tests} - set(present))
        run_pytest([*present, *defect_files, f"--junitxml={OUT / 'tests.xml'}", "--hypothesis-show-statistics"],
                   OUT / "tests.log")
        results = junit_results(OUT / "tests.xml")
        examples = hypothesis_examples(OUT / "tests.log")
        outcomes = case_outcomes(OUT / "tests.xml")

    soak_ok = args.skip_soak or (report is not None and report.get("problems", 1) == 0)
    tests_ok = args.skip_tests or all(r.failed == 0 for r in results.values())
    suite_line: list[str] = []
    if args.whole_suite:
        total = FileResult()
        for r in whole.values():
            total.tests += r.tests
            total.passed += r.passed
            total.failed += r.failed
            total.skipped += r.skipped
        suite_line = [f"The whole suite (the README's `pytest`, what CI runs) ran in the same run: {total.passed} passed, "
                      f"{total.failed} failed, {total.skipped} skipped.", ""]
    command = "python bench/reliability.py" + "".join(
        f" {a}" for a, on in (
            (f"--soak-jobs {args.soak_jobs}", args.soak_jobs != 50),
            (f"--soak-seconds {args.soak_seconds:g}", args.soak_seconds != 300),
            ("--whole-suite", args.whole_suite),
            ("--skip-soak", args.skip_soak and not args.whole_suite), ("--skip-tests", args.skip_tests)) if on)
    meta_path = OUT / "meta.json"
    if args.reuse and meta_path.exists():  # the date and command of the run that measured
        meta = json.loads(meta_path.read_text())
    else:
        meta = {"command": command, "when": when, "seconds": round(time.monotonic() - started),
                "at": git_describe(), "cpus": os.cpu_count()}
        meta_path.write_text(json.dumps(meta) + "\n")
    lines = [
        "# Reliability",
        "",
        f"Regenerated by `{meta['command']}` on {meta['when']}, at {meta['at']}, on {meta['cpus']} CPU core(s) "
        f"shared with other work ({meta['seconds']} s). Every fault below was injected for real: real Temporal, real "
        "processes on the local cloud. \"Lost\" is a job that did not succeed, a log byte that differs from what "
        "the program wrote, or progress behind the last checkpoint; tests that pass assert there is none.",
        "",
        *suite_line,
        "## Chaos soak",
        "",
        *soak_section(report, soak_junit, not args.skip_soak),
        *defects_section(outcomes, not args.skip_tests),
        "## Bad-input and fault tests",
        "",
        *tests_section(results, examples, counted, present, not args.skip_tests),
    ]
    (REPO / "RELIABILITY.md").write_text("\n".join(lines).rstrip() + "\n")
    print(f"wrote {REPO / 'RELIABILITY.md'} ({'all passed' if soak_ok and tests_ok else 'FAILURES, see it'})")
    return 0 if soak_ok and tests_ok else 1


if __name__ == "__main__":
    sys.exit(main())
