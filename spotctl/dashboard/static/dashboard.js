/* The dashboard's shared helpers: fetching JSON with its error shown on the page, building
   elements with text (user-provided text is never parsed as HTML), the header, time formats. */
"use strict";

const POLL_MS = 2000;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function showError(message) {
  const box = document.getElementById("error");
  if (!box) return;
  box.hidden = !message;
  box.textContent = message || "";
}

async function getJSON(url) {
  let response;
  try {
    response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
  } catch (err) {
    throw new Error("the dashboard server does not answer (is `spotctl dashboard` still running?)");
  }
  let body = null;
  try { body = await response.json(); } catch (err) { body = null; }
  if (!response.ok) throw new Error((body && body.error) || `${response.status} ${response.statusText}`);
  return body;
}

/* Poll `load` every POLL_MS (the next one only after the last finished), errors on the page;
   `load` returning false stops it. kick() polls at once (after a filter changed). */
function poll(load) {
  let stopped = false;
  let timer = null;
  let running = false;
  async function once() {
    if (running) return;
    running = true;
    clearTimeout(timer);
    try {
      const more = await load();
      showError(null);
      stamp();
      if (more === false) stopped = true;
    } catch (err) {
      showError(err.message);
    }
    running = false;
    if (!stopped) timer = setTimeout(once, POLL_MS);
  }
  once();
  return { stop() { stopped = true; clearTimeout(timer); }, kick() { once(); } };
}

function stamp() {
  const node = document.getElementById("updated");
  if (node) node.textContent = `updated ${new Date().toLocaleTimeString()}`;
}

function ago(iso) {
  if (!iso) return "-";
  const s = Math.max(0, Math.floor((Date.now() - Date.parse(iso)) / 1000));
  const units = [[86400, "days"], [3600, "hrs"], [60, "mins"], [1, "secs"]];
  for (const [size, word] of units) if (s >= size || size === 1) return `${Math.floor(s / size)} ${word} ago`;
  return "-";
}

function clock(ms) {
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "-";
}

function usd(value) {
  if (value === null || value === undefined) return "-";
  if (value > 0 && value < 0.01) return `$${value.toPrecision(2)}`;
  return `$${value.toFixed(2)}`;
}

function statusCell(status) {
  return el("td", { class: `status status-${status}`, dataset: { status } }, status);
}

/* Chart.js defaults for every chart: no animation (live updates redraw in place). */
function chartDefaults() {
  Chart.defaults.animation = false;
  Chart.defaults.font.size = 12;
  Chart.defaults.maintainAspectRatio = false;
}

async function linkTemporalUI() {
  try {
    const about = await getJSON("/api/about");
    const link = document.getElementById("temporal-ui");
    if (link) link.href = about.temporal_ui;
    return about;
  } catch (err) {
    showError(err.message);
    return null;
  }
}
