// sensorbox web UI: a single page over the device's JSON API (no framework, no build step; charts by uPlot).
"use strict";
const $ = (s) => document.querySelector(s);
const el = (tag, text, cls) => { const e = document.createElement(tag); if (text !== undefined) e.textContent = text; if (cls) e.className = cls; return e; };
const fmtT = (ms) => new Date(ms).toLocaleString();
const G = 4096; // accelerometer counts per g (±8 g range)
let csrf = null;

// Durations and ages for people: "2 min 05 s", "3 s ago".
function fmtDur(ms) {
  const s = Math.round(ms / 1000);
  if (ms < 10000) return (ms % 1000 ? (ms / 1000).toFixed(1) : ms / 1000) + " s";
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + String(s % 60).padStart(2, "0") + " s";
  if (s < 172800) return Math.floor(s / 3600) + " h " + String(Math.floor(s / 60) % 60).padStart(2, "0") + " min";
  return Math.round(s / 86400) + " days";
}
const fmtAge = (ms) => (ms < 1500 ? "just now" : fmtDur(Math.max(0, ms)).replace(/\.\d s$/, " s") + " ago");
// The device's clock (its values carry device epoch ms; the browser's clock may differ): set from /api/status.
const clock = { off: 0 };
const devNow = () => Date.now() + clock.off;

// Chart axes: time ticks at whole seconds, minutes or hours (HH:MM:SS, HH:MM, a date at midnight), units on y.
const pad2 = (n) => String(n).padStart(2, "0");
const TIME_INCRS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800];
function timeTick(v, incr) {
  const d = new Date(v * 1000), hm = pad2(d.getHours()) + ":" + pad2(d.getMinutes());
  if (incr >= 86400 || (incr >= 3600 && hm === "00:00")) return d.toLocaleDateString(undefined, { month: "short", day: "numeric" });
  return incr < 60 ? hm + ":" + pad2(d.getSeconds()) : hm;
}
function axes(ylabel) {
  return [{ label: "time", space: 80, incrs: TIME_INCRS, values: (u, vals, i, space, incr) => vals.map((v) => timeTick(v, incr)) },
    { label: ylabel, size: 54 }];
}
const timeSeries = { label: "time", value: (u, v) => (v == null ? "--" : new Date(v * 1000).toLocaleTimeString()) };

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
function showLogin(msg) {
  stopLive();
  document.querySelectorAll("section").forEach((s) => (s.hidden = s.id !== "login"));
  $("#nav").hidden = $("#logout").hidden = true;
  $("#loginmsg").textContent = msg || "";
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

const pages = { dashboard: showDashboard, history: showHistory, settings: showSettings, models: showModels, health: showHealth,
  analysis: () => (typeof showAnalysis === "function" ? showAnalysis() : noAnalysisRuntime()) };  // web/analysis.js
// A board without room in its flash for the Analysis page's runtime serves neither it nor web/analysis.js.
function noAnalysisRuntime() {
  const box = $("#anremote"); box.hidden = false; box.textContent = "";
  box.append(el("span", "This device does not carry the Analysis page's runtime (MicroPython WebAssembly, ~260 KB of flash: its board has no room for it). On your computer run "),
    el("code", "sensorbox ui " + location.origin), el("span", ": it serves this page with the runtime and talks to the device."));
  document.querySelectorAll("#analysis > :not(h1):not(#anremote)").forEach((e) => (e.hidden = true));
}
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
  if (window.sbRemote) { sbRemote.start(); return; }  // `sensorbox ui`: the Analysis page of another device
  try {
    const s = await api("GET", "/api/session");
    csrf = s.csrf || "";
  } catch (e) { return; }
  $("#nav").hidden = $("#logout").hidden = false;
  route();
  showSafeMode();
}

// Restart: say so, wait until the device answers again (its open health probe, with a smaller uptime), then come
// back to the same page (a restart it was asked for keeps the UI's session).
async function restartDevice(ev, quiet) {
  if (!quiet && !confirm("Restart the device?")) return;
  const page = (location.hash || "#dashboard").slice(1);
  const probe = () => fetch("/api/status", { cache: "no-store" }).then((r) => (r.ok ? r.json() : null)).catch(() => null);
  const boot = (s) => s.time_ms - s.uptime_s * 1000, before = await probe();
  stopLive(); clearInterval(route.timer);
  const ov = $("#overlay"), msg = $("#overlaymsg"), t0 = Date.now();
  msg.textContent = "Restarting… waiting for the device"; ov.hidden = false;
  try { await api("POST", "/api/restart"); } catch (e) { if (e.status) { ov.hidden = true; alert("restart refused: " + e.message); return; } }
  let down = false;
  for (;;) {
    await new Promise((ok) => setTimeout(ok, 1000));
    const s = await probe();
    if (!s) down = true;
    else if (down || !before || boot(s) > boot(before) + 1500) break;
    const waited = Math.round((Date.now() - t0) / 1000), port = cfgState.pending.includes("http.port") && cfgState.cf["http.port"];
    msg.textContent = "Restarting… waiting for the device (" + waited + " s)" + (waited > 60 ? "; it has not answered yet, still trying" : "") +
      (port && waited > 10 ? "; its web port is now " + port + ": " + location.protocol + "//" + location.hostname + ":" + port + "/" : "");
  }
  ov.hidden = true;
  logState.since = 0; classInfo = null;
  try { await api("GET", "/api/session"); } catch (e) { showLogin("The device restarted. Log in again to return to " + page + "."); return; }
  route(); showSafeMode();
}
$("#restart").addEventListener("click", restartDevice);
$("#pendingbtn").addEventListener("click", restartDevice);
// Safe mode (after 3 boots that did not stay healthy): why, the traceback, and a way back to a normal boot.
async function showSafeMode() {
  const s = await api("GET", "/api/status").catch(() => null);
  const b = s && s.boot;
  $("#safe").hidden = !(b && b.safe_mode);
  if (!b || !b.safe_mode) return;
  $("#safewhy").textContent = "After " + b.unhealthy_boots + " boots that did not stay healthy. Last: " + (b.last_failure || "unknown") + ".";
  $("#safetrace").textContent = b.last_traceback || "(none recorded)";
}
$("#saferestart").addEventListener("click", () => {
  $("#safewhy").textContent = "Restarting normally…";
  restartDevice(null, true);
});

function chartWidth(node) { return Math.max(240, node.clientWidth - 10); }
window.addEventListener("resize", () => {
  if (live.plot) live.plot.setSize({ width: chartWidth($("#livechart")), height: 240 });
  if (hist.plot) hist.plot.setSize({ width: chartWidth($("#histchart")), height: 260 });
  if (hist.snd) hist.snd.setSize({ width: chartWidth($("#sndchart")), height: 200 });
});

