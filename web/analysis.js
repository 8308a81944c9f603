// sensorbox web UI: the Analysis page. MicroPython WebAssembly, in Web Workers (analysis-worker.js), runs the
// device's own analysis code (sensorbox/shared, the .mpy a board runs; sbworker.py drives it) on stored data:
// features and model over any range with settings changed live, checked against what the device stored; a
// spectrogram, features over time, per-label distributions, confusion matrices, label proposals, a Python cell and
// exports. Loaded before app.js; uses its helpers ($, el, api, axes, ...) once the page runs.
"use strict";

// ---------- where the device is: this origin (the UI's session), or another one (`sensorbox ui URL`) ----------
// `sensorbox ui` serves this page on the host with ?device=URL and the credential in the fragment (#analysis&auth=…):
// the page keeps it for the tab (sessionStorage) and sends it as its own Authorization header (docs/integrations.md "CORS").
window.sbRemote = (() => {
  const q = new URLSearchParams(location.search), url = q.get("device");
  if (!url) return null;
  const m = /[#&]auth=([^&]*)/.exec(location.hash);
  if (m) { sessionStorage.setItem("sb-auth", decodeURIComponent(m[1])); history.replaceState(null, "", location.pathname + location.search + "#analysis"); }
  return { url: url.replace(/\/+$/, ""), auth: () => sessionStorage.getItem("sb-auth"), start: remoteStart };
})();

function remoteStart() {
  document.querySelectorAll("#nav a").forEach((a) => (a.hidden = a.getAttribute("href") !== "#analysis"));
  $("#nav").hidden = false;
  $("#devname").textContent = "sensorbox analysis · " + sbRemote.url;
  const box = $("#anremote");
  if (!sbRemote.auth()) {
    box.hidden = false; box.textContent = "";
    const inp = el("input"); inp.type = "password"; inp.placeholder = "API token (sb_…) or the admin password"; inp.id = "anauth";
    const b = el("button", "Connect");
    b.onclick = () => {
      const v = inp.value.trim();
      sessionStorage.setItem("sb-auth", /^sb_\d+_/.test(v) ? "Bearer " + v : "Basic " + btoa("admin:" + v));
      box.hidden = true; route();
    };
    box.append(el("span", "Credential for " + sbRemote.url + ": "), inp, b);
  }
  location.hash = "#analysis";
  route();
}

// A request to the device's API. Here: app.js's api() (session cookie, CSRF, retries); remotely: fetch with the
// Authorization header, retried on 503 like api().
async function anApi(method, path, body, raw) {
  if (!sbRemote) return api(method, path, body, raw);
  const h = { Authorization: sbRemote.auth() || "" };
  let b = body;
  if (body !== undefined) { b = JSON.stringify(body); h["Content-Type"] = "application/json"; }
  let r;
  for (let i = 0; ; i++) {
    try { r = await fetch(sbRemote.url + path, { method, headers: h, body: b, mode: "cors", credentials: "omit" }); } catch (e) {
      if (i === 4 || method !== "GET") throw new Error("cannot reach " + sbRemote.url + " (is http.cors_origin " + location.origin + "? see sensorbox ui --help)");
      r = { status: 503 };
    }
    if (r.status !== 503 || i === 4) break;
    await new Promise((ok) => setTimeout(ok, 300 + 200 * i));
  }
  if (raw && r.ok) return r;
  const t = await r.text();
  let j = null;
  try { j = t ? JSON.parse(t) : null; } catch (e) { j = null; }
  if (!r.ok) { const e = new Error((j && j.error) || r.status + " " + r.statusText); e.status = r.status; e.field = j && j.field; throw e; }
  return j;
}

// ---------- MicroPython workers ----------
// One worker per core (at most 4) computes features and votes in parallel; the first also smooths and answers the
// page's other questions. The Python cell has a worker of its own. Stop terminates them; new ones start at once.
class Py {
  constructor(onProgress) {
    this.w = new Worker("/static/analysis-worker.js", { type: "module" });
    this.next = 1; this.waiting = new Map(); this.onProgress = onProgress; this.onOut = null; this.onPlot = null; this.onBoot = null;
    this.w.onmessage = (e) => {
      const m = e.data;
      if (m.type === "progress") { if (this.onProgress) this.onProgress(m.n); return; }
      if (m.type === "out") { if (this.onOut) this.onOut(m.text); return; }
      if (m.type === "plot") { if (this.onPlot) this.onPlot(JSON.parse(m.spec)); return; }
      if (m.type === "boot") { if (this.onBoot) this.onBoot(m); return; }
      const p = this.waiting.get(m.id);
      if (!p) return;
      this.waiting.delete(m.id);
      if (m.ok) p.ok(m); else p.fail(new Error(m.error));
    };
    this.w.onerror = (e) => { for (const p of this.waiting.values()) p.fail(new Error(e.message || "worker failed")); this.waiting.clear(); };
  }
  call(cmd, args, files) {
    const id = this.next++, transfer = [];
    return new Promise((ok, fail) => {
      this.waiting.set(id, { ok, fail });
      this.w.postMessage({ id, cmd, args: args || {}, files: files || {} }, transfer);
    });
  }
  async boot() { this.info = (await this.call("boot")).result; return this.info; }
  stop() { this.w.terminate(); for (const p of this.waiting.values()) p.fail(new Error("stopped")); this.waiting.clear(); }
}

const AN = {
  pool: [], ready: null, cell: null, job: 0, again: false, version: "", bootMs: 0, opened: 0, started: false,
  dev: null, data: null, models: {}, cache: new Map(), votes: new Map(), res: null, sel: null, tab: "spec", busy: 0,
  plot: null, featPlot: null, distPlot: null, props: [], evalRes: null, gen: 0,
};
let AN_NF = 0;  // features per window (3 axes), from the worker's Python at start
const poolSize = () => Math.max(1, Math.min(4, navigator.hardwareConcurrency || 2));

function anStatus(text, cls) { const s = $("#anstate"); s.textContent = text; s.className = cls || "s"; }

// Start the first worker (the page is ready to compute when it is), then the others.
function startPool() {
  const t0 = performance.now();
  const first = new Py((n) => onProgress(0, n));
  first.ix = 0;
  $("#anload").hidden = false; $("#anbar").style.width = "5%";
  const stages = { runtime: ["downloading MicroPython WebAssembly", 15], modules: ["downloading the analysis modules", 40], compile: ["compiling WebAssembly", 60] };
  first.onBoot = (m) => {
    const s = stages[m.stage] || [m.stage, 80];
    $("#anmsg").textContent = "Starting: " + s[0] + (m.bytes ? " (" + Math.round(m.bytes / 1024) + " KB)" : "") + "…";
    $("#anbar").style.width = s[1] + "%";
  };
  AN.pool = [first];
  AN.ready = first.boot().then(async (info) => {
    await reloadInto(first);  // after a Stop: the data and models the page holds
    AN.version = info.version; AN.bootMs = performance.now() - t0;
    fillFeatureNames(info.names);
    $("#anbar").style.width = "100%"; $("#anload").hidden = true;
    AN.readyText = (k) => "Ready: " + info.version + " in " + k + " Web Worker" + (k > 1 ? "s" : "") + ", started in " + (AN.bootMs / 1000).toFixed(2) + " s.";
    anStatus(AN.readyText(1), "ok");
    $("#analysis").dataset.ready = "1"; $("#analysis").dataset.readyMs = Math.round(performance.now());
    for (let i = 1; i < poolSize(); i++) {
      const p = new Py((n) => onProgress(i, n));
      p.ix = i;
      p.booted = p.boot().then(() => reloadInto(p)).then(() => { AN.pool.push(p); anStatus(AN.readyText(AN.pool.length), "ok"); });
      p.booted.catch(() => p.stop());
    }
    return first;
  }).catch((e) => {
    $("#anload").hidden = true;
    anStatus("MicroPython did not start: " + e.message, "err");
    throw e;
  });
  return AN.ready;
}
// a new worker gets what the others hold: the loaded data and the models
async function reloadInto(p) {
  if (AN.data) await p.call("load", { rate: AN.data.rate }, { "frames.bin": AN.data.xyz, "times.bin": AN.data.times });
  for (const [slot, m] of Object.entries(AN.models)) if (m.csv) await p.call("model", { slot, meta: m.meta }, { "model.csv": new TextEncoder().encode(m.csv) });
}
// Stop: terminate the workers mid-computation, start new ones with the same data and models
async function stopAll() {
  AN.job++; AN.again = false;
  for (const p of AN.pool) p.stop();
  AN.pool = [];
  progress(null, "stopped; MicroPython restarted");
  setBusy(false);
  try { await startPool(); } catch (e) { /* said by startPool */ }
}

// ---------- progress ----------
const prog = { total: 0, done: [], label: "" };
function onProgress(i, n) { prog.done[i] = (prog.base[i] || 0) + n; showProg(); }
function progress(total, label) {
  prog.total = total || 0; prog.done = []; prog.base = []; prog.label = label || "";
  showProg();
}
function showProg() {
  const d = prog.done.reduce((a, b) => a + (b || 0), 0);
  $("#anprog").style.width = prog.total ? Math.min(100, Math.round(100 * d / prog.total)) + "%" : "0";
  $("#anprogmsg").textContent = prog.label + (prog.total ? " " + d + " / " + prog.total + " windows" : "");
}
function setBusy(on) {
  AN.busy = on;
  $("#anstop").disabled = !on; $("#anrun").disabled = on; $("#anloadbtn").disabled = on;
  showState();
}
// for people and tests: "loading" (data from the device), "analysing", else "idle"
function showState() {
  const a = $("#analysis");
  a.dataset.busy = AN.busy ? "1" : "0";
  a.dataset.state = AN.busy || AN.again ? "analysing" : AN.loading ? "loading" : "idle";
}

// ---------- .npy (the device's export) ----------
function parseNpy(buf) {
  const b = new Uint8Array(buf), dv = new DataView(buf);
  if (b[0] !== 0x93 || String.fromCharCode(...b.subarray(1, 6)) !== "NUMPY") throw new Error("not a .npy answer");
  const hl = b[6] === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true), off = (b[6] === 1 ? 10 : 12) + hl;
  const head = new TextDecoder().decode(b.subarray(b[6] === 1 ? 10 : 12, off));
  const n = Number(/'shape': \((\d+),?\)/.exec(head)[1]);
  const fields = [...head.matchAll(/\('(\w+)', '([<|]\w\d)'\)/g)].map((m) => [m[1], m[2]]);
  const size = { "<i8": 8, "<i2": 2, "<u2": 2, "<i4": 4, "|i1": 1 };
  let row = 0;
  const at = {};
  for (const [name, t] of fields) { at[name] = [row, t]; row += size[t]; }
  const col = (name) => {
    const [o, t] = at[name];
    if (t === "<i8") { const a = new Float64Array(n); for (let i = 0; i < n; i++) a[i] = Number(dv.getBigInt64(off + i * row + o, true)); return a; }
    const a = new Int16Array(n); for (let i = 0; i < n; i++) a[i] = dv.getInt16(off + i * row + o, true); return a;
  };
  return { n, col, has: (name) => name in at };
}

