// The dumbwaiter status page: polls status.json once a second and draws it.
// Plain DOM and SVG, no library; text goes in through textContent only.
"use strict";

const POLL_MS = 1000;
const SVG = "http://www.w3.org/2000/svg";
const W = 460, H = 130, LEFT = 34, RIGHT = 6, TOP = 8, BOTTOM = 18;
let updates = 0;

function $(id) { return document.getElementById(id); }

function text(id, value) { $(id).textContent = value; }

function count(n) { return Number(n).toLocaleString("en"); }

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : String(n)) + " " + units[i];
}

function duration(seconds) {
  if (seconds < 1) return Math.round(seconds * 1000) + " ms";
  if (seconds < 60) return seconds.toFixed(1) + " s";
  const m = Math.floor(seconds / 60), h = Math.floor(m / 60), d = Math.floor(h / 24);
  if (d) return d + " d " + (h % 24) + " h";
  if (h) return h + " h " + (m % 60) + " min";
  return m + " min " + Math.floor(seconds % 60) + " s";
}

function cell(row, value, className) {
  const td = document.createElement("td");
  td.textContent = value;
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function fill(tableId, items, render) {
  const body = $(tableId).tBodies[0];
  const rows = items.map((item) => {
    const tr = document.createElement("tr");
    render(tr, item);
    return tr;
  });
  body.replaceChildren(...rows);
}

function svgElement(name, attributes, content) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (content !== undefined) node.textContent = content;
  return node;
}

function niceMax(value) {
  if (value <= 1) return 1;
  const power = Math.pow(10, Math.floor(Math.log10(value)));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (value <= step * power) return step * power;
  }
  return 10 * power;
}

// series: [{values, color}], times: sample times (s); the x axis spans the
// whole history the server keeps (spanSeconds seconds), ending now.
function chart(id, times, series, spanSeconds, now) {
  const svg = $(id);
  const top = niceMax(Math.max(0, ...series.flatMap((s) => s.values)));
  const plotW = W - LEFT - RIGHT, plotH = H - TOP - BOTTOM;
  const x = (t) => LEFT + plotW * (1 - Math.min(spanSeconds, Math.max(0, now - t)) / spanSeconds);
  const y = (v) => TOP + plotH * (1 - v / top);
  const nodes = [];
  for (const fraction of [0, 0.5, 1]) {
    const v = top * fraction;
    nodes.push(svgElement("line", { x1: LEFT, x2: W - RIGHT, y1: y(v), y2: y(v), class: "grid" }));
    const label = Number.isInteger(v) ? String(v) : v.toFixed(1);
    nodes.push(svgElement("text", { x: LEFT - 4, y: y(v) + 3, "text-anchor": "end" }, label));
  }
  const minutes = Math.round(spanSeconds / 60);
  nodes.push(svgElement("text", { x: LEFT, y: H - 4 }, "−" + minutes + " min"));
  nodes.push(svgElement("text", { x: W - RIGHT, y: H - 4, "text-anchor": "end" }, "now"));
  for (const s of series) {
    const points = times.map((t, i) => x(t).toFixed(1) + "," + y(s.values[i]).toFixed(1));
    nodes.push(svgElement("polyline", { points: points.join(" "), stroke: s.color }));
  }
  svg.replaceChildren(...nodes);
}

function scaling(s) {
  if (s.min === s.max) return "";
  return " (" + s.min + "–" + s.max + (s.why ? ": " + s.why : "") + ")";
}

function render(data) {
  const health = $("health");
  health.textContent = data.health.ok ? "healthy" : "unhealthy: " + data.health.reason;
  health.className = "badge " + (data.health.ok ? "ok" : "bad");
  health.title = data.health.reason;
  text("summary", "master " + data.pid + " · up " + duration(data.now - data.started) +
    " · " + data.workers.length + " of " + data.target + " worker(s)" + scaling(data.scaling) +
    " · generation " +
    data.generation + " · " + data.threads + " threads, queue " + data.queue_size +
    " per worker · v" + data.version);

  const workers = data.workers;
  const sum = (field) => workers.reduce((total, w) => total + w[field], 0);
  const inflight = workers.flatMap((w) => w.inflight.map((r) => ({ worker: w.pid, ...r })));
  const more = sum("inflight_more");
  const history = data.history;
  const last = history.requests.length ? history.requests[history.requests.length - 1] : 0;
  text("c-requests", count(data.totals.requests));
  text("c-rate", count(last));
  text("c-busy", sum("busy") + " / " + sum("threads"));
  text("c-queued", count(sum("queued")));
  text("c-inflight", count(inflight.length + more));
  text("c-rejected", count(data.totals.rejected));
  text("c-sent", bytes(data.totals.bytes_out));
  const restarts = Object.entries(data.totals.restarts);
  text("c-restarts", count(restarts.reduce((total, [, n]) => total + n, 0)));
  $("c-restarts").title = restarts.map(([why, n]) => why + ": " + n).join(", ");

  const spanSeconds = Math.max(60, history.step * 600);
  text("span", "(" + Math.round(spanSeconds / 60) + " min, one sample per " + history.step + " s)");
  const style = getComputedStyle(document.documentElement);
  const color = (name) => style.getPropertyValue(name).trim();
  chart("chart-queue", history.times, [
    { values: history.busy, color: color("--busy") },
    { values: history.queued, color: color("--queued") },
  ], spanSeconds, data.now);
  chart("chart-rate", history.times, [{ values: history.requests, color: color("--rate") }],
    spanSeconds, data.now);

  fill("workers", workers, (tr, w) => {
    cell(tr, w.pid);
    cell(tr, w.state + (w.reason ? " (" + w.reason + ")" : ""), "state-" + w.state);
    cell(tr, w.generation, "num");
    cell(tr, duration(w.age), "num");
    cell(tr, count(w.served), "num");
    cell(tr, w.asgi == null ? w.busy + " / " + w.threads : w.asgi + " ASGI", "num");
    cell(tr, w.queued, "num");
    cell(tr, w.connections + (w.websockets ? " (" + w.websockets + " WebSocket)" : ""), "num");
    cell(tr, bytes(w.rss), "num");
    cell(tr, w.fds, "num");
  });
  fill("inflight", inflight, (tr, r) => {
    cell(tr, r.worker);
    cell(tr, r.method);
    cell(tr, r.path, "path");
    cell(tr, r.state === "app" ? "in the app" : "waiting for a thread");
    cell(tr, duration(r.age), r.age >= 5 ? "num slow" : "num");
    cell(tr, r.client);
    cell(tr, r.listener);
  });
  text("inflight-note", more ? "(the oldest per worker; " + more + " more)" : "");
  text("listeners", data.listeners.join(", "));
}

async function poll() {
  const connection = $("connection");
  try {
    const response = await fetch("status.json", { cache: "no-store" });
    if (!response.ok) throw new Error("HTTP " + response.status);
    render(await response.json());
    updates += 1;
    document.body.dataset.updates = String(updates);
    connection.className = "muted";
    connection.textContent = "updated " + new Date().toLocaleTimeString();
  } catch (error) {
    connection.className = "lost";
    connection.textContent = "no answer from the server (" + error.message + "); retrying";
  }
  setTimeout(poll, POLL_MS);
}

poll();