// ---------- class names and their meaning (the model's meta.json may carry them) ----------
let classInfo = null;  // {classes, names, descriptions} of the running model, asked once (Models resets it)
async function loadClassInfo() {
  if (!classInfo) classInfo = await api("GET", "/api/model/classes").catch(() => ({ classes: null }));
  return classInfo;
}
function displayName(code) {
  const c = classInfo && classInfo.classes, i = c ? c.indexOf(code) : -1;
  const n = i >= 0 && classInfo.names ? classInfo.names[i] : null;
  return n && n !== code ? n + " (" + code + ")" : code;
}
function classDesc(code) {
  const c = classInfo && classInfo.classes, i = c ? c.indexOf(code) : -1;
  return i >= 0 && classInfo.descriptions ? classInfo.descriptions[i] || "" : code === "unknown" ? "below the confidence threshold" : "";
}
function eventText(e) {
  if (e.type === "class_change") return "activity: " + displayName(e.from) + " → " + displayName(e.to) + (e.confidence !== undefined ? " (" + Math.round(e.confidence / 10) + " %)" : "");
  if (e.type === "capture") return "raw data captured around " + (e.trigger === "class" ? "a change to " + displayName(e.class) : "a sound level of " + e.leq_db + " dB") +
    ": " + new Date(e.start).toLocaleTimeString() + " – " + new Date(e.end).toLocaleTimeString() + " (kept until pulled)";
  if (e.type === "clip") return "audio clip kept (" + fmtDur(e.end - e.start) + ", " + (e.trigger === "class" ? "at a change to " + displayName(e.class)
    : e.trigger === "sound" ? "at a sound level of " + e.leq_db + " dB" : "on request") + "): " + new Date(e.start).toLocaleTimeString() + " (History: Audio clips)";
  if (e.type === "sound_change") return "sound: " + e.from + " → " + e.to + (e.confidence !== undefined ? " (" + Math.round(e.confidence / 10) + " %)" : "");
  const rest = Object.keys(e).filter((k) => k !== "t" && k !== "type").map((k) => k + " " + JSON.stringify(e[k]));
  return e.type + (rest.length ? ": " + rest.join(", ") : "");
}

// ---------- dashboard ----------
const live = { es: null, plot: null, t: [], x: [], y: [], z: [], n: 0, max: 250, pred: null, snd: null, sndcls: null, feat: null, acc: null, stopped: null, seen: new Set(), every: {} };
// note(kind, t): a live value of this kind arrived, made at device time t; its usual interval is remembered
function note(kind, t, prev) { if (prev != null && t > prev) live.every[kind] = t - prev; }
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
let dbUnit = "dB(A)";  // from the sound meter's frequency weighting (/api/status)
const db = (cdb) => (cdb / 100).toFixed(1);
// Each live value says how old it is; one that stopped coming is greyed ("stale"), and a stopped analysis says why.
function ages() {
  const now = devNow();
  const show = (id, card, kind, t) => {  // stale: nothing new for 3 s plus 2.5 of its usual intervals
    $(id).textContent = t == null ? "" : "updated " + fmtAge(now - t);
    $(card).classList.toggle("stale", t != null && now - t > 3000 + 2.5 * (live.every[kind] || 2000));
  };
  show("#clsage", "#clscard", "pred", live.pred && live.pred.t);
  if (live.stopped) $("#clscard").classList.add("stale");
  show("#leqage", "#sndcard", "snd", live.snd && live.snd.t);
  show("#motage", "#motcard", "feat", live.feat);
  $("#accage").textContent = live.acc == null ? "" : now - live.acc > 3000 ? "· no samples for " + fmtDur(now - live.acc) : "";
}
function showPrediction(code, conf) {
  const name = displayName(code), i = name.lastIndexOf(" (");
  $("#cls").textContent = i > 0 ? name.slice(0, i) : name;  // the display name large, the code with the confidence
  $("#conf").textContent = (i > 0 ? code + " · " : "") + "confidence " + Math.round(conf * 100) + " %";
  $("#clsdesc").textContent = classDesc(code);
}
// The sound classifier's latest class (sound.classify), under the sound level; hidden while it is off.
function showSoundClass(c) {
  const e = $("#sndcls");
  e.hidden = !c;
  if (!c) return;
  e.textContent = c.class != null ? "heard: " + c.class + " · " + Math.round(c.confidence * 100) + " %" : "sound classes: " + c.reason;
}
// Why no new predictions come, from the health figures: the analysis service failed, or the pipeline says why.
function analysisStopped(s) {
  const t = s.tasks && s.tasks.pipeline, a = s.analysis;
  if (t && !t.running) return "the analysis service failed" + (t.last_error ? " (" + t.last_error + ")" : "") + "; restarting";
  if (!a) return "analysis is not running";
  return a.reason || null;
}
function addEvents(list) {  // newest first; stored and live events, each once
  const ul = $("#liveevents");
  for (const e of list) {
    const key = e.t + e.type + (e.to || "");
    if (live.seen.has(key)) continue;
    live.seen.add(key);
    const li = el("li", fmtT(e.t) + "  " + eventText(e)); li.dataset.t = e.t;
    const after = [...ul.children].find((x) => Number(x.dataset.t) < e.t);
    ul.insertBefore(li, after || null);
  }
  while (ul.children.length > 30) ul.lastChild.remove();
}
async function showDashboard() {
  const node = $("#livechart");
  await loadClassInfo();
  if (!live.plot) {
    live.plot = new uPlot({ width: chartWidth(node), height: 240, scales: { x: { time: true } }, axes: axes("acceleration (g)"),
      series: [timeSeries, { label: "x (g)", stroke: "#d1495b", points: { show: false } }, { label: "y (g)", stroke: "#00798c", points: { show: false } },
        { label: "z (g)", stroke: "#edae49", points: { show: false } }] },
      [[], [], [], []], node);
  }
  stopLive();
  // what is stored: the events of the last hour (the live stream adds new ones)
  api("GET", "/api/events?start=-3600000").then((ev) => addEvents((ev || []).slice(-30).reverse())).catch(() => {});
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
    live.n += d.n; $("#nsamples").textContent = live.n; live.acc = d.t + (d.n - 1) * d.dt;
    live.plot.setData([live.t, live.x, live.y, live.z]);
  });
  es.addEventListener("prediction", (m) => {
    const d = JSON.parse(m.data);
    note("pred", d.t, live.pred && live.pred.t); live.pred = d; showPrediction(d.class, d.confidence); ages();
  });
  es.addEventListener("soundlevel", (m) => {
    const d = JSON.parse(m.data);
    note("snd", d.t, live.snd && live.snd.t); live.snd = d;
    $("#leq").textContent = db(d.leq) + " " + dbUnit;
    $("#lstats").textContent = "Lmin " + db(d.lmin) + " · Lmax " + db(d.lmax) + " · L90 " + db(d.l90) + " " + dbUnit;
    $("#leqbar").style.width = Math.max(0, Math.min(100, (d.leq / 100 - 30) / 90 * 100)) + "%";
    ages();
  });
  es.addEventListener("soundclass", (m) => {  // one per sound window (128 ms) while sound.classify is on
    live.sndcls = JSON.parse(m.data); showSoundClass(live.sndcls);
  });
  es.addEventListener("features", (m) => {  // one per analysis window: a few named features (see /api/openapi.json)
    const d = JSON.parse(m.data);
    note("feat", d.t, live.feat); live.feat = d.t;
    $("#motion").textContent = (d.am_std / G).toFixed(2) + " g";
    $("#motion2").textContent = "dominant " + (d.am_domf / 100).toFixed(1) + " Hz · tilt " +
      Math.round(Math.acos(Math.max(-1, Math.min(1, d.grav_z / G))) * 180 / Math.PI) + "°";
  });
  es.addEventListener("event", (m) => addEvents([JSON.parse(m.data)]));
  es.onerror = () => { if (es.readyState === 2) setTimeout(() => { if (live.es === es) showDashboard(); }, 2000); };
  const health = async () => {
    try {
      const s = await api("GET", "/api/status");
      clock.off = s.time_ms - Date.now();
      $("#devname").textContent = s.device.name;
      if (s.soundlevel && s.soundlevel.weighting) dbUnit = "dB(" + s.soundlevel.weighting + ")";
      const sc = s.soundlevel && s.soundlevel.classes, p = sc && sc.prediction;  // the sound classifier, when on
      if (!sc) live.sndcls = null;
      else if (p && !(live.sndcls && live.sndcls.t >= p.t_ms)) live.sndcls = { t: p.t_ms, class: p.class, confidence: p.confidence / 1000 };
      else if (!p) live.sndcls = { reason: sc.reason || "waiting for the first window" };
      showSoundClass(live.sndcls);
      const a = s.analysis && s.analysis.prediction;
      if (a && !live.pred) { live.pred = { t: a.t_ms, class: a.class, confidence: a.confidence / 1000 }; showPrediction(a.class, a.confidence / 1000); }
      live.stopped = analysisStopped(s);
      $("#astate").textContent = live.stopped ? "analysis stopped: " + live.stopped : "";
      $("#dhealth").textContent = "up " + fmtDur(s.uptime_s * 1000) + " · heap " + heapText(s.heap) + " · loop lag p99 " +
        s.loop_lag.p99_ms.toFixed(1) + " ms · restarts " + s.task_restarts + " · dropped " + s.sensors.accel.dropped;
      ages();
    } catch (e) { /* shown by the next attempt */ }
  };
  let polls = 0;  // and every 30 s the stored events of the last minute (those the stream did not see as changes)
  health(); route.timer = setInterval(() => {
    health();
    if (++polls % 10 === 0) api("GET", "/api/events?start=-60000").then((ev) => addEvents((ev || []).reverse())).catch(() => {});
  }, 3000);
  clearInterval(live.ager); live.ager = setInterval(ages, 1000);
}

