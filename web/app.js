// sensorbox web UI: a single page over the device's JSON API (no framework, no build step; charts by uPlot).
"use strict";
const $ = (s) => document.querySelector(s);
const el = (tag, text, cls) => { const e = document.createElement(tag); if (text !== undefined) e.textContent = text; if (cls) e.className = cls; return e; };
const fmtT = (ms) => new Date(ms).toLocaleString();
const G = 4096; // accelerometer counts per g (±8 g range)
let csrf = null;

// Live heap after the device's last collection (what the app really holds), of the whole heap.
function heapText(h) {
  const used = h.used || (h.total - h.free);
  return Math.round(used / 1024) + " of " + Math.round(h.total / 1024) + " KB in use";
}

async function api(method, path, body, raw) {
  const h = { "X-Requested-With": "fetch" };
  if (csrf && method !== "GET") h["X-CSRF-Token"] = csrf;
  let b = body;
  if (body !== undefined && !(body instanceof Blob) && !(body instanceof ArrayBuffer) && !(body instanceof Uint8Array)) {
    b = JSON.stringify(body); h["Content-Type"] = "application/json";
  }
  let r;
  for (let i = 0; ; i++) {  // 503: the device is short of memory for a moment and says "retry"
    try { r = await fetch(path, { method, headers: h, body: b, credentials: "same-origin" }); } catch (e) {
      if (i === 8 || method !== "GET") throw e;  // the connection dropped: GETs are safe to repeat
      r = { status: 503 };
    }
    if (r.status !== 503 || i === 8) break;
    await new Promise((ok) => setTimeout(ok, 300 + 200 * i));
  }
  if (r.status === 401 && path !== "/api/login") { showLogin(); throw new Error("log in first"); }
  if (raw && r.ok) return r;
  const t = await r.text();
  let j = null;
  try { j = t ? JSON.parse(t) : null; } catch (e) { j = null; }
  if (!r.ok) { const e = new Error((j && j.error) || r.status + " " + r.statusText); e.field = j && j.field; e.status = r.status; throw e; }
  return j;
}

// ---------- login and navigation ----------
function showLogin() {
  stopLive();
  document.querySelectorAll("section").forEach((s) => (s.hidden = s.id !== "login"));
  $("#nav").hidden = $("#logout").hidden = true;
  $("#password").focus();
}
$("#loginform").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("#loginerr").textContent = "";
  try {
    const r = await api("POST", "/api/login", { password: $("#password").value });
    csrf = r.csrf; $("#password").value = "";
    start();
  } catch (e) { $("#loginerr").textContent = e.message; }
});
$("#logout").addEventListener("click", async () => { await api("POST", "/api/logout").catch(() => {}); csrf = null; showLogin(); });

const pages = { dashboard: showDashboard, history: showHistory, settings: showSettings, models: showModels, health: showHealth };
function route() {
  const name = (location.hash || "#dashboard").slice(1);
  const page = pages[name] ? name : "dashboard";
  document.querySelectorAll("section").forEach((s) => (s.hidden = s.id !== page));
  document.querySelectorAll("#nav a").forEach((a) => a.classList.toggle("on", a.getAttribute("href") === "#" + page));
  if (page !== "dashboard") stopLive();
  clearInterval(route.timer);
  liveClosed.then(() => pages[page]()).catch((e) => console.log(page + ": " + e.message));
}
window.addEventListener("hashchange", () => { if (csrf !== null) route(); });

async function start() {
  try {
    const s = await api("GET", "/api/session");
    csrf = s.csrf || "";
  } catch (e) { return; }
  $("#nav").hidden = $("#logout").hidden = false;
  route();
  showSafeMode();
}

// Safe mode (after 3 boots that did not stay healthy): why, the traceback, and a way back to a normal boot.
async function showSafeMode() {
  const s = await api("GET", "/api/status").catch(() => null);
  const b = s && s.boot;
  $("#safe").hidden = !(b && b.safe_mode);
  if (!b || !b.safe_mode) return;
  $("#safewhy").textContent = "After " + b.unhealthy_boots + " boots that did not stay healthy. Last: " + (b.last_failure || "unknown") + ".";
  $("#safetrace").textContent = b.trace || "(none recorded)";
}
$("#saferestart").addEventListener("click", async () => {
  await api("POST", "/api/restart").catch(() => {});
  $("#safewhy").textContent = "Restarting normally…";
  setTimeout(() => location.reload(), 8000);
});