// ---------- the device's settings, models and data ----------
async function deviceInfo() {
  const [c, m] = await Promise.all([anApi("GET", "/api/config"), anApi("GET", "/api/model")]);
  const cf = c.config;
  AN.dev = { window: cf["ml.window"], hop: cf["ml.hop"], smooth: cf["ml.smooth"], threshold: cf["ml.unknown_permille"], rate: cf["accel.rate_hz"] };
  AN.devModel = m;
  for (const id of ["#anmodel", "#anmodelB"]) {
    const s = $(id);
    for (const o of s.options) if (o.value === "previous" || o.value === "staged") o.disabled = !m[o.value];
  }
}
function useDeviceSettings() {
  const d = AN.dev;
  $("#anwin").value = String(d.window); $("#anhop").value = d.hop; $("#ansmooth").value = d.smooth; $("#anthr").value = d.threshold;
}
function settings() {
  const n = (id, lo, hi) => Math.max(lo, Math.min(hi, Math.round(Number($(id).value)) || lo));
  const s = { window: Number($("#anwin").value), hop: n("#anhop", 8, 256), smooth: n("#ansmooth", 1, 16), threshold: n("#anthr", 0, 1000) };
  s.hop = Math.min(s.hop, s.window);
  return s;
}
const sameAsDevice = (s) => AN.dev && s.window === AN.dev.window && s.hop === AN.dev.hop && s.smooth === AN.dev.smooth && s.threshold === AN.dev.threshold;

// A model for slot A or B: the device's active, previous or staged one, or local files the user picked.
async function loadModel(slot) {
  const which = $(slot === "A" ? "#anmodel" : "#anmodelB").value;
  $(slot === "A" ? "#anfileA" : "#anfileB").hidden = which !== "file";
  if (which === "none") { delete AN.models[slot]; return null; }
  let meta, csv;
  if (which === "file") {
    const f = (id) => $(id).files[0];
    const fm = f(slot === "A" ? "#anmetaA" : "#anmetaB"), fc = f(slot === "A" ? "#ancsvA" : "#ancsvB");
    if (!fm || !fc) { delete AN.models[slot]; return null; }
    meta = JSON.parse(await fm.text()); csv = await fc.text();
  } else {
    meta = await anApi("GET", "/api/model/file?which=" + which + "&name=meta.json");
    csv = await (await anApi("GET", "/api/model/file?which=" + which + "&name=model.csv", undefined, true)).text();
  }
  // votes depend only on the model's trees: cached by its CSV's hash (the same model from a file or the device)
  const key = meta.csv_sha256 ? meta.csv_sha256.slice(0, 16) : which + ":" + csv.length + ":" + csv.slice(-64);
  const m = { which, key, meta, csv, classes: meta.classes, names: meta.class_names || null, label: which === "file" ? "file " + (meta.name || key) : which };
  await AN.ready;
  AN.models[slot] = m;  // (a worker still starting gets it from reloadInto)
  for (const p of AN.pool) await p.call("model", { slot, meta }, { "model.csv": new TextEncoder().encode(csv) });
  return m;
}
const modelName = (m, k) => (k < 0 ? "unknown" : m.names && m.names[k] && m.names[k] !== m.classes[k] ? m.names[k] + " (" + m.classes[k] + ")" : m.classes[k]);

