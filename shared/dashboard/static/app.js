"use strict";
const SVG_NS = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);
const fmt = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
const state = { tick: 0, timer: null, windowsLoaded: false };
const COLORS = ["#3b82f6", "#10b981", "#f59e0b", "#ef4444", "#8b5cf6", "#06b6d4"];

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function clip(text, max) {
  return text.length > max ? text.slice(0, max - 1) + "\u2026" : text;
}

function contentLabel(title, id) {
  return (title || "(unknown content)") + "  \u00b7  " + String(id).slice(0, 8);
}

async function getJSON(path) {
  const response = await fetch(path, { cache: "no-store", headers: { Accept: "application/json" } });
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) {
    throw new Error((body && body.error) ? body.error : response.status + " " + response.statusText);
  }
  return body;
}

function showError(name, error) {
  const node = $(name + "-error");
  node.textContent = error ? String(error.message || error) : "";
  node.hidden = !error;
}

function bars(container, items, cls) {
  container.replaceChildren();
  if (!items.length) { container.append(el("p", "Nothing in this window yet.", "empty")); return; }
  const rowH = 24, labelW = 330, barW = 380, valueW = 110, width = labelW + barW + valueW;
  const max = Math.max(...items.map((i) => i.value), 0) || 1;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${items.length * rowH}`, width: "100%", role: "img" });
  items.forEach((item, i) => {
    const y = i * rowH;
    const row = svg("g", {});
    row.append(svg("title", {}, item.tooltip));
    row.append(svg("text", { x: labelW - 8, y: y + rowH * 0.68, "text-anchor": "end" }, clip(item.label, 48)));
    row.append(svg("rect", { x: labelW, y: y + 4, height: rowH - 8,
                             width: Math.max(1, barW * item.value / max), class: cls }));
    row.append(svg("text", { x: labelW + barW + 8, y: y + rowH * 0.68, class: "value" }, fmt.format(item.value)));
    chart.append(row);
  });
  container.append(chart);
}

function table(columns, rows) {
  const t = el("table");
  const head = el("tr");
  for (const c of columns) head.append(el("th", c.label));
  t.append(el("thead")); t.tHead.append(head);
  const body = el("tbody");
  for (const r of rows) {
    const tr = el("tr");
    for (const c of columns) {
      const td = el("td", null, c.num ? "num" : "");
      const v = c.value(r);
      if (v instanceof Node) td.append(v); else td.textContent = v === null || v === undefined ? "-" : String(v);
      tr.append(td);
    }
    body.append(tr);
  }
  t.append(body);
  return t;
}

function titled(title, id) {
  const span = el("span");
  span.append(el("span", title || "(unknown content) "));
  span.append(" ");
  span.append(el("span", id, "id"));
  return span;
}

async function loadTop() {
  const params = new URLSearchParams({ n: $("top-n").value });
  if (state.windowsLoaded) params.set("window", $("top-window").value);
  try {
    const data = await getJSON("/api/top?" + params);
    if (!state.windowsLoaded) {
      const select = $("top-window");
      select.replaceChildren(...data.windows.map((w) => { const o = el("option", w); o.value = w; return o; }));
      select.value = String(data.window);
      state.windowsLoaded = true;
    }
    $("top-title").textContent = `Real-time Top ${data.n} (last ${data.window} minutes) \u2014 Redis`;
    $("top-meta").textContent = `${data.from} \u2192 ${data.to} (UTC, complete minutes); ` +
      (data.precomputed ? "precomputed window " + data.key : "window built on read (the timer has not run this minute)");
    bars($("top-chart"), data.entries.map((e) => ({
      label: `${e.rank}. ` + contentLabel(e.title, e.content_id), value: e.engagement_seconds,
      tooltip: `${e.title || "(unknown content)"}\n${e.content_id}\n${fmt.format(e.engagement_seconds)} s`,
    })), "bar");
    showError("top", null);
  } catch (error) { showError("top", error); }
}

async function loadByContent() {
  const params = new URLSearchParams({ minutes: $("bc-minutes").value, limit: "20" });
  try {
    const data = await getJSON("/api/by-content?" + params);
    $("bc-title").textContent = `Engagement by content (last ${data.minutes} min)`;
    $("bc-meta").textContent = `engagement seconds per content, top ${data.limit}, ${data.from} \u2192 ${data.to}; ${data.source}`;
    bars($("bc-chart"), data.content.map((c) => ({
      label: contentLabel(c.title, c.content_id), value: c.engagement_seconds,
      tooltip: `${c.title || "(unknown content)"}\n${c.content_id}\n${fmt.format(c.engagement_seconds)} s, ${c.events} events, ${c.users} users`,
    })), "bar2");
    showError("bc", null);
  } catch (error) { showError("bc", error); }
}

async function loadRecent() {
  try {
    const data = await getJSON("/api/recent?rows=" + encodeURIComponent($("recent-rows").value));
    $("recent-meta").textContent = `${data.count} newest events by event time; ${data.source}`;
    $("recent-table").replaceChildren(table([
      { label: "event time (UTC)", value: (r) => r.event_ts.replace("T", " ").replace("Z", "") },
      { label: "event", value: (r) => r.event_type },
      { label: "content", value: (r) => titled(r.title, r.content_id) },
      { label: "type", value: (r) => r.content_type },
      { label: "device", value: (r) => r.device },
      { label: "duration ms", num: true, value: (r) => r.duration_ms === null ? null : fmt.format(r.duration_ms) },
      { label: "engagement s", num: true, value: (r) => r.engagement_seconds === null ? null : fmt.format(r.engagement_seconds) },
      { label: "engagement %", num: true, value: (r) => r.engagement_pct === null ? null : fmt.format(r.engagement_pct) },
      { label: "id", num: true, value: (r) => r.id },
    ], data.events));
    showError("recent", null);
  } catch (error) { showError("recent", error); }
}

async function loadEventHubs() {
  try {
    const data = await getJSON("/api/eventhubs");
    const box = $("eh-body");
    box.replaceChildren();
    if (data.note) box.append(el("p", data.note, "empty"));
    for (const m of data.mappings) {
      const div = el("div", null, "mapping");
      div.append(el("h3", `mapping ${m.mapping}: ${m.event_hub} (${m.consumer_group}) \u2192 ${m.target}`));
      const dead = Object.entries(m.dead_letters).map(([k, n]) => `${k}: ${fmt.format(n)}`).join(", ") || "none";
      const compaction = m.last_compaction
        ? `${m.last_compaction.finished_at} (${m.last_compaction.rows_expired} rows expired` +
          (m.last_compaction.checkpointed ? ", checkpointed)" : ")")
        : "never";
      div.append(el("p", `rows: ${m.rows === null ? "-" : fmt.format(m.rows)}; dead letters: ${dead}; last compaction: ${compaction}`, "meta"));
      if (m.error) div.append(el("p", m.error, "error"));
      if (m.partitions.length) {
        div.append(table([
          { label: "partition", value: (p) => p.partition },
          { label: "watermark (sequence)", num: true, value: (p) => p.sequence_number },
          { label: "enqueued", value: (p) => p.enqueued_time },
          { label: "epoch", num: true, value: (p) => p.epoch },
          { label: "updated", value: (p) => p.updated_at },
        ], m.partitions));
      }
      box.append(div);
    }
    showError("eh", null);
  } catch (error) { showError("eh", error); }
}

function ago(seconds) {
  if (seconds < 90) return `${Math.max(0, Math.round(seconds))} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} days`;
}

// A line chart of [time ms, value] series over [from, to]; a dot marks each bucket with a value.
function lines(container, series, from, to, unit) {
  container.replaceChildren();
  const withPoints = series.filter((s) => s.points.length);
  if (!withPoints.length) { container.append(el("p", "Nothing in this period yet.", "empty")); return; }
  const W = 360, H = 150, left = 44, right = 8, top = 8, bottom = 20;
  const values = withPoints.flatMap((s) => s.points.map((p) => p[1]));
  const high = Math.max(...values, 0) || 1, low = Math.min(...values, 0);
  const x = (t) => left + (W - left - right) * (t - from) / Math.max(1, to - from);
  const y = (v) => top + (H - top - bottom) * (high - v) / Math.max(1e-9, high - low);
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H + 14 * withPoints.length}`, width: "100%", role: "img",
                             class: "line-chart" });
  chart.append(svg("line", { x1: left, y1: y(0), x2: W - right, y2: y(0), class: "axis" }));
  chart.append(svg("line", { x1: left, y1: top, x2: left, y2: H - bottom, class: "axis" }));
  chart.append(svg("text", { x: left - 4, y: top + 8, "text-anchor": "end" }, fmt.format(high)));
  chart.append(svg("text", { x: left - 4, y: H - bottom, "text-anchor": "end" }, fmt.format(low)));
  const clock = (t) => new Date(t).toISOString().slice(11, 19);
  chart.append(svg("text", { x: left, y: H - 4 }, clock(from)));
  chart.append(svg("text", { x: W - right, y: H - 4, "text-anchor": "end" }, clock(to) + " UTC"));
  withPoints.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    chart.append(svg("polyline", { points: s.points.map((p) => `${x(p[0])},${y(p[1])}`).join(" "),
                                   stroke: color, class: "series" }));
    for (const [t, v] of s.points) {
      if (v === 0) continue;
      const dot = svg("circle", { cx: x(t), cy: y(v), r: 2.5, fill: color, class: "point" });
      dot.append(svg("title", {}, `${s.label}\n${clock(t)} UTC: ${fmt.format(v)} ${unit}\n${s.metric}`));
      chart.append(dot);
    }
    chart.append(svg("rect", { x: left, y: H + 4 + 14 * i, width: 10, height: 10, fill: color }));
    chart.append(svg("text", { x: left + 14, y: H + 12 + 14 * i, class: "legend" }, clip(s.label, 60)));
  });
  container.append(chart);
}

