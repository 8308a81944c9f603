"""Supervised asyncio services and the loop-lag monitor.

A service is an ``async def`` that runs forever. ``Supervisor.add(name, factory)`` starts it in its own task; if
it raises, the traceback goes to the log, the restart is counted and the service starts again after a backoff
(doubling from ``BACKOFF_MIN_MS`` to ``BACKOFF_MAX_MS``, reset after a healthy minute). Other services keep
running. When a config key changes that the schema says restarts a service (``config_schema.restarts``: each
key names the service by the name it was added with), ``restart`` restarts it cleanly (not counted as a failure)
so the new value applies without a reboot.

The error path allocates as little as it can and survives a MemoryError: it gives the import reserve
(``lazy._reserve``) to the heap before it logs, and when even that fails it keeps a preallocated message and counts the failure
(``unlogged``), so the task that restarts services never ends (on a full heap it once did, and nothing served HTTP
again). ``watch`` (a service of its own) checks every second that each service's keeper task is alive, restarts a
service whose heartbeat (``add(..., beat=)``) stopped, and then is the health guard (``tick``): the one feeder of
the platform's watchdog, and the judge of whether this boot is healthy (safe mode, updates on trial).

Also here (resident alike; a module of its own took a 4 KB flash block and a module's RAM for ~500 bytes):
``Health``, the figures for ``/api/status``: uptime, heap, flash, loop lag, services, sensors, versions, platform.
The heap is sampled there (housekeeping); the status document is built by ``status``, loaded per request.
"""

import array
import gc
import time

import asyncio
from micropython import const

from sensorbox.device import lazy

BACKOFF_MIN_MS = const(100)
BACKOFF_MAX_MS = const(30000)
_HEALTHY_MS = const(60000)
WATCH_MS = const(1000)  # the watch loop's period
STALE_MS = const(5000)  # a service whose heartbeat is this old is restarted...
_DEAD_MS = const(20000)  # ...and once it is this old the watchdog is no longer fed
_CONFIRM_MS = const(600000)  # an update on trial must be healthy within this, else it is rolled back
_WDT_MS = const(30000)  # the platform watchdog's timeout
_BOOTSTATE = const("sensorbox.device.bootstate")
_STATUS = const("sensorbox.device.status")
_UNLOGGED = "failed; no memory to log why"  # last_error when even that could not be said
_STUCK = "no heartbeat: restarted"


class Service:
    # Defaults, set on an instance only once they change: each attribute of an instance is a slot of its own
    # table, ~16 bytes with the table's spare room (a dozen services).
    task = None
    restarts = 0  # restarts after a failure
    reloads = 0  # restarts for a config change
    last_error = None
    running = False
    _reload = False
    _fault = None  # why it is being cancelled as a failure (fault injection, no heartbeat)
    beat = None  # a function giving the ticks_ms of its last heartbeat (None before the first)
    seen = 0  # ticks_ms of the last heartbeat seen (of when it was added, before one)
    started = 0  # ticks_ms of its last start

    def __init__(self, name, factory):
        self.name = name
        self.factory = factory


