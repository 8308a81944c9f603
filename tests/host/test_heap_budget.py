"""The device app's heap against its budget (``bundle.HEAP_BUDGET``): a ratchet, so resident code or buffers that
grow show up here rather than as 503s on a device.

The app runs from the compiled bundle at ``bundle.APP_HEAP`` with analysis, the sound meter and the store busy;
the test adds four live streams and a round of API requests, then reads ``/api/status`` -> ``heap``: ``used`` and
``peak_used`` are live bytes right after a collection (garbage excluded), sampled every 5 s by housekeeping.
"""

import http.client
import threading
import time

import pytest

from sensorbox.host import bundle

from conftest import ADMIN_PASSWORD, wait_for


def _stream(dev, seconds, got):
    import base64

    c = http.client.HTTPConnection("127.0.0.1", dev.port, timeout=10)
    auth = base64.b64encode(("admin:" + ADMIN_PASSWORD).encode()).decode()
    c.request("GET", "/api/live", headers={"Authorization": "Basic " + auth})
    r = c.getresponse()
    n = 0
    t0 = time.time()
    if r.status == 200:
        while time.time() - t0 < seconds:
            if not r.fp.readline():
                break
            n += 1
    got.append((r.status, n))
    c.close()


def _wait_heap_sample(dev, after_ms):
    # housekeeping collects every 5 s and records the live heap; wait for a sample taken after `after_ms` (device
    # uptime), asking rarely: a status request of ours in flight at the sample would count as resident (~9 KB)
    time.sleep(6)
    return wait_for(dev.status, "a heap sample after a collection", lambda st: st["uptime_s"] * 1000 >= after_ms +
                    6000 and st["heap"]["used"], every=2)


@pytest.mark.alone  # (the heap in use right after the workload: another test's CPU use leaves more in flight)
def test_heap_within_budget_under_load(device_factory):
    _workload(device_factory(heap=__import__("os").environ.get("HB_HEAP", bundle.APP_HEAP)))


def _workload(dev):
    wait_for(dev.status, "analysis and the sound meter running", lambda st: (st["analysis"] or {}).get(
        "windows", 0) >= 2 and (st["soundlevel"] or {}).get("interval"))
    got = []
    # the streams stay open for 7 s: at least one of housekeeping's 5 s samples (peak_used) falls while they run
    streams = [threading.Thread(target=_stream, args=(dev, 7, got)) for _ in range(4)]
    for t in streams:
        t.start()
    time.sleep(1)
    for path in ("/api/config", "/api/resources", "/api/events", "/api/logs", "/api/model",
                 "/api/resources/soundlevel/data?format=csv"):
        r = dev.get(path)
        assert r.status == 200, (path, r.status, r.body[:200])
    for t in streams:
        t.join()
    assert [s for s, _ in got] == [200] * 4 and all(n > 0 for _, n in got), got
    st = _wait_heap_sample(dev, dev.status()["uptime_s"] * 1000)
    heap = st["heap"]
    total = heap["total"]
    print("heap after the workload:", heap)
    # what stays resident once the streams are gone, and the highest live heap seen while they ran
    assert heap["used"] <= bundle.HEAP_BUDGET["resident"], (heap, bundle.HEAP_BUDGET)
    assert heap["peak_used"] <= bundle.HEAP_BUDGET["peak"], (heap, bundle.HEAP_BUDGET)
    assert bundle.HEAP_BUDGET["peak"] < total, "the budget must leave the heap room to fragment"
    # The accelerometer's FIFO holds 5 s: a loss there is a stalled event loop. The microphone's ring holds 64 ms,
    # which a loaded machine descheduling the process can outlast (a timing property, as in soak.problems; a
    # parallel run at load average 10 lost 0.7 s of it here): the benchmark counts those.
    assert st["sensors"]["accel"]["dropped"] == 0, st["sensors"]


_WARM = """
import micropython
from sensorbox.device import lazy, platform
lazy.load("sensorbox.device.boot").warm(platform.get())
micropython.qstr_info()
"""


