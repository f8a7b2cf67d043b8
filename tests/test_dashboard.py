"""`spotctl dashboard` in a real headless browser (Debian's chromium through its chromedriver),
against the real embedded Temporal server and the local cloud: a preempted job, a pipeline and
cancelled jobs. Each page loads with no console error, live updates arrive without a reload,
nothing is fetched from outside loopback, and a screenshot of each page is kept in
test-artifacts/dashboard/ (gitignored) for a person to look at.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait
from test_deadlines import SWITCH_REASONS, deadline_task

from conftest import REPO, Spot, _leftovers

ARTIFACTS = REPO / "test-artifacts" / "dashboard"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
WAIT_S = 60


def _needs_browser() -> None:
    if os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER):
        return
    message = "Debian's chromium and chromium-driver are needed (`apt-get install chromium chromium-driver`; .ci/run does)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class Dashboard:
    url: str
    proc: subprocess.Popen
    requests: list[tuple[str, str]] = field(default_factory=list)
    """Every (URL, URL of the page that asked for it) the browser requested (chromium's performance log)."""


@pytest.fixture(scope="module")
def dashboard(spot: Spot) -> Iterator[Dashboard]:
    """`spotctl dashboard --port 0` as a user runs it; stopped with Ctrl-C (SIGINT) at the end."""
    env = {**os.environ, **spot.env, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    proc = subprocess.Popen([sys.executable, "-m", "spotctl", "dashboard", "--port", "0"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        line = ""
        assert proc.stdout is not None
        while time.monotonic() < deadline and not line.startswith("Dashboard: "):
            ready, _, _ = select.select([proc.stdout], [], [], 1.0)
            if ready:
                line = proc.stdout.readline()
                if not line:
                    break
        assert line.startswith("Dashboard: http://127.0.0.1:"), (line, proc.poll(), proc.stderr and proc.stderr.read())
        yield Dashboard(url=line.split()[1].rstrip("/"), proc=proc)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError("the dashboard did not stop on Ctrl-C") from None
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    """One headless chromium for the module, with its console and network logs on."""
    _needs_browser()
    options = Options()
    options.binary_location = CHROMIUM
    profile = tmp_path_factory.mktemp("chromium-profile")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1600",
                "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-extensions", "--disable-default-apps",
                f"--user-data-dir={profile}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def long_task(tmp_path: Path, name: str, *, hold_first: bool = False, ticks: int = 8) -> str:
    """A job printing ticks; `hold_first`: its first attempt runs until it is preempted."""
    hold = 'if [ "$SPOTCTL_RECOVERY_COUNT" = 0 ]; then while true; do sleep 0.2; done; fi' if hold_first else ""
    path = tmp_path / f"{name}.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: {name}
        resources:
          cpus: 1+
        run: |
          echo "attempt $SPOTCTL_ATTEMPT"
          {hold}
          for i in $(seq 1 {ticks}); do echo "tick $i"; sleep 0.5; done
    """))
    return str(path)


def pipeline_task(tmp_path: Path) -> str:
    path = tmp_path / "pipeline.yaml"
    path.write_text(textwrap.dedent("""\
        name: etl
        ---
        name: extract
        resources: {cpus: 1+}
        run: echo extracted
        ---
        name: load
        resources: {cpus: 1+}
        run: echo loaded
    """))
    return str(path)


@dataclass
class Jobs:
    preempted: int
    pipeline: int
    cancelled: int
    followed: int


@pytest.fixture(scope="module")
def jobs(spot: Spot, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jobs]:
    """A job preempted once (then SUCCEEDED elsewhere), a pipeline, and two long jobs the tests
    cancel; every job ended and every instance gone at the end."""
    tmp = tmp_path_factory.mktemp("dashboard-tasks")
    made = Jobs(
        preempted=spot.launch_detached(long_task(tmp, "recovers", hold_first=True, ticks=4)),
        pipeline=spot.launch_detached(pipeline_task(tmp)),
        cancelled=spot.launch_detached(long_task(tmp, "cancelled-live", ticks=2000)),
        followed=spot.launch_detached(long_task(tmp, "followed", ticks=2000)),
    )
    try:
        spot.wait_running(made.preempted, 1, timeout=WAIT_S)
        result = spot.run("debug", "preempt", str(made.preempted), "--notice", "0")
        assert result.exit_code == 0, result.output
        yield made
    finally:
        spot.run("cancel", "-y", *(str(j) for j in (made.preempted, made.pipeline, made.cancelled, made.followed)))
        deadline = time.monotonic() + 60
        while (left := _leftovers(spot)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert left == [], "; ".join(left)


def open_page(browser: WebDriver, dash: Dashboard, path: str) -> None:
    browser.get(dash.url + path)
    WebDriverWait(browser, WAIT_S).until(lambda d: d.find_element(By.ID, "updated").text.startswith("updated"))


def console_errors(browser: WebDriver, dash: Dashboard) -> list[str]:
    """The browser console's errors since the last call; the requests made are kept in `dash`."""
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            dash.requests.append((message["params"]["request"]["url"], message["params"].get("documentURL", "")))
    return [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def screenshot(browser: WebDriver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    assert browser.save_screenshot(str(path)), path
    return path


def table_rows(browser: WebDriver) -> list[dict]:
    """The jobs table as shown now, read in one go (the page replaces its rows at each update)."""
    return browser.execute_script("""
        return [...document.querySelectorAll('#jobs tbody tr[data-job-id]')].map(r => ({
            id: Number(r.dataset.jobId), task: r.classList.contains('task'), status: r.dataset.status,
            cells: [...r.children].map(td => td.textContent)}));""")


def row_status(browser: WebDriver, job_id: int) -> str | None:
    return next((r["status"] for r in table_rows(browser) if r["id"] == job_id and not r["task"]), None)


def wait_for(browser: WebDriver, what: str, check, timeout: float = WAIT_S) -> None:
    try:
        WebDriverWait(browser, timeout, poll_frequency=0.2,
                      ignored_exceptions=(StaleElementReferenceException,)).until(lambda d: check(d))
    except TimeoutException:
        raise AssertionError(f"the page never showed {what}") from None


def test_jobs_page_updates_live_and_filters(spot: Spot, dashboard: Dashboard, browser: WebDriver, jobs: Jobs) -> None:
    spot.wait_running(jobs.cancelled, 1, timeout=WAIT_S)
    open_page(browser, dashboard, "/")
    wait_for(browser, f"job {jobs.cancelled} RUNNING", lambda d: row_status(d, jobs.cancelled) == "RUNNING")
    headers = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#jobs thead th")]
    for column in ("ID", "NAME", "RESOURCES", "SUBMITTED", "TOT. DURATION", "JOB DURATION", "#RECOVERIES", "STATUS",
                   "COST", "ON-DEMAND", "SAVED", "CLOUD", "REGION", "FAILURE"):
        assert column in headers, headers
    browser.execute_script("window.__notReloaded = true;")
    result = spot.run("cancel", "-y", str(jobs.cancelled))
    assert result.exit_code == 0, result.output
    wait_for(browser, f"job {jobs.cancelled} CANCELLED", lambda d: row_status(d, jobs.cancelled) == "CANCELLED")
    assert browser.execute_script("return window.__notReloaded === true;"), "the page was reloaded"

    spot.wait_status(jobs.preempted, "SUCCEEDED", timeout=WAIT_S)
    spot.wait_status(jobs.pipeline, "SUCCEEDED", timeout=WAIT_S)
    wait_for(browser, "the preempted job SUCCEEDED", lambda d: row_status(d, jobs.preempted) == "SUCCEEDED")
    wait_for(browser, "the pipeline's task lines",
             lambda d: [r["status"] for r in table_rows(d) if r["id"] == jobs.pipeline and r["task"]] == ["SUCCEEDED"] * 2)
    preempted_row = next(r for r in table_rows(browser) if r["id"] == jobs.preempted)
    cells = dict(zip(headers, preempted_row["cells"], strict=True))
    assert cells["#RECOVERIES"] == "1" and cells["NAME"] == "recovers" and cells["COST"].startswith("$"), cells
    workflow = browser.execute_script(f"return document.querySelector(\"#jobs tr[data-job-id='{jobs.preempted}'] a.workflow\").href;")
    assert workflow == f"{spot.settings.ui_url}/namespaces/default/workflows/spotctl-job-{jobs.preempted}", workflow
    assert console_errors(browser, dashboard) == []
    screenshot(browser, "jobs")

    # filters: by status (from the form), then by name (in the URL, as a link to a filtered view)
    browser.find_element(By.CSS_SELECTOR, "#f-status option[value='CANCELLED']").click()
    browser.find_element(By.CSS_SELECTOR, "#filters button").click()
    wait_for(browser, "only cancelled jobs", lambda d: {r["status"] for r in table_rows(d)} == {"CANCELLED"})
    assert "status=CANCELLED" in browser.current_url
    open_page(browser, dashboard, "/?name=etl")
    wait_for(browser, "only the pipeline", lambda d: {r["id"] for r in table_rows(d)} == {jobs.pipeline})
    assert console_errors(browser, dashboard) == []
    screenshot(browser, "jobs-filtered")


def test_job_page_tells_where_why_and_what_it_cost(dashboard: Dashboard, browser: WebDriver, jobs: Jobs,
                                                   spot: Spot) -> None:
    job = spot.wait_status(jobs.preempted, "SUCCEEDED", timeout=WAIT_S)
    open_page(browser, dashboard, f"/jobs/{jobs.preempted}")
    wait_for(browser, "the job's status", lambda d: d.find_element(By.ID, "job-status").text == "SUCCEEDED")
    events = browser.find_element(By.ID, "events").text
    first, second = (f"{r['cloud']}/{r['region']}/{r['zone']}" for r in job["history"])
    assert f"preempted in {first}" in events and f"attempt 2 launched in {second} on spot" in events, events
    drawn = browser.execute_script("""
        const c = Chart.getChart('timeline');
        return {places: c.data.labels, sets: Object.fromEntries(c.data.datasets.map(s => [s.label, s.data.length]))};""")
    assert drawn["places"] == list(dict.fromkeys([first, second])), drawn
    assert drawn["sets"]["spot"] == 2 and drawn["sets"]["preemption"] == 1, drawn
    costs = browser.execute_script("return Chart.getChart('cost').data.datasets.map(s => s.data.at(-1).y);")
    assert costs[0] > 0 and costs[1] > costs[0], costs  # spot cost below its on-demand equivalent
    link = browser.find_element(By.ID, "workflow-link").get_attribute("href")
    assert link == f"{spot.settings.ui_url}/namespaces/default/workflows/spotctl-job-{jobs.preempted}", link
    wait_for(browser, "the log tail", lambda d: "tick 4" in d.find_element(By.ID, "log").text)
    assert console_errors(browser, dashboard) == []
    screenshot(browser, "job-preempted")

    spot.wait_status(jobs.pipeline, "SUCCEEDED", timeout=WAIT_S)
    open_page(browser, dashboard, f"/jobs/{jobs.pipeline}")
    wait_for(browser, "the pipeline's tasks", lambda d: "Task 1" in d.find_element(By.ID, "facts").text)
    facts = browser.find_element(By.ID, "facts").text
    assert "extract: SUCCEEDED" in facts and "load: SUCCEEDED" in facts, facts
    assert console_errors(browser, dashboard) == []
    screenshot(browser, "job-pipeline")


def test_job_page_follows_a_running_job_live(dashboard: Dashboard, browser: WebDriver, jobs: Jobs, spot: Spot) -> None:
    spot.wait_running(jobs.followed, 1, timeout=WAIT_S)
    open_page(browser, dashboard, f"/jobs/{jobs.followed}")
    wait_for(browser, "the log's first ticks", lambda d: "tick 2" in d.find_element(By.ID, "log").text)
    browser.execute_script("window.__notReloaded = true;")
    wait_for(browser, "the log growing", lambda d: "tick 6" in d.find_element(By.ID, "log").text)
    assert spot.run("cancel", "-y", str(jobs.followed)).exit_code == 0
    wait_for(browser, "the job CANCELLED", lambda d: d.find_element(By.ID, "job-status").text == "CANCELLED")
    assert browser.execute_script("return window.__notReloaded === true;"), "the page was reloaded"
    assert console_errors(browser, dashboard) == []
    screenshot(browser, "job-cancelled")


def test_fleet_page_shows_spend_zones_and_pools(dashboard: Dashboard, browser: WebDriver, jobs: Jobs, spot: Spot) -> None:
    job = spot.wait_status(jobs.preempted, "SUCCEEDED", timeout=WAIT_S)
    open_page(browser, dashboard, "/fleet")
    zone = f"{job['history'][0]['cloud']}/{job['history'][0]['zone']}"
    wait_for(browser, "the zones chart", lambda d: d.execute_script("return !!Chart.getChart('zones');"))
    zones = browser.execute_script("""
        const c = Chart.getChart('zones');
        return Object.fromEntries(c.data.labels.map((z, i) => [z, c.data.datasets[0].data[i]]));""")
    assert zones.get(zone, 0) >= 1, zones  # the preemption the fleet's memory recorded
    spend = browser.execute_script("return Chart.getChart('spend').data.datasets.map(s => s.data.at(-1).y);")
    assert 0 < spend[0] < spend[1], spend
    assert "No pool runs" in browser.find_element(By.ID, "pools").text
    prices = browser.find_element(By.ID, "prices").text  # where the costs' prices come from, dated
    assert "Prices: local: the cloud's own prices (its config)" in prices, prices
    assert console_errors(browser, dashboard) == []
    screenshot(browser, "fleet")


def test_fleet_page_shows_a_pool_and_its_workers(dashboard: Dashboard, browser: WebDriver, spot: Spot,
                                                 tmp_path: Path) -> None:
    pool = tmp_path / "pool.yaml"
    pool.write_text("pool:\n  workers: 1\nresources:\n  cpus: 1+\nsetup: echo set up\n")
    job = tmp_path / "on-pool.yaml"
    job.write_text("name: on-pool\nrun: |\n  for i in $(seq 1 600); do echo \"tick $i\"; sleep 0.5; done\n")
    assert spot.run("pool", "apply", "-p", "dash", str(pool), "-y").exit_code == 0
    try:
        job_id = spot.launch_detached("-p", "dash", str(job))
        spot.wait_running(job_id, 1, timeout=WAIT_S)
        open_page(browser, dashboard, "/fleet")
        wait_for(browser, "the pool's busy worker running the job", lambda d: d.execute_script("""
            return [...document.querySelectorAll("#pools tr[data-pool='dash']")].map(r => r.textContent).join(' ');
            """).count(str(job_id)) == 1 and "busy" in d.find_element(By.ID, "pools").text)
        assert console_errors(browser, dashboard) == []
        screenshot(browser, "fleet-pool")
        open_page(browser, dashboard, "/?pool=dash")
        wait_for(browser, "the pool's job", lambda d: [r["id"] for r in table_rows(d)] == [job_id])
        assert "POOL" in [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#jobs thead th")]
        assert spot.run("cancel", "-y", str(job_id)).exit_code == 0
        spot.wait_status(job_id, "CANCELLED", timeout=WAIT_S)
    finally:
        result = spot.run("pool", "down", "dash", "--cancel", "-y")
        assert result.exit_code == 0 and "is down" in result.output, result.output


def test_job_page_shows_a_deadline_its_slack_and_the_switch(dashboard: Dashboard, browser: WebDriver, spot: Spot,
                                                           tmp_path: Path) -> None:
    """A deadline job preempted on spot until its slack no longer covers a restart, then moved to
    on-demand (tests/test_deadlines.py's scenario): its page shows the deadline, the slack, the
    markets and the switch with its reason."""
    bucket = f"dash-due-{uuid.uuid4().hex[:8]}"
    try:
        job_id = spot.launch_detached(deadline_task(tmp_path, bucket))
        attempt, job = 1, {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            job = spot.wait_running(job_id, attempt, timeout=30)
            if job["market"] == "on-demand":
                break
            time.sleep(0.8)
            assert spot.run("debug", "preempt", str(job_id), "--notice", "0").exit_code == 0
            attempt += 1
        assert job.get("market") == "on-demand", job
        spot.wait_status(job_id, "SUCCEEDED", timeout=WAIT_S)
        open_page(browser, dashboard, f"/jobs/{job_id}")
        wait_for(browser, "the job's status", lambda d: d.find_element(By.ID, "job-status").text == "SUCCEEDED")
        said = browser.find_element(By.ID, "deadline").text
        assert "market on-demand" in said and "slack" in said and "1 switch(es)" in said, said
        events = browser.find_element(By.ID, "events").text
        assert "market switch in" in events and any(why in events for why in SWITCH_REASONS), events
        drawn = browser.execute_script("""
            const c = Chart.getChart('timeline');
            return Object.fromEntries(c.data.datasets.map(s => [s.label, s.data.length]));""")
        assert drawn["on-demand"] == 1 and drawn["spot"] == attempt - 1 and drawn["market switch"] == 1, drawn
        assert drawn["preemption"] == attempt - 1 and drawn["deadline"] >= 1, drawn
        assert console_errors(browser, dashboard) == []
        screenshot(browser, "job-deadline")
    finally:
        shutil.rmtree(spot.home / "local_buckets" / bucket, ignore_errors=True)


def test_errors_are_one_line_on_the_page(dashboard: Dashboard, browser: WebDriver, jobs: Jobs) -> None:
    def get(path: str, host: str | None = None) -> tuple[int, str]:
        request = urllib.request.Request(dashboard.url + path, headers={"Host": host} if host else {})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    assert get("/api/jobs?limit=0") == (400, json.dumps({"error": "limit must be a whole number from 1 to 500, not '0'"},
                                                         separators=(",", ":")))
    assert get("/api/jobs?limit=" + "9" * 5000)[0] == 400
    assert get("/api/jobs?status=DONE")[0] == 400
    assert get("/api/jobs?pool=Not_A_Pool")[0] == 400
    assert get("/api/jobs?name=" + "x" * 300)[0] == 400
    assert get("/api/jobs/987654") == (404, '{"error":"no job with id 987654"}')
    assert get("/api/jobs?array=987654") == (404, '{"error":"no job array starts at job 987654"}')
    assert get("/", host="attacker.example")[0] == 400  # DNS rebinding: only loopback names are answered
    browser.get(dashboard.url + "/?array=987654")
    wait_for(browser, "the error line", lambda d: "no job array starts at job 987654" in d.find_element(By.ID, "error").text)
    assert "Traceback" not in browser.page_source
    errors = console_errors(browser, dashboard)
    assert errors and all("404" in e for e in errors), errors  # the failed fetch, and nothing else
    screenshot(browser, "error")


def test_nothing_is_fetched_from_outside_loopback(dashboard: Dashboard, browser: WebDriver) -> None:
    console_errors(browser, dashboard)
    ours = [url for url, page in dashboard.requests if page.startswith(dashboard.url + "/")]
    assert len(ours) > 10
    outside = [url for url in ours if not (url.startswith(dashboard.url + "/") or url.startswith("data:"))]
    assert outside == [], outside
    assert any(url.endswith("/static/vendor/chart.umd.min.js") for url in ours)
    # and nothing on the network at all but this machine (chromium's own chrome:// pages are no fetch)
    network = [url for url, _ in dashboard.requests if urlsplit(url).scheme in ("http", "https", "ws", "wss")]
    assert {urlsplit(url).hostname for url in network} == {"127.0.0.1"}, network


def test_temporal_ui_flag_prints_the_address(spot: Spot, jobs: Jobs) -> None:
    base = f"{spot.settings.ui_url}/namespaces/default/workflows"
    result = spot.run("dashboard", "--temporal-ui")
    assert result.exit_code == 0 and result.stdout.strip() == base, result.output
    result = spot.run("dashboard", "--temporal-ui", str(jobs.pipeline))
    assert result.stdout.strip() == f"{base}/spotctl-job-{jobs.pipeline}", result.output
    assert spot.run("dashboard", "--temporal-ui", "987654").exit_code == 102
    assert spot.run("dashboard", "987654").exit_code == 102  # no server for a job that does not exist