function rangeMs() {
  const v = $("#anrange").value, now = Date.now() + (AN.clockOff || 0);
  if (v === "custom") {
    const a = new Date($("#anfrom").value).getTime(), b = new Date($("#anto").value).getTime();
    if (!(a < b)) throw new Error("choose a start before the end");
    if (b - a > 6 * 3600000) throw new Error("at most 6 hours at a time (an hour is ~2.5 MB of samples)");
    return [a, b];
  }
  return [now - Number(v), now];
}
const toLocal = (ms) => { const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000); return d.toISOString().slice(0, 19); };

// Load a range: raw accelerometer rows and stored predictions (from a little earlier: the windows, and the smoothing
// history, of the first ones), the labels.
async function loadRange() {
  const gen = ++AN.gen;
  $("#aninfo").textContent = "loading…"; $("#anerr").textContent = "";
  AN.loading = (AN.loading || 0) + 1; showState();
  try {
    const st = await anApi("GET", "/api/status");
    AN.clockOff = st.time_ms - Date.now();
    await deviceInfo();
    for (const slot of Object.keys(AN.models)) if (AN.models[slot].which !== "file") await loadModel(slot);  // (activated since?)
    const [from, to] = rangeMs();
    $("#anfrom").value = toLocal(from); $("#anto").value = toLocal(to);
    const d = AN.dev, margin = Math.ceil((d.window + d.smooth * d.hop + 64) * 1000 / d.rate);
    const q = "&start=" + Math.floor(from - margin) + "&end=" + Math.ceil(to);
    const acc = parseNpy(await (await anApi("GET", "/api/resources/accel/data?format=npy" + q, undefined, true)).arrayBuffer());
    const pr = parseNpy(await (await anApi("GET", "/api/resources/predictions/data?format=npy" + q, undefined, true)).arrayBuffer());
    const labels = (await anApi("GET", "/api/labels")).labels;
    if (gen !== AN.gen) return;
    const n = acc.n, t = acc.col("t"), x = acc.col("x"), y = acc.col("y"), z = acc.col("z");
    if (!n) { $("#aninfo").textContent = "no accelerometer data stored in this range"; AN.data = null; return; }
    const base = t[0], times = new Int32Array(n), xyz = new Int16Array(3 * n);
    for (let i = 0; i < n; i++) { times[i] = t[i] - base; xyz[3 * i] = x[i]; xyz[3 * i + 1] = y[i]; xyz[3 * i + 2] = z[i]; }
    const pt = pr.n ? pr.col("t") : [], stored = { t: new Int32Array(pr.n), cls: new Int8Array(pr.n), conf: new Uint16Array(pr.n), n: pr.n };
    if (pr.n) { const c = pr.col("class"), k = pr.col("confidence"); for (let i = 0; i < pr.n; i++) { stored.t[i] = pt[i] - base; stored.cls[i] = c[i]; stored.conf[i] = k[i]; } }
    AN.data = { base, times, xyz, n, from, to, rate: d.rate, stored, t, labels: labels.filter((l) => l.end > t[0] && l.start < t[n - 1]) };
    if ([...AN.cache.values()].reduce((k, m) => k + m.size, 0) > 40000) { AN.cache.clear(); AN.votes.clear(); }
    AN.res = null; AN.sel = null;
    await AN.ready;
    const r = await Promise.all(AN.pool.map((p) => p.call("load", { rate: d.rate }, { "frames.bin": xyz, "times.bin": times })));
    $("#aninfo").textContent = n + " samples (" + fmtDur(t[n - 1] - t[0]) + ", " + r[0].result.runs + " gap-free stretch" + (r[0].result.runs > 1 ? "es" : "") +
      "), " + stored.n + " stored predictions, " + AN.data.labels.length + " labels";
    $("#analysis").dataset.loads = (AN.loads = (AN.loads || 0) + 1);
    await analyse();
  } catch (e) {
    if (gen === AN.gen) { $("#aninfo").textContent = ""; $("#anerr").textContent = e.message; }
  } finally {
    AN.loading--; showState();
  }
}

