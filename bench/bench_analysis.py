"""The Analysis page's budgets (issue 15): MicroPython WebAssembly ready to compute after the page opens (budget
1.5 s), and re-analysing one hour of 50 Hz 3-axis data, features + model + smoothing (budget 10 s), in headless
Chromium (the page's own code: its worker pool and ``analyse()``). Baselines measured in the same run: the same
page computing a window at a time (``analysis.BATCH = LANES = 1``, what it did before the plain kernels batched
windows), and the same code on the MicroPython unix port: the very .mpy files the page imports (plain kernels,
``webassets.py_pack``), and for reference the device's bundle (viper kernels).

The page is served as ``sensorbox ui`` serves it; no device is needed (the hour is the recording, looped).
Wall times on a shared machine vary with its load; the CPU time spent (Chromium's processes, the unix port's) is
what compares the runs: on an idle machine with two cores the page needs about half its CPU time.
``run()`` returns rows (name, value, baseline, ratio, unit); ratio = value / baseline.
"""

import base64
import json
import os
import resource
import struct
import subprocess
import tempfile
import threading

from sensorbox.host import bundle, ui, webassets

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SECONDS = 3600
MODEL = os.path.join(REPO, "models", "default")
REC = os.path.join(REPO, "data", "watch_excerpt.npy")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]


