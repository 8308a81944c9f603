"""Build the device bundle: device and shared code compiled to .mpy with mpy-cross.

Layout of a bundle (``build/<target>/``), which is also the device's file system root:

    main.py                      starts sensorbox.device.app
    www/config-schema.json.gz    the config schema with help texts, labels, units, groups (/api/config/schema)
    www/*.gz                     the web UI (web/ + uPlot), gzipped, and openapi.json.gz (host/webassets.py)
    lib/sensorbox/...            .mpy of sensorbox/__init__, sensorbox/device, sensorbox/shared (no __init__ that
                                 holds only a docstring: namespace packages)
    bundle.json                  what is in it, with sizes

Targets: ``unix`` (x64 native code, for the simulated device and device tests), ``esp32`` (xtensawin: ESP32 and
ESP32-S3) and ``esp32c3`` (rv32imc: ESP32-C3); ``sensorbox.host.boards`` maps board profiles to them.
Compilation is incremental; a module that mpy-cross rejects fails the build with its error.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import sensorbox

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(REPO, "build")
TARGETS = {"unix": "x64", "esp32": "xtensawin", "esp32c3": "rv32imc"}
DEVICE_DIRS = ("sensorbox/device", "sensorbox/shared")
#: Shared modules no device imports: the config help texts (the bundle serves them as www/config-schema.json.gz) and
#: the float kernels (host and browser code, ``kernels.py``; a device has its int16 ones and emlearn's C). Left
#: out of device bundles (flash: every file takes whole 4 KB blocks); ``build(..., host_only=True)`` adds them for
#: the tests that run shared code on MicroPython. (The k-nearest-neighbour evaluator and its loader are on devices:
#: loaded only while a knn or anomaly model is, see ``device/analysis/models.py``.)
HOST_ONLY = ("sensorbox/shared/config_docs.py", "sensorbox/shared/kernels_float.py")
#: Modules that only the host, the browser or the simulator run: in the unix bundle (tests, the simulator), not a
#: board's, and not counted in its flash figure (``flash_bytes`` is what a board would hold; ``host_bytes`` these).
#: The browser's re-analysis; the unix platform and its simulated sensors (``platform/__init__`` imports ``unix``
#: only off a board), the simulated microphone's WAV replay and the WAV header module it reads with; the plain codec
#: and its reference encoder (a board stores and reads with ``store/core``, viper: every board target has the emitter).
NOT_ON_BOARDS = ("sensorbox/shared/analysis.py", "sensorbox/device/platform/unix.py",
                 "sensorbox/device/sensors/sim_accel.py", "sensorbox/device/sensors/sim_mic.py",
                 "sensorbox/device/sensors/sim_tone.py", "sensorbox/device/sensors/sim_wav.py",
                 "sensorbox/shared/wav.py", "sensorbox/shared/codec.py", "sensorbox/shared/codec_enc.py")
#: The ESP32's Wi-Fi (station, set-up access point and portal, NTP) and its set-up page: in boards' bundles and in
#: the tests' copy (``host_only``: the simulated ESP32 of tests/host/fielddev.py), not in the unix bundle that
#: ``sensorbox run`` runs (the host's network is up; flash: every file takes whole 4 KB blocks).
BOARDS_ONLY = ("sensorbox/device/net/", "setup.html")
# Files of the device that are not code: none yet (web assets arrive with the UI).

#: Flash budget for everything the bundle puts on the device. An ESP32 with 4 MB of flash gives MicroPython's
#: firmware ~1.9 MB and its file system ~2 MB; keeping the app within 544 KB leaves ~1.45 MB for data. Each board
#: profile (``sensorbox.host.boards``) has its own budget; this one is the smallest. It was 512 KB: the request
#: path's modules of their own (2026-12-07: session, labels, json_body, store.plan, analysis.stored,
#: config_running, for 5-15 KB less heap at a request's peak; docs/heap.md) took a 4 KB block each (esp32 524 KB).
FLASH_BUDGET_BYTES = 544 * 1024
FLASH_BLOCK = 4096  # littlefs allocates whole 4 KB blocks; the budget counts what the files really occupy


#: Heap the whole app runs in on the unix port (``make run``, the end-to-end tests). The unix port is 64-bit,
#: and `w` scales by word size over 4 bytes: 152wK is a 304 KB heap here and models a 152 KB heap on a 32-bit
#: ESP32 (conservatively: pointer-heavy objects take twice the bytes here, bytecode and arrays do not). It is
#: what the all-features soak (MQTT to mosquitto, a webhook, four live streams, UI and API requests in a loop)
#: proves clean: tests/host/test_soak.py (60 s), bench/bench_heap.py (10 min). It was 192wK, then 160wK. At
#: 152wK the config fuzz's first https start found no 3,048-byte block for its TLS context (heap13b); a start
#: without TLS now keeps one (tls.spare, lazy's second reserve: tls13), and with the bytecode's line numbers left
#: out (``keep_lines``: ~3 KB) the every-feature soak was clean in 3 of 3 runs (10-19 reserve uses), the config
#: fuzz in 2 of 2 and the end-to-end tests at this heap 45 of 45 (mqtt_tls, webhook, heap budget, CORS, store
#: HTTP, hostile network, clips, live, MQTT sink and commands, gyro) on a quiet machine. With the request path
#: leaner (2026-12-07: CORE_HEAP below) the every-feature soak was clean for 10 minutes at 144wK (148,966
#: requests, 254 reserve uses; the store service no longer fails when its jobs' code finds no room: it did
#: there, 22 restarts), but the end-to-end tests at 144wK were not all clean (fresh50): the gyroscope's soak
#: (6 channels, a 6-channel model) got one 503 on an accelerometer .npy export in 30 s, and the config fuzz
#: turned clips on late on a cut-up heap (fixed: clips.configure). The gyroscope's soak then failed by a
#: rollup.py load that lacked 592 bytes once (now tried again after pauses: store/core.py) and clips turned off
#: for want of RAM by the growth of the store's attribute table: with both fixed, 144wK for a day (2026-12-07:
#: the every-feature soak clean for 10 minutes twice, the config fuzz clean), but in fresh clones beside other
#: work the gyroscope's 30-s soak lost the store service to a MemoryError in 2 of 4 (464, then 532 bytes; the
#: first fixed, the second not found yet): 152wK again until that soak is clean there.
#: Issue 13's targets are 112wK with every feature on and 80wK for the core: the gap is in docs/heap.md.
APP_HEAP = "152wK"

#: Heap the core app (sampling, store, analysis, HTTP API and UI; no MQTT, no webhooks) runs the same soak in.
#: It was 128wK; main's hardening merged in (connection slots and deadlines, the watch loop, the store's class
#: table and checked block reader: ~6 KB more resident) made that 56 503s in 60 s; 144wK until the live streams
#: shared one task (~8 KB less with four) and the status and log answers were streamed: 136wK. At 128wK a few
#: predictions exports in a minute found no 2 KB block for the class table's names; with the DSP set-up code cold
#: (~3.5 KB), exports that no longer load the .npy module (~3.8 KB less while a CSV streams) and the store's
#: jobs retried with lazy's reserve: 128wK, clean in 4 runs of 60 s without even the reserve used (main: 41-82
#: reserve uses a minute there; docs/heap.md). With the rollup job's and the accel export's blocks at most
#: ~600 bytes and the config schema's and models' tables smaller (heap13): clean in 5 of 5 runs beside two busy
#: loops (0-2 reserve uses); 120wK then: 2 of 4. With the request path leaner (2026-12-07: events, login, labels
#: and GET /api/model answered by small modules of their own, an export's query apart from its stream, a config
#: update without the checks against what runs and device/files.py, a JSON body without the streamed PUT's code; the
#: largest request peaks from files 25-36 KB above idle, now ~22): 120wK, clean for 10 minutes (180,678
#: requests, 41 reserve uses).
CORE_HEAP = "120wK"

#: The same soaks with the code in a ROMFS image (``build_romfs``; a board whose firmware has a ``romfs``
#: partition: bytecode stays in flash): every feature on, and the core alone (tests/host/test_soak.py,
#: bench/bench_heap.py). Every feature at issue 13's 112wK: clean for 10 minutes (2026-12-07, beside a full
#: ``make test`` on the 2 cores: 102,212 requests, 271 reserve uses), and the core at 96wK (132,301 requests, 3
#: reserve uses; at 88wK 31 503s in 60 s: exports, events, a config update). They were 120wK and 104wK (clean in
#: 10 minutes on a quiet machine), 128wK and 112wK before. The core at 88wK (2026-12-07, with the request path
#: leaner and a store job short of memory run again after pauses): clean for 10 minutes (157,789 requests, 93
#: reserve uses; before the pauses the rollups were deferred 4 times there). Issue 13's target for the core is 80wK.
ROMFS_APP_HEAP = "112wK"
ROMFS_CORE_HEAP = "88wK"

#: What the app may use of APP_HEAP, in live bytes after a collection (``/api/status`` -> ``heap.used`` and
#: ``peak_used``), checked by tests/host/test_heap_budget.py: resident once idle, and the peak with four live
#: streams and API requests (core app). A ratchet: lower it when the app shrinks; raising it needs a reason in the
#: commit. Without line numbers in the bytecode (``keep_lines``): 178,784/188,640 bytes, main the same hour with
#: them 181,984/192,128 (budget 179/191 KB then). Measured before: 176.8-177.1 KB resident, 186.9-187.3 KB peak
#: with the four streams open (main at 53f63e5: 180.3/190.6 KB under a budget of 182/194 KB, before the DSP
#: set-up code went cold; the test used to end the streams before a sample: main measured 196.5 KB that way; was
#: 232/264 KB with Microdot and 1,500 names; main had 236/264 KB with its hardening; 184/208 before the status
#: readings and file/cookie helpers went cold). Raised to 177 KB resident (2026-12-07: 180,384 bytes where main
#: had 179,040): the request path's modules of their own intern their names and file paths for good (~0.7 KB of
#: name strings here) and a resource's column names went back into the resident store/core.py (~0.6 KB, a module
#: fewer), for requests that peak 5-15 KB lower (docs/heap.md "What a request loads"); the peak 190,240-190,432.
HEAP_BUDGET = {"resident": 177 * 1024, "peak": 188 * 1024}


#: Names ``boot.warm`` may intern on the unix port (tests/host/test_heap_budget.py). Its pools hold 1,260; the
#: next one takes ~15 KB in one block (docs/heap.md). The rest of the 1,260 is for the names the running
#: app makes (module objects, the main script) and for slack. A ratchet kept close to the measure, so that growth
#: shows: 1,103 measured (heap13b; was 1,170 over 1,104); 1,121 (2026-12-07): the request path's modules of their
#: own (``session``, ``labels``, ``json_body``, ``store.plan``, ``analysis.stored``, ``config_running``: each
#: interns its name, dotted name and file, with merges and renames that reuse names to offset most of them).
NAME_BUDGET = 1121

#: Names the first pools hold: MicroPython's dynamic pools double from 20 (py/qstr.c: twice the frozen pool's
#: allocation, which tools/mpy-tool.py sets to 10, or MICROPY_ALLOC_QSTR_ENTRIES_INIT = 10 without frozen code),
#: so 20 + 40 + ... + 640 = 1,260 on every port, the esp32's included; the 1,261st name allocates 1,280 entries
#: in one block (~15 KB here, ~9 KB on an ESP32), which a heap cut up at run time may not have.
NAME_POOL = 1260
#: What the whole running app may intern (tests/host/test_heap_budget.py): boot.warm, every module a feature
#: loads at run time (boot.WARM_SKIP's), emlearn's natmods and the names made at run time. A ratchet, at most
#: NAME_POOL less NAME_SLACK (tests/host/test_heap_budget.py checks both). Measured: 1,229 (1,280 before the public
#: names only device code spells were renamed in the whole program, ``names.WHOLE``; 1,318 before argument names
#: and class defaults were renamed, hex strings checked as bytes and tests read internals by their renamed names:
#: ``devtest.inner``); 1,240 with the request path's modules of their own (NAME_BUDGET): at the limit, so a
#: new module must come with names saved elsewhere.
APP_NAMES = 1240
#: Names the running app makes besides its modules' (measured in the all-features soak: asyncio's stream, lock and
#: event modules, the natmod a model import tries), and room for those of paths the soak does not take (a refused
#: update, an error's text) and for the ESP32's firmware, whose built-in names differ from this port's.
RUN_NAMES = 4
NAME_SLACK = 20

_SOURCE_NAMES = "module"  # what -s gives mpy-cross (module_name); a bundle built otherwise is rebuilt whole


class BuildError(Exception):
    pass


def mpy_cross_path():
    exe = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    return exe if os.path.exists(exe) else shutil.which("mpy-cross") or "mpy-cross"


def module_name(rel):
    """The dotted module name of a source path in lib/: ``sensorbox/device/store/core.py`` ->
    ``sensorbox.device.store.core``, ``sensorbox/device/__init__.py`` -> ``sensorbox.device``.

    It is the source name mpy-cross records in each .mpy (``-s``), so tracebacks read
    ``File "sensorbox.device.store.core", line 12``. Importing the module interns exactly that name already, so
    the .mpy adds no qstr for it; a path would be one more interned string per module loaded (lazily loaded
    ones included), kept for good: ~40 bytes each, and a step towards the qstr pool's next doubling (docs/heap.md)."""
    name = rel[:-3].replace("/", ".")
    return name[:-9] if name.endswith(".__init__") else name