// ---------- the analysis: windows -> features (cached) -> votes per model (cached) -> smoothing and threshold ----------
function chunks(arr, k) {
  const out = [], step = Math.ceil(arr.length / k);
  for (let i = 0; i < arr.length; i += step) out.push([i, arr.subarray(i, Math.min(arr.length, i + step))]);
  return out;
}
async function analyse() {
  if (AN.busy) { AN.again = true; return; }  // once this one is done, with the settings then
  const D = AN.data;
  if (!D) return;
  const job = ++AN.job, gen = AN.gen, s = settings();
  setBusy(true); $("#anerr").textContent = "";
  try {
    const first = await AN.ready;
    if (!AN.models.A) await loadModel("A");
    if ($("#anmodelB").value !== "none" && !AN.models.B) await loadModel("B");
    const pool = AN.pool.slice();
    // windows: the device's own (the stored predictions' times) with its window and hop, else a grid from each stretch
    const device = D.stored.n > 0 && s.window === AN.dev.window && s.hop === AN.dev.hop;
    let ends, idx = null;
    if (device) {
      const r = await first.call("ends", { mode: "device", window: s.window }, { "stored_t.bin": D.stored.t });
      const all = new Int32Array(r.files["ends.bin"].buffer);
      idx = []; for (let i = 0; i < all.length; i++) if (all[i] >= 0) idx.push(i);
      ends = Int32Array.from(idx, (i) => all[i]);
    } else {
      const r = await first.call("ends", { mode: "grid", window: s.window, hop: s.hop });
      ends = new Int32Array(r.files["ends.bin"].buffer);
    }
    const n = ends.length;
    if (!n) { $("#anparity").textContent = "no " + s.window + "-frame window fits in this range"; AN.res = null; drawTimeline(); return; }
    // features of the windows not computed before (for this window size), spread over the workers
    let fc = AN.cache.get(s.window);
    if (!fc) AN.cache.set(s.window, (fc = new Map()));
    // cached by the time of the window's last sample (the same frames in any range loaded): a range loaded again,
    // or another that overlaps it, computes only what is new
    const key = (e) => D.base + D.times[e];
    const missing = Int32Array.from(ends.filter((e) => !fc.has(key(e))));
    if (missing.length) {
      progress(missing.length, "features");
      const parts = chunks(missing, pool.length);
      await Promise.all(parts.map(([o, part], i) => {
        prog.base[i] = 0;
        return pool[i].call("extract", { window: s.window }, { "ends.bin": part }).then((r) => {
          const f = new Int16Array(r.files["feats.bin"].buffer);
          for (let j = 0; j < part.length; j++) fc.set(key(part[j]), f.subarray(j * AN_NF, (j + 1) * AN_NF));
          prog.done[pool[i].ix] = part.length; showProg();
        });
      }));
    }
    if (gen !== AN.gen || job !== AN.job) return;
    const feats = new Int16Array(n * AN_NF);
    for (let i = 0; i < n; i++) feats.set(fc.get(key(ends[i])), i * AN_NF);
    const res = { s, ends, feats, device, idx, n, models: {} };  // all windows, until cut() leaves the range's
    for (const slot of ["A", "B"]) {
      const m = AN.models[slot];
      if (!m) continue;
      const vk = m.key + ":" + s.window;
      let vc = AN.votes.get(vk);
      if (!vc) AN.votes.set(vk, (vc = new Map()));
      const nc = m.classes.length, todo = [];
      for (let i = 0; i < n; i++) if (!vc.has(key(ends[i]))) todo.push(i);
      if (todo.length) {
        progress(0, "model " + m.label + ": votes of " + todo.length + " windows");
        const ti = Int32Array.from(todo), parts = chunks(ti, pool.length);
        await Promise.all(parts.map(([o, part], i) => {
          const fp = new Int16Array(part.length * AN_NF);
          for (let j = 0; j < part.length; j++) fp.set(feats.subarray(part[j] * AN_NF, (part[j] + 1) * AN_NF), j * AN_NF);
          return pool[i].call("votes", { slot }, { "feats.bin": fp }).then((r) => {
            const v = new Uint16Array(r.files["votes-" + slot + ".bin"].buffer);
            for (let j = 0; j < part.length; j++) vc.set(key(ends[part[j]]), v.subarray(j * nc, (j + 1) * nc));
          });
        }));
      }
      if (gen !== AN.gen || job !== AN.job) return;
      const votes = new Uint16Array(n * nc);
      for (let i = 0; i < n; i++) votes.set(vc.get(key(ends[i])), i * nc);
      res.models[slot] = await replayOne(first, m, votes, res);
    }
    if (gen !== AN.gen || job !== AN.job) return;
    AN.res = cut(res);
    progress(0, "");
    showResults();
  } catch (e) {
    if (gen === AN.gen && job === AN.job && e.message !== "stopped") $("#anerr").textContent = e.message;
  } finally {
    if (job === AN.job) {
      setBusy(false);
      if (AN.again) { AN.again = false; analyse(); }
    }
  }
}
// The windows before the range only gave the first ones their history: the page shows the range's from here on
// (``all`` keeps every window for smoothing again).
function cut(res) {
  const D = AN.data;
  let lo = 0;
  while (lo < res.n && D.base + D.times[res.ends[lo]] < D.from) lo++;
  res.all = res.all || { ends: res.ends, idx: res.idx, feats: res.feats, n: res.n };
  res.lo = lo; res.n = res.all.n - lo;
  res.ends = res.all.ends.subarray(lo); res.idx = res.all.idx ? res.all.idx.slice(lo) : null; res.feats = res.all.feats.subarray(lo * AN_NF);
  for (const r of Object.values(res.models)) { r.cls = r.cls.subarray(lo); r.conf = r.conf.subarray(lo); }
  return res;
}
// smoothing and threshold (cheap): also all that runs when only those settings change
async function replayOne(py, m, votes, res) {
  const D = AN.data, s = res.s, withStored = res.device && m.which === "active";
  const files = { "votes.bin": votes, "ends.bin": res.ends };
  let from = 0;
  if (withStored) {
    files["stored_cls.bin"] = Int8Array.from(res.idx, (i) => D.stored.cls[i]);
    files["stored_conf.bin"] = Uint16Array.from(res.idx, (i) => D.stored.conf[i]);
    while (from < res.n && D.times[res.ends[from]] + D.base < D.from) from++;  // the margin before the range: history only
  }
  const r = await py.call("replay", { classes: m.classes.length, trees: m.meta.trees, smooth: s.smooth, threshold: s.threshold,
    hop: s.hop, stored: withStored, from }, files);
  return { m, cls: new Int8Array(r.files["cls.bin"].buffer), conf: new Uint16Array(r.files["conf.bin"].buffer), parity: r.result.parity || null,
    restarts: r.result.restarts, from, stored: withStored ? files : null };
}
async function resmooth() {  // smoothing or threshold changed: the votes are all there
  const old = AN.res;
  if (!old || AN.busy || old.s.window !== settings().window || old.s.hop !== settings().hop) return analyse();
  const res = Object.assign({}, old.all, { s: settings(), device: old.device, models: {} }), first = AN.pool[0];
  for (const slot of Object.keys(old.models)) {
    const m = AN.models[slot], nc = m.classes.length, vc = AN.votes.get(m.key + ":" + res.s.window), D = AN.data;
    const votes = new Uint16Array(res.n * nc);
    for (let i = 0; i < res.n; i++) votes.set(vc.get(D.base + D.times[res.ends[i]]), i * nc);
    res.models[slot] = await replayOne(first, m, votes, res);
  }
  AN.res = cut(res);
  showResults();
}

// ---------- results ----------
function showResults() {
  const res = AN.res, D = AN.data;
  const A = res.models.A, s = res.s;
  const p = $("#anparity"); p.textContent = ""; p.className = "parity";
  const desc = "window " + s.window + ", hop " + s.hop + ", smoothing " + s.smooth + ", unknown below " + s.threshold + " ‰, model " + (A ? A.m.label : "–");
  if (!D.stored.n) p.textContent = "The device stored no predictions in this range. " + desc + ".";
  else if (!A || A.m.which !== "active") p.textContent = "Parity with the device is checked with its active model. " + desc + ".";
  else if (!sameAsDevice(s)) {
    const diff = ["window", "hop", "smooth", "threshold"].filter((k) => s[k] !== AN.dev[k]).map((k) => k + " " + s[k] + " (device " + AN.dev[k] + ")");
    p.textContent = "Not compared with the device: these settings differ from its own (" + diff.join(", ") + "). \u201cDevice's settings\u201d restores them.";
  } else if (A.parity) {
    const [same, total, firstBad] = A.parity;
    const pct = total ? (100 * same / total) : 0;
    p.className = "parity " + (same === total ? "ok" : "err");
    p.textContent = (same === total ? "✓ " : "✗ ") + "Same as the device: " + same + " of " + total + " windows give the stored class and confidence (" +
      (same === total ? "100" : pct.toFixed(1)) + " %), computed here by MicroPython WebAssembly from the raw samples with the device's settings (" + desc + ")." +
      (A.restarts.length ? " The device's analysis restarted " + A.restarts.length + "× (" + A.restarts.map((i) => new Date(D.base + D.times[res.all.ends[i]]).toLocaleTimeString()).join(", ") + "): its smoothing started afresh there, as here." : "") +
      (firstBad >= 0 ? " First difference at " + fmtT(D.base + D.times[res.all.ends[firstBad]]) + " (the model may have changed)." : "");
    p.dataset.same = same; p.dataset.total = total;
  }
  $("#analysis").dataset.runs = (AN.runs = (AN.runs || 0) + 1);
  drawTimeline();
  showTab(AN.tab);
}