def test_interned_names_stay_below_the_pools_doubling(tmp_path):
    # boot.warm interns every name the device can use (each module loaded and unloaded once). Past 1,260 names
    # the unix port's name pools double: a ~15 KB block (~9 KB on an ESP32) for good. bundle.NAME_BUDGET keeps
    # the count below that, with room for what the running app adds; the bundle's private-name renaming
    # (host/names.py) is what keeps it there.
    import re
    import subprocess

    out = bundle.build("unix")
    script = tmp_path / "warm.py"
    script.write_text(_WARM)
    r = subprocess.run([bundle.micropython_path(), "-X", "heapsize=" + bundle.APP_HEAP, str(script)],
                       env=bundle.micropython_env(out), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    n = int(re.search(r"n_qstr=(\d+)", r.stdout).group(1))
    print("names interned by boot.warm:", n, "of", bundle.NAME_BUDGET)
    assert n <= bundle.NAME_BUDGET, (n, bundle.NAME_BUDGET)


_WHOLE = """
import micropython
from sensorbox.device import lazy, platform
lazy.load("sensorbox.device.boot").warm(platform.get())
lazy.unload("sensorbox.device.boot")
micropython.qstr_info()
for name in {names!r}:
    try:
        lazy.load(name)
    except ImportError:  # (a natmod's .mpy whose import fails still interned its names)
        pass
    lazy.unload(name)
    print("module", name)
    micropython.qstr_info()
"""
#: What emlearn-micropython's natmods intern (emlearn_trees, _fft, _iir, _neighbors; measured with their unix
#: builds): counted from them when SENSORBOX_NATMODS names them, else this.
NATMOD_NAMES = 22
NATMODS = ("emlearn_trees", "emlearn_fft", "emlearn_iir", "emlearn_neighbors")


def feature_modules():
    """The modules a device loads at run time that boot.warm leaves out (``boot.WARM_SKIP``, read from its
    source): all of them but what no board loads (the host's, another board's, the plain-Python kernels of a port
    without viper) and the factory reset's (a reset follows it)."""
    import ast
    import os

    with open(os.path.join(bundle.REPO, "sensorbox", "device", "boot.py")) as f:
        tree = ast.parse(f.read())
    skip = next(ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign) and
                getattr(n.targets[0], "id", "") == "WARM_SKIP")
    never = tuple(bundle.module_name(r) for r in bundle.HOST_ONLY + bundle.NOT_ON_BOARDS) + (
        "sensorbox.shared.kernels_py", "sensorbox.device.factory", "sensorbox.device.platform.")
    out = []
    for _, rel in bundle.device_sources():
        name = bundle.module_name(rel)
        if any(name.startswith(p) for p in skip) and not any(name == p or name.startswith(p) for p in never if
                                                              p.endswith(".") or name == p):
            out.append(name)
    return out


def whole_app_names(tmp_path):
    import re
    import subprocess

    out = bundle.build("unix")
    natmods = bundle.natmods_dir()
    mods = feature_modules() + (list(NATMODS) if natmods else [])
    script = tmp_path / "whole.py"
    script.write_text(_WHOLE.format(names=mods))
    r = subprocess.run([bundle.micropython_path(), "-X", "heapsize=" + bundle.APP_HEAP, str(script)],
                       env=bundle.micropython_env(out), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    counts = [int(n) for n in re.findall(r"n_qstr=(\d+)", r.stdout)]
    print("names: boot.warm", counts[0], "".join(", +{} {}".format(b - a, m) for a, b, m in zip(
        counts, counts[1:], re.findall(r"^module (\S+)", r.stdout, re.M))))
    return counts[-1] + (0 if natmods else NATMOD_NAMES) + bundle.RUN_NAMES, mods


def test_names_of_the_whole_running_app(tmp_path):
    # Every name the running app can intern: boot.warm's, those of every module a feature loads at run time (the
    # sound classifier, event capture, the SD card, knn/anomaly models, an update, emlearn's DSP wrappers and
    # natmods) and those it makes while it runs. Past bundle.NAME_POOL, the name that crosses it needs a ~15 KB
    # block at run time: a ratchet (bundle.APP_NAMES) until the next test holds.
    n, mods = whole_app_names(tmp_path)
    assert "sensorbox.device.analysis.soundclass" in mods and "sensorbox.device.store.capture" in mods, mods
    print("names of the whole running app:", n, "of", bundle.APP_NAMES, "(pool", bundle.NAME_POOL, ")")
    assert n <= bundle.APP_NAMES, (n, bundle.APP_NAMES)


def test_whole_running_app_fits_the_first_name_pools(tmp_path):
    n, _ = whole_app_names(tmp_path)
    assert n <= bundle.NAME_POOL - bundle.NAME_SLACK, (n, bundle.NAME_POOL, bundle.NAME_SLACK)
