"""The device app's heap, part by part, and the heap soaks (unix port; x64 bytes: about twice an ESP32's).

Per-part account (``bench/mp_heap.py``), the core app (sampling, store, analysis, HTTP API and UI):

- the real app booted in steps: the interpreter with asyncio; the code and names of what ``app.py`` imports;
  the names ``lazy.warm`` interns for the cold modules; the boot objects (``Device()``); services started (HTTP
  server, analysis code, model); the live heap peak while four live streams and a request loop run; then the
  app stopped and taken apart: each part's objects as what freeing it gives back, the services' tasks;
- every resident module's code (bytecode, functions, constants: what its import keeps, names excluded) in
  dependency order, and every cold module's heap while it is loaded for a request (``lazy``);
- where the peak comes from (``load_peaks``): the live heap above idle with 1 to 4 live streams, and while each
  request of the soak's loop runs alone in a loop, with and without the four streams (code from files and ROMFS);
- the same app with its code imported from a ROMFS image of the bundle (``sensorbox build`` makes it;
  mounted on the unix port with ``vfs.VfsRom`` over the image in one bytearray, left out of the figures, as
  on a board whose image sits in a ``romfs`` flash partition), against code from the file system.

Soaks (tests/host/soak.py): every feature on (analysis, sound meter, store, MQTT to a real mosquitto, one webhook,
four live streams, UI and API requests in a loop) at ``bundle.APP_HEAP``, and the core alone at
``bundle.CORE_HEAP``, for ``BENCH_SOAK_S`` seconds each (default 600): MemoryErrors, 503s, other errors,
dropped samples (the microphone's too) and service restarts, which must all be 0; the same with the code in a
ROMFS image (``tests/host/romfs_main.py``: the heap plus the image's block) at ``bundle.ROMFS_APP_HEAP`` and
``bundle.ROMFS_CORE_HEAP``; then each for a minute at issue 13's targets (112wK all features, 80wK core), from
ROMFS and from the file system, to show how far the app is from them.
"""

import ast
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "host"))

from sensorbox.host import bundle  # noqa: E402

FULL_TARGET = "112wK"  # issue 13's targets: every feature on / the core alone
CORE_TARGET = "80wK"
MEASURE_HEAP = "256wK"  # the account is taken with room to spare: nothing fails while it is measured
WARM_SKIP = ("sensorbox.shared.kernels_py", "sensorbox.shared.kernels_float", "sensorbox.shared.config_docs",
             "sensorbox.device.platform.esp32", "sensorbox.device.sensors.lsm6ds3",
             "sensorbox.device.sensors.i2s_mic", "sensorbox.device.sensors.pcm", "sensorbox.device.analysis.soundclass",
             "sensorbox.shared.soundfeatures", "sensorbox.shared.kernels_sound", "sensorbox.shared.wav",
             "sensorbox.device.store.capture", "sensorbox.device.store.sd", "sensorbox.shared.codec")  # as boot.warm
_QSTR = re.compile(r"n_qstr=(\d+).*n_total_bytes=(\d+)")


def heap_bytes(spec):
    """Bytes of a ``-X heapsize`` value on this port (``w``: words of 8 bytes per 4)."""
    n = int(spec.rstrip("wWkK"))
    if spec[-1] in "kK":
        n *= 1024
    return n * 2 if "w" in spec.lower() else n


class _Probe:
    """What soak.run needs of a device, for the probe process (mp_heap.py app)."""

    def __init__(self, port, lines):
        from conftest import Device

        self.port = port
        self.url = "http://127.0.0.1:{}".format(port)
        self._lines = lines
        self.request = Device.request.__get__(self)
        self.get = Device.get.__get__(self)
        self.status = Device.status.__get__(self)

    def output(self):
        return "\n".join(self._lines)


