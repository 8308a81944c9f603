"""Helpers for device tests (MicroPython): a scratch directory, a settable clock, a quiet log, a config stub."""

import array
import os

import asyncio

from sensorbox.device.log import Log
from sensorbox.device.sensors.ring import SampleRing
from sensorbox.shared import config_schema


def renamed(name, where=""):
    """The name the bundle gave the device's private ``name`` (sensorbox/host/names.py renames what only device
    code spells, to intern fewer names; in a module whose path contains ``where``); ``name`` itself where
    nothing renamed it (CPython, the browser, a bundle without ``renames.txt``)."""
    www = os.getenv("SENSORBOX_WWW")
    try:
        f = open(www[:www.rfind("/")] + "/renames.txt")
    except (OSError, TypeError, AttributeError):
        return name
    with f:
        for line in f:
            path, _, old, new = line.split()
            if old == name and where in path:
                return new
    return name


def inner(obj, name, where=""):
    """``obj``'s private attribute ``name`` under the name the bundle gave it (``renamed``; a module's own name
    where ``obj`` is a module)."""
    mod = getattr(obj, "__name__", "")
    if not where and isinstance(mod, str) and mod.startswith("sensorbox."):
        where = mod.replace(".", "/") + ".py"
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


class FakeClock:
    """Epoch ms that only moves when told to: drivers read time through it."""

    def __init__(self, t=1700000000000):
        self.t = t

    def __call__(self):
        return self.t

    def advance(self, ms):
        self.t += ms


class StubConfig:
    """Config values (defaults plus overrides) with the ``get`` the drivers use."""

    def __init__(self, **overrides):
        self.values = config_schema.defaults()
        for k in overrides:
            self.values[k.replace("__", ".")] = overrides[k]

    def get(self, key):
        return self.values[key]

    def update(self, partial):
        """Validate ``partial`` and apply it (no file, no listeners); returns the changed keys."""
        merged = config_schema.validate(partial, self.values)
        changed = [k for k in merged if merged[k] != self.values[k]]
        self.values = merged
        return changed


def quiet_log(path=None):
    return Log(lambda: 0, path, echo=False)


async def until(cond, timeout_ms=3000, step_ms=5):
    """Wait until cond() is true; fail after timeout_ms."""
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
        return array.array("h", range(len(names)))


class RingSensor:
    """What the pipeline uses of an accelerometer: its ring, which the test writes itself. Rate 1000 and a 20 ms
    poll only shorten the pipeline's wait (the poll, or one hop at the ring's rate), so tests run fast; the
    pipeline computes frequency features at the ring's rate (``rate``: 50 for features as trained)."""

    def __init__(self, rate=1000):
        self.ring = SampleRing(3, 500, rate)
        self.generation = 1
        self.driver = True
        self.poll_ms = 20

    def pump(self, batches=0):
        return 0
