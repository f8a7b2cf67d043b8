"""A bad setting the embedded worker meets after it was started (config.yaml edited while the
server runs) is never a silent crash loop: the worker exits 2 with its one line, the supervisor
repeats that line in supervisor.log at each restart, every command refuses the same value, and
the worker comes back once the file is fixed."""

from __future__ import annotations

from test_supervisor import Embedded, embedded, kill, spotctl, wait_until

__all__ = ["embedded"]  # the fixture, used by name below

BAD_YAML = "worker:\n  max_concurrent_launches: 0\n"
SAID = "worker.max_concurrent_launches=0: must be 1..10,000"


def test_a_worker_refusing_its_settings_is_named_in_the_supervisor_log(embedded: Embedded) -> None:
    started = spotctl(embedded.env, "server", "start")
    assert started.returncode == 0, started.stderr
    config = embedded.home / "config.yaml"
    log = embedded.home / "server" / "supervisor.log"
    worker = embedded.server.worker.pid()
    assert worker is not None
    try:
        config.write_text(BAD_YAML)
        kill(worker)
        line = wait_until(lambda: next((said for said in log.read_text().splitlines()
                                        if "exited with code 2" in said and SAID in said), None),
                          60, "the supervisor to log why the worker stops")
        assert "worker (pid" in line and "restarting in" in line, line
        refused = spotctl(embedded.env, "server", "status")
        assert refused.returncode == 2 and SAID in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    finally:
        config.unlink(missing_ok=True)
    wait_until(lambda: embedded.server.ready(), 90, "the worker to be back once config.yaml is fixed")
    status = spotctl(embedded.env, "server", "status", "--json")
    assert status.returncode == 0, status.stderr
