/* One job: its facts, a timeline of its attempts (Chart.js floating bars, one row per place, with
   preemptions and market switches marked), its cost against on-demand over time and its log tail,
   refreshed every POLL_MS until it has ended. */
"use strict";

const JOB_ID = Number(window.location.pathname.split("/").pop());
const COLORS = { spot: "#2563eb", "on-demand": "#f59e0b", "-": "#94a3b8" };
let timelineChart = null;
let costChart = null;

function fact(dl, label, value, attrs) {
  if (value === null || value === undefined || value === "" || value === "-") return;
  dl.append(el("dt", {}, label), el("dd", attrs || {}, value));
}

function renderFacts(data) {
  const row = data.row;
  document.title = `spotctl: job ${row.id} ${row.name}`;
  document.getElementById("title").replaceChildren(`Job ${row.id} `, el("span", {}, row.name), " ",
    el("span", { id: "job-status", class: `status status-${row.status}`, dataset: { status: row.status } }, row.status));
  const dl = document.getElementById("facts");
  dl.replaceChildren();
  fact(dl, "Resources", row.resources);
  fact(dl, "Submitted", `${when(row.submitted)} (${ago(row.submitted)})`);
  fact(dl, "Durations", `total ${row.total}, running ${row.job_duration}`);
  fact(dl, "Recoveries", String(row.recoveries));
  fact(dl, "Place now", data.place);
  fact(dl, "Cost", data.cost_text);
  if (row.pool) fact(dl, "Pool", row.pool + (data.worker ? `, on worker ${data.worker}` : ""));
  if (row.array !== null) fact(dl, "Array", `job array ${row.array}, rank ${row.rank}`);
  if (data.deadline) {
    const d = data.deadline;
    fact(dl, "Deadline", `${when(d.at)}; market ${d.market}, slack ${d.slack}, progress ${d.progress} at the last decision; ${d.switches} switch(es)`
      + (d.done_at ? `; done at ${when(d.done_at)}` : ""), { id: "deadline" });
  }
  if (data.exit_code !== null) fact(dl, "Exit code", String(data.exit_code));
  if (!row.terminal) fact(dl, "Now", data.detail);
  if (row.terminal) fact(dl, "Failure", data.failure_full);
  if (data.placement.length) fact(dl, "Placement", data.placement.join("\n"));
  for (const task of row.tasks) {
    fact(dl, `Task ${task.task}`, `${task.name}: ${task.status}, ${task.cost}` + (task.failure !== "-" ? ` (${task.failure})` : ""));
  }
  const workflow = el("a", { id: "workflow-link", href: data.temporal_ui, rel: "noreferrer", target: "_blank" }, "its workflow in the Temporal UI");
  dl.append(el("dt", {}, "Temporal"), el("dd", {}, workflow));
}

function renderEvents(data) {
  const items = [];
  const attempts = data.timeline.attempts;
  for (const a of attempts) {
    items.push({ at: a.start, text: `${clock(a.start)} attempt ${a.attempt}${a.task !== null ? ` (task ${a.task})` : ""} launched in ${a.place} on ${a.market} (${a.instance_type}): ${a.outcome}` });
  }
  for (const m of data.timeline.marks) {
    items.push({ at: m.at, kind: m.kind, text: `${clock(m.at)} ${m.kind === "preemption" ? "preempted" : "market switch"} in ${m.place}: ${m.reason}` });
  }
  items.sort((a, b) => a.at - b.at);
  const list = document.getElementById("events");
  list.replaceChildren(...items.map((item) => el("li", { class: item.kind || null }, item.text)));
  if (!items.length) list.append(el("li", { class: "muted" }, "No attempt got a cluster yet."));
}