function chartWidth(node) { return Math.max(240, node.clientWidth - 10); }
window.addEventListener("resize", () => {
  if (live.plot) live.plot.setSize({ width: chartWidth($("#livechart")), height: 240 });
  if (hist.plot) hist.plot.setSize({ width: chartWidth($("#histchart")), height: 260 });
});

// ---------- dashboard ----------
const live = { es: null, plot: null, t: [], x: [], y: [], z: [], n: 0, max: 250 };
// Closing a stream frees its RAM on the device only when the device notices (its next write, <= 200 ms):
// pages wait for that before asking for more (the device has tens of KB for everything).
let liveClosed = Promise.resolve();
function stopLive() {
  if (live.es) { live.es.close(); live.es = null; liveClosed = new Promise((ok) => setTimeout(ok, 500)); }
}
function b64ToInt16(b64) {
  const bin = atob(b64); const u8 = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) u8[i] = bin.charCodeAt(i);
  return new Int16Array(u8.buffer);
}
function showDashboard() {
  const node = $("#livechart");
  if (!live.plot) {
    live.plot = new uPlot({ width: chartWidth(node), height: 240, scales: { x: { time: true } },
      series: [{}, { label: "x (g)", stroke: "#d1495b", points: { show: false } }, { label: "y (g)", stroke: "#00798c", points: { show: false } },
        { label: "z (g)", stroke: "#edae49", points: { show: false } }] },
      [[], [], [], []], node);
  }
  stopLive();
  const es = new EventSource("/api/live");
  live.es = es;
  es.addEventListener("accel", (m) => {
    const d = JSON.parse(m.data); const v = b64ToInt16(d.b64);
    const last = live.t[live.t.length - 1], gap = last === undefined ? 0 : d.t / 1000 - last;
    if (gap > 5) for (const a of [live.t, live.x, live.y, live.z]) a.length = 0;  // back after a while: start afresh
    else if (gap > 1) { live.t.push(last + 0.001); live.x.push(null); live.y.push(null); live.z.push(null); }  // break the lines
    for (let i = 0; i < d.n; i++) {
      live.t.push((d.t + i * d.dt) / 1000); live.x.push(v[3 * i] / G); live.y.push(v[3 * i + 1] / G); live.z.push(v[3 * i + 2] / G);
    }
    const extra = live.t.length - live.max;
    if (extra > 0) for (const a of [live.t, live.x, live.y, live.z]) a.splice(0, extra);
    live.n += d.n; $("#nsamples").textContent = live.n;
    live.plot.setData([live.t, live.x, live.y, live.z]);
  });
  es.addEventListener("prediction", (m) => {
    const d = JSON.parse(m.data);
    $("#cls").textContent = d.class; $("#conf").textContent = "confidence " + Math.round(d.confidence * 100) + " %";
  });
  es.addEventListener("soundlevel", (m) => {
    const d = JSON.parse(m.data);
    $("#leq").textContent = (d.leq / 100).toFixed(1) + " dB";
    $("#leqbar").style.width = Math.max(0, Math.min(100, (d.leq / 100 - 30) / 90 * 100)) + "%";
  });
  es.addEventListener("features", (m) => {  // one per analysis window: a few named features (see /api/openapi.json)
    const d = JSON.parse(m.data);
    $("#motion").textContent = (d.am_std / G).toFixed(2) + " g";
    $("#motion2").textContent = "dominant " + (d.am_domf / 100).toFixed(1) + " Hz · tilt " +
      Math.round(Math.acos(Math.max(-1, Math.min(1, d.grav_z / G))) * 180 / Math.PI) + "°";
  });
  es.addEventListener("event", (m) => {
    const d = JSON.parse(m.data);
    const li = el("li", fmtT(d.t) + "  " + d.type + (d.to ? ": " + d.from + " → " + d.to : ""));
    $("#liveevents").prepend(li);
  });
  es.onerror = () => { if (es.readyState === 2) setTimeout(() => { if (live.es === es) showDashboard(); }, 2000); };
  const health = async () => {
    try {
      const s = await api("GET", "/api/status");
      $("#devname").textContent = s.device.name;
      const a = s.analysis && s.analysis.prediction;
      if (a && $("#cls").textContent === "–") { $("#cls").textContent = a.class; $("#conf").textContent = "confidence " + Math.round(a.confidence / 10) + " %"; }
      $("#dhealth").textContent = "up " + s.uptime_s + " s · heap " + heapText(s.heap) + " · loop lag p99 " +
        s.loop_lag.p99_ms.toFixed(1) + " ms · restarts " + s.task_restarts + " · dropped " + s.sensors.accel.dropped;
    } catch (e) { /* shown by the next attempt */ }
  };
  health(); route.timer = setInterval(health, 3000);
}