// ---------- history ----------
const hist = { plot: null, snd: null, sel: null, segs: [], events: [], classes: null, labels: [], clips: [], counts: new Map(), pending: null };
const PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7", "#9c755f", "#e15759", "#bab0ac"];
const classColor = (k) => (k === null ? "#c8ccd4" : k < 0 ? "#8a8f99" : PALETTE[k % PALETTE.length]);
const className = (k) => (k === null ? "mixed" : k < 0 ? "unknown" : displayName((hist.classes && hist.classes[k]) || "class " + k));
// Labels get colours of their own (by name), drawn striped along the top: unlike the predictions' solid band.
const LABEL_COLORS = ["#7b3fa0", "#1b7f5b", "#b5452a", "#2c5aa0", "#8a6d00", "#a03c78"];
function labelColor(name) { let h = 0; for (const c of name) h = (h * 31 + c.codePointAt(0)) >>> 0; return LABEL_COLORS[h % LABEL_COLORS.length]; }
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
// Rollup rows of predictions (t = a period's start; seconds of it per class: unknown, c0, c1, ... by class id, other:
// the ids past the device's columns) as segments: each period's classes side by side, in proportion to their time.
function rollupSegments(c, period) {
  const t = c.t || [], segs = [];
  const keys = Object.keys(c).filter((n) => /^c\d+$/.test(n)).sort((a, b) => a.slice(1) - b.slice(1));
  keys.unshift("unknown");
  keys.push("other");
  for (let i = 0; i < t.length; i++) {
    let off = 0;
    for (const key of keys) {
      const d = c[key] ? c[key][i] * 1000 : 0;
      if (!(d > 0)) continue;
      const k = key === "other" ? null : key === "unknown" ? -1 : Number(key.slice(1)), t0 = t[i] + off, t1 = t0 + d;
      off += d;
      const last = segs[segs.length - 1];
      if (last && last.k === k && t0 - last.t1 < 1000) last.t1 = t1; else segs.push({ k, t0, t1 });
    }
  }
  return segs;
}
// What the store holds (GET /api/resources): where each resource's rows begin, budgets and what they hold at the
// current settings, labelled data kept from retention. History says where raw data ends and what it shows instead.
const RES_TEXT = { "1m": "per-minute summaries", "1h": "per-hour summaries" };
function coverText(from, now, sndRes, predRes) {
  const a = hist.cov.accel, parts = [];
  if (!a || !a.stored) parts.push("raw accelerometer data is not stored (its budget is 0)");
  else if (a.start === null) parts.push("no raw accelerometer data stored yet");
  else if (a.start > from + 1000) {
    const kept = a.days_in_budget ? "; its " + Math.round(a.budget / 1024) + " KB budget holds about " + fmtDur(a.days_in_budget * 86400000) +
      " at the current settings, labelled data stays until pulled" : "";
    parts.push("raw accelerometer data only since " + fmtT(a.start) + " (the last " + fmtDur(now - a.start) + kept + ")");
  }
  if (RES_TEXT[sndRes]) parts.push("sound levels: " + RES_TEXT[sndRes]);
  if (RES_TEXT[predRes]) parts.push("classes: " + RES_TEXT[predRes] + " (time per class)");
  return parts.length ? parts.join("; ") + "." : "";
}
// The predictions' resolution for a range: the stored rows when they reach back to its start or as far back as the
// summaries do (a young device: its first minutes' summaries begin at the first row's minute, and hold only the
// minutes that are over), else per-minute summaries for up to a day and per-hour ones beyond.
function predResolution(span, now) {
  const raw = hist.cov.predictions, P = { predictions_1m: 60000, predictions_1h: 3600000 };
  const has = (n) => hist.cov[n] && hist.cov[n].start !== null && !(raw.start !== null && hist.cov[n].start + P[n] > raw.start);
  if (!raw || (raw.start !== null && raw.start <= now - span) || (!has("predictions_1m") && !has("predictions_1h"))) return "raw";
  if ((span <= 86400000 && has("predictions_1m")) || !has("predictions_1h")) return "1m";
  return "1h";
}
function showPins() {
  const p = (hist.store && hist.store.pins) || {}, box = $("#hpins"), over = p.over_budget || [];
  box.hidden = !(over.length || p.fills_flash);
  box.textContent = p.fills_flash ? "The flash is full of labelled data not pulled yet: new rows may be lost. Pull it (sensorbox pull) or unpin labels below."
    : over.length ? "Labelled data not pulled yet fill the budget of " + over.join(", ") + ": the device keeps sampling into its newest data next to it, past the budget. Pull it (sensorbox pull) or unpin labels below." : "";
}
// uPlot plugin: the class band along the bottom of the plot and the labels along its top, under the series; event
// markers and the labels' names over them
const BAND = 14, LBAND = 16;
function xspan(u, t0, t1) {
  const x0 = Math.max(u.bbox.left, u.valToPos(t0 / 1000, "x", true));
  const x1 = Math.min(u.bbox.left + u.bbox.width, u.valToPos(t1 / 1000, "x", true));
  return x1 > x0 ? [x0, x1] : null;
}
function timelinePlugin(withClasses) {
  return { hooks: {
    drawClear: [(u) => {
      const ctx = u.ctx, px = devicePixelRatio || 1, h = BAND * px, y = u.bbox.top + u.bbox.height - h;
      ctx.save();
      for (const l of hist.labels) {  // a light tint over the label's whole range
        const x = xspan(u, l.start, l.end);
        if (x) { ctx.fillStyle = labelColor(l.label) + "14"; ctx.fillRect(x[0], u.bbox.top, Math.max(px, x[1] - x[0]), u.bbox.height); }
      }
      if (withClasses && hist.rawFrom > hist.range[0]) {  // before the oldest raw row: none stored (any more)
        const x = xspan(u, hist.range[0], hist.rawFrom);
        if (x) {
          ctx.fillStyle = "#eef0f4"; ctx.fillRect(x[0], u.bbox.top, x[1] - x[0], u.bbox.height);
          ctx.font = 12 * px + "px system-ui, sans-serif"; ctx.textAlign = "center"; ctx.textBaseline = "middle"; ctx.fillStyle = "#556";
          const text = "no raw data stored";
          if (ctx.measureText(text).width + 8 * px < x[1] - x[0]) ctx.fillText(text, (x[0] + x[1]) / 2, u.bbox.top + u.bbox.height / 2);
        }
      }
      if (withClasses) for (const s of hist.segs) {
        const x = xspan(u, s.t0, s.t1);
        if (x) { ctx.fillStyle = classColor(s.k); ctx.fillRect(x[0], y, Math.max(px, x[1] - x[0]), h); }
      }
      ctx.restore();
    }],
    draw: [(u) => {
      const ctx = u.ctx, px = devicePixelRatio || 1, top = u.bbox.top, lh = LBAND * px;
      ctx.save();
      u.labelBoxes = [];
      for (const l of hist.labels) {
        const x = xspan(u, l.start, l.end);
        if (!x) continue;
        const w = Math.max(2 * px, x[1] - x[0]), c = labelColor(l.label);
        ctx.fillStyle = c + "40"; ctx.fillRect(x[0], top, w, lh);
        ctx.save(); ctx.beginPath(); ctx.rect(x[0], top, w, lh); ctx.clip();  // stripes
        ctx.strokeStyle = c + "99"; ctx.lineWidth = px; ctx.beginPath();
        for (let sx = x[0] - lh; sx < x[0] + w; sx += 6 * px) { ctx.moveTo(sx, top + lh); ctx.lineTo(sx + lh, top); }
        ctx.stroke(); ctx.restore();
        ctx.fillStyle = c; ctx.fillRect(x[0], top, w, 3 * px);  // a solid edge in the label's colour
        ctx.font = 11 * px + "px system-ui, sans-serif"; ctx.textBaseline = "middle"; ctx.textAlign = "left"; ctx.fillStyle = "#1d2330";
        const text = l.label, tw = ctx.measureText(text).width;
        if (tw + 6 * px < w) ctx.fillText(text, x[0] + 3 * px, top + lh / 2 + px);
        u.labelBoxes.push({ id: l.id, x0: x[0], x1: x[0] + w, color: c });
      }
      for (const c of hist.clips) {  // audio clips: a blue band across the chart, a solid edge at its foot
        const x = xspan(u, c.start, c.end);
        if (!x) continue;
        const w = Math.max(2 * px, x[1] - x[0]);
        ctx.fillStyle = "#2a62d322"; ctx.fillRect(x[0], top, w, u.bbox.height);
        ctx.fillStyle = "#2a62d3"; ctx.fillRect(x[0], top + u.bbox.height - 3 * px, w, 3 * px);
      }
      ctx.strokeStyle = "#1d2330"; ctx.fillStyle = "#1d2330"; ctx.lineWidth = px; ctx.setLineDash([3 * px, 3 * px]);
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
    const it = el("span", className(k) + " " + fmtDur(ms), "lg"); it.dataset.k = k === null ? "mixed" : k;
    if (k !== null && k >= 0 && hist.classes) it.title = classDesc(hist.classes[k]);
    const sw = el("i"); sw.style.background = classColor(k); it.prepend(sw); box.append(it);
  }
  const r = hist.range || [0, 0], names = new Set(hist.labels.filter((l) => l.end > r[0] && l.start < r[1]).map((l) => l.label));
  for (const n of names) { const it = el("span", "label: " + n, "lg lab"); const sw = el("i"); sw.style.borderColor = labelColor(n); it.prepend(sw); box.append(it); }
  if (hist.events.length) { const it = el("span", hist.events.length + (hist.events.length === 1 ? " event" : " events"), "lg ev"); it.prepend(el("i")); box.append(it); }
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
  $("#selinfo").textContent = r ? fmtT(r[0]) + " – " + fmtT(r[1]) + " (" + fmtDur(r[1] - r[0]) + ")" : "none (exports take the whole range)";
  $("#expnpy").href = exportUrl("npy"); $("#expcsv").href = exportUrl("csv");
}
// A selection made on either chart (mouse, or touch: see touchSelect) is shown on both.
function selected(u) {
  if (u.select.width < 2) return;
  hist.sel = [u.posToVal(u.select.left, "x") * 1000, u.posToVal(u.select.left + u.select.width, "x") * 1000];
  for (const o of [hist.plot, hist.snd]) if (o && o !== u) {
    const l = o.valToPos(hist.sel[0] / 1000, "x"), r = o.valToPos(hist.sel[1] / 1000, "x");
    o.setSelect({ left: l, width: r - l, top: 0, height: o.over.clientHeight }, false);
  }
  hideConfirm();
  updateSelection();
}
// Touch: a sideways drag selects at once (the page scrolls only up and down there), a press held still for 350 ms
// then dragged selects in any direction; a vertical swipe still scrolls the page.
function touchSelect(u) {
  const o = u.over;
  let timer = null, x0 = 0, y0 = 0, on = false, moved = false;
  const xy = (e) => { const r = o.getBoundingClientRect(), t = e.touches[0] || e.changedTouches[0]; return [t.clientX - r.left, t.clientY - r.top]; };
  const put = (x) => {
    const l = Math.max(0, Math.min(x, x0)), r = Math.min(o.clientWidth, Math.max(x, x0));
    u.setSelect({ left: l, width: r - l, top: 0, height: o.clientHeight }, false);
  };
  const begin = () => { on = true; o.classList.add("touchsel"); put(x0); };
  o.addEventListener("touchstart", (e) => {
    if (e.touches.length !== 1) { clearTimeout(timer); return; }
    [x0, y0] = xy(e); on = moved = false;
    clearTimeout(timer); timer = setTimeout(() => { if (!moved) begin(); }, 350);
  }, { passive: true });
  o.addEventListener("touchmove", (e) => {
    const [x, y] = xy(e);
    if (!on) {
      const dx = Math.abs(x - x0), dy = Math.abs(y - y0);
      if (dx < 8 && dy < 8) return;
      moved = true; clearTimeout(timer);
      if (dx <= dy) return;  // a scroll
      begin();
    }
    e.preventDefault();
    put(x);
  }, { passive: false });
  const end = () => {
    clearTimeout(timer);
    if (!on) return;
    on = false; o.classList.remove("touchsel");
    selected(u);
  };
  o.addEventListener("touchend", end); o.addEventListener("touchcancel", end);
}
const selectHook = { setSelect: [(u) => selected(u)] };
async function csvOf(path, info) {
  const r = await api("GET", path, undefined, true);
  if (info) info.res = r.headers.get("X-Sensorbox-Resolution") || "raw";
  return parseCsv(await r.text());
}
// Loads follow each other (the page shown again, Load, another range): one started later makes an older one stop at
// its next answer, before it changes anything.
async function showHistory() {
  const run = (hist.run = (hist.run || 0) + 1), stale = () => run !== hist.run;
  const span = Number($("#hrange").value);
  const now = Date.now();
  await loadClassInfo();
  // one request at a time: each loads the device's export code for its duration
  try {  // what is stored where (and the class table: names by id, for good)
    const r = await api("GET", "/api/resources");
    if (stale()) return;
    hist.cov = {}; for (const x of r.resources) hist.cov[x.name] = x;
    hist.store = r.store;
    if (hist.cov.predictions) hist.classes = hist.cov.predictions.classes;
  } catch (e) { if (stale()) return; hist.cov = {}; hist.store = null; }
  let c;
  try { c = await csvOf("/api/resources/accel/data?format=csv&max_points=400&start=-" + span); } catch (e) { $("#hinfo").textContent = "could not load the data: " + e.message; return; }
  const ev = await api("GET", "/api/events?start=-" + span).catch(() => []);
  let pred = null;
  const predRes = predResolution(span, now), PERIOD = { "1m": 60000, "1h": 3600000 };
  try {  // stored rows (decimated), or a rollup's rows as they are (a row per period: seconds per class)
    pred = await csvOf(predRes === "raw" ? "/api/resources/predictions/data?format=csv&max_points=400&start=-" + span
      : "/api/resources/predictions_" + predRes + "/data?format=csv&start=-" + span);
  } catch (e) { pred = {}; }
  if (stale()) return;
  hist.segs = predRes === "raw" ? classSegments(pred) : rollupSegments(pred, PERIOD[predRes]);
  hist.events = (ev || []).slice(-200);
  await loadLabels().catch((e) => { $("#labelerr").textContent = "could not load the labels: " + e.message; });
  await loadClips(span).catch((e) => { $("#clipinfo").textContent = "could not load the clips: " + e.message; });
  let snd = {};
  const sres = {};  // sound levels: the resolution the device picks for 400 points over the range
  try { snd = await csvOf("/api/resources/soundlevel/data?format=csv&resolution=auto&max_points=400&start=-" + span, sres); } catch (e) { snd = {}; }
  if (stale()) return;
  if (!c.t) { $("#hinfo").textContent = "unexpected answer from the device"; return; }
  const mid = (a) => (c[a + "_min"] ? c[a + "_min"].map((v, i) => (v + c[a + "_max"][i]) / 2 / G) : c[a].map((v) => v / G));
  const keep = c.n ? c.n.map((n) => n > 0) : c.t.map(() => true);
  const f = (arr) => arr.filter((_, i) => keep[i]);
  const series = [f(c.t.map((t) => t / 1000)), f(mid("x")), f(mid("y")), f(mid("z"))];
  // the range: from the oldest row any chart has (raw data ends before the summaries do) to now
  const firsts = [series[0].length ? series[0][0] * 1000 : null, snd.t && snd.t.length ? snd.t[0] : null,
    hist.segs.length ? hist.segs[0].t0 : null].filter((v) => v !== null);
  hist.range = [firsts.length ? Math.max(now - span, Math.min(...firsts)) : now - span, now];
  const a = hist.cov.accel;
  hist.rawFrom = a && a.start !== null ? Math.max(a.start, series[0].length ? series[0][0] * 1000 : a.start) : now;
  $("#hinfo").textContent = series[0].length + " points" + (c.n ? " (decimated on the device, min/max midpoints)" : "");
  $("#hcover").textContent = coverText(hist.range[0], now, sres.res, predRes);
  $("#hcover").dataset.sound = sres.res || ""; $("#hcover").dataset.classes = predRes;
  showPins();
  const node = $("#histchart"); node.textContent = "";
  hist.sel = null; hideConfirm();
  const x = { time: true, range: () => [hist.range[0] / 1000, hist.range[1] / 1000] };
  const cursor = { drag: { x: true, y: false, setScale: false }, sync: { key: "hist" } };
  hist.plot = new uPlot({ width: chartWidth(node), height: 260, scales: { x }, axes: axes("acceleration (g)"),
    cursor, plugins: [timelinePlugin(true)], hooks: selectHook,
    series: [timeSeries, { label: "x (g)", stroke: "#d1495b" }, { label: "y (g)", stroke: "#00798c" }, { label: "z (g)", stroke: "#edae49" }] },
    series, node);
  touchSelect(hist.plot);
  node.dataset.segments = hist.segs.length; node.dataset.events = hist.events.length; node.dataset.labels = hist.labels.length;
  // sound levels: Leq, Lmin/Lmax (the extremes in each point's span), L90
  const sn = $("#sndchart"); sn.textContent = "";
  if (snd.t && snd.t.length) {
    const sk = snd.n ? snd.n.map((n) => n > 0) : snd.t.map(() => true), sf = (arr) => arr.filter((_, i) => sk[i]);
    const col = (a, how) => (snd[a] ? snd[a] : how === "min" ? snd[a + "_min"] : how === "max" ? snd[a + "_max"] : snd[a + "_min"].map((v, i) => (v + snd[a + "_max"][i]) / 2));
    const s = [sf(snd.t.map((t) => t / 1000)), sf(col("leq", "mid")), sf(col("lmin", "min")), sf(col("lmax", "max")), sf(col("l90", "mid"))].map((a, i) => (i ? a.map((v) => v / 100) : a));
    hist.snd = new uPlot({ width: chartWidth(sn), height: 200, scales: { x }, axes: axes("sound level (" + dbUnit + ")"),
      cursor, plugins: [timelinePlugin(false)], hooks: selectHook,
      series: [timeSeries, { label: "Leq", stroke: "#2a62d3", width: 2 }, { label: "Lmin", stroke: "#8fb3e8" },
        { label: "Lmax", stroke: "#e15554" }, { label: "L90", stroke: "#3bb273", dash: [4, 3] }] }, s, sn);
    touchSelect(hist.snd);
    sn.dataset.points = s[0].length;
  } else { hist.snd = null; sn.append(el("p", "no sound levels stored in this range", "s")); }
  drawLegend();
  updateSelection();
  const ul = $("#hevents"); ul.textContent = "";
  for (const e of (ev || []).slice(-200).reverse()) ul.append(el("li", fmtT(e.t) + "  " + eventText(e)));
  node.dataset.loads = (hist.loads = (hist.loads || 0) + 1);
  countSamples();
}
// Accelerometer samples in a label's range: the device counts them (two buckets of max_points; n is exact). Each
// count is an export the device serves with code it loads for it: the page asks by itself for the newest
// AUTO_COUNT labels only, one after the other; an older label's count comes with a click on its "count" button.
const AUTO_COUNT = 10;
async function sampleCount(l) {
  if (hist.counts.has(l.id)) return hist.counts.get(l.id);
  const c = await csvOf("/api/resources/accel/data?format=csv&columns=t,x&max_points=2&start=" + l.start + "&end=" + l.end);
  const n = c.n ? c.n.reduce((a, b) => a + b, 0) : (c.t || []).length;
  hist.counts.set(l.id, n);
  return n;
}
async function loadLabels() {
  const r = await api("GET", "/api/labels");
  hist.labels = r.labels;
  const tb = $("#labels tbody"); tb.textContent = "";
  const cells = [];
  r.labels.slice().reverse().forEach((l, i) => {  // newest first
    const tr = el("tr"); tr.dataset.id = l.id;
    const n = el("td", hist.counts.has(l.id) ? String(hist.counts.get(l.id)) : i < AUTO_COUNT ? "…" : undefined, "num samples");
    if (!hist.counts.has(l.id) && i >= AUTO_COUNT) {
      const b = el("button", "count", "plain"); b.title = "count this label's accelerometer samples (the device reads them)";
      b.onclick = async () => { b.disabled = true; n.textContent = String(await sampleCount(l).catch(() => "?")); };
      n.append(b);
    }
    const name = el("td", undefined, "lname"); const sw = el("i", undefined, "sw"); sw.style.borderColor = labelColor(l.label); name.append(sw, l.label);
    const same = new Date(l.start).toDateString() === new Date(l.end).toDateString();
    tr.append(el("td", fmtT(l.start)), el("td", same ? new Date(l.end).toLocaleTimeString() : fmtT(l.end), "end"), el("td", fmtDur(l.end - l.start), "num"), n, name);
    const kept = el("td", undefined, "kept");  // (not pinned: pulled, or unpinned)
    kept.append(el("span", l.pinned ? "kept until pulled " : "may age out", "ktext"));
    if (l.pinned) {
      const un = el("button", "Unpin", "plain"); un.title = "let retention delete this label's raw data before it is pulled";
      un.onclick = async () => { await api("POST", "/api/labels/" + l.id + "/unpin"); await loadLabels(); };
      kept.append(un);
    }
    tr.append(kept);
    const del = el("button", "Delete"); del.onclick = async () => { await api("DELETE", "/api/labels/" + l.id); await loadLabels(); redrawHist(); countSamples(); };
    const td = el("td"); td.append(del); tr.append(td); tb.append(tr);
  });
}
// The sample counts of the newest AUTO_COUNT labels, one request after the other (after the page's own requests).
async function countSamples() {
  const run = (countSamples.run = (countSamples.run || 0) + 1);
  for (const l of hist.labels.slice(-AUTO_COUNT).reverse()) {
    const td = document.querySelector('#labels tr[data-id="' + l.id + '"] td.samples');
    if (!td || run !== countSamples.run) return;
    td.textContent = String(await sampleCount(l).catch(() => "?"));
  }
}
// Audio clips (GET /api/clips): a row each, newest first, with an <audio> element playing the device's WAV export of
// it (the page's session cookie authenticates the request, as the export links above), the labels over it, and
// "Select" to label it with the selection's controls.
const TRIGGER = { demand: "on request", sound: "sound level", class: "class change" };
async function loadClips(span) {
  const r = await api("GET", "/api/clips?start=-" + span);
  hist.clips = r.clips;
  const tb = $("#clips tbody"); tb.textContent = "";
  $("#clipbtn").disabled = !r.enabled;
  $("#clipbtn").title = r.enabled ? "record clip.length_ms of sound now" : "turn Audio clips on in Settings first";
  for (const c of r.clips.slice().reverse()) {
    const tr = el("tr"); tr.dataset.start = c.start;
    const au = el("audio"); au.controls = true; au.preload = "metadata";
    if (!c.recording) au.src = "/api/resources/clips/data?format=wav&start=" + c.start + "&end=" + c.end;
    const play = el("td"); play.append(c.recording ? el("span", "recording…", "s") : au);
    const labs = hist.labels.filter((l) => l.start < c.end && l.end > c.start).map((l) => l.label).join(", ");
    const sel = el("button", "Select", "plain"); sel.title = "select this clip's time range (then label it)";
    sel.onclick = () => { hist.sel = [c.start, c.end]; hideConfirm(); updateSelection(); $("#labelname").focus(); };
    const td = el("td"); td.append(sel);
    tr.append(el("td", fmtT(c.start)), el("td", fmtDur(c.end - c.start), "num"),
      el("td", (TRIGGER[c.trigger] || c.trigger) + (c.pre_ms ? " (" + c.pre_ms + " ms before)" : "")), play,
      el("td", labs), el("td", c.pinned ? "until pulled" : "may age out", "kept"), td);
    tb.append(tr);
  }
  if (!r.clips.length) {  // say why the table is empty: none in the range, or clips off
    const td = el("td", "No clips in this range" + (r.enabled ? "." : ": audio clips are off (Settings, Audio clips)."), "s");
    td.colSpan = 7; td.id = "noclips";
    const tr = el("tr"); tr.append(td); tb.append(tr);
  }
  $("#clips").dataset.clips = r.clips.length;
}
$("#clipbtn").addEventListener("click", async () => {
  try {
    const r = await api("POST", "/api/clips");
    $("#clipinfo").textContent = "recording " + r.length_ms / 1000 + " s…";
    setTimeout(async () => { $("#clipinfo").textContent = ""; await loadClips(Number($("#hrange").value)).catch(() => {}); redrawHist(); }, r.length_ms + 1500);
  } catch (e) { $("#clipinfo").textContent = e.message; }
});
function redrawHist() { for (const u of [hist.plot, hist.snd]) if (u) u.redraw(false); if (hist.plot) { drawLegend(); $("#histchart").dataset.labels = hist.labels.length; } }
$("#hload").addEventListener("click", showHistory);
$("#hrange").addEventListener("change", showHistory);
// The label rule of the API: 1 to 40 characters (not UTF-16 units), none of them a control character.
function labelProblem(s) {
  const n = [...s].length;
  if (!n) return "type a label name first";
  if (n > 40) return "a label has at most 40 characters (this one has " + n + ")";
  if (/[\u0000-\u001f]/.test(s)) return "a label cannot hold control characters";
  return null;
}
$("#labelname").addEventListener("input", () => {
  const s = $("#labelname").value.trim(), n = [...s].length, bad = n > 40;
  $("#labelcount").textContent = n ? n + "/40" : ""; $("#labelcount").className = bad ? "err" : "s";
  $("#labelbtn").disabled = bad;
});
function hideConfirm() { $("#labelconfirm").hidden = true; hist.pending = null; }
async function addLabel(body) {
  $("#labelerr").textContent = "";
  try {
    await api("POST", "/api/labels", body);
    hideConfirm();
    await loadLabels(); redrawHist(); countSamples();
  } catch (e) {
    if (e.status === 409) {  // overlaps a label: ask
      hist.pending = Object.assign({}, body, { overlap: true });
      const m = /label (\d+)/.exec(e.message), o = m && hist.labels.find((l) => l.id === Number(m[1]));
      $("#overlapmsg").textContent = "This range " + (o ? "overlaps label \u201c" + o.label + "\u201d (" + fmtT(o.start) + " – " +
        new Date(o.end).toLocaleTimeString() + ", " + fmtDur(o.end - o.start) + ")" : e.message.replace(/; send .*$/, "")) + ". Add it anyway?";
      $("#labelconfirm").hidden = false;
    } else $("#labelerr").textContent = e.message + (e.field ? " (" + e.field + ")" : "");
  }
}
$("#labelbtn").addEventListener("click", () => {
  $("#labelerr").textContent = "";
  const name = $("#labelname").value.trim(), bad = labelProblem(name);
  if (!hist.sel) { $("#labelerr").textContent = "select a range on the chart first"; return; }
  if (bad) { $("#labelerr").textContent = bad; return; }
  addLabel({ start: Math.floor(hist.sel[0]), end: Math.ceil(hist.sel[1]), label: name });
});
$("#overlapyes").addEventListener("click", () => { if (hist.pending) addLabel(hist.pending); });
$("#overlapno").addEventListener("click", hideConfirm);

// ---------- settings ----------
// Every key of the schema (/api/config/schema), with the label, unit, group and "advanced" mark the schema gives
// it (sensorbox/shared/config_docs.py: nothing here names a key). A numbered second part makes a sub-group
// ("webhook.2.url" -> "Webhooks 2"). Advanced keys (tuning, board wiring, the simulator) go into one closed section.
const cfgState = { sc: null, cf: null, eff: {}, pending: [] };
const fmtVal = (d, v) => (v === undefined || v === null || v === "" ? "(empty)" : String(v) + (d.unit ? " " + d.unit : ""));
const labelOf = (key) => { const d = cfgState.sc && cfgState.sc.schema.find((x) => x.key === key); return d ? d.label : key; };
// "0 is out of range 5..1000" -> "0 ms is out of range 5–1000 ms"
const withUnit = (msg, d) => (d.unit ? msg.replace(/^(-?[\d.]+) is out of range (-?[\d.]+)\.\.(-?[\d.]+)$/, "$1 " + d.unit + " is out of range $2–$3 " + d.unit) : msg);
function limits(d) {
  if (d.min !== undefined) return d.min + "–" + d.max + (d.unit ? " " + d.unit : "") + ", default " + fmtVal(d, d.default);
  if (d.max_length !== undefined && d.kind !== "secret") return "up to " + d.max_length + " characters" + (d.default ? ", default " + JSON.stringify(d.default) : "");
  return d.default !== undefined && d.kind !== "bool" ? "default " + fmtVal(d, d.default) : "";
}
function effectText(d) {  // the value in effect when it is not the configured one (a restart pending, the served port)
  const e = cfgState.eff[d.key];
  if (e === undefined) return "";
  const p = cfgState.pending.includes(d.key);
  return "in effect now: " + fmtVal(d, e) + (p ? " · " + fmtVal(d, cfgState.cf[d.key]) + " after a restart" : "");
}
function showPending() {
  const p = cfgState.pending;
  $("#pending").hidden = !p.length;
  $("#pendingmsg").textContent = p.length ? "Saved, applies after a restart: " + p.map(labelOf).join(", ") + "." : "";
}
function inputValue(d, inp, v) {
  if (d.kind === "bool") inp.checked = !!v;
  else if (d.kind === "secret") inp.value = "";
  else inp.value = v === undefined || v === null ? "" : String(v);
}
function cfgField(d) {
  const cf = cfgState.cf;
  const row = el("div", undefined, "field"); row.dataset.key = d.key;
  const lab = el("label", d.label + (d.apply === "reboot" ? " (restart)" : "")); lab.htmlFor = "cfg-" + d.key;
  lab.append(el("code", d.key, "key"));
  let inp, state = null;
  if (d.kind === "bool") { inp = el("input"); inp.type = "checkbox"; }
  else if (d.kind === "choice") { inp = el("select"); for (const c of d.choices) inp.append(el("option", String(c) + (d.unit ? " " + d.unit : ""))); [...inp.options].forEach((o, i) => (o.value = String(d.choices[i]))); }
  else if (d.kind === "str" && d.max_length >= 1000) { inp = el("textarea"); inp.rows = 2; }
  else {
    inp = el("input"); inp.type = d.kind === "secret" ? "password" : (d.kind === "int" || d.kind === "float") ? "number" : "text";
    if (d.kind === "float") inp.step = "any";
    if (d.min !== undefined) { inp.min = d.min; inp.max = d.max; }
  }
  inputValue(d, inp, cf[d.key]);
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
  const msg = el("span", "", "err"), eff = el("span", effectText(d), "eff");
  inp.addEventListener("change", async () => {
    let v = d.kind === "bool" ? inp.checked : inp.value;
    if (d.kind === "int") v = /^-?\d+$/.test(v) ? parseInt(v, 10) : v;
    if (d.kind === "float") v = v !== "" && !isNaN(Number(v)) ? Number(v) : v;
    if (d.kind === "choice" && typeof d.choices[0] === "number") v = Number(v);
    msg.className = "err"; msg.textContent = "";
    try {
      const r = await api("PUT", "/api/config", { [d.key]: v });
      cfgState.pending = r.reboot_pending || [];
      if (d.kind !== "secret") cf[d.key] = v;
      if (d.apply === "reboot") cfgState.eff = (await api("GET", "/api/config")).in_effect || {};
      const later = cfgState.pending.includes(d.key);
      msg.className = "ok"; msg.textContent = later ? "saved; applies after a restart" : "saved, applied";
      if (state) { state.show(v !== ""); inp.value = ""; }
      showPending();
    } catch (e) {  // refused: say why (with units), and show the value still in effect again
      const other = e.field && e.field !== d.key ? labelOf(e.field) + ": " : "";
      msg.textContent = "refused: " + other + withUnit(e.message, d) + (d.kind !== "secret" ? "; kept " + fmtVal(d, cf[d.key]) : "");
      inputValue(d, inp, cf[d.key]);
    }
    eff.textContent = effectText(d);
  });
  const ctl = el("div", undefined, "ctl"); ctl.append(inp);
  if (d.unit && d.kind !== "choice") ctl.append(el("span", d.unit, "unit"));
  if (state) {
    ctl.append(state);
    const clr = el("button", "Clear", "link"); clr.type = "button";
    clr.onclick = () => { inp.value = ""; inp.dispatchEvent(new Event("change")); };
    ctl.append(clr); state.clr = clr; state.show(state.classList.contains("on"));
  }
  ctl.append(eff);
  // inside a titled group the help's own "MQTT: " / "Webhook 2: " prefix says nothing new
  const help = d.help.replace(/^[A-Z][\w ]{0,20}: /, ""), lim = limits(d);
  const h = el("span", help.charAt(0).toUpperCase() + help.slice(1), "help");
  if (lim) h.append(el("span", " (" + lim + ")", "lim"));
  row.append(lab, ctl, h, msg);
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
function groupBox(g, keys, st) {
  const box = el("div", undefined, "group" + (g.kind === "integration" ? " integ" : "")); box.id = "grp-" + g.prefix;
  box.append(el("h2", g.title, "gtitle"));
  if (st && st[g.prefix] && typeof st[g.prefix] === "object" && "enabled" in st[g.prefix]) box.append(el("p", "State: " + integrationState(st[g.prefix]), "s state"));
  let sub = null, body = box, into = box;
  for (const d of keys) {
    const n = d.key.split(".")[1];
    if (st && g.kind === "integration" && body === box && n !== "enabled") {  // the rest closed while it is off
      body = into = el("details", undefined, "sub more"); body.open = !!cfgState.cf[g.prefix + ".enabled"];
      body.append(el("summary", g.title + " settings")); box.append(body);
    }
    if (/^\d+$/.test(n) && sub !== n) {  // webhook.2.*: a closed sub-section unless it is in use
      sub = n; into = el("details", undefined, "sub"); into.open = !!cfgState.cf[g.prefix + "." + n + ".url"];
      into.append(el("summary", g.title.replace(/s$/, "") + " " + n)); body.append(into);
    }
    into.append(cfgField(d));
  }
  return box;
}
// A section's name across renders: its group and its title.
const secKey = (d) => { const g = d.parentNode.closest(".group"); return (g ? g.id : "") + "/" + d.firstChild.textContent; };
// Renders follow each other (a page shown again, Restart): only the newest paints (an older one answered late would
// replace it with older values), and the sections open on the page stay open.
async function showSettings() {
  const seq = (cfgState.seq = (cfgState.seq || 0) + 1);
  const sc = await api("GET", "/api/config/schema");
  const c = await api("GET", "/api/config");
  const st = await api("GET", "/api/status").catch(() => ({}));
  if (seq !== cfgState.seq) return;
  Object.assign(cfgState, { sc, cf: c.config, eff: c.in_effect || {}, pending: c.reboot_pending || [] });
  const form = $("#cfgform");
  const open = new Map([...form.querySelectorAll("details")].map((d) => [secKey(d), d.open]));
  form.textContent = "";
  const known = sc.groups || [];
  const groups = new Map(known.map((g) => [g.prefix, Object.assign({ keys: [], adv: [] }, g)]));
  for (const d of sc.schema) {
    const p = d.key.split(".")[0];
    if (!groups.has(p)) groups.set(p, { prefix: p, title: p.charAt(0).toUpperCase() + p.slice(1), kind: "", keys: [], adv: [] });
    const g = groups.get(p);
    (d.advanced || g.kind === "advanced" ? g.adv : g.keys).push(d);
  }
  const jump = el("div", undefined, "row jump");
  form.append(jump);
  const chip = (text, target) => { const b = el("button", text, "chip"); b.type = "button"; b.onclick = () => { if (target.tagName === "DETAILS") target.open = true; target.scrollIntoView({ behavior: "smooth" }); }; jump.append(b); };
  let integ = false;
  for (const g of groups.values()) {
    if (!g.keys.length) continue;
    if (g.kind === "integration" && !integ) { form.append(el("h2", "Integrations")); integ = true; }
    const box = groupBox(g, g.keys, st);
    form.append(box); chip(g.title, box);
  }
  const adv = el("details", undefined, "advanced"); adv.id = "advanced";
  const nadv = [...groups.values()].reduce((n, g) => n + g.adv.length, 0);
  adv.append(el("summary", "Advanced: tuning, board wiring, simulator (" + nadv + " settings)"));
  for (const g of groups.values()) if (g.adv.length) { const b = groupBox(g, g.adv, null); b.id = "adv-" + g.prefix; b.className = "group"; adv.append(b); }
  form.append(adv); chip("Advanced", adv); chip("API tokens", $("#tokens"));
  for (const d of form.querySelectorAll("details")) { const o = open.get(secKey(d)); if (o !== undefined) d.open = o; }
  form.dataset.loads = (cfgState.loads = (cfgState.loads || 0) + 1);
  cfgState.shown = seq;
  showPending();
  loadTokens().then(budgetsBuy).catch(() => {});
}
// What each store budget holds at the current settings (the device's figures: bytes a day as stored, after
// compression), next to the budget's field.
async function budgetsBuy() {
  const r = await api("GET", "/api/resources");
  const size = (b) => (b >= 1048576 ? (b / 1048576).toFixed(1) + " MB" : Math.round(b / 1024) + " KB");
  for (const x of r.resources) {
    const h = document.querySelector(".field[data-key='store." + x.name + "_kb'] .help");
    if (!h || !x.bytes_per_day || !x.days_in_budget) continue;
    h.append(el("span", " Holds about " + fmtDur(x.days_in_budget * 86400000) + " at the current settings (" + size(x.bytes_per_day) +
      " a day" + (x.days_covered ? "; now " + fmtDur(x.days_covered * 86400000) + " stored" : "") + ").", "buys"));
  }
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
  hist.classes = null;  // a new model may have added names to the class table: History asks again
  classInfo = null; await loadClassInfo();
  if (a) {
    box.append(el("div", "Active model", "k"), el("div", (a.name || a.origin) + " · " + a.sha256, "v"));
    box.append(el("div", "classes: " + a.classes.map(displayName).join(", "), "s"));
    box.append(el("div", "trees " + a.trees + ", nodes " + a.nodes + ", features " + a.features + ", window " + a.window + "/" + a.hop +
      (a.cv_accuracy !== undefined ? ", CV accuracy " + a.cv_accuracy : "") + (a.created ? ", created " + a.created : ""), "s"));
  } else box.append(el("div", "No model running" + (m.last_error ? ": " + m.last_error : ""), "err"));
  box.append(el("div", "previous model: " + (m.previous ? "yes" : "no") + " · staged upload: " + (m.staged ? "yes" : "no") +
    (m.last_error ? " · last error: " + m.last_error : ""), "s"));
  $("#rollback").disabled = !m.previous;
  const tb = $("#classes tbody"); tb.textContent = "";
  const ci = classInfo || {}, codes = ci.classes || [];
  codes.forEach((code, i) => {
    const tr = el("tr");
    tr.append(el("td", code), el("td", (ci.names && ci.names[i]) || ""), el("td", (ci.descriptions && ci.descriptions[i]) || ""));
    tb.append(tr);
  });
  $("#classnote").textContent = !codes.length ? "no model running" : ci.names ? "" : "This model's meta.json gives no class_names or class_descriptions.";
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
  card("Uptime", fmtDur(s.uptime_s * 1000));
  card("Heap", heapText(s.heap) + ", peak " + Math.round(s.heap.peak_used / 1024) + " KB; " +
    Math.round(s.heap.free / 1024) + " KB free now, lowest " + Math.round(s.heap.min_free / 1024) + " KB");
  card("Loop lag", "max " + s.loop_lag.max_ms.toFixed(1) + " ms, p99 " + s.loop_lag.p99_ms.toFixed(1) + " ms");
  if (s.store) card("Storage", Math.round(s.store.bytes / 1024) + " KB of " + Math.round(s.store.budget / 1024) + " KB budget" +
    (s.store.days_until_full == null ? "" : ", a budget full (retention starts) in " + fmtDur(s.store.days_until_full * 86400000)));
  if (s.store && s.store.sd) {  // the store's segments on a microSD card (board.sdcard), or on flash while it is not there
    const sd = s.store.sd;
    card("SD card", sd.state + (sd.segments_on === "sd" ? ": data on the card" : ": data on internal flash" +
      (sd.error ? " (" + sd.error + ")" : "")) + (sd.removals ? ", removed " + sd.removals + " times" : "") +
      (sd.moved_segments ? ", " + sd.moved_segments + " segments moved onto it" : ""));
  }
  for (const n in s.sensors) {  // (no driver: turned off, or none on this board)
    const x = s.sensors[n];
    card("Sensor " + n, (x.enabled ? x.rate_hz + " Hz" : "off") + ", received " + x.received + ", dropped " + x.dropped);
  }
  card("Task restarts", String(s.task_restarts));
  if (s.wifi) card("Wi-Fi", s.wifi.state + (s.wifi.ssid ? " · " + s.wifi.ssid : "") + (s.wifi.rssi != null ? " · " + s.wifi.rssi + " dBm" : "") +
    (s.wifi.ip ? " · " + s.wifi.ip : "") + " · " + s.wifi.url + (s.wifi.last_error ? " · last error: " + s.wifi.last_error : ""));
  if (s.boot) card("Boot", (s.boot.safe_mode ? "SAFE MODE · " : "") + (s.boot.healthy ? "healthy" : "not yet healthy" + (s.boot.unhealthy_now ? ": " + s.boot.unhealthy_now : "")) +
    " · unhealthy boots before this one: " + s.boot.unhealthy_boots + (s.boot.last_failure ? " · last failure: " + s.boot.last_failure : ""));
  if (s.app) $("#appinfo").textContent = "Running: " + (s.app.slot == null ? "the app deployed over USB" : "update slot " + s.app.slot) +
    ", version " + s.app.version + (s.app.build ? " (build " + s.app.build + ")" : "") + (s.app.trial ? ", on trial" : "") +
    (s.app.why ? ". " + s.app.why : "") + ". Update key: " + (s.app.key ? "set" : "not set") + ".";
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

start();
