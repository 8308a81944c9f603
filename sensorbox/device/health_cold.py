"""The ``/api/status`` document (loaded per request by ``health.Health.status``, then unloaded)."""

import gc
import sys
import time

import sensorbox
from sensorbox.device import lazy


def status(h, full):
    """The figures for ``/api/status``. Without ``full`` (an unauthenticated health probe) only liveness and
    health: what the device measures (the current class, sound levels) and its integrations (endpoints, their
    errors) are for credentials only."""
    d = h.device
    free = h.sample_heap()
    total = gc.mem_free() + gc.mem_alloc()  # read together: a collection between them would change the sum
    try:
        flash_total, flash_free = d.platform.flash_stats()
    except OSError:
        flash_total = flash_free = None
    impl = sys.implementation
    sensors = {}
    for name in d.sensors:
        sensors[name] = d.sensors[name].status()
    out = {
        "device": {"id": d.device_id, "name": d.config.get("device.name"), "version": sensorbox.__version__,
                   "platform": d.platform.name},
        "firmware": {"implementation": impl.name, "version": ".".join(str(v) for v in impl.version[:3]),
                     "machine": getattr(impl, "_machine", sys.platform), "mpy": getattr(impl, "_mpy", None)},
        "uptime_s": time.ticks_diff(time.ticks_ms(), h.boot_ticks) // 1000,
        "time_ms": d.platform.epoch_ms(),
        "time": {"known": d.platform.clock().known, "ahead_ms": d.platform.clock().ahead_ms},
        "heap": {"free": free, "min_free": h.heap_min_free, "total": total,
                 "used": h.heap_used, "peak_used": h.heap_peak_used, "reserve_used": lazy.used_reserve},
        "flash": {"total": flash_total, "free": flash_free},
        "loop_lag": d.lag.status(),
        "http": {"connections": d.http.connections, "refused": d.http.refused} if d.http is not None else None,
        "task_restarts": d.supervisor.total_restarts(),
        "tasks": d.supervisor.status(),
        "sensors": sensors,
        "store": d.store.status() if getattr(d, "store", None) else None,
        "log": {"pending_bytes": d.log.pending(), "dropped_bytes": d.log.dropped, "write_errors": d.log.write_errors},
        "config": {"boot_error": d.config.boot_error, "reboot_pending": d.config.reboot_pending},
    }
    g = d.guard
    b = out["boot"] = {"safe_mode": d.boot["safe_mode"], "healthy": g.healthy,
                       "unhealthy_boots": d.boot["unhealthy_boots"], "last_failure": d.boot["reason"]}
    if full:
        b["last_failure_at"] = d.boot["at"]
        b["unhealthy_now"] = g.reason
        b["watchdog_feeds"] = g.feeds
        b["trace"] = d.boot["trace"]
        out["app"] = d.app  # which app runs (the bundle's or an update's slot) and why (ota.py)
    st = getattr(d.platform, "station", None)
    if st is not None:  # Wi-Fi (ESP32): state, network, address, RSSI, the set-up access point
        out["wifi"] = st.status()
    if not full:
        return out
    out["soundlevel"] = d.soundmeter.status() if getattr(d, "soundmeter", None) else None
    out["analysis"] = d.pipeline.status() if getattr(d, "pipeline", None) else None
    out["mqtt"] = d.mqtt.status() if getattr(d, "mqtt", None) else {"enabled": d.config.get("mqtt.enabled")}
    out["webhook"] = d.webhook.status() if getattr(d, "webhook", None) else {
        "enabled": d.config.get("webhook.enabled")}
    return out