// ---------- history ----------
const hist = { plot: null, sel: null, segs: [], events: [], classes: null };
const PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7", "#9c755f", "#e15759", "#bab0ac"];
const classColor = (k) => (k === null ? "#c8ccd4" : k < 0 ? "#8a8f99" : PALETTE[k % PALETTE.length]);
const className = (k) => (k === null ? "mixed" : k < 0 ? "unknown" : (hist.classes && hist.classes[k]) || "class " + k);
// Stored predictions (raw rows t,class,confidence or, decimated, buckets t,n,class_min,class_max,...) as
// segments {k: class index (-1 unknown, null mixed), t0, t1} in ms, neighbours of one class merged.
function classSegments(c) {
  const t = c.t || [], segs = [], raw = !c.n;
  const width = !raw && t.length > 1 ? t[1] - t[0] : 0;
  for (let i = 0; i < t.length; i++) {
    if (!raw && !c.n[i]) continue;
    const k = raw ? c["class"][i] : c.class_min[i] === c.class_max[i] ? c.class_min[i] : null;
    const step = raw ? (i + 1 < t.length ? t[i + 1] - t[i] : i > 0 ? t[i] - t[i - 1] : 1000) : width;
    const t0 = t[i], t1 = t0 + Math.min(step, raw ? 5000 : step);  // raw: a longer pause is a gap
    const last = segs[segs.length - 1];
    if (last && last.k === k && t0 - last.t1 < 1000) last.t1 = t1; else segs.push({ k, t0, t1 });
  }
  return segs;
}
// uPlot plugin: the class band along the bottom of the plot, under the series, and event markers over it
const BAND = 14;
function timelinePlugin() {
  return { hooks: {
    drawClear: [(u) => {
      const ctx = u.ctx, px = devicePixelRatio || 1, h = BAND * px, y = u.bbox.top + u.bbox.height - h;
      ctx.save();
      for (const s of hist.segs) {
        const x0 = Math.max(u.bbox.left, u.valToPos(s.t0 / 1000, "x", true));
        const x1 = Math.min(u.bbox.left + u.bbox.width, u.valToPos(s.t1 / 1000, "x", true));
        if (x1 <= x0) continue;
        ctx.fillStyle = classColor(s.k); ctx.fillRect(x0, y, Math.max(px, x1 - x0), h);
      }
      ctx.restore();
    }],
    draw: [(u) => {
      const ctx = u.ctx, px = devicePixelRatio || 1;
      ctx.save(); ctx.strokeStyle = "#1d2330"; ctx.fillStyle = "#1d2330"; ctx.lineWidth = px; ctx.setLineDash([3 * px, 3 * px]);
      for (const e of hist.events) {
        const x = Math.round(u.valToPos(e.t / 1000, "x", true));
        if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
        ctx.beginPath(); ctx.moveTo(x, u.bbox.top); ctx.lineTo(x, u.bbox.top + u.bbox.height); ctx.stroke();
        ctx.beginPath(); ctx.moveTo(x - 4 * px, u.bbox.top); ctx.lineTo(x + 4 * px, u.bbox.top); ctx.lineTo(x, u.bbox.top + 6 * px); ctx.fill();
      }
      ctx.restore();
    }],
  } };
}
function drawLegend() {
  const box = $("#hlegend"); box.textContent = "";
  const seen = new Map();
  for (const s of hist.segs) seen.set(s.k, (seen.get(s.k) || 0) + (s.t1 - s.t0));
  for (const [k, ms] of seen) {
    const it = el("span", className(k) + " " + Math.round(ms / 1000) + " s", "lg"); it.dataset.k = k === null ? "mixed" : k;
    const sw = el("i"); sw.style.background = classColor(k); it.prepend(sw); box.append(it);
  }
  if (hist.events.length) { const it = el("span", hist.events.length + " events", "lg ev"); it.prepend(el("i")); box.append(it); }
  if (!box.childNodes.length) box.append(el("span", "no predictions in this range", "s"));
}
function parseCsv(text) {
  const lines = text.trim().split("\n"); const head = lines.shift().split(",");
  const cols = {}; head.forEach((h) => (cols[h] = []));
  for (const l of lines) { const p = l.split(","); head.forEach((h, i) => cols[h].push(Number(p[i]))); }
  return cols;
}
function exportUrl(fmt) {
  const r = hist.sel || hist.range;
  return "/api/resources/accel/data?format=" + fmt + "&start=" + Math.floor(r[0]) + "&end=" + Math.ceil(r[1]);
}
function updateSelection() {
  const r = hist.sel;
  $("#selinfo").textContent = r ? fmtT(r[0]) + " – " + fmtT(r[1]) : "none (exports take the whole range)";
  $("#expnpy").href = exportUrl("npy"); $("#expcsv").href = exportUrl("csv");
}
async function showHistory() {
  const span = Number($("#hrange").value);
  const now = Date.now();
  // one request at a time: each loads the device's export code for its duration
  let data;
  try {
    data = await (await api("GET", "/api/resources/accel/data?format=csv&max_points=400&start=-" + span, undefined, true)).text();
  } catch (e) { $("#hinfo").textContent = "could not load the data: " + e.message; return; }
  const ev = await api("GET", "/api/events?start=-" + span).catch(() => []);
  let pred = null;
  try {
    pred = parseCsv(await (await api("GET", "/api/resources/predictions/data?format=csv&max_points=400&start=-" + span, undefined, true)).text());
  } catch (e) { pred = {}; }
  hist.segs = classSegments(pred);
  if (!hist.classes || hist.segs.some((g) => g.k >= hist.classes.length))  // class names: asked once (Models resets them)
    hist.classes = await api("GET", "/api/model").then((m) => m.active && m.active.classes).catch(() => null);
  hist.events = (ev || []).slice(-200);
  const c = parseCsv(data);
  if (!c.t) { $("#hinfo").textContent = "unexpected answer from the device"; return; }
  const mid = (a) => (c[a + "_min"] ? c[a + "_min"].map((v, i) => (v + c[a + "_max"][i]) / 2 / G) : c[a].map((v) => v / G));
  const keep = c.n ? c.n.map((n) => n > 0) : c.t.map(() => true);
  const f = (arr) => arr.filter((_, i) => keep[i]);
  const series = [f(c.t.map((t) => t / 1000)), f(mid("x")), f(mid("y")), f(mid("z"))];
  hist.range = [series[0].length ? series[0][0] * 1000 : now - span, now];
  $("#hinfo").textContent = series[0].length + " points" + (c.n ? " (decimated on the device, min/max midpoints)" : "");
  const node = $("#histchart"); node.textContent = "";
  hist.sel = null;
  hist.plot = new uPlot({ width: chartWidth(node), height: 260, scales: { x: { time: true } },
    cursor: { drag: { x: true, y: false, setScale: false } }, plugins: [timelinePlugin()],
    hooks: { setSelect: [(u) => {
      if (u.select.width < 2) return;
      hist.sel = [u.posToVal(u.select.left, "x") * 1000, u.posToVal(u.select.left + u.select.width, "x") * 1000];
      updateSelection();
    }] },
    series: [{}, { label: "x (g)", stroke: "#d1495b" }, { label: "y (g)", stroke: "#00798c" }, { label: "z (g)", stroke: "#edae49" }] },
    series, node);
  node.dataset.segments = hist.segs.length; node.dataset.events = hist.events.length;
  drawLegend();
  updateSelection();
  const ul = $("#hevents"); ul.textContent = "";
  for (const e of (ev || []).slice(-200).reverse()) ul.append(el("li", fmtT(e.t) + "  " + e.type + (e.to ? ": " + e.from + " → " + e.to + " (" + e.confidence / 10 + " %)" : "")));
  loadLabels().catch((e) => { $("#labelerr").textContent = "could not load the labels: " + e.message; });
}
async function loadLabels() {
  const r = await api("GET", "/api/labels");
  const tb = $("#labels tbody"); tb.textContent = "";
  for (const l of r.labels) {
    const tr = el("tr"); tr.append(el("td", fmtT(l.start)), el("td", fmtT(l.end)), el("td", l.label));
    const del = el("button", "Delete"); del.onclick = async () => { await api("DELETE", "/api/labels/" + l.id); loadLabels(); };
    const td = el("td"); td.append(del); tr.append(td); tb.append(tr);
  }
}
$("#hload").addEventListener("click", showHistory);
$("#hrange").addEventListener("change", showHistory);
$("#labelbtn").addEventListener("click", async () => {
  $("#labelerr").textContent = "";
  if (!hist.sel) { $("#labelerr").textContent = "select a range on the chart first"; return; }
  try {
    await api("POST", "/api/labels", { start: Math.floor(hist.sel[0]), end: Math.ceil(hist.sel[1]), label: $("#labelname").value });
    await loadLabels();
  } catch (e) { $("#labelerr").textContent = e.message + (e.field ? " (" + e.field + ")" : ""); }
});