class Supervisor:
    # the health guard's state (``tick``), defaults until they change (an instance's own attributes cost RAM)
    feeds = 0  # times the platform watchdog was fed
    healthy = False  # this boot stayed healthy for a minute in one stretch
    _bad = None  # why it is not healthy now: the critical service that is failing, True for another reason
    _since = None  # ticks_ms since when it is well (or not)
    safe_mode = False  # network, UI and updates only (boot.py): only HTTP is critical
    _crit = ("accel", "mic", "store", "http")  # the services a boot must keep running to be healthy
    _fail = None  # (service name, exception) of the latest failure (a boot's traceback)
    _next = None  # ticks_ms when bootstate.update has something to decide
    _told = False  # the reason this boot went wrong is written
    _deadline = None  # ticks_ms by which an update on trial must be healthy (boot.py), else it goes back
    _wdt = None  # the platform watchdog (False: the platform has none), made at the first tick (bootstate.update)
    # the watchdog's timeout, the healthy stretch, the pause after each step of an update (ota.py) and the time an
    # update on trial has to stay healthy (a platform may change them: the simulated board of the end-to-end tests)
    ms = (_WDT_MS, _HEALTHY_MS, 0, _CONFIRM_MS)

    def __init__(self, log, device=None):
        self.log = log
        self.services = []
        self.stopping = False
        self.unlogged = 0  # failures that could not be logged for want of memory
        self.revived = 0  # keeper tasks found ended and started again (must stay 0)
        self.d = device  # (its platform: the watchdog; bootstate.update: its files, log, app)
        ms = getattr(getattr(device, "platform", None), "ms", None)
        if ms:
            self.ms = ms

    def add(self, name, factory, beat=None):
        """Run ``factory()`` as service ``name`` (the name the config schema gives for the keys whose change
        restarts it: ``config_schema.restarts``); ``beat``: a function giving the ticks_ms of the service's last
        heartbeat (None before its first): the watch loop restarts the service when it stops."""
        svc = Service(name, factory)
        if beat is not None:
            svc.beat = beat
            svc.seen = time.ticks_ms()
        self.services.append(svc)
        svc.task = asyncio.create_task(self._keep(svc))
        return svc

    def get(self, name):
        for s in self.services:
            if s.name == name:
                return s
        return None

    def _failed(self, s, e, reason=None):
        # A failure: counted, logged with its traceback. Nothing here may end the keeper: under a MemoryError the
        # import reserve goes first, and if logging still fails a preallocated message stands in.
        s.restarts += 1
        self._fail = (s.name, e)
        try:
            if isinstance(e, MemoryError):
                lazy._reserve = None  # the import reserve to the heap (lazy.rearm, every watch turn, takes it back)
                gc.collect()
            s.last_error = reason or "{}: {}".format(type(e).__name__, e)
            self.log.exception("sup", "{} failed (restart {}){}".format(
                s.name, s.restarts, ": " + reason if reason else ""), e)
        except Exception:
            s.last_error = _UNLOGGED
            self.unlogged += 1

    async def _keep(self, s):
        backoff = BACKOFF_MIN_MS
        while True:
            try:
                s.started = time.ticks_ms()
                s.running = True
                try:
                    await s.factory()
                    self.log.warning("sup", "{} returned; restarting".format(s.name))
                except Exception as e:  # CancelledError is a BaseException: it passes through
                    self._failed(s, e)
                s.running = False
                if time.ticks_diff(time.ticks_ms(), s.started) > _HEALTHY_MS:
                    backoff = BACKOFF_MIN_MS
                await asyncio.sleep_ms(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_MS)
            except asyncio.CancelledError as e:
                s.running = False
                if s._fault:
                    # An injected fault or a stopped heartbeat takes the same path as a real exception.
                    why = s._fault
                    s._fault = None
                    self._failed(s, e, why)
                    await asyncio.sleep_ms(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX_MS)
                    continue
                if not s._reload:
                    if self.stopping:
                        raise
                    # Nobody here cancelled it: a stale asyncio.wait_for runner left by the service's previous run
                    # cancels the task it once waited in, i.e. this one (MicroPython; seen after a reload during
                    # a TLS connect). Restart at once (no await here: a second stray cancel would end the loop)
                    # instead of letting the service end silently.
                    s.restarts += 1
                    s.last_error = "cancelled from outside"
                    try:
                        self.log.warning("sup", "{} cancelled from outside; restarting".format(s.name))
                    except Exception:
                        self.unlogged += 1
                    continue
                s._reload = False
                s.reloads += 1
                backoff = BACKOFF_MIN_MS
                try:
                    self.log.info("sup", "{} restarted for new config".format(s.name))
                except Exception:
                    self.unlogged += 1
            except Exception:  # (the log itself failed on the "returned" path): never end the keeper
                self.unlogged += 1
                s.running = False
                await asyncio.sleep_ms(backoff)

    async def watch(self):
        """The supervisor's own turn, every ``WATCH_MS``: a keeper task found ended is started again; a service
        whose heartbeat is older than ``STALE_MS`` is restarted (as a failure); then the health guard (``tick``),
        which feeds the platform watchdog only while every keeper runs and no heartbeat is older than
        ``_DEAD_MS`` -- so a board whose event loop, supervisor or HTTP server is wedged for good is reset by the
        watchdog. Also takes the import reserve back after an error path used it."""
        while True:
            await asyncio.sleep_ms(WATCH_MS)
            self.tick(self.check())
            lazy.rearm()

    def tick(self, ok):
        """The health guard, once a second (``ok``: what ``check`` found). The platform watchdog
        (``platform.watchdog``, ``machine.WDT``; started at the first tick, fed or not, so a boot that never gets
        healthy is reset too) is fed only while ``ok`` holds and every critical service (samplers, store, HTTP;
        only HTTP in safe mode) is running, not waiting out a failure: a wedged loop, or a critical service that
        keeps failing for the watchdog's timeout, resets the board. What follows from how long it has been well or
        not (a minute healthy: the boot counter cleared, an update on trial confirmed; going wrong: the reason and
        traceback written for the next boot; an update not healthy by its deadline: rolled back) is decided by
        ``bootstate.update``, loaded only when a decision is due (``_next``)."""
        bad = None if ok else True  # (a keeper that ended or a heartbeat that stopped: check() dealt with it)
        for s in self.services:
            if not s.running and s.name in self._crit:
                bad = s
        now = time.ticks_ms()
        if self._since is None or (bad is None) != (self._bad is None):  # well or not, since when
            self._since = self._next = now
        self._bad = bad
        if bad is None and self._wdt:
            self._wdt.feed()
            self.feeds += 1
        if self._next is not None and time.ticks_diff(now, self._next) >= 0:
            try:
                lazy.call(_BOOTSTATE, "update", self, now)
            except MemoryError:  # (a cut-up heap at a request's peak: the decision is taken at the next tick; the
                pass  # watch task failing for it was a service restart, and the watchdog's feeding paused)

    def check(self):
        """One look at every service (see ``watch``); True when all is well enough to feed the watchdog."""
        ok = True
        now = time.ticks_ms()
        for svc in self.services:
            t = svc.task
            if t is None or t.done():
                if self.stopping:
                    return False
                self.revived += 1
                svc.task = asyncio.create_task(self._keep(svc))
                ok = False
            elif svc.beat is not None:
                b = svc.beat()
                if b is not None and time.ticks_diff(b, svc.seen) > 0:
                    svc.seen = b
                idle = time.ticks_diff(now, svc.seen)  # (a restart is no sign of life: only a beat is)
                if idle > STALE_MS and time.ticks_diff(now, svc.started) > STALE_MS and svc.running and \
                        not svc._fault and not svc._reload:
                    svc._fault = _STUCK
                    t.cancel()
                if idle > _DEAD_MS:
                    ok = False
        return ok

    def restart(self, names):
        """Restart the services named in ``names`` (for new config: ``Config.restarts``)."""
        for svc in self.services:
            if svc.name in names and svc.task is not None and not svc._reload:
                svc._reload = True
                svc.task.cancel()

    async def stop(self):
        self.stopping = True
        for svc in self.services:
            if svc.task is not None:
                svc.task.cancel()
        await asyncio.sleep_ms(0)


