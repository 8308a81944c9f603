"""Supervised asyncio services and the loop-lag monitor.

A service is an ``async def`` that runs forever. ``Supervisor.add(name, factory, config_prefixes)`` starts it in
its own task; if it raises, the traceback goes to the log, the restart is counted and the service starts again
after a backoff (doubling from ``BACKOFF_MIN_MS`` to ``BACKOFF_MAX_MS``, reset after a healthy minute). Other
services keep running. When a config key under one of ``config_prefixes`` changes, the service is restarted
cleanly (not counted as a failure) so the new value applies without a reboot.
"""

import array
import time

import asyncio
from micropython import const

BACKOFF_MIN_MS = const(100)
BACKOFF_MAX_MS = const(30000)
_HEALTHY_MS = const(60000)


class Service:
    # Defaults, set on an instance only once they change: each attribute of an instance is a slot of its own
    # table, ~16 bytes with the table's spare room (a dozen services).
    task = None
    restarts = 0  # restarts after a failure
    reloads = 0  # restarts for a config change
    last_error = None
    running = False
    _reload = False
    _fault = False

    def __init__(self, name, factory, prefixes):
        self.name = name
        self.factory = factory
        self.prefixes = prefixes


class Supervisor:
    def __init__(self, log):
        self.log = log
        self.services = []
        self.stopping = False
        self.failed = None  # (service name, exception) of the latest failure (guard.py: a boot's traceback)

    def add(self, name, factory, prefixes=()):
        svc = Service(name, factory, prefixes)
        self.services.append(svc)
        svc.task = asyncio.create_task(self._keep(svc))
        return svc

    def get(self, name):
        for s in self.services:
            if s.name == name:
                return s
        return None

    async def _keep(self, svc):
        backoff = BACKOFF_MIN_MS
        while True:
            try:
                started = time.ticks_ms()
                svc.running = True
                try:
                    await svc.factory()
                    self.log.warning("sup", "{} returned; restarting".format(svc.name))
                except Exception as e:  # CancelledError is a BaseException: it passes through
                    svc.restarts += 1
                    svc.last_error = "{}: {}".format(type(e).__name__, e)
                    self.failed = (svc.name, e)
                    self.log.exception("sup", "{} failed (restart {})".format(svc.name, svc.restarts), e)
                svc.running = False
                if time.ticks_diff(time.ticks_ms(), started) > _HEALTHY_MS:
                    backoff = BACKOFF_MIN_MS
                await asyncio.sleep_ms(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_MS)
            except asyncio.CancelledError as e:
                svc.running = False
                if svc._fault:
                    # An injected fault takes the same path as a real exception, traceback and all.
                    svc._fault = False
                    svc.restarts += 1
                    svc.last_error = "injected fault"
                    self.log.exception("sup", "{} failed (restart {}): injected fault".format(
                        svc.name, svc.restarts), e)
                    await asyncio.sleep_ms(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX_MS)
                    continue
                if not svc._reload:
                    if self.stopping:
                        raise
                    # Nobody here cancelled it: a stale asyncio.wait_for runner left by the service's previous run
                    # cancels the task it once waited in, i.e. this one (MicroPython; seen after a reload during
                    # a TLS connect). Restart at once (no await here: a second stray cancel would end the loop)
                    # instead of letting the service end silently.
                    svc.restarts += 1
                    svc.last_error = "cancelled from outside"
                    self.log.warning("sup", "{} cancelled from outside; restarting".format(svc.name))
                    continue
                svc._reload = False
                svc.reloads += 1
                backoff = BACKOFF_MIN_MS
                self.log.info("sup", "{} restarted for new config".format(svc.name))

    def config_changed(self, changed_keys):
        """Restart the services that depend on any of ``changed_keys``."""
        for svc in self.services:
            hit = False
            for key in changed_keys:
                for p in svc.prefixes:
                    if key.startswith(p):
                        hit = True
            if hit and svc.task is not None and not svc._reload:
                svc._reload = True
                svc.task.cancel()

    def inject_fault(self, name):
        """Interrupt service ``name`` as if it had raised (diagnostics and tests)."""
        svc = self.get(name)
        if svc is not None and svc.task is not None:
            svc._fault = True
            svc.task.cancel()

    async def stop(self):
        self.stopping = True
        for svc in self.services:
            if svc.task is not None:
                svc.task.cancel()
        await asyncio.sleep_ms(0)

    def status(self):
        out = {}
        for s in self.services:
            out[s.name] = {"running": s.running, "restarts": s.restarts, "reloads": s.reloads,
                           "last_error": s.last_error}
        return out

    def total_restarts(self):
        n = 0
        for s in self.services:
            n += s.restarts
        return n


_LAG_N = const(128)


class LagMonitor:
    """Measures how late the event loop wakes a task that sleeps ``period_ms``: the scheduling latency every
    other task sees. Keeps the last 128 samples (µs) for the p99 and the maximum since boot; reading them
    allocates nothing."""

    def __init__(self, period_ms=10):
        self.period_ms = period_ms
        self.samples = array.array("i", bytes(4 * _LAG_N))
        self.n = 0
        self.max_us = 0

    async def run(self):
        period_us = self.period_ms * 1000
        samples = self.samples
        while True:
            t0 = time.ticks_us()
            await asyncio.sleep_ms(self.period_ms)
            lag = time.ticks_diff(time.ticks_us(), t0) - period_us
            if lag < 0:
                lag = 0
            samples[self.n % _LAG_N] = lag
            self.n += 1
            if lag > self.max_us:
                self.max_us = lag

    def top(self, k):
        """The k-th largest of the recent samples (k=1: the largest), by repeated scans: no sorting, no lists."""
        n = min(self.n, _LAG_N)
        s = self.samples
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

    def percentile(self, p):
        """Nearest-rank percentile (p < 100) of the recent samples, in µs."""
        n = min(self.n, _LAG_N)
        if n == 0:
            return 0
        rank = (n * p + 99) // 100  # 1-based rank from the bottom
        return self.top(n - rank + 1)

    def status(self):
        return {"max_ms": self.max_us / 1000, "p99_ms": self.percentile(99) / 1000,
                "recent_max_ms": self.top(1) / 1000, "samples": self.n}
