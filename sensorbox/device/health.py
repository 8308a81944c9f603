"""Health figures for ``/api/status``: uptime, heap, flash, loop lag, services, sensors, versions, platform.

The heap is sampled here (housekeeping); the status document is built by ``status``, loaded per request."""

import gc
import time

from micropython import const

from sensorbox.device import lazy

_COLD = const("sensorbox.device.status")


class Health:
    def __init__(self, device):
        self.device = device
        self.boot_ticks = time.ticks_ms()
        self.heap_min_free = gc.mem_free()
        self.heap_used = self.heap_peak_used = 0  # live bytes right after a collection (garbage excluded)
        self._samples = 0

    def sample_heap(self, tick=False):
        """Housekeeping calls it with ``tick`` every second. ``free`` counts garbage not yet collected as used, so
        every 5th tick (5 s) also collects and records the live heap: the figure a heap budget is about."""
        if tick:
            self._samples += 1
        if tick and self._samples % 5 == 0:
            lazy.rearm()  # the import reserve, if an import used it (see lazy)
            gc.collect()  # ~1 ms here, a few ms on an ESP32's 64-128 KB heap: well inside the loop's budget
            used = gc.mem_alloc()
            self.heap_used = used
            if used > self.heap_peak_used:
                self.heap_peak_used = used
        free = gc.mem_free()
        if free < self.heap_min_free:
            self.heap_min_free = free
        return free

    def status(self, full=True):
        """The figures for ``/api/status``: JSON text in pieces (``status.status``, loaded for the call)."""
        return lazy.call(_COLD, "status", self, full)