// ---------- settings ----------
// Every key of the schema (/api/config/schema), grouped by its first part ("mqtt.host" -> "mqtt"); a numbered
// second part makes a sub-group ("webhook.2.url" -> "Webhook 2"). Nothing here names a key: new keys appear.
const GROUPS = { mqtt: "MQTT", webhook: "Webhooks", http: "HTTP", ml: "Analysis", store: "Storage", sim: "Simulator", wifi: "Wi-Fi", ota: "Updates" };
const INTEGRATIONS = ["mqtt", "webhook"];  // shown first, with their connection state from /api/status
function cfgField(d, cf) {
  const row = el("div", undefined, "field"); row.dataset.key = d.key;
  const lab = el("label", d.key + (d.apply === "reboot" ? " (restart)" : "")); lab.htmlFor = "cfg-" + d.key;
  let inp, state = null;
  if (d.kind === "bool") { inp = el("input"); inp.type = "checkbox"; inp.checked = !!cf[d.key]; }
  else if (d.kind === "choice") { inp = el("select"); for (const c of d.choices) inp.append(el("option", String(c))); inp.value = String(cf[d.key]); }
  else if (d.kind === "str" && d.max_length >= 1000) { inp = el("textarea"); inp.rows = 2; inp.value = cf[d.key] || ""; }
  else {
    inp = el("input"); inp.type = d.kind === "secret" ? "password" : (d.kind === "int" || d.kind === "float") ? "number" : "text";
    if (d.kind === "float") inp.step = "any";
    inp.value = d.kind === "secret" ? "" : cf[d.key] === undefined || cf[d.key] === null ? "" : cf[d.key];
  }
  if (d.kind === "secret") {  // write-only: the device says only whether it is set
    inp.autocomplete = "new-password";
    state = el("span", "", "secret");
    const show = (on) => {
      state.textContent = on ? "set" : "not set"; state.classList.toggle("on", on); inp.placeholder = on ? "set (type to replace)" : "not set";
      if (state.clr) state.clr.hidden = !on;
    };
    show(!!(cf[d.key] && cf[d.key].set));
    state.show = show;
  }
  inp.id = "cfg-" + d.key;
  const msg = el("span", "", "err");
  inp.addEventListener("change", async () => {
    let v = d.kind === "bool" ? inp.checked : inp.value;
    if (d.kind === "int") v = /^-?\d+$/.test(v) ? parseInt(v, 10) : v;
    if (d.kind === "float") v = v !== "" && !isNaN(Number(v)) ? Number(v) : v;
    if (d.kind === "choice" && typeof d.choices[0] === "number") v = Number(v);
    msg.className = "err"; msg.textContent = "";
    try {
      const r = await api("PUT", "/api/config", { [d.key]: v });
      msg.className = "ok"; msg.textContent = r.reboot_pending && r.reboot_pending.includes(d.key) ? "saved; applies after a restart" : "saved, applied";
      if (state) { state.show(v !== ""); inp.value = ""; }
    } catch (e) { msg.textContent = e.message; }
  });
  const ctl = el("div", undefined, "ctl"); ctl.append(inp);
  if (state) {
    ctl.append(state);
    const clr = el("button", "Clear", "link"); clr.type = "button";
    clr.onclick = () => { inp.value = ""; inp.dispatchEvent(new Event("change")); };
    ctl.append(clr); state.clr = clr; state.show(state.classList.contains("on"));
  }
  // inside a titled group the help's own "MQTT: " / "Webhook 2: " prefix says nothing new
  const help = d.help.replace(/^[A-Z][\w ]{0,20}: /, "");
  row.append(lab, ctl, el("span", help.charAt(0).toUpperCase() + help.slice(1), "help"), msg);
  return row;
}
function integrationState(st) {
  if (!st) return "";
  if (!st.enabled) return "off";
  const p = [st.connected === undefined ? st.state : st.connected ? "connected" : "not connected"];
  if (st.last_error) p.push("last error: " + st.last_error);
  for (const h of st.hooks || []) p.push("#" + h.slot + " " + h.state + (h.last_error ? " (" + h.last_error + ")" : ""));
  return p.filter((x) => x).join(" · ");
}
async function showSettings() {
  const sc = await api("GET", "/api/config/schema");
  const cf = (await api("GET", "/api/config")).config;
  const st = await api("GET", "/api/status").catch(() => ({}));
  const form = $("#cfgform"); form.textContent = "";
  const groups = new Map();
  for (const d of sc.schema) {
    const g = d.key.split(".")[0];
    if (!groups.has(g)) groups.set(g, []);
    groups.get(g).push(d);
  }
  const order = [...groups.keys()].filter((g) => !INTEGRATIONS.includes(g)).concat(INTEGRATIONS.filter((g) => groups.has(g)));
  const jump = el("div", undefined, "row jump");
  form.append(jump);
  for (const g of order) {
    const keys = groups.get(g);
    if (g === INTEGRATIONS.find((x) => groups.has(x))) form.append(el("h2", "Integrations"));
    const title = GROUPS[g] || g.charAt(0).toUpperCase() + g.slice(1);
    const go = el("button", title, "chip"); go.type = "button";
    go.onclick = () => $("#grp-" + g).scrollIntoView({ behavior: "smooth" });
    jump.append(go);
    const box = el("div", undefined, "group" + (INTEGRATIONS.includes(g) ? " integ" : "")); box.id = "grp-" + g;
    box.append(el("h2", title, "gtitle"));
    if (st && st[g] && typeof st[g] === "object" && "enabled" in st[g]) box.append(el("p", "State: " + integrationState(st[g]), "s state"));
    let sub = null;
    for (const d of keys) {
      const n = d.key.split(".")[1];
      if (/^\d+$/.test(n) && sub !== n) { sub = n; box.append(el("h3", (GROUPS[g] || g).replace(/s$/, "") + " " + n)); }
      box.append(cfgField(d, cf));
    }
    form.append(box);
  }
  loadTokens();
}
async function loadTokens() {
  const ul = $("#toklist"); ul.textContent = "";
  const r = await api("GET", "/api/tokens");
  for (const t of r.tokens) {
    const li = el("li", "#" + t.id + " " + t.name + " (" + t.scope + ") ");
    const b = el("button", "Revoke"); b.onclick = async () => { await api("DELETE", "/api/tokens/" + t.id); loadTokens(); };
    li.append(b); ul.append(li);
  }
}
$("#tokbtn").addEventListener("click", async () => {
  try {
    const r = await api("POST", "/api/tokens", { name: $("#tokname").value, scope: $("#tokscope").value });
    $("#tokshow").textContent = r.token + "  (shown once)"; loadTokens();
  } catch (e) { $("#tokshow").textContent = e.message; }
});

