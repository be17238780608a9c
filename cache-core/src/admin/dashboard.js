// The cache dashboard: polls the admin router it is served by (relative
// URLs, so it works wherever the router is mounted and behind whatever auth
// the application puts on it). Everything shown is set with textContent:
// keys, labels and errors are user data and never become markup. The page's
// Content-Security-Policy allows no inline script either.
"use strict";

const POLL_MS = 2000;
const NAMESPACES_EVERY = 5; // polls
const HISTORY_MS = 5 * 60 * 1000;

// Absolute, from the origin: a page opened as http://user:pass@host/...
// cannot fetch URLs resolved against its own (credentials included).
const base = location.origin + location.pathname.replace(/dashboard\/?$/, "");
const series = { hit: [], latency: [] };
let previousTotal = null;
let polls = 0;

function el(tag, text, className) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (className) e.className = className;
  return e;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const c of cells) {
    if (c instanceof Node) {
      const td = document.createElement("td");
      td.appendChild(c);
      tr.appendChild(td);
    } else {
      tr.appendChild(el("td", c.text, c.cls));
    }
  }
  return tr;
}

function fill(tbody, rows, empty, columns) {
  tbody.replaceChildren();
  if (rows.length === 0) {
    const tr = document.createElement("tr");
    const td = el("td", empty, "muted");
    td.colSpan = columns;
    tr.appendChild(td);
    tbody.appendChild(tr);
    return;
  }
  for (const r of rows) tbody.appendChild(r);
}

const num = (n) => ({ text: Number(n).toLocaleString("en-US"), cls: "num" });
const pct = (r) => ({ text: (r * 100).toFixed(1) + " %", cls: "num" });
const txt = (t, cls) => ({ text: t, cls });

async function api(path, options) {
  const response = await fetch(base + path, Object.assign({ credentials: "same-origin" }, options));
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    body = null;
  }
  if (!response.ok && response.status !== 202 && response.status !== 503) {
    const reason = body && body.error ? body.error : response.status + " " + response.statusText;
    throw new Error(path + ": " + reason);
  }
  return { status: response.status, body };
}

function showError(message) {
  const box = document.getElementById("error");
  if (message) {
    box.textContent = message;
    box.hidden = false;
  } else {
    box.hidden = true;
  }
}

function who(i) {
  return i.host ? i.host + "/" + i.pid : "pid " + i.pid + " (" + i.instance.slice(0, 8) + ")";
}

function statsRow(name, s) {
  return row([
    txt(name),
    pct(s.hit_rate),
    num(s.l1_hits),
    num(s.l2_hits),
    num(s.misses),
    num(s.errors),
    txt(s.breaker || "-", s.breaker || ""),
  ]);
}

function renderStats(all) {
  const tbody = document.querySelector("#instances tbody");
  fill(tbody, all.instances.map((i) => statsRow(who(i), i.stats)), "no live instance", 7);
  const foot = document.querySelector("#instances tfoot");
  foot.replaceChildren(statsRow("total", all.total));
  const t = all.total;
  const redis = t.redis
    ? " · Redis " + (t.redis.used_memory / 1048576).toFixed(1) + " MiB, " +
      Number(t.redis.entries).toLocaleString("en-US") + " entries"
    : "";
  document.getElementById("summary").textContent =
    all.instances.length + " instance(s) · backend " + t.backend + redis;

  const fns = t.functions.map((f) => {
    const lookups = f.hits + f.misses + f.coalesced;
    const cached = f.kind === "cached" || f.kind === "puts";
    return row([
      txt(f.function, "key"),
      txt(f.label, "key"),
      cached && lookups > 0 ? pct((f.hits + f.coalesced) / lookups) : txt("", "num"),
      cached ? num(f.hits) : txt("", "num"),
      cached ? num(f.misses) : txt("", "num"),
      txt(f.misses > 0 ? (f.mean_origin_us / 1000).toFixed(1) + " ms" : "", "num"),
      num(f.invalidated_entries),
    ]);
  });
  fill(document.querySelector("#functions tbody"), fns, "no annotated function called yet", 7);

  // Hit rate over the last poll interval (a gap when nothing was looked up).
  const now = Date.now();
  if (previousTotal) {
    const hits = t.hits + t.coalesced - (previousTotal.hits + previousTotal.coalesced);
    const misses = t.misses - previousTotal.misses;
    if (hits >= 0 && misses >= 0) {
      series.hit.push([now, hits + misses > 0 ? (hits / (hits + misses)) * 100 : null]);
    }
  }
  previousTotal = t;
}

function renderHealth(h) {
  const status = h.status === "degraded" && h.error ? "unreachable" : h.status;
  const pill = document.getElementById("status");
  pill.textContent = status;
  pill.className = "pill " + status;
  series.latency.push([Date.now(), h.error ? null : h.latency_us]);
}

function renderNamespaces(ns) {
  const rows = ns.namespaces.map((n) =>
    row([txt(n.prefix === "" ? "(no prefix)" : n.prefix + "*", "key"), num(n.entries)]),
  );
  fill(document.querySelector("#namespaces tbody"), rows, "no entries", 2);
}