def _docstring_only(src):
    # a package's __init__.py that holds nothing but its docstring
    import ast

    with open(src) as f:
        body = ast.parse(f.read()).body
    return not body or (len(body) == 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant))


def device_sources(host_only=False):
    """(source path, path in lib/) of every device module (and of ``HOST_ONLY`` ones when asked). A package whose
    ``__init__.py`` holds only its docstring is left out: MicroPython imports the directory as a namespace package
    the same, and each such .mpy (~40 bytes) took a whole 4 KB flash block (and three interned names)."""
    out = [(os.path.join(REPO, "sensorbox", "__init__.py"), "sensorbox/__init__.py")]
    for d in DEVICE_DIRS:
        for root, dirs, files in os.walk(os.path.join(REPO, d)):
            dirs[:] = sorted(x for x in dirs if x != "__pycache__")
            for f in sorted(files):
                if f.endswith(".py") and f != "main.py":
                    src = os.path.join(root, f)
                    rel = os.path.relpath(src, REPO)
                    if (host_only or rel not in HOST_ONLY) and not (f == "__init__.py" and _docstring_only(src)):
                        out.append((src, rel))
    return out


def constants():
    """{path in lib/: (name, value)}: module constants the bundle writes in from another source, where the module
    has ``NAME = const("")``: the API's route list from the OpenAPI document (``host/apidoc.routes``), which
    ``http/refuse.py`` reads for ``Allow`` (405, OPTIONS) and ``GET /api/routes``. A constant costs no file of its
    own (a 4 KB block) and no heap but while the module is loaded (none from ROMFS)."""
    from sensorbox.host import apidoc

    return {"sensorbox/device/http/refuse.py": ("_ROUTES", apidoc.routes(apidoc.document()))}


