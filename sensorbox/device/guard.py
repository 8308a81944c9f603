"""The health guard: feeds the board's watchdog and decides whether this boot is healthy.

Every second (``tick``, from the housekeeping service, so only while the event loop runs) it looks at the critical services (samplers, store, HTTP; only HTTP in safe mode): each keeper task
alive and each service running, not waiting out a failure. Only then is the watchdog (``platform.watchdog``,
``machine.WDT``, started with the guard, 30 s) fed: a board whose event loop is wedged, or whose critical service
keeps failing for that long, is reset by its hardware. What follows from it (a minute healthy in one stretch: the
boot counter cleared and an update on trial confirmed; going wrong: the reason and traceback written for the next
boot; an update not healthy by its deadline: rolled back) is done by ``bootstate.guard``, loaded only then, so
this loop is all that stays in RAM.
"""

import time

from micropython import const

from sensorbox.device import lazy

_WDT_MS = const(30000)
_HEALTHY_MS = const(60000)
_RETRY_MS = const(3600000)  # safe mode tries a normal boot again after an hour
_BOOTSTATE = const("sensorbox.device.bootstate")
_CRITICAL = ("accel", "mic", "store", "http")


class Guard:
    feeds = 0
    healthy = False  # this boot stayed healthy for a minute in one stretch
    reason = None  # why it is not healthy now
    deadline = None  # ticks_ms by which an app update on trial must be healthy (boot.py, ota.status)
    told = False  # the reason this boot went wrong is written

    def __init__(self, device, safe):
        self.d = device
        self.safe = safe
        self._wdt = None  # the watchdog (False: the platform has none)
        self._ok = None  # ticks_ms since when all is well
        self._bad = None  # ticks_ms since when it is not
        # (a platform may shorten them: the simulated board of the end-to-end tests does)
        self.ms = getattr(device.platform, "timings", None) or (_WDT_MS, _HEALTHY_MS, 0)

    def tick(self):
        """Once a second, from housekeeping (``app._housekeeping``: no task of its own)."""
        if self._wdt is None:  # started at the first look, fed or not: a boot that never gets healthy is reset too
            make = getattr(self.d.platform, "watchdog", None)
            self._wdt = (make and make(self.ms[0])) or False
        now = time.ticks_ms()
        why = None
        for name in ("http",) if self.safe else _CRITICAL:
            s = self.d.supervisor.get(name)
            if s is not None and (s.task is None or s.task.done() or not s.running):
                why = "service {} is failing ({})".format(name, s.last_error)
        self.reason = why
        if why is None:
            self._bad = None
            if self._wdt:
                self._wdt.feed()
                self.feeds += 1
            if self._ok is None:
                self._ok = now
            elif time.ticks_diff(now, self._ok) >= (_RETRY_MS if self.healthy else self.ms[1]) and (
                    self.safe or not self.healthy):
                self._cold()
        else:
            self._ok = None
            if self._bad is None:
                self._bad = now
            elif not self.told and not self.healthy and time.ticks_diff(now, self._bad) >= self.ms[0] // 2:
                self._cold()
        if self.deadline is not None and not self.healthy and time.ticks_diff(now, self.deadline) > 0:
            self._cold()

    def _cold(self):
        try:
            lazy.load(_BOOTSTATE).guard(self)
        finally:
            lazy.unload(_BOOTSTATE)