// spans of windows -> segments {k, t0, t1} with neighbours of one class merged
function segments(cls, res) {
  const D = AN.data, per = Math.round(1000 / D.rate), out = [];
  for (let i = 0; i < res.n; i++) {
    const e = res.ends[i], prev = i > 0 && res.ends[i - 1] === e - res.s.hop;
    const t0 = D.base + D.times[prev ? e - res.s.hop + 1 : e - res.s.window + 1], t1 = D.base + D.times[e] + per, k = cls[i];
    const last = out[out.length - 1];
    if (last && last.k === k && t0 <= last.t1) last.t1 = t1; else out.push({ k, t0, t1 });
  }
  return out;
}
function bandRows() {
  const res = AN.res, D = AN.data, rows = [];
  if (!res) return rows;
  if (res.device && res.models.A && res.models.A.stored) rows.push({ name: "device", segs: segments(Int8Array.from(res.idx, (i) => D.stored.cls[i]), res), m: res.models.A.m });
  for (const slot of ["A", "B"]) if (res.models[slot]) rows.push({ name: slot === "A" ? "browser" : "compare", segs: segments(res.models[slot].cls, res), m: res.models[slot].m });
  rows.push({ name: "labels", labels: true });
  return rows;
}
const ROWH = 14;
function drawBands() {
  const u = AN.plot, cv = $("#anbands");
  if (!u) return;
  const rows = bandRows(), px = devicePixelRatio || 1, w = u.over.clientWidth, left = u.over.offsetLeft;
  cv.width = (left + w) * px; cv.height = rows.length * (ROWH + 4) * px;
  cv.style.width = left + w + "px"; cv.style.height = rows.length * (ROWH + 4) + "px";
  const ctx = cv.getContext("2d");
  ctx.scale(px, px); ctx.font = "11px system-ui, sans-serif"; ctx.textBaseline = "middle";
  const x = (t) => left + u.valToPos(t / 1000, "x");
  rows.forEach((r, j) => {
    const y = j * (ROWH + 4);
    ctx.fillStyle = "#556"; ctx.textAlign = "right"; ctx.fillText(r.name.length > 14 ? r.name.slice(0, 13) + "…" : r.name, left - 4, y + ROWH / 2);
    ctx.fillStyle = "#eef0f4"; ctx.fillRect(left, y, w, ROWH);
    if (r.labels) {
      for (const l of AN.data.labels) {
        const a = Math.max(left, x(l.start)), b = Math.min(left + w, x(l.end));
        if (b <= a) continue;
        ctx.fillStyle = labelColor(l.label); ctx.fillRect(a, y, b - a, ROWH);
        ctx.fillStyle = "#fff"; ctx.textAlign = "left";
        if (ctx.measureText(l.label).width + 6 < b - a) ctx.fillText(l.label, a + 3, y + ROWH / 2);
      }
      return;
    }
    for (const sg of r.segs) {
      const a = Math.max(left, x(sg.t0)), b = Math.min(left + w, x(sg.t1));
      if (b > a) { ctx.fillStyle = classColor(sg.k); ctx.fillRect(a, y, Math.max(1, b - a), ROWH); }
    }
  });
  $("#antimeline").dataset.bands = rows.length;
}
function drawLegendAn() {
  const box = $("#anlegend"); box.textContent = "";
  const res = AN.res;
  if (!res || !res.models.A) return;
  const m = res.models.A.m, seen = new Map();
  for (const row of bandRows()) if (row.segs) for (const s of row.segs) seen.set(s.k, true);
  for (const k of [...seen.keys()].sort((a, b) => a - b)) {
    const it = el("span", modelName(m, k), "lg"); const sw = el("i"); sw.style.background = classColor(k); it.prepend(sw); box.append(it);
  }
}
function drawTimeline() {
  const D = AN.data, node = $("#antimeline");
  if (!D) return;
  const step = Math.max(1, Math.floor(D.n / 3000)), xs = [], a = [[], [], []];
  for (let i = 0; i < D.n; i += step) {
    if (i && D.times[i] - D.times[i - step] > 2 * step * 1000 / D.rate) { xs.push((D.base + D.times[i - 1]) / 1000 + 0.001); a.forEach((c) => c.push(null)); }
    xs.push((D.base + D.times[i]) / 1000); for (let c = 0; c < 3; c++) a[c].push(D.xyz[3 * i + c] / G);
  }
  const data = [xs, a[0], a[1], a[2]];
  if (AN.plot && AN.plotData === D) { AN.plot.setData(data); drawBands(); drawLegendAn(); return; }
  if (AN.plot) AN.plot.destroy();
  node.textContent = "";
  AN.plotData = D;
  AN.plot = new uPlot({ width: chartWidth(node), height: 220, scales: { x: { time: true, range: () => [D.from / 1000, D.to / 1000] } }, axes: axes("acceleration (g)"),
    cursor: { drag: { x: true, y: false, setScale: false } },
    hooks: { setSelect: [(u) => anSelected(u)], setSize: [() => drawBands()] },
    series: [timeSeries, { label: "x (g)", stroke: "#d1495b" }, { label: "y (g)", stroke: "#00798c" }, { label: "z (g)", stroke: "#edae49" }] }, data, node);
  const cv = el("canvas"); cv.id = "anbands"; node.append(cv);
  drawBands(); drawLegendAn();
}
function anSelected(u) {
  if (u.select.width < 2) return;
  AN.sel = [u.posToVal(u.select.left, "x") * 1000, u.posToVal(u.select.left + u.select.width, "x") * 1000];
  showSel();
}
function showSel() {
  const r = AN.sel;
  $("#ansel").textContent = r ? fmtT(r[0]) + " – " + new Date(r[1]).toLocaleTimeString() + " (" + fmtDur(r[1] - r[0]) + ")" : "the whole range";
}
function selWindows() {  // indices of the result's windows inside the selection (all without one)
  const res = AN.res, D = AN.data, out = [];
  for (let i = 0; i < res.n; i++) {
    const t = D.base + D.times[res.ends[i]];
    if (!AN.sel || (t >= AN.sel[0] && t <= AN.sel[1])) out.push(i);
  }
  return out;
}

// ---------- tabs ----------
function showTab(name) {
  AN.tab = name;
  document.querySelectorAll("#antabs button").forEach((b) => b.classList.toggle("on", b.dataset.tab === name));
  document.querySelectorAll(".antab").forEach((d) => (d.hidden = d.id !== "tab-" + name));
  if (!AN.res) return;
  const f = { spec: drawSpectrogram, feat: drawFeatures, dist: drawDistributions, eval: drawEvaluation, assist: () => {}, py: () => {}, export: () => {} }[name];
  Promise.resolve(f()).catch((e) => { $("#anerr").textContent = e.message; });
}

// spectrogram: the shared fixed-point FFT of up to one column per pixel pair
const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
function colormap(v) {
  const x = Math.max(0, Math.min(0.9999, v)) * (VIRIDIS.length - 1), i = Math.floor(x), f = x - i, a = VIRIDIS[i], b = VIRIDIS[i + 1];
  return [0, 1, 2].map((c) => Math.round(a[c] + (b[c] - a[c]) * f));
}
async function drawSpectrogram() {
  const res = AN.res, sig = Number($("#anspecsig").value), cv = $("#anspec");
  const width = Math.max(240, $("#tab-spec").clientWidth - 70), cols = Math.min(res.n, Math.floor(width / 2));
  // the same windows and signal (other smoothing, another model): the spectrogram is the same
  const D = AN.data, key = [D.base + D.times[res.ends[0]], D.base + D.times[res.ends[res.n - 1]], res.n, res.s.window, sig, cols].join();
  if (!AN.spec || AN.spec.key !== key) {
    const q = await AN.pool[0].call("spectrogram", { window: res.s.window, signal: sig, columns: cols }, { "ends.bin": res.ends });
    AN.spec = { key, r: q };
  }
  const r = AN.spec.r, spec = new Float32Array(r.files["spec.bin"].buffer), half = res.s.window / 2, nc = r.result.picked.length;
  let lo = Infinity, hi = -Infinity;
  for (const v of spec) { if (v < lo) lo = v; if (v > hi) hi = v; }
  lo = Math.max(lo, hi - 60);
  const px = 2, h = half * 3, left = 50, bottom = 22;
  cv.width = left + nc * px + 10; cv.height = h + bottom + 6;
  const ctx = cv.getContext("2d"), img = ctx.createImageData(nc * px, h);
  for (let j = 0; j < nc; j++) for (let k = 0; k < half; k++) {
    const [R, Gc, B] = colormap((spec[j * half + k] - lo) / (hi - lo || 1));
    for (let dy = 0; dy < 3; dy++) for (let dx = 0; dx < px; dx++) {
      const o = (((half - 1 - k) * 3 + dy) * nc * px + j * px + dx) * 4;
      img.data[o] = R; img.data[o + 1] = Gc; img.data[o + 2] = B; img.data[o + 3] = 255;
    }
  }
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, cv.width, cv.height);
  ctx.putImageData(img, left, 6);
  ctx.fillStyle = "#1d2330"; ctx.font = "11px system-ui, sans-serif"; ctx.textAlign = "right"; ctx.textBaseline = "middle";
  const rate = AN.data.rate, fstep = rate / 2 > 20 ? 10 : rate / 2 > 8 ? 5 : 1;
  for (let f = 0; f <= rate / 2; f += fstep) ctx.fillText(f + " Hz", left - 4, 6 + h - (f / (rate / 2)) * (h - 1));
  ctx.textBaseline = "top";
  const tAt = (j) => D.base + D.times[res.ends[r.result.picked[j]]];
  ctx.textAlign = "left"; ctx.fillText(new Date(tAt(0)).toLocaleTimeString(), left, h + 10);
  if (nc > 60) { ctx.textAlign = "right"; ctx.fillText(new Date(tAt(nc - 1)).toLocaleTimeString(), left + nc * px, h + 10); }
  $("#anspecinfo").textContent = SIGNAL_NAMES[sig] + ": " + nc + " windows of " + res.s.window + " samples, 0–" + rate / 2 + " Hz, " + (hi - lo).toFixed(0) + " dB from dark to bright (peak " + hi.toFixed(0) + " dB re 1 count²)";
  cv.dataset.columns = nc;
}
const SIGNAL_NAMES = ["x", "y", "z", "magnitude"];