def _write_in(text, name, value, rel):
    at = '{} = const("")'.format(name)
    if text.count(at) != 1:
        raise RuntimeError("{}: expected one {} for the bundle to write the value in".format(rel, at))
    return text.replace(at, "{} = const({!r})".format(name, value))


def put_file(path, data):
    """Write ``data`` (bytes) to ``path`` unless it holds them already, through a temporary file renamed over it:
    a device starting or serving from the bundle while another process builds it never reads half a file."""
    try:
        with open(path, "rb") as f:
            if f.read() == data:
                return path
    except OSError:
        pass
    tmp = "{}.{}.tmp".format(path, os.getpid())
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return path


def _micropython_sources():
    """Sources besides the device's that MicroPython runs against the bundle (tests, their helper scripts and
    test doubles, benchmark scripts): a private name one of them uses is not renamed."""
    out = [os.path.join(REPO, "sensorbox", "device", "main.py")]
    for d in ("tests/device", "tests/shared", "tests/support", "tests/support/natmods", "tests/host", "bench"):
        full = os.path.join(REPO, d)
        if os.path.isdir(full):
            for f in sorted(os.listdir(full)):
                if f.endswith(".py") and (d != "bench" or f.startswith("mp")) and not (
                        d == "tests/host" and f.startswith("test_")):  # (tests/host: the scripts MicroPython runs)
                    out.append(os.path.join(full, f))
    return out