def _unpack(pack, root):
    """The page's module pack as files under ``root`` (what the browser's MicroPython imports)."""
    o = 4
    while o < len(pack):
        nl = struct.unpack_from("<H", pack, o)[0]
        name = pack[o + 2:o + 2 + nl].decode()
        size = struct.unpack_from("<I", pack, o + 2 + nl)[0]
        p = os.path.join(root, name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(pack[o + 6 + nl:o + 6 + nl + size])
        o += 6 + nl + size


def _cpu_of_children(names, thread=None):
    """CPU seconds (user + system) of this process's descendants whose name contains one of ``names``; with
    ``thread``, only of their threads whose name starts with it."""
    ticks = os.sysconf("SC_CLK_TCK")
    parent, cpu = {}, {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/{}/stat".format(d)) as f:
                st = f.read()
        except OSError:
            continue
        name = st[st.index("(") + 1:st.rindex(")")]
        rest = st[st.rindex(")") + 2:].split()
        parent[int(d)] = int(rest[1])
        if any(n in name for n in names):
            cpu[int(d)] = (int(rest[11]) + int(rest[12])) / ticks if thread is None else _threads_cpu(d, thread)
    me = os.getpid()
    total = 0.0
    for pid, c in cpu.items():
        p = pid
        while p in parent and p != me and p > 1:
            p = parent[p]
        if p == me:
            total += c
    return total / (1 if thread is None else ticks)


def _threads_cpu(pid, prefix):
    # clock ticks of the threads of ``pid`` whose name starts with ``prefix``
    total = 0
    try:
        tasks = os.listdir("/proc/{}/task".format(pid))
    except OSError:
        return 0
    for t in tasks:
        try:
            with open("/proc/{}/task/{}/stat".format(pid, t)) as f:
                ts = f.read()
        except OSError:
            continue
        if ts[ts.index("(") + 1:ts.rindex(")")].startswith(prefix):
            rest = ts[ts.rindex(")") + 2:].split()
            total += int(rest[11]) + int(rest[12])
    return total


def unix_port(lib_path):
    env = dict(os.environ, MICROPYPATH=".frozen:" + lib_path)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = subprocess.run([bundle.micropython_path(), "-X", "heapsize=32M", os.path.join(HERE, "mp_analysis.py"),
                          REC, MODEL, str(SECONDS)], env=env, cwd=REPO, capture_output=True, text=True, timeout=1800)
    if res.returncode != 0:
        raise RuntimeError("mp_analysis.py failed:\n" + res.stdout + res.stderr)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = {"cpu_s": (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 0, "s")}
    for line in res.stdout.splitlines():
        p = line.split()
        out[p[0]] = (float(p[1]), int(float(p[2])), p[3])
    return out


PAGE_HOUR = """async ([b64, meta, csv, seconds]) => {
  const bin = atob(b64), xyz = new Int16Array(seconds * 150), src = new Int16Array(bin.length / 2);
  for (let i = 0; i < src.length; i++) src[i] = bin.charCodeAt(2 * i) | (bin.charCodeAt(2 * i + 1) << 8);
  const rows = src.length / 3;
  for (let i = 0; i < seconds * 50; i++) { const j = (i % rows) * 3; xyz[3 * i] = src[j]; xyz[3 * i + 1] = src[j + 1]; xyz[3 * i + 2] = src[j + 2]; }
  const n = seconds * 50, times = new Int32Array(n), t = new Float64Array(n), base = 1700000000000;
  for (let i = 0; i < n; i++) { times[i] = 20 * i; t[i] = base + 20 * i; }
  await AN.ready;
  while (AN.pool.length < poolSize()) await new Promise((ok) => setTimeout(ok, 100));
  AN.dev = { window: 128, hop: 64, smooth: 3, threshold: 500, rate: 50 };
  useDeviceSettings();
  AN.data = { base, times, xyz, n, from: base, to: base + 20 * n, rate: 50, t, labels: [],
    stored: { t: new Int32Array(0), cls: new Int8Array(0), conf: new Uint16Array(0), n: 0 } };
  AN.models.A = { which: "file", key: "bench", meta, csv, classes: meta.classes, names: meta.class_names, label: "bench" };
  for (const p of AN.pool) {
    await p.call("load", { rate: 50 }, { "frames.bin": xyz, "times.bin": times });
    await p.call("model", { slot: "A", meta }, { "model.csv": new TextEncoder().encode(csv) });
  }
  return AN.pool.length;
}"""

# The hour analysed again from scratch (no cached features or votes); ``one``: a window at a time, the page's way
# before the plain kernels batched windows (analysis.BATCH and LANES 1, set through the workers' Python).
PAGE_RUN = """async (one) => {
  const code = one ? "from sensorbox.shared import analysis\\n_was = (analysis.BATCH, analysis.LANES)\\nanalysis.BATCH = analysis.LANES = 1"
    : "from sensorbox.shared import analysis\\nif '_was' in globals(): analysis.BATCH, analysis.LANES = _was";
  for (const p of AN.pool) await p.call("run", { code });
  AN.cache.clear(); AN.votes.clear();
  const t0 = performance.now();
  await analyse();
  const ms = performance.now() - t0;
  const grew = await Promise.all(AN.pool.map((p) => p.call("heap").then((r) => r.result.bytes - p.info.heap)));
  return { ms, windows: AN.res.n, workers: AN.pool.length, heap_mb: Math.max(...grew) / 1048576, err: $("#anerr").textContent };
}"""


def browser(www):
    from playwright.sync_api import sync_playwright

    srv = ui.serve(www, "127.0.0.1", 0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:{}".format(srv.server_address[1])
    with open(REC, "rb") as f:
        from sensorbox.shared import npy

        head = f.read(128)
        _, shape, off = npy.parse_header(head)
        f.seek(off)
        import array

        raw = array.array("h", f.read())
    xyz = array.array("h", (raw[i * shape[1] + c] for i in range(shape[0]) for c in range(3)))
    with open(os.path.join(MODEL, "meta.json")) as f:
        meta = json.load(f)
    with open(os.path.join(MODEL, "model.csv")) as f:
        csv = f.read()
    pw = sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=FLAGS)
        page = b.new_page()
        # opened at the Analysis page, as `sensorbox ui` opens it (no credential: it asks the device nothing)
        page.goto(url + "/?device=http%3A//127.0.0.1%3A9#analysis")
        page.wait_for_function("document.querySelector('#analysis').dataset.ready === '1'", timeout=120000)
        ready = float(page.evaluate("document.querySelector('#analysis').dataset.readyMs"))
        page.evaluate(PAGE_HOUR, [base64.b64encode(xyz.tobytes()).decode(), meta, csv, SECONDS])
        runs = {}
        for one in (True, False):
            cpu = _cpu_of_children(("chrom",))
            wcpu = _cpu_of_children(("chrom",), "DedicatedWorker")  # the Web Workers: the Python
            r = page.evaluate(PAGE_RUN, one)
            r["cpu_s"] = _cpu_of_children(("chrom",)) - cpu
            r["worker_cpu_s"] = _cpu_of_children(("chrom",), "DedicatedWorker") - wcpu
            if r["err"]:
                raise RuntimeError("the page: " + r["err"])
            runs[one] = r
        b.close()
    finally:
        pw.stop()
        srv.shutdown()
        srv.server_close()
    return ready, runs[False], runs[True]


def run():
    www = ui.build_www(os.path.join(REPO, "build", "bench-ui", "www"))
    ready, page, one = browser(www)
    with tempfile.TemporaryDirectory() as tmp:
        _unpack(webassets.py_pack(), tmp)
        plain = unix_port(tmp)
    viper = unix_port(os.path.join(bundle.build("unix"), "lib"))
    secs = page["ms"] / 1000
    base, n, variant = plain["analysis_s"]
    rows = [
        ("Analysis page: MicroPython WebAssembly ready after the page opened (budget 1.5 s)", round(ready / 1000, 2),
         None, None, "s"),
        ("one hour, 50 Hz 3-axis ({} windows): Chromium, {} workers (budget 10 s) vs the page a window at a time "
         "(BATCH = LANES = 1, as before the batches), wall".format(page["windows"], page["workers"]), round(secs, 1),
         round(one["ms"] / 1000, 1), round(secs / (one["ms"] / 1000), 2), "s"),
        ("  the same, CPU time (Chromium's processes)", round(page["cpu_s"], 1), round(one["cpu_s"], 1),
         round(page["cpu_s"] / one["cpu_s"], 2), "s"),
        ("  the same, CPU time of the Web Workers (the Python)", round(page["worker_cpu_s"], 1),
         round(one["worker_cpu_s"], 1), round(page["worker_cpu_s"] / one["worker_cpu_s"], 2), "s"),
        ("  most a worker's heap grew since it started (batched / a window at a time)", round(page["heap_mb"]),
         round(one["heap_mb"]), None, "MB"),
        ("  vs the unix port, same .mpy ({} kernels, batched), wall".format(variant), round(secs, 1), round(base, 1),
         round(secs / base, 2), "s"),
        ("  the same, CPU time (Chromium's processes / the unix port's)", round(page["cpu_s"], 1),
         round(plain["cpu_s"][0], 1), round(page["cpu_s"] / plain["cpu_s"][0], 2), "s"),
        ("  the same on the unix port with the device's viper kernels, wall", round(viper["analysis_s"][0], 1), None,
         None, "s"),
        ("  of which features, unix port (plain / viper)", round(plain["features_s"][0], 1),
         round(viper["features_s"][0], 1), None, "s"),
    ]
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