// ---------- models ----------
async function showModels() {
  const m = await api("GET", "/api/model");
  const box = $("#modelinfo"); box.textContent = "";
  const a = m.active;
  hist.classes = a ? a.classes : null;
  if (a) {
    box.append(el("div", "Active model", "k"), el("div", (a.name || a.origin) + " · " + a.sha256, "v"));
    box.append(el("div", "classes: " + a.classes.join(", "), "s"));
    box.append(el("div", "trees " + a.trees + ", nodes " + a.nodes + ", features " + a.features + ", window " + a.window + "/" + a.hop +
      (a.cv_accuracy !== undefined ? ", CV accuracy " + a.cv_accuracy : "") + (a.created ? ", created " + a.created : ""), "s"));
  } else box.append(el("div", "No model running" + (m.last_error ? ": " + m.last_error : ""), "err"));
  box.append(el("div", "previous model: " + (m.previous ? "yes" : "no") + " · staged upload: " + (m.staged ? "yes" : "no") +
    (m.last_error ? " · last error: " + m.last_error : ""), "s"));
  $("#rollback").disabled = !m.previous;
}
const CHUNK = 1024; // upload piece: the device must find this much contiguous RAM to receive it
const say = (t, ok) => { const p = $("#modelmsg"); p.textContent = t; p.className = ok ? "ok" : "err"; };
$("#upbtn").addEventListener("click", async () => {
  const meta = $("#upmeta").files[0], csv = $("#upcsv").files[0];
  if (!meta || !csv) { say("choose meta.json and model.csv", false); return; }
  try {
    // Each step is retried when the connection drops (the device short of RAM for a moment); a chunk the
    // device already has answers 409 and is skipped.
    const again = async (fn) => { for (let i = 0; ; i++) { try { return await fn(); } catch (e) {
      if (e.status === 409) return null; if (i === 4 || (e.status && e.status !== 503)) throw e;
      await new Promise((ok) => setTimeout(ok, 500)); } } };
    const m = new Uint8Array(await meta.arrayBuffer());
    await again(() => api("PUT", "/api/model/meta.json", m));
    const buf = new Uint8Array(await csv.arrayBuffer());
    for (let off = 0; off < buf.length; off += CHUNK) {
      await again(() => api("PUT", "/api/model/model.csv?offset=" + off, buf.subarray(off, Math.min(buf.length, off + CHUNK))));
      say("uploading " + Math.round(Math.min(1, (off + CHUNK) / buf.length) * 100) + " %", true);
    }
    say("uploaded " + buf.length + " bytes; activate it to use it", true); showModels();
  } catch (e) { say("upload failed: " + e.message, false); }
});
$("#activate").addEventListener("click", async () => {
  try { await api("POST", "/api/model/activate"); say("activated", true); showModels(); } catch (e) { say(e.message, false); }
});
$("#rollback").addEventListener("click", async () => {
  try { await api("POST", "/api/model/rollback"); say("rolled back", true); showModels(); } catch (e) { say(e.message, false); }
});