function renderTimeline(data) {
  const t = data.timeline;
  const places = t.places.length ? t.places : ["-"];
  const bars = (market) => t.attempts.filter((a) => a.market === market)
    .map((a) => ({ x: [a.start, Math.max(a.end, a.start + 1000)], y: a.place, info: a }));
  const marks = (kind) => t.marks.filter((m) => m.kind === kind).map((m) => ({ x: m.at, y: m.place, info: m }));
  const datasets = [
    { type: "bar", label: "spot", data: bars("spot"), backgroundColor: COLORS.spot, grouped: false, barPercentage: 0.5, order: 2 },
    { type: "bar", label: "on-demand", data: bars("on-demand"), backgroundColor: COLORS["on-demand"], grouped: false, barPercentage: 0.5, order: 2 },
    { type: "bar", label: "market unknown", data: bars("-"), backgroundColor: COLORS["-"], grouped: false, barPercentage: 0.5, order: 2 },
    { type: "scatter", label: "preemption", data: marks("preemption"), pointStyle: "crossRot", pointRadius: 9, borderWidth: 3, order: 0, clip: false, borderColor: "#dc2626", backgroundColor: "#dc2626" },
    { type: "scatter", label: "market switch", data: marks("switch"), pointStyle: "triangle", pointRadius: 8, order: 0, clip: false, borderColor: "#7c3aed", backgroundColor: "#7c3aed" },
  ];
  if (data.deadline) {
    datasets.push({ type: "scatter", label: "deadline", data: places.map((p) => ({ x: data.deadline.at_ms, y: p, info: { reason: `deadline ${when(data.deadline.at)}` } })),
                    pointStyle: "line", rotation: 90, pointRadius: 14, borderWidth: 2, order: 1, borderColor: "#111827" });
  }
  const times = [...t.attempts.flatMap((a) => [a.start, a.end]), ...t.marks.map((m) => m.at)];
  if (data.deadline) times.push(data.deadline.at_ms);
  const lo = times.length ? Math.min(...times) : Date.now();
  const hi = times.length ? Math.max(...times) : Date.now();
  const pad = Math.max(1000, (hi - lo) * 0.03);
  const config = {
    type: "bar",
    data: { labels: places, datasets },
    options: {
      indexAxis: "y",
      scales: {
        x: { type: "linear", min: lo - pad, max: hi + pad, ticks: { callback: (v) => clock(v) }, title: { display: true, text: "time" } },
        y: { type: "category", labels: places, title: { display: true, text: "cloud/region/zone" } },
      },
      plugins: {
        tooltip: { callbacks: { label: (ctx) => {
          const info = ctx.raw.info || {};
          if (info.attempt !== undefined) return `attempt ${info.attempt} ${info.market} ${info.instance_type}: ${info.outcome}, ${info.cost}`;
          return info.reason || ctx.dataset.label;
        } } },
        legend: { labels: { filter: (item, chart) => chart.datasets[item.datasetIndex].data.length > 0,
                            sort: (a, b) => a.datasetIndex - b.datasetIndex } },
      },
    },
  };
  if (timelineChart) {
    timelineChart.data = config.data;
    timelineChart.options.scales.y.labels = places;
    timelineChart.options.scales.x.min = lo - pad;
    timelineChart.options.scales.x.max = hi + pad;
    timelineChart.update("none");
  } else {
    timelineChart = new Chart(document.getElementById("timeline"), config);
  }
}

function renderCost(data) {
  const points = data.costs;
  const datasets = [
    { label: "cost so far", data: points.map((p) => ({ x: p.at, y: p.cost })), borderColor: "#2563eb", backgroundColor: "#2563eb", pointRadius: 2 },
    { label: "on-demand equivalent", data: points.map((p) => ({ x: p.at, y: p.ondemand })), borderColor: "#f59e0b", backgroundColor: "#f59e0b", borderDash: [6, 4], pointRadius: 2 },
  ];
  if (costChart) {
    costChart.data.datasets = datasets;
    costChart.update("none");
    return;
  }
  costChart = new Chart(document.getElementById("cost"), {
    type: "line",
    data: { datasets },
    options: {
      scales: {
        x: { type: "linear", ticks: { callback: (v) => clock(v) } },
        y: { beginAtZero: true, ticks: { callback: (v) => usd(v) }, title: { display: true, text: "USD" } },
      },
      plugins: { tooltip: { callbacks: { label: (ctx) => `${ctx.dataset.label}: ${usd(ctx.parsed.y)}` } } },
    },
  });
}

function renderAttempts(data) {
  const headers = ["#", "TASK", "PLACE", "INSTANCE TYPE", "NODES", "MARKET", "$/HOUR", "LAUNCHED", "COST", "OUTCOME"];
  document.querySelector("#attempts thead").replaceChildren(el("tr", {}, ...headers.map((h) => el("th", {}, h))));
  const rows = data.timeline.attempts.map((a) => el("tr", {},
    el("td", {}, a.attempt), el("td", {}, a.task === null ? "-" : a.task), el("td", {}, a.place), el("td", {}, a.instance_type),
    el("td", { class: "num" }, a.nodes), el("td", {}, a.market), el("td", { class: "num" }, a.price === null ? "-" : `$${Number(a.price.toPrecision(4))}`),
    el("td", {}, clock(a.start)), el("td", { class: "num" }, a.cost), el("td", {}, a.outcome)));
  document.querySelector("#attempts tbody").replaceChildren(...rows);
}

async function loadJob() {
  const data = await getJSON(`/api/jobs/${JOB_ID}`);
  renderFacts(data);
  renderEvents(data);
  renderTimeline(data);
  renderCost(data);
  renderAttempts(data);
  return !data.row.terminal;
}

async function loadLog() {
  const data = await getJSON(`/api/jobs/${JOB_ID}/log`);
  const pre = document.getElementById("log");
  const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  pre.textContent = data.attempt === null ? "(no output yet)" : (data.truncated ? "…\n" : "") + data.text;
  document.getElementById("log-attempt").textContent = data.attempt === null ? "" : `(attempt ${data.attempt}, the last 64 KiB)`;
  if (atBottom) pre.scrollTop = pre.scrollHeight;
}

document.addEventListener("DOMContentLoaded", async () => {
  chartDefaults();
  await linkTemporalUI();
  let ended = false;
  poll(async () => {
    ended = !(await loadJob());
    return !ended;
  });
  poll(async () => {
    await loadLog();
    return !ended;
  });
});