def _script_sources():
    """CPython sources that hand MicroPython code in strings (host tests, benchmarks): see ``names.plan``."""
    out = []
    for d in ("tests/host", "bench", "tests"):
        full = os.path.join(REPO, d)
        for f in sorted(os.listdir(full)):
            if f.endswith(".py") and (d != "tests/host" or f.startswith("test_")) and (d != "bench" or
                                                                                      not f.startswith("mp")):
                out.append(os.path.join(full, f))
    return out


_plans = {}  # renames key -> plan: worked out once (seconds of CPU), not once per bundle and process


def _renames(sources, old):
    """{path in lib/: renames} for the device sources (``host/names.py``), reused from the last build while no
    source it was worked out from changed; and the key that says so."""
    others = _micropython_sources()
    scripts = _script_sources()
    rule = os.path.join(REPO, "sensorbox", "host", "names.py")  # (a change of the rules renames anew)
    key = str(sorted((os.path.relpath(p, REPO), os.path.getmtime(p)) for p in [s for s, _ in sources] + others +
                     scripts + [rule]))
    key = hashlib.sha256(key.encode()).hexdigest()[:16]
    if old.get("renames_key") == key and "renames" in old:
        return old["renames"], key
    if key in _plans:  # the same sources gave another bundle (a target, a directory) of this process its plan
        return _plans[key], key
    saved = os.path.join(BUILD, "renames.json")  # ...or of another process (the last plan worked out)
    try:
        with open(saved) as f:
            last = json.load(f)
        if last["key"] == key:
            _plans[key] = last["renames"]
            return _plans[key], key
    except (OSError, ValueError, KeyError):
        pass
    from sensorbox.host import names

    try:
        by_path = names.plan([s for s, _ in sources], others, {s: module_name(r) for s, r in sources}, scripts)
    except (ValueError, SyntaxError) as e:
        raise BuildError(str(e))
    _plans[key] = {rel: by_path[src] for src, rel in sources if src in by_path}
    os.makedirs(BUILD, exist_ok=True)
    put_file(saved, json.dumps({"key": key, "renames": _plans[key]}, sort_keys=True).encode())
    return _plans[key], key


