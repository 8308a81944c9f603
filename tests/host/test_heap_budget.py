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
    dev = device_factory(heap=__import__("os").environ.get("HB_HEAP", bundle.APP_HEAP))
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