// features over time: the chosen columns of the feature matrix (int16, scales in shared/features.py)
function drawFeatures() {
  const res = AN.res, D = AN.data, chosen = [...$("#anfeats").selectedOptions].map((o) => Number(o.value));
  const node = $("#anfeatchart");
  if (AN.featPlot) AN.featPlot.destroy();
  node.textContent = "";
  const xs = Array.from(res.ends, (e) => (D.base + D.times[e]) / 1000);
  const series = [timeSeries], data = [xs];
  chosen.forEach((j, c) => { series.push({ label: FEATURE_NAMES[j], stroke: PALETTE[c % PALETTE.length] }); data.push(Array.from({ length: res.n }, (_, i) => res.feats[i * AN_NF + j])); });
  AN.featPlot = new uPlot({ width: chartWidth(node), height: 220, scales: { x: { time: true } }, axes: axes("feature value (int16)"), series }, data, node);
  node.dataset.series = chosen.length;
}
let FEATURE_NAMES = [];  // sensorbox.shared.features.names(3), from the worker's Python
function fillFeatureNames(names) {
  if (FEATURE_NAMES.length) return;
  FEATURE_NAMES = names; AN_NF = names.length;
  for (const sel of ["#anfeats", "#andistfeat"]) {
    const s = $(sel);
    names.forEach((n, j) => { const o = el("option", n); o.value = j; s.append(o); });
  }
  for (const n of ["am_std", "am_domf"]) $("#anfeats").options[names.indexOf(n)].selected = true;
  $("#andistfeat").value = String(names.indexOf("am_std"));
}

// labels over the result's windows (evaluate answers the truth per window too)
async function evaluate() {
  const res = AN.res, D = AN.data;
  const labels = D.labels.map((l) => [l.start - D.base, l.end - D.base, l.label]);
  const models = {}, files = { "ends.bin": res.ends };
  for (const [slot, r] of Object.entries(res.models)) { models[slot] = { classes: r.m.classes, names: r.m.names }; files["cls-" + slot + ".bin"] = r.cls; }
  const r = await AN.pool[0].call("evaluate", { window: res.s.window, labels, models }, files);
  AN.evalRes = Object.assign(r.result, { truth: new Int8Array(r.files["truth.bin"].buffer), res });
  return AN.evalRes;
}
async function drawDistributions() {
  const res = AN.res, j = Number($("#andistfeat").value), node = $("#andistchart");
  const ev = AN.evalRes && AN.evalRes.res === res ? AN.evalRes : await evaluate();
  if (AN.distPlot) { AN.distPlot.destroy(); AN.distPlot = null; }
  node.textContent = "";
  if (!ev.labelled) { node.append(el("p", "No window of this range lies inside a label: label ranges on the History page (or accept proposals under Label assist).", "s")); return; }
  const bins = 24, r = await AN.pool[0].call("histogram", { column: j, groups: ev.names.length, bins }, { "feats.bin": res.feats, "groups.bin": ev.truth });
  const { lo, hi, counts } = r.result, w = (hi - lo + 1) / bins, xs = Array.from({ length: bins + 1 }, (_, b) => lo + b * w);
  const series = [{ label: FEATURE_NAMES[j] }], data = [xs];
  ev.names.forEach((name, g) => {
    const tot = counts[g].reduce((a, b) => a + b, 0);
    if (!tot) return;
    series.push({ label: name + " (" + tot + ")", stroke: labelColor(name), fill: labelColor(name) + "30", paths: uPlot.paths.stepped({ align: 1 }) });
    data.push(counts[g].map((c) => c / tot).concat([null]));
  });
  AN.distPlot = new uPlot({ width: chartWidth(node), height: 220, scales: { x: { time: false } },
    axes: [{ label: FEATURE_NAMES[j] + " (int16)" }, { label: "share of windows", size: 54 }], series }, data, node);
  node.dataset.groups = series.length - 1;
}
async function drawEvaluation() {
  const ev = AN.evalRes && AN.evalRes.res === AN.res ? AN.evalRes : await evaluate();
  const box = $("#anevalbox"); box.textContent = "";
  if (!ev.labelled) { box.append(el("p", "No window of this range lies inside a label: nothing to compare with.", "s")); return; }
  box.append(el("p", ev.labelled + " windows lie inside " + ev.names.length + " label name" + (ev.names.length > 1 ? "s" : "") + ". A label counts for a class when it is the class's code or name.", "s"));
  const res = AN.res, wrap = el("div", undefined, "evalgrid");
  for (const [slot, r] of Object.entries(ev.models)) {
    const m = res.models[slot].m, col = el("div", undefined, "evalcol");
    col.append(el("h3", (slot === "A" ? "Model " : "Compare: ") + m.label));
    const t = el("table", undefined, "confusion"), hr = el("tr");
    hr.append(el("th", "label \\ predicted"));
    m.classes.forEach((c) => hr.append(el("th", c))); hr.append(el("th", "unknown"));
    t.append(hr);
    r.matrix.forEach((row, i) => {
      const tr = el("tr"); tr.append(el("th", ev.names[i]));
      const max = Math.max(1, ...row);
      // green: the label's own class, red: another; grey: a label that names no class of the model
      const hue = (k) => (r.label_class[i] < 0 ? "#8a8f99" : r.label_class[i] === k ? "#3bb273" : "#e15554");
      row.forEach((v, k) => { const td = el("td", String(v), "num"); if (v) td.style.background = hue(k) + Math.round(40 + 150 * v / max).toString(16).padStart(2, "0"); tr.append(td); });
      t.append(tr);
    });
    col.append(t);
    const st = el("table", undefined, "scores"), h2 = el("tr");
    ["class", "precision", "recall", "windows"].forEach((x) => h2.append(el("th", x))); st.append(h2);
    const pct = (v) => (v === null ? "–" : Math.round(v * 100) + " %");
    r.scores.forEach(([p, rc, n], k) => { if (n || p !== null) { const tr = el("tr"); tr.append(el("td", modelName(m, k)), el("td", pct(p), "num"), el("td", pct(rc), "num"), el("td", String(n), "num")); st.append(tr); } });
    col.append(st); wrap.append(col);
  }
  box.append(wrap);
  if (res.models.B) {
    const a = res.models.A, b = res.models.B, name = (m, k) => (k < 0 ? "unknown" : m.classes[k]);
    let same = 0; for (let i = 0; i < res.n; i++) if (name(a.m, a.cls[i]) === name(b.m, b.cls[i])) same++;
    box.append(el("p", "The two models agree on " + same + " of " + res.n + " windows (" + (100 * same / res.n).toFixed(1) + " %), labelled or not.", "s agree"));
  }
  box.dataset.models = Object.keys(ev.models).length;
}

