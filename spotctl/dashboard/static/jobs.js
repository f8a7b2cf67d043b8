/* The jobs page: `status -a`'s table, refreshed every POLL_MS, filtered by the form (kept in the URL). */
"use strict";

const FILTERS = ["status", "name", "array", "pool", "limit"];

function columns(shown) {
  const cols = [["ID", "id"]];
  if (shown.task) cols.push(["TASK", "task"]);
  cols.push(["NAME", "name"], ["RESOURCES", "resources"], ["SUBMITTED", "submitted"], ["TOT. DURATION", "total"],
            ["JOB DURATION", "job_duration"], ["#RECOVERIES", "recoveries"], ["STATUS", "status"], ["COST", "cost"]);
  if (shown.deadline) cols.push(["MARKET", "market"], ["SLACK", "slack"]);
  if (shown.priority) cols.push(["PRIORITY", "priority"]);
  if (shown.array) cols.push(["ARRAY", "array"], ["RANK", "rank"]);
  if (shown.pool) cols.push(["POOL", "pool"]);
  cols.push(["ON-DEMAND", "ondemand"], ["SAVED", "saved"], ["CLOUD", "cloud"], ["REGION", "region"], ["FAILURE", "failure"]);
  return cols;
}

const NUMERIC = new Set(["cost", "ondemand", "saved", "recoveries"]);

function cell(row, key) {
  if (key === "status") return statusCell(row.status);
  if (key === "id") {
    if (row.task !== null) return el("td", {}, " ↳");
    return el("td", {}, el("a", { href: `/jobs/${row.id}` }, row.id), " ",
              el("a", { href: row.workflow, class: "workflow", rel: "noreferrer", target: "_blank",
                        title: "its workflow in the Temporal UI" }, "↗"));
  }
  let value = row[key];
  if (key === "submitted") value = ago(value);
  if (key === "task" && row.task === null) value = "";
  if (value === null || value === undefined) value = "-";
  return el("td", { class: NUMERIC.has(key) ? "num" : key === "failure" ? "wrap" : null, title: typeof value === "string" && value.length > 30 ? value : null }, value);
}

function render(data) {
  const cols = columns(data.columns);
  const head = document.querySelector("#jobs thead");
  head.replaceChildren(el("tr", {}, ...cols.map(([title]) => el("th", {}, title))));
  const rows = [];
  for (const job of data.jobs) {
    rows.push(el("tr", { dataset: { jobId: job.id, status: job.status } }, ...cols.map(([, key]) => cell(job, key))));
    for (const task of job.tasks) {
      rows.push(el("tr", { class: "task", dataset: { jobId: job.id, task: task.task, status: task.status } },
                   ...cols.map(([, key]) => cell(task, key))));
    }
  }
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: cols.length, class: "muted" }, "No managed jobs match.")));
  document.querySelector("#jobs tbody").replaceChildren(...rows);
  const footer = document.getElementById("footer");
  footer.textContent = data.total > data.jobs.length
    ? `Showing the newest ${data.jobs.length.toLocaleString()} of ${data.total.toLocaleString()} jobs; raise Rows (up to 500) or narrow the filters.`
    : `${data.jobs.length.toLocaleString()} job(s).` + (data.stale ? " Worker not answering: some states may be stale." : "");
}

function query() {
  const params = new URLSearchParams(window.location.search);
  const out = new URLSearchParams();
  for (const key of FILTERS) {
    const value = (params.get(key) || "").trim();
    if (value && value !== "all") out.set(key, value);
  }
  return out;
}

function fillForm(about, refresh) {
  const select = document.getElementById("f-status");
  for (const status of about ? about.statuses : []) select.append(el("option", { value: status }, status));
  const params = query();
  for (const key of FILTERS) {
    const input = document.getElementById(`f-${key}`);
    if (params.has(key)) input.value = params.get(key);
  }
  document.getElementById("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    const out = new URLSearchParams();
    for (const key of FILTERS) {
      const value = document.getElementById(`f-${key}`).value.trim();
      if (value && value !== "all" && !(key === "limit" && value === "50")) out.set(key, value);
    }
    history.replaceState(null, "", out.toString() ? `/?${out}` : "/");
    refresh();
  });
}

document.addEventListener("DOMContentLoaded", async () => {
  const about = await linkTemporalUI();
  const poller = poll(async () => render(await getJSON(`/api/jobs?${query()}`)));
  fillForm(about, () => poller.kick());
});
