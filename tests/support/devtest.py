"""Helpers for device tests (MicroPython): a scratch directory, a settable clock, a quiet log, a config stub.

Importing this module costs little heap: what a helper needs (the log, the sample ring, the config schema) is
imported when it is first used, so a test that uses only ``inner`` or ``tmpdir`` holds none of it."""

import os


def _table():
    # The renames a test may ask for, as (module, old, new): the harness (tests/conftest.py) passes those of the
    # names its module spells in SENSORBOX_RENAMES ("module old new;..."), read once here, while the heap is
    # whole; None when it does not (then renamed() reads the bundle's renames.txt on each call).
    v = os.getenv("SENSORBOX_RENAMES")
    if v is None:
        return None
    return tuple(tuple(e.split()) for e in v.split(";") if e)


_RENAMES = _table()


def _module(path):
    # "sensorbox/device/http/server.py" -> "sensorbox.device.http.server" (a package: its folder)
    if path.endswith("/__init__.py"):
        path = path[:-12]
    elif path.endswith(".py"):
        path = path[:-3]
    return path.replace("/", ".")


def renamed(name, where=""):
    """The name the bundle gave the device's private ``name`` (sensorbox/host/names.py renames what only device
    code spells, to intern fewer names; in a module whose dotted name contains ``where``, which may also be
    given as a path: "http/server.py"); ``name`` itself where nothing renamed it (CPython, the browser, a bundle
    without ``renames.txt``)."""
    if where.endswith(".py"):
        where = _module(where)
    if _RENAMES is not None:  # (no allocation: the table is the harness's, made at import)
        for mod, old, new in _RENAMES:
            if old == name and where in mod:
                return new
        return name
    www = os.getenv("SENSORBOX_WWW")
    try:
        f = open(www[:www.rfind("/")] + "/renames.txt")
    except (OSError, TypeError, AttributeError):
        return name
    with f:
        for line in f:
            path, _, old, new = line.split()
            if old == name and where in _module(path):
                return new
    return name


def inner(obj, name, where=""):
    """``obj``'s private attribute ``name`` under the name the bundle gave it (``renamed``; a module's own name
    where ``obj`` is a module)."""
    mod = getattr(obj, "__name__", "")
    if not where and isinstance(mod, str) and mod.startswith("sensorbox."):
        where = mod
    return getattr(obj, renamed(name, where))


def tmpdir(sub=""):
    """A fresh directory for this test (the harness makes SENSORBOX_TEST_TMP empty before each test)."""
    path = os.getenv("SENSORBOX_TEST_TMP")
    if sub:
        path = path + "/" + sub
        try:
            os.mkdir(path)
        except OSError:
            pass
    return path


