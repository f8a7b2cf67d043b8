/* The fleet: the newest jobs' spend against on-demand over time, what the placement memory saw
   per zone (launches, preemptions, capacity failures), the pools and their workers. */
"use strict";

let spendChart = null;
let zonesChart = null;

function renderSpend(data) {
  const datasets = [
    { label: "spent", data: data.spend.map((p) => ({ x: p.at, y: p.cost })), borderColor: "#2563eb", backgroundColor: "#2563eb", pointRadius: 0 },
    { label: "on-demand equivalent", data: data.spend.map((p) => ({ x: p.at, y: p.ondemand })), borderColor: "#f59e0b", backgroundColor: "#f59e0b", borderDash: [6, 4], pointRadius: 0 },
  ];
  if (spendChart) {
    spendChart.data.datasets = datasets;
    spendChart.update("none");
    return;
  }
  spendChart = new Chart(document.getElementById("spend"), {
    type: "line",
    data: { datasets },
    options: {
      scales: {
        x: { type: "linear", ticks: { callback: (v) => clock(v) } },
        y: { beginAtZero: true, ticks: { callback: (v) => usd(v) }, title: { display: true, text: "USD, cumulative" } },
      },
      plugins: { tooltip: { callbacks: { label: (ctx) => `${ctx.dataset.label}: ${usd(ctx.parsed.y)}` } } },
    },
  });
}

function renderZones(data) {
  const zones = data.zones.slice(0, 30);
  const labels = zones.map((z) => z.zone);
  const datasets = [
    { label: "preemptions", data: zones.map((z) => z.preempted), backgroundColor: "#dc2626" },
    { label: "capacity failures", data: zones.map((z) => z.no_capacity), backgroundColor: "#7c3aed" },
    { label: "launches", data: zones.map((z) => z.launched), backgroundColor: "#93c5fd" },
  ];
  document.getElementById("horizon").textContent = `(the last ${data.horizon_h} h the placement memory keeps)`;
  if (zonesChart) {
    zonesChart.data = { labels, datasets };
    zonesChart.update("none");
    return;
  }
  zonesChart = new Chart(document.getElementById("zones"), {
    type: "bar",
    data: { labels, datasets },
    options: { indexAxis: "y", scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } },
  });
}

function renderPools(data) {
  const headers = ["POOL", "STATUS", "WORKERS (MIN-MAX)", "QUEUED", "SPEND", "RESOURCES", "WORKER", "PHASE", "JOB", "PLACE"];
  document.querySelector("#pools thead").replaceChildren(el("tr", {}, ...headers.map((h) => el("th", {}, h))));
  const rows = [];
  for (const pool of data.pools) {
    const size = pool.min === null ? "-" : `${pool.workers.length} (${pool.min}-${pool.max})`;
    const head = [el("td", {}, pool.name), el("td", {}, pool.status), el("td", {}, size), el("td", { class: "num" }, pool.queued),
                  el("td", { class: "num" }, pool.spend), el("td", {}, pool.resources)];
    const workers = pool.workers.length ? pool.workers : [null];
    workers.forEach((w, i) => {
      const first = i === 0 ? head : head.map(() => el("td", {}));
      const job = w && w.job !== null ? el("a", { href: `/jobs/${w.job}` }, w.job) : "-";
      rows.push(el("tr", { dataset: { pool: pool.name } }, ...first,
        el("td", {}, w ? (w.cluster || `slot ${w.slot}`) : "-"), el("td", {}, w ? w.phase : "-"), el("td", {}, job),
        el("td", {}, w ? w.place : "-")));
    });
  }
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: headers.length, class: "muted" }, "No pool runs (`spotctl pool apply` starts one).")));
  document.querySelector("#pools tbody").replaceChildren(...rows);
}

document.addEventListener("DOMContentLoaded", async () => {
  chartDefaults();
  await linkTemporalUI();
  poll(async () => {
    const data = await getJSON("/api/fleet");
    const counts = data.by_status.map((s) => `${s.count} ${s.status}`).join(", ");
    const last = data.spend.length ? data.spend[data.spend.length - 1] : null;
    document.getElementById("summary").textContent =
      `The newest ${data.jobs} of ${data.total} job(s): ${counts || "none"}.` +
      (last ? ` Spent ${usd(last.cost)} against ${usd(last.ondemand)} on demand.` : "");
    document.getElementById("prices").replaceChildren(...data.prices.map((line) => el("li", {}, `Prices: ${line}`)));
    renderSpend(data);
    renderZones(data);
    renderPools(data);
  });
});
