"""Health figures for ``/api/status``: uptime, heap, flash, loop lag, services, sensors, versions, platform."""

import gc
import sys
import time

import sensorbox


class Health:
    def __init__(self, device):
        self.device = device
        self.boot_ticks = time.ticks_ms()
        self.heap_min_free = gc.mem_free()

    def sample_heap(self):
        free = gc.mem_free()
        if free < self.heap_min_free:
            self.heap_min_free = free
        return free

    def status(self):
        d = self.device
        free = self.sample_heap()
        try:
            flash_total, flash_free = d.platform.flash_stats()
        except OSError:
            flash_total = flash_free = None
        impl = sys.implementation
        sensors = {}
        for name in d.sensors:
            sensors[name] = d.sensors[name].status()
        return {
            "device": {"id": d.device_id, "name": d.config.get("device.name"), "version": sensorbox.__version__,
                       "platform": d.platform.name},
            "firmware": {"implementation": impl.name, "version": ".".join(str(v) for v in impl.version[:3]),
                         "machine": getattr(impl, "_machine", sys.platform), "mpy": getattr(impl, "_mpy", None)},
            "uptime_s": time.ticks_diff(time.ticks_ms(), self.boot_ticks) // 1000,
            "time_ms": d.platform.epoch_ms(),
            "heap": {"free": free, "min_free": self.heap_min_free, "total": free + gc.mem_alloc()},
            "flash": {"total": flash_total, "free": flash_free},
            "loop_lag": d.lag.status(),
            "task_restarts": d.supervisor.total_restarts(),
            "tasks": d.supervisor.status(),
            "sensors": sensors,
            "soundlevel": d.soundmeter.status() if getattr(d, "soundmeter", None) else None,
            "analysis": d.pipeline.status() if getattr(d, "pipeline", None) else None,
            "store": d.store.status() if getattr(d, "store", None) else None,
            "mqtt": d.mqtt.status() if getattr(d, "mqtt", None) else {"enabled": d.config.get("mqtt.enabled")},
            "webhook": d.webhook.status() if getattr(d, "webhook", None) else {
                "enabled": d.config.get("webhook.enabled")},
            "log": {"pending_bytes": d.log.pending(), "dropped_bytes": d.log.dropped, "write_errors": d.log.write_errors},
            "config": {"boot_error": d.config.boot_error, "reboot_pending": d.config.reboot_pending},
        }