_mpy = {}  # (sha256 of a source, arch, name, lines) -> the .mpy mpy-cross made of it in this process


def keep_lines():
    """Whether device bundles keep bytecode line numbers: only when ``SENSORBOX_LINES=1`` (a debugging build).
    Without them (``mpy-cross -O3``) every function's line table is gone: ~3 KB less heap for the resident code
    on the unix port (180.6 -> 177.4 KB after boot), about as much on an ESP32 (the tables are bytes, not words),
    and 6 % less flash; a traceback from the device then names each module and function with ``line 1``. The
    tests' copy (``host_only``) and the browser's modules keep them."""
    return os.environ.get("SENSORBOX_LINES") == "1"


def mpy_bytes(src, arch, name, lines=True):
    """The .mpy of ``src`` (``arch`` None: bytecode only; ``lines`` False: without line numbers, ``-O3``). A source
    compiled before in this process is not compiled again: bundles for several targets, their variants and
    directories share most modules."""
    with open(src, "rb") as f:
        key = (hashlib.sha256(f.read()).hexdigest(), arch, name, lines)
    if key not in _mpy:
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "m.mpy")
            res = subprocess.run([mpy_cross_path()] + (["-march=" + arch] if arch else []) + ([] if lines else ["-O3"])
                                 + ["-o", out, "-s", name, src], capture_output=True, text=True)
            if res.returncode != 0:
                raise BuildError("mpy-cross rejected {}:\n{}".format(os.path.relpath(src, REPO),
                                                                       res.stderr.strip()))
            with open(out, "rb") as f:
                _mpy[key] = f.read()
    return _mpy[key]