// label assist: runs of one predicted class (model A), at least the minimum length, proposed as labels
async function propose() {
  const res = AN.res, D = AN.data, A = res.models.A;
  const min = Math.max(1, Number($("#anmin").value) || 10) * 1000;
  const r = await AN.pool[0].call("proposals", { window: res.s.window, hop: res.s.hop, min_ms: min }, { "ends.bin": res.ends, "cls.bin": A.cls });
  const tb = $("#anprops tbody"); tb.textContent = "";
  AN.props = [];
  for (const [s, e, k] of r.result.runs) {
    const start = D.base + s, end = D.base + e;
    if (AN.sel && (end <= AN.sel[0] || start >= AN.sel[1])) continue;
    const over = D.labels.find((l) => l.start < end && l.end > start);
    const p = { start, end, k, over, state: over ? "overlaps" : "proposed" };
    AN.props.push(p);
    const tr = el("tr"); p.tr = tr;
    const name = el("input"); name.value = A.m.classes[k]; name.maxLength = 40; name.title = modelName(A.m, k); p.name = name;
    const acc = el("button", "Accept"), rej = el("button", "Reject", "plain"), st = el("span", over ? "overlaps \u201c" + over.label + "\u201d" : "", "s");
    acc.onclick = () => acceptProp(p); rej.onclick = () => { p.state = "rejected"; tr.classList.add("rejected"); st.textContent = "rejected"; acc.disabled = rej.disabled = name.disabled = true; };
    p.st = st; p.acc = acc; p.rej = rej;
    const td = el("td"); td.append(acc, rej, st);
    tr.append(el("td", fmtT(start)), el("td", fmtDur(end - start), "num"), el("td", modelName(A.m, k)));
    const tn = el("td"); tn.append(name); tr.append(tn, td);
    tb.append(tr);
  }
  $("#anpropinfo").textContent = AN.props.length ? AN.props.length + " proposals from " + A.m.label + " (runs of one class of at least " + min / 1000 + " s" + (AN.sel ? ", in the selection" : "") + "); edit a name, then accept or reject" : "no run of one class lasts " + min / 1000 + " s here";
  $("#anacceptall").disabled = !AN.props.some((p) => p.state === "proposed");
}
async function acceptProp(p) {
  const label = p.name.value.trim();
  if (!label || [...label].length > 40) { p.st.textContent = "a label has 1 to 40 characters"; return; }
  p.acc.disabled = true;
  try {
    const r = await anApi("POST", "/api/labels", { start: Math.floor(p.start), end: Math.ceil(p.end), label, overlap: p.state === "overlaps" });
    p.state = "accepted"; p.tr.classList.add("accepted"); p.st.textContent = "stored as label #" + r.id; p.rej.disabled = p.name.disabled = true;
    AN.data.labels.push({ id: r.id, start: Math.floor(p.start), end: Math.ceil(p.end), label });
    AN.evalRes = null; drawBands();
  } catch (e) { p.st.textContent = e.message; p.acc.disabled = false; }
  $("#anacceptall").disabled = !AN.props.some((x) => x.state === "proposed");
}
async function acceptAll() { for (const p of AN.props) if (p.state === "proposed") await acceptProp(p); }

// the Python cell: the selection bound to names, in a worker of its own (Stop terminates it)
async function runCell() {
  const res = AN.res, D = AN.data, out = $("#anpyout"), plots = $("#anpyplots");
  out.textContent = ""; out.className = ""; plots.textContent = "";
  $("#anpyrun").disabled = true; $("#anpystop").disabled = false; $("#anpystate").textContent = "running…";
  const gen = (AN.cellGen = (AN.cellGen || 0) + 1);
  try {
    if (!AN.cell) { AN.cell = new Py(); AN.cellReady = AN.cell.boot(); }
    await AN.cellReady;
    const cell = AN.cell;
    cell.onOut = (t) => { if (gen === AN.cellGen) out.textContent += t + "\n"; };
    cell.onPlot = (spec) => { if (gen === AN.cellGen) cellPlot(spec); };
    let a = 0, b = D.n;
    if (AN.sel) { while (a < D.n && D.base + D.times[a] < AN.sel[0]) a++; b = a; while (b < D.n && D.base + D.times[b] <= AN.sel[1]) b++; }
    const wi = res ? selWindows() : [];
    const feats = new Int16Array(wi.length * AN_NF), ft = new Int32Array(wi.length), pred = new Int8Array(wi.length);
    wi.forEach((i, j) => { feats.set(res.feats.subarray(i * AN_NF, (i + 1) * AN_NF), j * AN_NF); ft[j] = D.times[res.ends[i]]; pred[j] = res.models.A ? res.models.A.cls[i] : -1; });
    await cell.call("bind", { base: D.base, classes: res && res.models.A ? res.models.A.m.classes : [], labels: D.labels.map((l) => [l.start - D.base, l.end - D.base, l.label]) },
      { "times.bin": D.times.slice(a, b), "xyz.bin": D.xyz.slice(3 * a, 3 * b), "feats.bin": feats, "ft.bin": ft, "pred.bin": pred });
    const r = await cell.call("run", { code: $("#ancode").value });
    if (gen !== AN.cellGen) return;
    if (!r.result.ok) { out.textContent += r.result.traceback; out.className = "err"; }
    $("#anpystate").textContent = r.result.ok ? "done" : "error";
  } catch (e) {
    if (gen === AN.cellGen) { $("#anpystate").textContent = e.message === "stopped" ? "stopped" : e.message; }
  } finally {
    if (gen === AN.cellGen) { $("#anpyrun").disabled = false; $("#anpystop").disabled = true; }
  }
}
function stopCell() {
  if (AN.cell) AN.cell.stop();
  AN.cell = null; AN.cellGen++;
  $("#anpystate").textContent = "stopped (the cell's MicroPython was terminated; the next run starts a new one)";
  $("#anpyrun").disabled = false; $("#anpystop").disabled = true;
}
function cellPlot(spec) {
  const node = el("div", undefined, "chart"); $("#anpyplots").append(node);
  if (spec.title) node.append(el("div", spec.title, "k"));
  // x in epoch ms (t, ft): a time axis
  const n = spec.series.length, time = spec.series[0].length > 0 && spec.series[0][0] > 1e11;
  const series = [time ? timeSeries : { label: "x" }], data = spec.series.slice();
  if (time) data[0] = data[0].map((v) => v / 1000);
  for (let i = 1; i < n; i++) series.push({ label: (spec.labels && spec.labels[i - 1]) || "y" + i, stroke: PALETTE[(i - 1) % PALETTE.length],
    points: { show: spec.kind === "points" }, width: spec.kind === "points" ? 0 : 1 });
  new uPlot({ width: chartWidth($("#anpyplots")), height: 200, scales: { x: { time } }, series,
    axes: time ? axes(spec.title || "") : undefined }, data, node);
}

