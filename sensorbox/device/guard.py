"""The health guard (service ``guard``): feeds the board's watchdog and decides whether this boot is healthy.

Every second it looks at the critical services (samplers, store, HTTP; only HTTP in safe mode): each keeper task
alive and each service running, not waiting out a failure. Only then is the watchdog (``platform.watchdog``,
``machine.WDT``, started with the guard, ``WDT_MS``) fed: a board whose event loop is wedged, or whose critical
service keeps failing for that long, is reset by its hardware. ``HEALTHY_MS`` in one stretch make the boot
healthy: the boot counter (``bootstate``) goes back to 0 and an app update on trial is confirmed (``ota``). A boot
going wrong writes its reason and the failing service's traceback to ``boot.json`` before the watchdog fires, so
the next boot (in safe mode after ``bootstate.SAFE_AFTER`` of them) can show them.
"""

import time

import asyncio
from micropython import const

from sensorbox.device import lazy

WDT_MS = const(30000)
HEALTHY_MS = const(60000)
SAFE_RETRY_MS = const(3600000)  # safe mode tries a normal boot again after an hour
_BOOTSTATE = const("sensorbox.device.bootstate")
_OTA = const("sensorbox.device.ota")
CRITICAL = ("accel", "mic", "store", "http")


class Guard:
    feeds = 0
    healthy = False  # this boot stayed healthy for HEALTHY_MS
    reason = None  # why it is not healthy now
    wdt = None
    deadline = None  # ticks_ms by which an app update on trial must be healthy (boot.py, ota.trial_deadline)

    def __init__(self, device, safe):
        self.d = device
        self.safe = safe
        p = device.platform
        # (a platform may shorten them: the simulated board of the end-to-end tests does)
        self.wdt_ms = getattr(p, "wdt_ms", WDT_MS)
        self.healthy_ms = getattr(p, "healthy_ms", HEALTHY_MS)
        self._ok_since = None
        self._bad_since = None
        self._told = False

    def check(self):
        """None when every critical service is alive and running, else why not."""
        sup = self.d.supervisor
        for name in ("http",) if self.safe else CRITICAL:
            s = sup.get(name)
            if s is None:
                continue
            if s.task is None or s.task.done():
                return "service {} has stopped".format(name)
            if not s.running:
                return "service {} is failing ({})".format(name, s.last_error)
        return None

    async def run(self):
        plat = self.d.platform
        if self.wdt is None:  # started now, fed or not: a boot that never gets healthy is reset too
            make = getattr(plat, "watchdog", None)
            self.wdt = (make and make(self.wdt_ms)) or False
        while True:
            await asyncio.sleep_ms(1000)
            now = time.ticks_ms()
            why = self.check()
            self.reason = why
            if self.deadline is not None and not self.healthy and time.ticks_diff(now, self.deadline) > 0:
                try:
                    lazy.load(_OTA).rollback(self.d, "not healthy within ota.confirm_s ({})".format(why))
                finally:
                    lazy.unload(_OTA)
            if why is None:
                self._bad_since = None
                if self.wdt:
                    self.wdt.feed()
                    self.feeds += 1
                if self._ok_since is None:
                    self._ok_since = now
                elif not self.healthy and time.ticks_diff(now, self._ok_since) >= self.healthy_ms:
                    self._healthy()
                elif self.safe and time.ticks_diff(now, self._ok_since) >= SAFE_RETRY_MS:
                    self._say(lambda m: m.healthy(plat.data_dir, m.SAFE_AFTER - 1))  # one more normal try
                    plat.reset()
                continue
            self._ok_since = None
            if self._bad_since is None:
                self._bad_since = now
            elif not self._told and time.ticks_diff(now, self._bad_since) >= self.wdt_ms // 2 and not self.healthy:
                # the watchdog will fire (a board) unless it recovers: say why for the next boot first
                self._told = True
                f = self.d.supervisor.failed
                exc = f[1] if f is not None and why.find(" " + f[0] + " ") > 0 else None
                self._say(lambda m: m.failure(plat.data_dir, why, exc, self.d.platform.epoch_ms()))
                self.d.log.error("guard", "unhealthy: {}".format(why))

    def _healthy(self):
        self.healthy = True
        if not self.safe:
            self._say(lambda m: m.healthy(self.d.platform.data_dir))
            self.d.log.info("guard", "healthy for {} s: boot counter cleared".format(self.healthy_ms // 1000))
        if self.deadline is not None:
            self.deadline = None
            try:
                lazy.load(_OTA).confirm(self.d)  # the app (or firmware) update on trial is good
            finally:
                lazy.unload(_OTA)

    def _say(self, fn):
        try:
            fn(lazy.load(_BOOTSTATE))
        except OSError as e:
            self.d.log.warning("guard", "boot.json: {}".format(e))
        finally:
            lazy.unload(_BOOTSTATE)