def _start(args, data, port, heap, extra=None):
    from conftest import ADMIN_PASSWORD

    out = bundle.build("unix")
    env = bundle.micropython_env(out, dict({
        "SENSORBOX_DATA": data, "SENSORBOX_PORT": str(port), "SENSORBOX_HOST": "127.0.0.1",
        "SENSORBOX_REPLAY": os.path.join(REPO, "data", "watch_excerpt.npy"),
        "SENSORBOX_ADMIN_PASSWORD": ADMIN_PASSWORD}, **(extra or {})))
    return subprocess.Popen([bundle.micropython_path(), "-X", "heapsize=" + heap, os.path.join(HERE, "mp_heap.py")]
                            + list(args), env=env, cwd=data, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def app_account(load_s=15, image=None, heap=MEASURE_HEAP, full=False, heapmap=False):
    """Boot the app in mp_heap.py (``full``: with MQTT to a mosquitto of its own and a webhook; ``heapmap``: the
    GC's block map printed once it runs, ``heap_map``), load it for ``load_s`` seconds, stop it; returns its
    parsed lines and the load's figures."""
    import json

    import soak
    from conftest import free_port

    data = tempfile.mkdtemp(prefix="bench-heap-")
    port = free_port()
    parts = None
    if full:
        from mqtt_broker import Broker

        parts = (Broker(os.path.join(data, "broker")), soak.Hook())
        with open(os.path.join(data, "config.json"), "w") as f:
            json.dump(soak.full_config(parts[0].port, parts[1].port), f)
    proc = _start(["app"] + ([image] if image else []), data, port, heap,
                  {"SENSORBOX_HEAPMAP": "1"} if heapmap else None)
    lines = []
    ready = threading.Event()

    def reader():
        for ln in proc.stdout:
            lines.append(ln.rstrip("\n"))
            if ln.startswith("ready"):
                ready.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        if not ready.wait(60):
            raise RuntimeError("the probe did not start:\n" + "\n".join(lines[-30:]))
        probe = _Probe(port, lines)
        fig = soak.run(type("S", (), {"dev": probe, "hook": None, "collector": None})(), load_s)
        time.sleep(5.5)  # housekeeping's next collection records the peak
        open(os.path.join(data, ".probe-stop"), "w").close()
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
        if parts is not None:
            parts[0].stop()
            parts[1].close()
    t.join(5)
    if proc.returncode != 0:
        raise RuntimeError("mp_heap.py app failed:\n" + "\n".join(lines[-30:]))
    return _parse(lines), fig


#: The GC block map's letters (py/gc.c, gc_dump_alloc_table): the kind of object that starts at a block
_KINDS = {"h": "other: dict and set tables, raw code, qstr pools, buffers, instances", "B": "functions (bytecode)",
          "S": "str and bytes objects", "D": "dict objects", "T": "tuples", "A": "bytearrays and arrays",
          "M": "modules", "L": "lists", "F": "floats"}


def heap_map(lines, image=0):
    """The block map micropython.mem_info(1) printed (64 blocks a line; ``=`` a block continuing the one before,
    ``.`` free) as {kind: [bytes, objects]} and {(kind, bytes): count}; an object of ``image`` bytes or more (the
    ROMFS image's bytearray) is left out."""
    cells = []
    addrs = []
    for ln in lines:
        m = re.match(r"^([0-9a-f]{8}): (\S+)$", ln)
        if m:
            addrs.append(int(m.group(1), 16))
            cells.append(m.group(2))
        m = re.match(r"^\s*\((\d+) lines all free\)", ln)
        if m:
            cells.append("." * 64 * int(m.group(1)))
    block = (addrs[1] - addrs[0]) // 64 if len(addrs) > 1 and addrs[1] - addrs[0] < 64 * 64 else 32
    row = "".join(cells)
    kinds, sizes = {}, {}
    i = 0
    while i < len(row):
        c = row[i]
        j = i + 1
        while j < len(row) and row[j] == "=":
            j += 1
        if c not in ".=":
            n = (j - i) * block
            if not image or n < image:
                k = kinds.setdefault(c, [0, 0])
                k[0] += n
                k[1] += 1
                sizes[(c, n)] = sizes.get((c, n), 0) + 1
        i = j
    return kinds, sizes


def map_rows(lines, image):
    """The resident heap of the ROMFS app (booted, idle) by kind of object, from its block map, and the largest
    size classes of the rest: where a cut has to come from (docs/heap.md)."""
    kinds, sizes = heap_map(lines, image)
    total = sum(v[0] for v in kinds.values())
    rows = []
    for k, (n, objs) in sorted(kinds.items(), key=lambda x: -x[1][0]):
        rows.append(("ROMFS: resident heap by kind: {} ({} objects)".format(_KINDS.get(k, k), objs), n, total,
                     round(n / total, 3) if total else None, "bytes"))
    for (k, n), c in sorted(sizes.items(), key=lambda x: -x[0][1] * x[1])[:8]:
        rows.append(("ROMFS: resident heap: {} objects of {} bytes ({})".format(c, n, _KINDS.get(k, k)[:40]),
                     n * c, total, round(n * c / total, 3) if total else None, "bytes"))
    return rows


def _parse(lines):
    """{"mark": {name: bytes}, "names": {after mark: (n, bytes)}, "obj": [(part, bytes)], "map": the block map's
    lines, ...}"""
    r = {"mark": {}, "names": {}, "obj": [], "code": [], "cold": [], "modules": [], "peak": None, "map": None}
    last = None
    prev = (0, 0)
    in_map = False
    for ln in lines:
        if ln in ("map start", "map end"):
            in_map = ln == "map start"
            r["map"] = [] if in_map else r["map"]
            continue
        if in_map:
            r["map"].append(ln)
            continue
        p = ln.split()
        if not p:
            continue
        if p[0] == "mark":
            r["mark"][p[1]] = int(p[2])
            last = p[1]
        elif p[0] in ("code", "cold"):
            r[p[0]].append([p[1], int(p[2]), None])
            last = r[p[0]][-1]
        elif p[0] == "obj":
            r["obj"].append((p[1], int(p[2])))
        elif p[0] == "peak":
            r["peak"] = int(p[1])
        elif p[0] == "modules":
            r["modules"] = p[1].split(",")
        elif ln.startswith("qstr pool"):
            m = _QSTR.search(ln)
            n, b = int(m.group(1)), int(m.group(2))
            if isinstance(last, list):  # a module: its names, and its heap without them
                last[2] = (n - prev[0], b - prev[1])
                last[1] -= b - prev[1]
            else:
                r["names"][last] = (n, b)
            prev = (n, b)
    return r


def _deps(name):
    """Top-level sensorbox imports of a device module (from its source)."""
    rel = name.replace(".", "/")
    for cand in (rel + ".py", rel + "/__init__.py"):
        path = os.path.join(REPO, cand)
        if os.path.exists(path):
            break
    else:
        return []
    tree = ast.parse(open(path).read())
    out = []

    def walk(nodes):
        for n in nodes:
            if isinstance(n, ast.Import):
                out.extend(a.name for a in n.names)
            elif isinstance(n, ast.ImportFrom) and n.module:
                out.append(n.module)
                out.extend(n.module + "." + a.name for a in n.names)
            elif isinstance(n, (ast.Try, ast.If)):
                walk(n.body)
                for h in getattr(n, "handlers", []):
                    walk(h.body)
                walk(getattr(n, "orelse", []))

    walk(tree.body)
    return out


def dependency_order(modules):
    """``modules`` with every module after the ones it imports at its top level."""
    wanted = set(modules)
    done = []

    def visit(m, stack):
        if m in done or m in stack:
            return
        for d in _deps(m):
            while d and d not in wanted:
                d = d.rpartition(".")[0]
            if d and d != m:
                visit(d, stack + (m,))
        for i in range(1, m.count(".") + 1):  # packages first
            pkg = m.rsplit(".", i)[0]
            if pkg in wanted:
                visit(pkg, stack + (m,))
        done.append(m)

    for m in sorted(modules, key=lambda x: (not x.startswith("asyncio"), not x.startswith("microdot"), x)):
        visit(m, ())
    return done


def code_account(resident, image=None):
    """Each resident module's code and each cold module's heap while loaded (fresh interpreter); with ``image``
    (a ROMFS image of the bundle) imported from it."""
    out = bundle.build("unix")
    lib = os.path.join(out, "lib")
    cold = []
    for root, _, files in os.walk(os.path.join(lib, "sensorbox")):
        for f in sorted(files):
            if f.endswith(".mpy") and f != "__init__.mpy":
                name = os.path.relpath(os.path.join(root, f), lib)[:-4].replace("/", ".")
                if name not in resident and not name.startswith(WARM_SKIP):
                    cold.append(name)
    listfile = tempfile.mktemp(prefix="bench-heap-", suffix=".txt")
    with open(listfile, "w") as f:
        f.write("".join("r {}\n".format(m) for m in dependency_order(resident)))
        f.write("".join("c {}\n".format(m) for m in cold))
    res = subprocess.run([bundle.micropython_path(), "-X", "heapsize=" + MEASURE_HEAP,
                          os.path.join(HERE, "mp_heap.py"), "code", listfile] + ([image] if image else []),
                         env=bundle.micropython_env(out), cwd=REPO, capture_output=True, text=True, timeout=300)
    os.remove(listfile)
    if res.returncode != 0:
        raise RuntimeError("mp_heap.py code failed:\n" + res.stdout[-3000:] + res.stderr[-3000:])
    return _parse(res.stdout.splitlines())


def romfs_image():
    """A ROMFS image of the unix bundle's lib/ (``sensorbox build`` makes the board's)."""
    out = bundle.build("unix")
    return bundle.build_romfs(out)


def account_rows(app, code, label="", target=CORE_TARGET):
    """The per-part table: (part, bytes, total, share, unit) rows."""
    m = app["mark"]
    total = m["running"]
    rows = []

    def row(name, v):
        rows.append((label + name, v, total, round(v / total, 3) if total else None, "bytes"))

    n_imp = app["names"].get("imports", (0, 0))
    n_warm = app["names"].get("warm", (0, 0))
    row("interpreter and asyncio (frozen: objects only)", m["interpreter"])
    row("code of what app.py imports (names excluded)", m["imports"] - m["interpreter"] - n_imp[1])
    row("names interned: {} (pools and strings), after lazy.warm".format(n_warm[0]), n_warm[1])
    row("Device(): its parts' objects and the store's code", m["device"] - m["warm"])
    row("started: HTTP app, analysis code, model, services", m["running"] - m["device"])
    row("  of which services' tasks and coroutines", m["stopped"] - m["shutdown"])
    for part, v in app["obj"]:
        row("  objects: " + part, v)
    row("  left once every part is freed (code + names)", m["end"])
    if code is not None:
        frozen = 0
        for name, v, q in code["code"]:
            if name.split(".")[0] == "asyncio":
                frozen += v
            else:
                row("  code: {} (+{} names)".format(name, q[0]), v)
        row("  asyncio's objects (frozen code)", frozen)
    rows.append((label + "resident after boot (live heap) vs the target heap " + target, total,
                 heap_bytes(target), round(total / heap_bytes(target), 3), "bytes"))
    if app["peak"]:
        rows.append((label + "live heap peak under load (4 streams + request loop) vs " + target, app["peak"],
                     heap_bytes(target), round(app["peak"] / heap_bytes(target), 3), "bytes"))
    return rows


def load_peaks(image=None, step_s=3):
    """The live heap above idle while each load runs alone, one at a time (the app in mp_heap.py, its live heap
    printed every 100 ms): 1 to 4 live streams, then each request of the soak's loop in a loop of its own for
    ``step_s`` with the four streams open, and again without them. Returns [(load, peak above idle, with streams
    above idle)] (bytes)."""
    import json

    import soak
    from conftest import ADMIN_PASSWORD, free_port

    data = tempfile.mkdtemp(prefix="bench-heap-")
    port = free_port()
    proc = _start(["app"] + ([image] if image else []), data, port, MEASURE_HEAP, {"SENSORBOX_TRACE": "1"})
    lines = []
    ready = threading.Event()

    def reader():
        for ln in proc.stdout:
            lines.append((time.time(), ln.rstrip("\n")))
            if ln.startswith("ready"):
                ready.set()

    threading.Thread(target=reader, daemon=True).start()
    spans = []
    stop = threading.Event()
    threads = []
    try:
        if not ready.wait(60):
            raise RuntimeError("the probe did not start:\n" + "\n".join(x[1] for x in lines[-30:]))
        probe = _Probe(port, [])
        cl = soak._Client(probe)

        def phase(name, fn=None, secs=step_s):
            t0 = time.time()
            while time.time() - t0 < secs:
                fn() if fn else time.sleep(0.1)
            spans.append((name, t0, time.time()))

        def req(method, path, body=None):
            return lambda: cl.request(method, path, body)

        def login():
            st, ck, body = cl.request("POST", "/api/login", {"password": ADMIN_PASSWORD})
            cl.cookie = ck.split(";")[0]
            cl.csrf = json.loads(body)["csrf"]

        def label():
            now = int(time.time() * 1000)
            st, _, body = cl.request("POST", "/api/labels", {"start": now - 3000, "end": now - 2000, "label": "x"})
            cl.request("DELETE", "/api/labels/{}".format(json.loads(body)["id"]))

        loads = [(p, req("GET", p)) for p in soak.PATHS] + [
            ("PUT /api/config", req("PUT", "/api/config", {"log.level": "info"})), ("POST /api/login", login),
            ("POST + DELETE /api/labels", label)]
        phase("idle", secs=4)
        for i in range(soak.STREAMS):
            out = {"opened": 0, "drops": 0, "events": 0, "status": {}, "errors": []}
            threads.append(threading.Thread(target=soak._stream, args=(probe, stop, out)))
            threads[-1].start()
            phase("{} live stream{}".format(i + 1, "s" if i else ""), secs=4)
        login()
        for name, fn in loads:
            phase("+" + name, fn)
        stop.set()
        for t in threads:
            t.join(40)
        phase("streams closed", secs=4)
        for name, fn in loads:
            phase(name, fn)
        open(os.path.join(data, ".probe-stop"), "w").close()
        proc.wait(60)
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
    live = [(t, int(ln.split()[2])) for t, ln in lines if ln.startswith("live ")]

    def peak(name):
        for n, a, b in spans:
            if n == name:
                v = [m for t, m in live if a + 0.15 <= t <= b + 0.05]  # (a sample taken as the phase began: not it)
                return max(v) if v else None

    idle = min(m for t, m in live if spans[0][1] <= t <= spans[0][2])
    out = [("{} live stream{}".format(i + 1, "s" if i else ""), peak("{} live stream{}".format(
        i + 1, "s" if i else "")) - idle, None) for i in range(soak.STREAMS)]
    for name, _ in loads:
        a, b = peak(name), peak("+" + name)
        out.append((name, a - idle if a else None, b - idle if b else None))
    return out


def peak_rows(image=None):
    label = "ROMFS: " if image else ""
    rows = []
    for name, alone, with4 in load_peaks(image):
        if with4 is None:
            rows.append((label + "live heap above idle: " + name, alone, None, None, "bytes"))
        else:
            rows.append((label + "live heap above idle: " + name + " (alone; baseline: with 4 streams)", alone,
                         with4, round(alone / with4, 3) if alone and with4 else None, "bytes"))
    return rows


def soak_rows(full, heap, seconds, romfs=None):
    import soak

    what = ("all features" if full else "core") + (", code in ROMFS" if romfs else "")
    try:
        s = soak.Soak(tempfile.mkdtemp(prefix="bench-soak-"), heap, full, romfs=romfs)
    except RuntimeError as e:  # the device did not come up at this heap
        return [("soak {} at {}: the device did not start".format(what, heap), 1, 0, None,
                 str(e).split("\n")[-2][:120])]
    try:
        fig = soak.run(s, seconds)
    except RuntimeError as e:
        return [("soak {} at {}: the device stopped answering".format(what, heap), 1, 0, None,
                 str(e).split("\n")[-2][:120])]
    finally:
        s.stop()
    bad = soak.problems(fig, mic=True)
    h = dict(fig["heap"])
    for k in ("peak_used", "total", "min_free"):  # the image's block is flash on a board, not heap
        h[k] -= s.image if k != "min_free" else 0
    return [
        ("soak {} at {}, {} s: requests (streams: {} events)".format(what, heap, seconds, fig["stream_events"]),
         fig["requests"], None, None, "requests"),
        ("soak {} at {}: problems (503, errors, drops, restarts, MemoryErrors)".format(what, heap), len(bad), 0,
         None, "; ".join(bad) or "none"),
        ("soak {} at {}: live heap peak vs the heap".format(what, heap), h["peak_used"], h["total"],
         round(h["peak_used"] / h["total"], 3), "bytes"),
        ("soak {} at {}: lowest free (garbage counted) vs the heap".format(what, heap), h["min_free"], h["total"],
         round(h["min_free"] / h["total"], 3), "bytes"),
    ]


def run():
    rows = []
    app, _ = app_account()
    code = code_account(app["modules"])
    rows += account_rows(app, code)
    cold = sorted(code["cold"], key=lambda c: -c[1])
    for name, v, q in cold:
        rows.append(("cold, loaded while used: {} (+{} names)".format(name, q[0]), v, None, None, "bytes"))
    full, _ = app_account(full=True)
    m = full["mark"]
    rows.append(("all features: resident after boot vs the target heap " + FULL_TARGET, m["running"],
                 heap_bytes(FULL_TARGET), round(m["running"] / heap_bytes(FULL_TARGET), 3), "bytes"))
    rows.append(("all features: live heap peak under load vs " + FULL_TARGET, full["peak"],
                 heap_bytes(FULL_TARGET), round(full["peak"] / heap_bytes(FULL_TARGET), 3), "bytes"))
    rows.append(("all features: MQTT + webhook, resident (vs the core)", m["running"] - app["mark"]["running"],
                 app["mark"]["running"], round(m["running"] / app["mark"]["running"], 3), "bytes"))
    image = romfs_image()
    rom, _ = app_account(image=image, heapmap=True)
    rows.append(("ROMFS: resident after boot, code from a ROMFS image vs from the file system",
                 rom["mark"]["running"], app["mark"]["running"],
                 round(rom["mark"]["running"] / app["mark"]["running"], 3), "bytes"))
    rows.append(("ROMFS: live heap peak under load vs from the file system", rom["peak"], app["peak"],
                 round(rom["peak"] / app["peak"], 3), "bytes"))
    rows.append(("ROMFS: the image (lib/ of the unix bundle; not in the heap)", os.path.getsize(image), None, None,
                 "bytes"))
    rows += map_rows(rom["map"] or [], os.path.getsize(image))
    rows += peak_rows()
    rows += peak_rows(image)
    seconds = int(os.environ.get("BENCH_SOAK_S", "600"))
    rows += soak_rows(True, bundle.APP_HEAP, seconds)
    rows += soak_rows(False, bundle.CORE_HEAP, seconds)
    # a board with the bundle in a romfs partition
    rows += soak_rows(True, bundle.ROMFS_APP_HEAP, seconds, romfs=image)
    rows += soak_rows(False, bundle.ROMFS_CORE_HEAP, seconds, romfs=image)
    short = min(seconds, 60)  # issue 13's targets, briefly: how far the app is from them
    rows += soak_rows(True, FULL_TARGET, short, romfs=image)
    rows += soak_rows(False, CORE_TARGET, short, romfs=image)
    rows += soak_rows(True, FULL_TARGET, short)
    rows += soak_rows(False, CORE_TARGET, short)
    return rows