_LAG_N = const(128)


def grid_ms(period_ms):
    """Ms from now to the next multiple of ``period_ms`` on the ``ticks_ms`` clock. Services that sleep this long
    instead of a plain period wake on a shared grid: every timer due at the same moment costs the device one
    wake-up, not one each (waking is most of what an idle device spends)."""
    return period_ms - time.ticks_ms() % period_ms


class LagMonitor:
    """Measures how late the event loop wakes tasks: the scheduling latency every other task sees. The samples are
    the wake-ups the device makes anyway: the services that sleep on the grid (the samplers, the sound meter)
    report theirs with ``woke``, and ``run`` adds a probe every ``period_ms`` on the same grid, so it rarely wakes
    the device by itself. A stall of the loop longer than the most frequent of those periods (the microphone's
    poll, 50 ms) always shows. Keeps the last 128 samples (µs) for the p99 and the maximum since boot; recording
    and reading them allocates nothing. (Reading them, for ``/api/status``: ``status``.)"""

    def __init__(self, period_ms=1000):
        self.period_ms = period_ms
        self.samples = array.array("i", bytes(4 * _LAG_N))
        self.n = 0
        self.max_us = 0

    def woke(self, t0, ms):
        """A task that went to sleep for ``ms`` at ``t0`` (``ticks_us``) is running again: record how late."""
        lag = time.ticks_diff(time.ticks_us(), t0) - ms * 1000
        if lag < 0:
            lag = 0
        self.samples[self.n % _LAG_N] = lag
        self.n += 1
        if lag > self.max_us:
            self.max_us = lag

    async def run(self):
        while True:
            ms = grid_ms(self.period_ms)
            t0 = time.ticks_us()
            await asyncio.sleep_ms(ms)
            self.woke(t0, ms)


async def _alarm(t, ms, w):
    # wait_for_ms's timer for task t: once ms have passed, if t still waits (w[0]) and nobody cancelled it already,
    # its wait ends in TimeoutError (thrown where it waits; a cancel that comes later replaces it)
    await asyncio.sleep_ms(ms)
    ce = asyncio.CancelledError
    if w[0] and t.data is not ce and t.cancel():
        if t.data is ce:
            t.data = asyncio.TimeoutError()
            w[0] = 2
        else:  # (the cancel went on to a task that t awaits: its CancelledError is turned round in wait_for_ms)
            w[0] = 3


async def wait_for_ms(aw, ms):
    """``await aw`` (a coroutine) in the caller's own task, ``asyncio.TimeoutError`` after ``ms``: what
    ``asyncio.wait_for_ms`` does, without its stray cancel. That runs ``aw`` in a task of its own, and when the
    caller is cancelled while it waits (a service restarted for new config) the runner it leaves behind later
    cancels the task it once waited in, whatever that task is doing by then (MicroPython's ``wait_for``: a
    waiter whose ``data`` is None), i.e. the service's next run ("cancelled from outside"). Here the timer is
    a task that is cancelled as soon as the wait ends and that looks before it cancels."""
    w = [1]
    a = asyncio.create_task(_alarm(asyncio.current_task(), ms, w))
    try:
        return await aw
    except asyncio.CancelledError:
        if w[0] == 3:
            raise asyncio.TimeoutError
        raise
    finally:
        w[0] = 0
        a.cancel()


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
        return lazy.call(_STATUS, "status", self, full)
