"""The ``/api/status`` document, streamed (loaded per request by ``health.Health.status``, then unloaded), and the readings
of the supervisor's and the lag monitor's figures that only it needs (kept out of the resident ``supervisor``)."""

import gc
import json
import sys
import time

import sensorbox
from sensorbox.device import lazy
from sensorbox.device.http.server import _chunks


def status(h, full):
    """The figures for ``/api/status`` as JSON text in pieces, a part at a time, each part read when it is sent:
    the document is never whole in RAM (it was ~5 KB of dicts at once). Without ``full`` (an unauthenticated
    health probe) only liveness and health: what the device measures (the current class, sound levels) and its
    integrations (endpoints, their errors) are for credentials only. A part's value goes out in pieces of ~256
    bytes too (as JSON responses do, ``server._chunks``): as one string (its text, joined to its name, then
    encoded: three blocks of its size, ~1.7 KB for 14 services) a cut-up heap lacked it once the head was sent,
    and the body broke off (the config fuzz at 152wK; tests/device/test_status.py)."""
    sep = "{"
    for k, v in _parts(h, full):
        yield sep + json.dumps(k) + ":"
        sep = ","
        yield from _chunks(v, 256)
    yield "}"


def _parts(h, full):
    # (name, value) of each part of the document, made as it is asked for
    d = h.device
    sup = d.supervisor
    impl = sys.implementation
    yield "device", {"id": d.device_id, "name": d.config.get("device.name"), "version": sensorbox.__version__,
                     "platform": d.platform.name}
    yield "firmware", {"implementation": impl.name, "version": ".".join(str(v) for v in impl.version[:3]),
                       "machine": getattr(impl, "_machine", sys.platform), "mpy": getattr(impl, "_mpy", None)}
    yield "uptime_s", time.ticks_diff(time.ticks_ms(), h.boot_ticks) // 1000
    yield "time_ms", d.platform.epoch_ms()
    yield "time", {"known": d.platform.clock().known, "ahead_ms": d.platform.clock().ahead_ms}
    free = h.sample_heap()
    total = gc.mem_free() + gc.mem_alloc()  # read together: a collection between them would change the sum
    yield "heap", {"free": free, "min_free": h.heap_min_free, "total": total, "used": h.heap_used,
                   "peak_used": h.heap_peak_used, "reserve_used": lazy.used_reserve, "modules": len(sys.modules)}
    try:
        flash_total, flash_free = d.platform.flash_stats()
    except OSError:
        flash_total = flash_free = None
    yield "flash", {"total": flash_total, "free": flash_free}
    yield "loop_lag", lag_status(d.lag)
    yield "http", d.http.stats() if d.http is not None else None
    yield "watchdog", {"feeds": sup.feeds, "timeout_ms": sup.ms[0] if sup._wdt else None, "unlogged": sup.unlogged,
                       "revived": sup.revived}
    yield "task_restarts", restarts(sup)
    yield "tasks", tasks(sup)
    yield from _more_parts(d, sup, full)


def _more_parts(d, sup, full):
    # (apart from _parts: a function's bytecode is one block, which a cut-up heap lacks at ~1 KB)
    sensors = {}
    for name in d.sensors:
        sensors[name] = d.sensors[name].status()
    yield "sensors", sensors
    yield "store", d.store.status() if getattr(d, "store", None) else None
    yield "log", {"pending_bytes": d.log.pending(), "dropped_bytes": d.log.dropped,
                  "write_errors": d.log.write_errors}
    yield "config", {"boot_error": d.config.boot_error, "reboot_pending": d.config.reboot_pending}
    yield "files", d.log.files  # persisted files that were unreadable and set aside (device/files.py)
    r = getattr(d, "boot", None) or {"count": 0}  # the boot record as this boot found it (bootstate.init)
    b = {"safe_mode": sup.safe_mode, "healthy": sup.healthy, "unhealthy_boots": r["count"],
         "last_failure": r.get("reason")}
    if full:
        b["last_failure_at"] = r.get("t")
        b["unhealthy_now"] = None
        if sup._bad is not None:  # (only while not well: bootstate says why)
            b["unhealthy_now"] = lazy.call("sensorbox.device.bootstate", "reason", sup)
        b["last_traceback"] = r.get("error")
    yield "boot", b
    if full:  # which app runs (the bundle's or an update's slot) and why (bootstate._app; None: the bundle's, no key)
        yield "app", getattr(d, "app", None) or {"slot": None, "version": sensorbox.__version__, "build": None,
                                                  "trial": False, "why": None, "key": False}
    more = getattr(d.platform, "status", None)
    if more is not None:  # what the board adds: Wi-Fi on an ESP32 (state, network, address, RSSI, set-up AP)
        b = {}
        more(b)
        for k in b:
            yield k, b[k]
    if full:
        yield "soundlevel", d.soundmeter.status() if getattr(d, "soundmeter", None) else None
        yield "analysis", d.pipeline.status() if getattr(d, "pipeline", None) else None
        yield "mqtt", d.mqtt.status() if getattr(d, "mqtt", None) else {"enabled": d.config.get("mqtt.enabled")}
        yield "webhook", d.webhook.status() if getattr(d, "webhook", None) else {
            "enabled": d.config.get("webhook.enabled")}


def tasks(sup):
    """Each service of supervisor ``sup``: running, restarts (failures), reloads (config changes), last error."""
    out = {}
    for s in sup.services:
        out[s.name] = {"running": s.running, "restarts": s.restarts, "reloads": s.reloads, "last_error": s.last_error}
    return out


def restarts(sup):
    """Restarts after a failure, all services together."""
    n = 0
    for s in sup.services:
        n += s.restarts
    return n


def top(lag, k):
    """The k-th largest of lag monitor ``lag``'s recent samples (k=1: the largest), by repeated scans: no sorting,
    no lists."""
    n = min(lag.n, len(lag.samples))
    s = lag.samples
    bound = 1 << 62
    found = 0
    value = 0
    while found < k:
        best = -1
        count = 0
        for i in range(n):
            v = s[i]
            if v < bound:
                if v > best:
                    best = v
                    count = 1
                elif v == best:
                    count += 1
        if best < 0:
            break
        value = best
        found += count
        bound = best
    return value


def percentile(lag, p):
    """Nearest-rank percentile (p < 100) of ``lag``'s recent samples, in µs."""
    n = min(lag.n, len(lag.samples))
    if n == 0:
        return 0
    rank = (n * p + 99) // 100  # 1-based rank from the bottom
    return top(lag, n - rank + 1)


def lag_status(lag):
    return {"max_ms": lag.max_us / 1000, "p99_ms": percentile(lag, 99) / 1000, "recent_max_ms": top(lag, 1) / 1000,
            "samples": lag.n}
