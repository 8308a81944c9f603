"""HTTP benchmarks against the real device app (unix port, APP_HEAP) while it samples at 50 Hz and 16 kHz:
requests/s for /api/status (baseline: a 404, the cheapest answer) and for a data export, sample loss under that
load (must be 0), the heap low-water mark and live heap peak, and the web UI's gzipped asset sizes."""

import base64
import os
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "host"))


def _hammer(url, seconds, headers, threads=2):
    done = [0, 0]  # ok, errors
    stop = time.time() + seconds

    def work():
        while time.time() < stop:
            try:
                with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
                    r.read()
                done[0] += 1
            except urllib.error.HTTPError as e:
                e.read()
                done[0 if e.code == 404 else 1] += 1
            except OSError:
                done[1] += 1

    ts = [threading.Thread(target=work) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return done[0] / seconds, done[1]


def run():
    from conftest import ADMIN_PASSWORD, Device

    from sensorbox.host import bundle, webassets

    out = []
    dev = Device(tempfile.mkdtemp(prefix="bench-http-"))
    try:
        time.sleep(3)
        auth = {"Authorization": "Basic " + base64.b64encode(("admin:" + ADMIN_PASSWORD).encode()).decode()}
        s0 = dev.status()["sensors"]
        base, _ = _hammer(dev.url + "/api/nope", 3, {})
        st, st_err = _hammer(dev.url + "/api/status", 3, {})
        out.append(("GET /api/status vs a 404, while sampling", round(st, 1), round(base, 1), round(st / base, 2),
                    "req/s ({} errors)".format(st_err)))
        ex, ex_err = _hammer(dev.url + "/api/resources/accel/data?format=npy&start=-2000", 3, auth)
        out.append(("GET accel export (2 s, .npy) vs a 404", round(ex, 1), round(base, 1), round(ex / base, 2),
                    "req/s ({} errors)".format(ex_err)))
        s1 = dev.status()
        lost = sum(s1["sensors"][n]["dropped"] - s0[n]["dropped"] for n in ("accel", "mic"))
        got = s1["sensors"]["accel"]["received"] - s0["accel"]["received"]
        out.append(("samples lost under HTTP load (accel received: {})".format(got), lost, None, None, "frames"))
        time.sleep(5.5)  # housekeeping's next collection records the live heap
        h = dev.status()["heap"]
        out.append(("heap low-water mark (free, lowest since boot)", s1["heap"]["min_free"], None, None, "bytes"))
        out.append(("live heap peak (after collections) vs the heap", h["peak_used"], h["total"],
                    round(h["peak_used"] / h["total"], 2), "bytes"))
    finally:
        dev.stop()
    www = os.path.join(bundle.build("unix"), "www")
    total = webassets.asset_bytes(www)
    out.append(("web UI assets, gzipped, vs budget", total, webassets.ASSET_BUDGET,
                round(total / webassets.ASSET_BUDGET, 2), "bytes"))
    return out