const lastRuns = new Map();

function renderWarmers(names) {
  const rows = names.map((name) => {
    const button = el("button", "Warm now");
    button.type = "button";
    button.dataset.warmer = name;
    button.addEventListener("click", () => warm(name, button));
    return row([txt(name, "key"), button, txt(lastRuns.get(name) || "", "muted")]);
  });
  fill(document.querySelector("#warmers tbody"), rows, "no warmer registered", 3);
}

async function warm(name, button) {
  button.disabled = true;
  try {
    const { body } = await api("warm", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ names: [name] }),
    });
    const r = body.reports[0];
    lastRuns.set(
      name,
      r.error
        ? "failed after " + r.written + " entries: " + r.error
        : r.written + " entries in " + r.duration_ms.toFixed(0) + " ms",
    );
    showError(null);
  } catch (e) {
    lastRuns.set(name, String(e.message));
  } finally {
    button.disabled = false;
    await loadWarmers();
  }
}

async function loadWarmers() {
  const { body } = await api("warmers");
  renderWarmers(body.warmers);
}

function lines(id) {
  return document
    .getElementById(id)
    .value.split("\n")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

async function invalidate(event) {
  event.preventDefault();
  const patterns = lines("patterns");
  const tags = lines("tags");
  const result = document.getElementById("invalidate-result");
  if (patterns.length + tags.length === 0) {
    result.textContent = "Name at least one key, pattern or tag.";
    return;
  }
  const what = patterns.concat(tags.map((t) => "tag " + t)).join(", ");
  if (!window.confirm("Invalidate on every instance: " + what + "?")) {
    result.textContent = "Cancelled.";
    return;
  }
  try {
    const { status, body } = await api("invalidate", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ patterns, tags }),
    });
    const queued = status === 202 ? " (part of it is queued until Redis answers)" : "";
    result.textContent = "Removed " + body.total + " entries" + queued + ": " +
      body.removed.map((r) => (r.pattern !== undefined && r.pattern !== null ? r.pattern : "tag " + r.tag) +
        " " + r.removed + (r.queued ? " queued" : "")).join(", ");
    for (const w of body.warnings || []) result.textContent += " · " + w;
  } catch (e) {
    result.textContent = String(e.message);
  }
}

function draw(id, points, max, unit) {
  const canvas = document.getElementById(id);
  const ctx = canvas.getContext("2d");
  const w = canvas.width;
  const h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  ctx.strokeStyle = "#e2e5ec";
  ctx.fillStyle = "#6b7385";
  ctx.font = "11px system-ui, sans-serif";
  for (let i = 0; i <= 4; i++) {
    const y = 8 + ((h - 24) * i) / 4;
    ctx.beginPath();
    ctx.moveTo(40, y);
    ctx.lineTo(w - 4, y);
    ctx.stroke();
    ctx.fillText(((max * (4 - i)) / 4).toFixed(0) + unit, 2, y + 4);
  }
  const now = Date.now();
  ctx.strokeStyle = "#2b6cb0";
  ctx.lineWidth = 2;
  ctx.beginPath();
  let drawing = false;
  for (const [t, v] of points) {
    if (v === null) {
      drawing = false;
      continue;
    }
    const x = 40 + ((w - 44) * (HISTORY_MS - (now - t))) / HISTORY_MS;
    const y = 8 + (h - 24) * (1 - Math.min(v, max) / max);
    if (drawing) ctx.lineTo(x, y);
    else ctx.moveTo(x, y);
    drawing = true;
  }
  ctx.stroke();
  ctx.fillText("now", w - 26, h - 2);
  ctx.fillText("-5 min", 40, h - 2);
}

function charts() {
  const cutoff = Date.now() - HISTORY_MS;
  for (const k of Object.keys(series)) {
    while (series[k].length && series[k][0][0] < cutoff) series[k].shift();
  }
  draw("hit-chart", series.hit, 100, "%");
  const lat = series.latency.filter((p) => p[1] !== null).map((p) => p[1]);
  const top = Math.max(1000, ...lat);
  const scale = Math.pow(10, Math.ceil(Math.log10(top)));
  draw("latency-chart", series.latency, scale / 2 >= top ? scale / 2 : scale, "");
}

async function poll() {
  try {
    const [stats, health] = await Promise.all([api("stats?scope=all"), api("health")]);
    if (stats.status === 503) throw new Error("stats: " + (stats.body && stats.body.error));
    renderStats(stats.body);
    renderHealth(health.body);
    if (polls % NAMESPACES_EVERY === 0) {
      const ns = await api("namespaces");
      if (ns.status === 200) renderNamespaces(ns.body);
    }
    polls += 1;
    charts();
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
    document.body.dataset.polls = String(polls);
    showError(null);
  } catch (e) {
    showError(String(e.message));
  }
}

document.getElementById("invalidate").addEventListener("submit", invalidate);
loadWarmers().catch((e) => showError(String(e.message)));
poll();
setInterval(poll, POLL_MS);