async function loadActivity() {
  try {
    const data = await getJSON("/api/activity?minutes=" + encodeURIComponent($("act-minutes").value));
    const from = Date.parse(data.from), to = data.now_ms;
    $("act-meta").textContent = `last ${data.minutes} min in ${data.bucket_seconds} s buckets, ` +
      "counted from the stores' rows by ingestion time (docs/dashboard.md)";
    lines($("act-ingest"), data.ingest, from, to, "events/s");
    lines($("act-enrich"), data.enrichment, from, to, "events/s");
    lines($("act-lag"), data.lag, from, to, "s");
    const fresh = $("freshness");
    if (data.freshness) {
      fresh.textContent = `last event ${ago(data.freshness.seconds_ago)} ago`;
      fresh.title = `${data.freshness.last} in ${data.freshness.store}`;
      fresh.classList.toggle("stale", data.freshness.seconds_ago > 300);
    } else {
      fresh.textContent = "no events yet";
    }
    const problems = Object.entries(data.errors).map(([k, v]) => `${k}: ${v}`);
    showError("act", problems.length ? problems.join("; ") : null);
  } catch (error) { showError("act", error); }
}

async function loadInfo() {
  try {
    const data = await getJSON("/api/info");
    if (!state.windowsLoaded) {
      const select = $("top-window");
      select.replaceChildren(...data.windows.map((w) => { const o = el("option", w); o.value = w; return o; }));
      select.value = String(data.default_window);
      state.windowsLoaded = true;
    }
  } catch (error) { showError("top", error); }
}

async function refresh(all) {
  if (!state.windowsLoaded) await loadInfo();
  const jobs = [loadTop(), loadByContent(), loadRecent(), loadActivity()];
  if (all || state.tick % 3 === 0) jobs.push(loadEventHubs());
  state.tick += 1;
  await Promise.allSettled(jobs);
  $("updated").textContent = "updated " + new Date().toLocaleTimeString();
}

function schedule() {
  if (state.timer !== null) clearInterval(state.timer);
  state.timer = null;
  if ($("auto").checked) state.timer = setInterval(() => refresh(false), Number($("every").value) * 1000);
}

function bindRange(id, load) {
  const input = $(id), shown = $(id + "-value");
  input.addEventListener("input", () => { shown.textContent = input.value; });
  input.addEventListener("change", load);
  shown.textContent = input.value;
}

bindRange("recent-rows", loadRecent);
bindRange("top-n", loadTop);
$("top-window").addEventListener("change", loadTop);
$("bc-minutes").addEventListener("change", loadByContent);
$("act-minutes").addEventListener("change", loadActivity);
$("auto").addEventListener("change", schedule);
$("every").addEventListener("change", schedule);
$("now").addEventListener("click", () => refresh(true));
refresh(true);
schedule();