def cut_heap(piece):
    """The heap cut into free pieces of ``piece`` bytes (every other block of that size given back, and half the
    small ones; then larger free pieces taken): a list of what holds the rest (clear() lets it go)."""
    import gc

    big = []
    small = []
    try:
        while True:
            big.append(bytearray(piece))
    except MemoryError:
        pass
    try:
        while True:
            small.append(bytearray(64))
    except MemoryError:
        pass
    for i in range(0, len(big), 2):
        big[i] = None
    small = small[len(small) // 2:]
    more = None
    for _ in range(2):  # (and what pieces of garbage joined into more than that, taken: chained, no list to grow;
        gc.collect()  # again after a collection, which joins what the first round left as garbage)
        try:
            while True:
                # the cell first: a piece made before a cell that found no room was garbage next to a hole, and
                # the next collection joined them into a free block of more than ``piece`` (fresh24: 1.3 KB and
                # more after a cut into 1.1 KB pieces, once in a while, by the heap's layout)
                cell = [None, more]
                cell[0] = bytearray(piece + 64)
                more = cell
        except MemoryError:
            pass
    return [big, small, more]


class short_load:
    """``with short_load(name, times):`` -- ``lazy.load`` of module ``name`` raises the MemoryError a cut-up heap
    gives (``allocating <size> bytes``) for its next ``times`` loads (the rest load as usual); ``.fails`` counts the
    ones that failed. A moment's shortage made certain, for the paths that must survive it."""

    def __init__(self, name, times=1, size=592):
        self.name = name
        self.times = times
        self.size = size
        self.fails = 0

    def __enter__(self):
        from sensorbox.device import lazy

        real = self.real = lazy.load

        def load(name):
            if name == self.name and self.fails < self.times:
                self.fails += 1
                raise MemoryError("memory allocation failed, allocating {} bytes".format(self.size))
            return real(name)

        lazy.load = load
        return self

    def __exit__(self, *exc):
        from sensorbox.device import lazy

        lazy.load = self.real


def largest_free():
    """The size of the largest block the heap has free now (to 16 bytes), up to 9000."""
    lo, hi = 16, 9000
    while hi - lo > 16:
        m = (lo + hi) // 2
        try:
            bytearray(m)
            lo = m
        except MemoryError:
            hi = m
    return lo


class FakeClock:
    """Epoch ms that only moves when told to: drivers read time through it."""

    def __init__(self, t=1700000000000):
        self.t = t

    def __call__(self):
        return self.t

    def advance(self, ms):
        self.t += ms


class StubConfig:
    """Config values with the ``get`` the drivers use: ``values`` holds the keys set (overrides, ``update``), a
    key's default is read from the schema when asked for, as the device's config keeps only what differs. (A dict
    of every default, made per StubConfig, was ~8.6 KB here with its 2 KB table: a store test reopening its store
    at 112wK found no 2,032 bytes for it, CI on 523a76e, by where a short ``--basetemp`` left the heap's pieces.)"""

    def __init__(self, **overrides):
        self.values = {}
        for k in overrides:
            self.values[k.replace("__", ".")] = overrides[k]

    def get(self, key, default=KeyError):
        """``key``'s value; for an unknown key ``default``, or KeyError without one (as the device's config)."""
        v = self.values.get(key, self)
        if v is not self:
            return v
        from sensorbox.shared import config_schema

        e = config_schema.entry(key)
        if e is None:
            if default is KeyError:
                raise KeyError(key)
            return default
        return e[2]

    def update(self, partial):
        """Check ``partial`` against the values in force and apply it (no file, no listeners), as the device does
        (``check_update``: no copy of the whole configuration); returns the changed keys."""
        from sensorbox.shared import config_schema

        checked = config_schema.check_update(partial, self.get)
        changed = [k for k in checked if checked[k] != self.get(k)]
        for k in changed:
            self.values[k] = checked[k]
        return changed


def quiet_log(path=None):
    from sensorbox.device.log import Log

    return Log(lambda: 0, path, echo=False)


async def until(cond, timeout_ms=3000, step_ms=5):
    """Wait until cond() is true; fail after timeout_ms."""
    import asyncio

    waited = 0
    while not cond():
        if waited >= timeout_ms:
            raise AssertionError("condition not met within {} ms".format(timeout_ms))
        await asyncio.sleep_ms(step_ms)
        waited += step_ms


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


class ClassIds:
    """What the pipeline and the model loader use of the store: ids for a model's classes (a fresh class table
    gives the first model 0, 1, ...; tests/device/test_store.py tests the table itself)."""

    def class_ids(self, names):
        import array

        return array.array("h", range(len(names)))


class RingSensor:
    """What the pipeline uses of an accelerometer: its ring, which the test writes itself. Rate 1000 and a 20 ms
    poll only shorten the pipeline's wait (the poll, or one hop at the ring's rate), so tests run fast; the
    pipeline computes frequency features at the ring's rate (``rate``: 50 for features as trained)."""

    def __init__(self, rate=1000):
        from sensorbox.device.sensors.ring import SampleRing

        self.ring = SampleRing(3, 500, rate)
        self.generation = 1
        self.driver = True
        self.poll_ms = 20

    def pump(self, batches=0):
        return 0