def compile_one(src, dst, arch, name, lines=True):
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    data = mpy_bytes(src, arch, name, lines)
    tmp = "{}.{}.tmp".format(dst, os.getpid())  # renamed into place: see put_file
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, dst)


def build(target="unix", out_dir=None, quiet=True, host_only=False, analysis=False):
    """Build (incrementally) and return the bundle directory (with ``HOST_ONLY`` modules too when asked: the
    tests' copy, never a board's). ``analysis``: ``www`` also carries the Analysis page's runtime
    (``webassets.build_runtime``, ~230 KB gzipped; default directory ``build/<target>-analysis``)."""
    arch = TARGETS[target]
    out = out_dir or os.path.join(BUILD, target + ("-analysis" if analysis else ""))
    lib = os.path.join(out, "lib")
    wanted = set()
    files = []
    try:
        with open(os.path.join(out, "bundle.json")) as f:
            old = json.load(f)
    except (OSError, ValueError):
        old = {}
    lines = host_only or keep_lines()
    # else built before, or with(out) line numbers: recompile everything
    fresh = old.get("source_names") == _SOURCE_NAMES and old.get("lines", True) == lines
    # The renames are worked out over every module a bundle may hold (HOST_ONLY, NOT_ON_BOARDS too), so that
    # every variant of the bundle renames alike.
    renames, key = _renames(device_sources(True), old)
    consts = constants()
    for src, rel in device_sources(host_only):
        if (target != "unix" and rel in NOT_ON_BOARDS) or (target == "unix" and not host_only and
                                                            rel.startswith(BOARDS_ONLY)):
            continue
        dst = os.path.join(lib, rel[:-3] + ".mpy")
        wanted.add(dst)
        ren = renames.get(rel)
        const = consts.get(rel)
        if not fresh or not os.path.exists(dst) or os.path.getmtime(dst) < os.path.getmtime(src) or \
                ren != old.get("renames", {}).get(rel) or (const and list(const) != old.get("constants", {}).get(rel)):
            if not quiet:
                print("mpy-cross", rel)
            if ren or const:  # private names made short and shared (host/names.py), constants written in
                from sensorbox.host import names

                # next to the bundle, not in it; one per process (another build may be writing the same one)
                tmp = os.path.join(out + ".src", "{}.{}.py".format(rel[:-3], os.getpid()))
                os.makedirs(os.path.dirname(tmp), exist_ok=True)
                with open(src) as f, open(tmp, "w") as g:
                    text = f.read()
                    if const:
                        text = _write_in(text, const[0], const[1], rel)
                    g.write(names.rewrite(text, ren) if ren else text)
                try:
                    compile_one(tmp, dst, arch, module_name(rel), lines)
                finally:
                    os.remove(tmp)
            else:
                compile_one(src, dst, arch, module_name(rel), lines)
        files.append(dst)
    # Remove modules whose source is gone (and what an interrupted build left; not another one's work in progress).
    for root, _, names in os.walk(lib):
        for n in names:
            p = os.path.join(root, n)
            try:
                if p not in wanted and not (n.endswith(".tmp") and time.time() - os.path.getmtime(p) < 600):
                    os.remove(p)
            except OSError:  # (a temporary file renamed meanwhile)
                pass
    with open(os.path.join(REPO, "sensorbox", "device", "main.py"), "rb") as f:
        put_file(os.path.join(out, "main.py"), f.read())
    files.append(os.path.join(out, "main.py"))
    files.extend(build_www(os.path.join(out, "www"), analysis, target != "unix" or host_only))
    files.extend(copy_default_model(os.path.join(out, "models", "default")))
    if host_only:  # the tests' copy: what host/names.py renamed, for tests that read device internals (devtest)
        put_file(os.path.join(out, "renames.txt"), "".join(
            "{} {} {} {}\n".format(rel, k[0], old, new) for rel, r in sorted(renames.items())
            for k in ("globals", "attrs") for old, new in sorted(r[k].items())).encode())
    manifest = {"version": sensorbox.__version__, "target": target, "arch": arch, "source_names": _SOURCE_NAMES,
                "analysis": analysis, "lines": lines,
                "files": {os.path.relpath(f, out): os.path.getsize(f) for f in sorted(files)},
                "renames": renames, "renames_key": key, "constants": {k: list(v) for k, v in consts.items()}}
    manifest["bytes"] = sum(manifest["files"].values())
    host = {"lib/" + rel[:-3] + ".mpy" for rel in NOT_ON_BOARDS}
    manifest["flash_bytes"] = flash_bytes(v for k, v in manifest["files"].items() if k not in host)
    manifest["host_bytes"] = flash_bytes(v for k, v in manifest["files"].items() if k in host)
    manifest["flash_budget"] = FLASH_BUDGET_BYTES
    put_file(os.path.join(out, "bundle.json"), json.dumps(manifest, separators=(",", ":"), sort_keys=True).encode())
    return out