// ---------- health and logs ----------
const logState = { since: 0 };
async function showHealth() {
  const s = await api("GET", "/api/status");
  const g = $("#hstatus"); g.textContent = "";
  const card = (k, v) => { const c = el("div", undefined, "card"); c.append(el("div", k, "k"), el("div", v, "s")); g.append(c); };
  card("Device", s.device.name + " (" + s.device.id + ") " + s.device.platform + " v" + s.device.version);
  card("Uptime", s.uptime_s + " s");
  card("Heap", heapText(s.heap) + ", peak " + Math.round(s.heap.peak_used / 1024) + " KB; " +
    Math.round(s.heap.free / 1024) + " KB free now, lowest " + Math.round(s.heap.min_free / 1024) + " KB");
  card("Loop lag", "max " + s.loop_lag.max_ms.toFixed(1) + " ms, p99 " + s.loop_lag.p99_ms.toFixed(1) + " ms");
  if (s.store) card("Storage", Math.round(s.store.bytes / 1024) + " KB of " + Math.round(s.store.budget / 1024) + " KB budget, full in " + s.store.days_until_full + " days");
  for (const n in s.sensors) card("Sensor " + n, s.sensors[n].rate_hz + " Hz, received " + s.sensors[n].received + ", dropped " + s.sensors[n].dropped);
  card("Task restarts", String(s.task_restarts));
  if (s.wifi) card("Wi-Fi", s.wifi.state + (s.wifi.ssid ? " · " + s.wifi.ssid : "") + (s.wifi.rssi != null ? " · " + s.wifi.rssi + " dBm" : "") +
    (s.wifi.ip ? " · " + s.wifi.ip : "") + " · " + s.wifi.url + (s.wifi.last_error ? " · last error: " + s.wifi.last_error : ""));
  if (s.boot) card("Boot", (s.boot.safe_mode ? "SAFE MODE · " : "") + (s.boot.healthy ? "healthy" : "not yet healthy" + (s.boot.unhealthy_now ? ": " + s.boot.unhealthy_now : "")) +
    " · unhealthy boots before this one: " + s.boot.unhealthy_boots + (s.boot.last_failure ? " · last failure: " + s.boot.last_failure : ""));
  if (s.app) $("#appinfo").textContent = "Running: " + (s.app.slot === "bundle" ? "the app deployed over USB" : "update slot " + s.app.slot) +
    ", version " + s.app.version + (s.app.build ? " (build " + s.app.build + ")" : "") + (s.app.trial ? ", on trial" : "") +
    (s.app.why ? ". " + s.app.why : "") + ". Update key: " + s.app.key + ".";
  const tb = $("#tasks tbody"); tb.textContent = "";
  for (const n of Object.keys(s.tasks).sort()) {
    const t = s.tasks[n]; const tr = el("tr");
    tr.append(el("td", n), el("td", t.running ? "yes" : "no"), el("td", String(t.restarts)), el("td", t.last_error || ""));
    tb.append(tr);
  }
  const l = await api("GET", "/api/logs?since=" + logState.since);
  const pre = $("#log");
  if (logState.since === 0) pre.textContent = "";
  for (const e of l.entries) pre.textContent += fmtT(e.t) + " " + e.level + " " + e.source + ": " + e.msg + "\n";
  logState.since = l.next;
  pre.scrollTop = pre.scrollHeight;
  route.timer = setInterval(() => { if (!$("#health").hidden) showHealthQuiet(); }, 4000);
}
function showHealthQuiet() { clearInterval(route.timer); showHealth().catch(() => {}); }
$("#otabtn").addEventListener("click", async () => {
  const f = $("#otafile").files[0];
  const msg = $("#otamsg");
  if (!f) { msg.className = "err"; msg.textContent = "choose the signed update file first"; return; }
  msg.className = ""; msg.textContent = "sending " + Math.round(f.size / 1024) + " KB…";
  try {
    const r = await api("POST", "/api/ota", f);
    msg.className = "ok";
    msg.textContent = "update " + r.version + " installed in slot " + r.slot + "; the device restarts into it (kept once it stays healthy)";
    setTimeout(() => location.reload(), 10000);
  } catch (e) { msg.className = "err"; msg.textContent = e.message; }
});
$("#factoryreset").addEventListener("click", async () => {
  const s = await api("GET", "/api/status");
  const id = prompt("Factory reset: the Wi-Fi networks, settings, admin password and API tokens are deleted; stored data is kept. " +
    "Type this device's id (" + s.device.id + ") to go on:");
  if (id === null) return;
  try { await api("POST", "/api/reset", { confirm: id.trim() }); alert("Reset. The device restarts as new: its admin password is on its console."); }
  catch (e) { alert(e.message); }
});
$("#restart").addEventListener("click", async () => {
  if (!confirm("Restart the device?")) return;
  await api("POST", "/api/restart").catch(() => {});
});

start();