// export: the selection's windows (time, label, device, models, features) as .npy or CSV
async function exportTable(fmt) {
  const res = AN.res, D = AN.data, wi = selWindows();
  const ev = AN.evalRes && AN.evalRes.res === res ? AN.evalRes : await evaluate();
  const slots = Object.keys(res.models), dev = res.device && !!res.models.A && !!res.models.A.stored;
  const k = 1 + (dev ? 2 : 0) + 2 * slots.length + AN_NF, t = new Int32Array(wi.length), ints = new Int16Array(wi.length * k);
  wi.forEach((i, j) => {
    let o = j * k;
    t[j] = D.times[res.ends[i]];
    ints[o++] = ev.truth[i];
    if (dev) { ints[o++] = D.stored.cls[res.idx[i]]; ints[o++] = D.stored.conf[res.idx[i]]; }
    for (const s of slots) { ints[o++] = res.models[s].cls[i]; ints[o++] = res.models[s].conf[i]; }
    ints.set(res.feats.subarray(i * AN_NF, (i + 1) * AN_NF), o);
  });
  const names = { label: [ev.names, ""] };
  for (const s of slots) names[s.toLowerCase() + "_class"] = [res.models[s].m.classes, "unknown"];
  if (dev) names.device_class = [res.models.A.m.classes, "unknown"];
  const r = await AN.pool[0].call("table", { format: fmt, base: D.base, device: dev, models: slots.map((s) => s.toLowerCase()), names }, { "t.bin": t, "ints.bin": ints });
  const name = "sensorbox-windows-" + new Date(D.base + t[0]).toISOString().slice(0, 19).replace(/[:T]/g, "") + "." + fmt;
  const a = el("a"); a.href = URL.createObjectURL(new Blob([r.files.table], { type: fmt === "npy" ? "application/octet-stream" : "text/csv" }));
  a.download = name; document.body.append(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  $("#anexpinfo").textContent = r.result.rows + " windows × " + r.result.columns.length + " columns → " + name;
  $("#ansnippet").textContent = "import numpy as np, pandas as pd\n" +
    (fmt === "npy" ? "w = pd.DataFrame(np.load(\"" + name + "\"))\n" : "w = pd.read_csv(\"" + name + "\")\n") +
    "w[\"t\"] = pd.to_datetime(w[\"t\"], unit=\"ms\")   # the window's last sample (UTC)\n" +
    (fmt === "npy" ? "# classes are indices: " + (slots.length ? JSON.stringify(res.models[slots[0]].m.classes) : "[]") + ", -1 = unknown; label: index into " + JSON.stringify(ev.names) + ", -1 = none\n" : "") +
    "w.groupby(\"" + (slots.length ? slots[0].toLowerCase() + "_class" : "label") + "\")[[\"am_std\", \"am_domf\"]].describe()";
}
async function exportRaw() {  // the selection's raw samples: the device's own export
  const D = AN.data, r = AN.sel || [D.from, D.to];
  const path = "/api/resources/accel/data?format=npy&start=" + Math.floor(r[0]) + "&end=" + Math.ceil(r[1]);
  const b = await (await anApi("GET", path, undefined, true)).blob();
  const a = el("a"); a.href = URL.createObjectURL(b); a.download = "sensorbox-accel.npy"; document.body.append(a); a.click(); a.remove();
  $("#anexpinfo").textContent = "raw samples of the " + (AN.sel ? "selection" : "range") + " (t, x, y, z) → sensorbox-accel.npy";
}

// ---------- the page ----------
function wireAnalysis() {
  if (AN.wired) return;
  AN.wired = true;
  const on = (id, ev, fn) => $(id).addEventListener(ev, () => { Promise.resolve(fn()).catch((e) => { $("#anerr").textContent = e.message; }); });
  on("#anloadbtn", "click", loadRange);
  on("#anrange", "change", () => { $("#ancustom").hidden = $("#anrange").value !== "custom"; if ($("#anrange").value !== "custom") return loadRange(); });
  on("#anrun", "click", analyse);
  on("#anstop", "click", stopAll);
  on("#andevice", "click", () => { useDeviceSettings(); return analyse(); });
  for (const id of ["#anwin", "#anhop"]) on(id, "change", analyse);
  for (const id of ["#ansmooth", "#anthr"]) on(id, "change", resmooth);
  for (const [slot, sel, files] of [["A", "#anmodel", ["#anmetaA", "#ancsvA"]], ["B", "#anmodelB", ["#anmetaB", "#ancsvB"]]]) {
    const change = async () => {
      const file = $(sel).value === "file";
      $(slot === "A" ? "#anfileA" : "#anfileB").hidden = !file;
      if (file && !files.every((f) => $(f).files.length)) return;  // a local model: once both files are chosen
      await loadModel(slot); AN.evalRes = null;
      return AN.data ? analyse() : null;
    };
    on(sel, "change", change);
    for (const f of files) on(f, "change", change);
  }
  document.querySelectorAll("#antabs button").forEach((b) => b.addEventListener("click", () => showTab(b.dataset.tab)));
  on("#anspecsig", "change", drawSpectrogram);
  on("#anfeats", "change", drawFeatures);
  on("#andistfeat", "change", drawDistributions);
  on("#anpropose", "click", propose);
  on("#anacceptall", "click", acceptAll);
  on("#anpyrun", "click", runCell);
  on("#anpystop", "click", stopCell);
  on("#anexpnpy", "click", () => exportTable("npy"));
  on("#anexpcsv", "click", () => exportTable("csv"));
  on("#anexpraw", "click", exportRaw);
  on("#anselclear", "click", () => { AN.sel = null; if (AN.plot) AN.plot.setSelect({ left: 0, width: 0, top: 0, height: 0 }, false); showSel(); });
  const code = $("#ancode");
  code.addEventListener("keydown", (e) => {
    if (e.key === "Tab") { e.preventDefault(); const p = code.selectionStart; code.setRangeText("    ", p, code.selectionEnd, "end"); }
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); if (!$("#anpyrun").disabled) runCell(); }
  });
  window.addEventListener("resize", () => { for (const u of [AN.plot, AN.featPlot, AN.distPlot]) if (u && u.root.isConnected) u.setSize({ width: chartWidth(u.root.parentNode), height: u.height }); drawBands(); });
}
async function showAnalysis() {
  wireAnalysis();
  if (!AN.started) { AN.started = true; startPool().catch(() => {}); }
  if (AN.data || AN.loading || (sbRemote && !sbRemote.auth())) return;  // (remotely: the credential first)
  try {
    await deviceInfo();
    if (!AN.settingsShown) { useDeviceSettings(); AN.settingsShown = true; }
  } catch (e) { $("#anerr").textContent = e.message; return; }
  await loadRange();
}