def build_romfs(out_dir):
    """A ROMFS image of the bundle's ``lib/`` (every .mpy), written next to the bundle as ``<out_dir>.romfs``;
    returns its path. MicroPython >= 1.25 mounts such an image at ``/rom`` with ``/rom/lib`` on ``sys.path``
    ahead of ``/lib`` and imports bytecode from it in place: code and constant strings cost no heap (names
    still take their interning entries; native code is still copied to executable RAM). On an ESP32 the image
    goes into a ``romfs`` partition (``mpremote romfs deploy build/esp32.romfs``; docs/heap.md)."""
    from mpremote.romfs import VfsRomWriter  # the format mpremote and the firmware use

    w = VfsRomWriter()

    def add(d):
        for name in sorted(os.listdir(d)):
            p = os.path.join(d, name)
            if os.path.isdir(p):
                w.opendir(name)
                add(p)
                w.closedir()
            elif name.endswith(".mpy"):
                with open(p, "rb") as f:
                    w.mkfile(name, f.read())

    w.opendir("lib")
    add(os.path.join(out_dir, "lib"))
    w.closedir()
    path = out_dir.rstrip("/") + ".romfs"
    with open(path, "wb") as f:
        f.write(w.finalise())
    return path


def manifest(out):
    with open(os.path.join(out, "bundle.json")) as f:
        return json.load(f)


def has_room(m, profile):
    """Whether a bundle (manifest ``m``) fits a board profile: within its flash budget and, where its file system
    size is known, leaving the data space it keeps."""
    return m["flash_bytes"] <= profile["flash_budget"] and (
        not profile["fs"] or m["flash_bytes"] + profile["data_min"] <= profile["fs"])


def build_for(board, quiet=True):
    """The bundle a board of profile ``board`` (``sensorbox.host.boards``) gets: with the Analysis page's runtime
    when its flash has room for it (``has_room``), else without (the page is then served by ``sensorbox ui``).
    Returns the bundle directory."""
    from sensorbox.host import boards

    p = boards.PROFILES[board]
    out = build(p["target"], quiet=quiet, analysis=True)
    if has_room(manifest(out), p):
        return out
    return build(p["target"], quiet=quiet)


