// The Analysis page's Web Worker: MicroPython WebAssembly (npm @micropython/micropython-webassembly-pyscript, served
// from the device or by `sensorbox ui`, never a CDN) running sensorbox's shared analysis code, so the page stays
// responsive while it computes and a runaway computation or Python cell is stopped by terminating the worker.
//
// Messages in: {id, cmd: "boot"} then {id, cmd, args, files: {name: typed array}}: the files are written to /in,
// sbworker.call(cmd, args) runs (web/sbworker.py), and the answer {id, ok, result, files: {name: Uint8Array}}
// carries what it wrote to /out. Also sent: {type: "progress", n}, {type: "out", text} (print), {type: "plot"}.
const post = (m, transfer) => postMessage(m, transfer || []);
let mp = null, sb = null;

// analysis-py.bin: the Python modules, "SBPY" then per file: u16 name length, name, u32 size, bytes
function unpack(buf) {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength), dec = new TextDecoder();
  if (dec.decode(buf.subarray(0, 4)) !== "SBPY") throw new Error("analysis-py.bin is not a module pack");
  const files = [];
  for (let o = 4; o < buf.length;) {
    const nl = dv.getUint16(o, true), name = dec.decode(buf.subarray(o + 2, o + 2 + nl)), size = dv.getUint32(o + 2 + nl, true);
    files.push([name, buf.subarray(o + 6 + nl, o + 6 + nl + size)]);
    o += 6 + nl + size;
  }
  return files;
}

async function fetchBytes(url, stage) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(r.status === 404 ? "missing: " + url : url + ": " + r.status);
  if (!r.body || !r.body.getReader) return new Uint8Array(await r.arrayBuffer());
  const reader = r.body.getReader(), parts = [];
  let got = 0, last = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value); got += value.length;
    if (got - last > 65536) { last = got; post({ type: "boot", stage, bytes: got }); }
  }
  const out = new Uint8Array(got);
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

async function boot() {
  const t0 = performance.now();
  post({ type: "boot", stage: "runtime", bytes: 0 });
  const packed = fetchBytes("analysis-py.bin", "modules");
  packed.catch(() => {});
  const wasm = await fetchBytes("micropython.wasm", "runtime");  // first: its absence means no runtime here
  const [{ loadMicroPython }, pack] = await Promise.all([import("./mpy-runtime.js"), packed]);
  post({ type: "boot", stage: "compile" });
  // given as a blob of the right type, so streaming compilation works whatever type the server sends
  const url = URL.createObjectURL(new Blob([wasm], { type: "application/wasm" }));
  mp = await loadMicroPython({ url, heapsize: 48 * 1024 * 1024, stdout: (s) => post({ type: "out", text: s }),
    stderr: (s) => post({ type: "out", text: s }) });
  URL.revokeObjectURL(url);
  post({ type: "boot", stage: "modules" });
  for (const d of ["/lib", "/in", "/out"]) mp.FS.mkdir(d);
  for (const [name, data] of unpack(pack)) {
    let dir = "/lib";
    for (const part of name.split("/").slice(0, -1)) {
      dir += "/" + part;
      try { mp.FS.mkdir(dir); } catch (e) { /* exists */ }
    }
    mp.FS.writeFile("/lib/" + name, data);
  }
  mp.registerJsModule("sbjs", { progress: (n) => post({ type: "progress", n }), plot: (spec) => post({ type: "plot", spec }) });
  mp.runPython("import sys\nsys.path.insert(0, '/lib')\nimport sbworker");
  sb = mp.pyimport("sbworker");
  return { version: sb.version(), names: JSON.parse(sb.names()), ms: performance.now() - t0, heap: sb.heap().bytes };
}

onmessage = async (e) => {
  const { id, cmd } = e.data;
  try {
    if (cmd === "boot") { post({ id, ok: true, result: await boot() }); return; }
    for (const [name, a] of Object.entries(e.data.files || {})) {
      mp.FS.writeFile("/in/" + name, new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
    }
    let r = JSON.parse(sb.call(cmd, JSON.stringify(e.data.args || {})));
    while (r.more) r = JSON.parse(sb.call("more", "{}"));  // a long job, step by step (sbworker.call)
    const files = {}, transfer = [];
    for (const name of r.files) {
      const b = mp.FS.readFile("/out/" + name);
      mp.FS.unlink("/out/" + name);
      files[name] = b; transfer.push(b.buffer);
    }
    post({ id, ok: true, result: r.result, files }, transfer);
  } catch (err) {
    post({ id, ok: false, error: String((err && err.message) || err) });
  }
};