def copy_default_model(dst):
    """The classifier model the device runs until one is uploaded (models/default: model.csv + meta.json)."""
    src = os.path.join(REPO, "models", "default")
    out = []
    if os.path.isdir(src):
        os.makedirs(dst, exist_ok=True)
        for name in ("model.csv", "meta.json"):
            with open(os.path.join(src, name), "rb") as f:
                put_file(os.path.join(dst, name), f.read())
            out.append(os.path.join(dst, name))
    return out


def build_www(www, analysis=False, setup=True):
    """Static files the device serves from flash (with the Analysis page's runtime when ``analysis``; without the
    Wi-Fi set-up page unless ``setup``: ``BOARDS_ONLY``). Returns their paths."""
    from sensorbox.shared import config_docs

    from sensorbox.host import webassets  # the web UI and openapi.json, gzipped

    os.makedirs(www, exist_ok=True)
    # gzipped as the UI's files are (20 KB of flash as plain JSON, 4 KB so): served as they are
    path = os.path.join(www, "config-schema.json.gz")
    put_file(path, webassets.gzip_bytes(json.dumps({"schema": config_docs.describe(), "groups": config_docs.groups()},
                                                   separators=(",", ":")).encode()))
    # (a bundle built before: the route list is in http/refuse, uPlot's style sheet in app.css)
    for old in ("config-schema.json", "routes.txt", "uplot.css.gz"):
        if os.path.exists(os.path.join(www, old)):
            os.remove(os.path.join(www, old))
    tmp = tempfile.mkdtemp(prefix="sensorbox-www-")  # built aside, then put in place (see put_file)
    try:
        out = [path]
        for p in webassets.build(tmp, analysis):
            dst = os.path.join(www, os.path.basename(p))
            if not setup and os.path.basename(p).startswith(BOARDS_ONLY[1:]):
                if os.path.exists(dst):
                    os.remove(dst)
                continue
            with open(p, "rb") as f:
                out.append(put_file(dst, f.read()))
        if not analysis:
            webassets.remove_runtime(www)
        return out
    except webassets.WebBuildError as e:
        raise BuildError(str(e))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def flash_bytes(sizes):
    """Bytes the files occupy on littlefs (each file rounded up to whole blocks)."""
    return sum((s + FLASH_BLOCK - 1) // FLASH_BLOCK * FLASH_BLOCK for s in sizes)


def micropython_path():
    exe = os.path.join(os.path.dirname(sys.executable), "micropython")
    return exe if os.path.exists(exe) else shutil.which("micropython") or "micropython"


def natmods_dir():
    """The folder named by ``SENSORBOX_NATMODS`` (emlearn-micropython's native modules built for this machine's unix
    port: ``emlearn_trees.mpy``, ``emlearn_fft.mpy``, ``emlearn_iir.mpy``), or None. Never part of the repository;
    docs/analysis.md says how to build them."""
    d = os.environ.get("SENSORBOX_NATMODS")
    if not d:
        return None
    d = os.path.abspath(d)
    if not os.path.isdir(d):
        raise BuildError("SENSORBOX_NATMODS={} is not a directory".format(d))
    return d


def micropython_env(bundle_dir, extra=None, path=(), natmods=True):
    """Environment for running the bundle on the unix port: the port's frozen modules, the bundle's lib, the
    native modules of ``natmods_dir()`` (when set and ``natmods``), then ``path``."""
    env = dict(os.environ)
    nm = natmods_dir() if natmods else None
    env["MICROPYPATH"] = ":".join((".frozen", os.path.join(bundle_dir, "lib")) + ((nm,) if nm else ()) + tuple(path))
    env["SENSORBOX_WWW"] = os.path.join(bundle_dir, "www")
    if extra:
        env.update(extra)
    return env
