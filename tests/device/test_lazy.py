"""Cold code: ``lazy.load``/``unload`` give back the module and the modules its import pulled in for the first
time (a cold module's own imports are cold too), and keep what was loaded before."""

import gc
import sys

from sensorbox.device import lazy
from sensorbox.device.http import server  # noqa: F401 - resident in the app; device_api imports it

_WEB = "sensorbox.device.http.device_api"
_DEPS = ("sensorbox.device.http.authz",)  # (static too until device_api loaded it only for openapi.json)


def test_unload_takes_the_modules_the_load_pulled_in():
    for m in _DEPS:
        lazy.unload(m)
    lazy.load(_WEB)  # a first cycle interns the modules' names for good (and may grow the name pool)
    lazy.unload(_WEB)
    gc.collect()
    base = gc.mem_alloc()
    m = lazy.load(_WEB)
    assert callable(m.handle)
    for d in _DEPS:
        assert d in sys.modules, d  # device_api imports it at its top
    m = None
    lazy.unload(_WEB)
    for d in (_WEB,) + _DEPS:
        assert d not in sys.modules, d
    gc.collect()
    # every byte comes back (the modules take ~8 KB while loaded; before, authz and static stayed for good)
    assert gc.mem_alloc() - base <= 64, gc.mem_alloc() - base


def test_a_module_loaded_before_stays():
    from sensorbox.device.http import authz  # noqa: F401 - now resident

    lazy.load(_WEB)
    lazy.unload(_WEB)
    assert "sensorbox.device.http.authz" in sys.modules
    assert "sensorbox.device.http.server" in sys.modules
    assert _WEB not in sys.modules
    lazy.unload("sensorbox.device.http.static")


def test_call_unloads_when_the_call_returns_and_when_it_raises():
    # lazy.call: the one way to run a cold module's function (the module goes afterwards, also on an error)
    codes = lazy.call("sensorbox.shared.config_schema", "defaults")  # (a dict: every key)
    assert "accel.rate_hz" in codes
    assert "sensorbox.shared.config_schema" not in sys.modules
    try:
        lazy.call("sensorbox.shared.config_schema", "check_value", "accel.rate_hz", 7)
        raise AssertionError("accepted")
    except ValueError as e:
        assert "accel.rate_hz" in str(e)
    assert "sensorbox.shared.config_schema" not in sys.modules
    try:
        lazy.call("sensorbox.shared.config_schema", "no_such_function")
        raise AssertionError("called")
    except AttributeError:
        pass
    assert "sensorbox.shared.config_schema" not in sys.modules


def _fill(blocks, size):
    # blocks[i] = a new bytearray(size) until the list or the heap is full; how many were made
    k = 0
    try:
        while k < len(blocks):
            blocks[k] = bytearray(size)
            k += 1
    except MemoryError:
        pass
    return k


def test_an_import_in_a_fragmented_heap_uses_the_reserve():
    # Fill the heap with 600-byte blocks (then what is left with small ones), then free every other one: lots of
    # free RAM, no hole for the module's 1.5 KB string, whatever holes the heap had before (the earlier version,
    # big and small blocks in turn, left one when the modules imported before grew). The import still works,
    # through the 2 KB reserve.
    lazy.rearm()
    n = 2000
    big = [None] * n  # allocated up front: growing lists would leave large freed blocks behind
    small = [None] * n
    k = _fill(big, 600)
    _fill(small, 16)
    for i in range(0, k, 2):  # (the list itself stays: freeing it would leave a 16 KB hole)
        big[i] = None
    gc.collect()
    assert gc.mem_free() > 20000
    used = lazy.used_reserve
    m = lazy.load("bigconst")
    assert len(m.TEXT) == 1500 and lazy.used_reserve == used + 1
    assert lazy._reserve is None  # no 2 KB hole while the module holds the block...
    m = None
    lazy.unload("bigconst")
    small = big = None
    gc.collect()
    assert lazy.rearm() and lazy._reserve is not None  # ...taken back once there is


def test_a_failed_import_leaves_nothing_behind():
    lazy.rearm()
    hog = [None] * 2000
    try:
        for i in range(2000):
            hog[i] = bytearray(512)
    except MemoryError:
        pass
    try:
        lazy.load(_WEB)  # ~10 KB of modules: more than the reserve can give
        raise AssertionError("loaded in a full heap")
    except MemoryError:
        pass
    hog = None
    gc.collect()
    for d in (_WEB,) + _DEPS:
        assert d not in sys.modules, d


def test_warm_leaves_out_what_the_device_does_not_run():
    # the k-nearest-neighbour evaluator and its loader are bundled for later, not run: warming them at boot
    # would intern their names for good (28 names, ~0.3 KB on this port)
    from sensorbox.device import boot

    seen = []
    load = lazy.load

    def recording(name):
        seen.append(name)
        return load(name)

    lazy.load = recording
    try:
        boot.warm_package("sensorbox.shared", boot.WARM_SKIP)
    finally:
        lazy.load = load
    assert "sensorbox.shared.features" in seen and "sensorbox.shared.trees_csv" in seen, seen
    for m in ("sensorbox.shared.neighbors", "sensorbox.shared.neighbors_csv", "sensorbox.shared.kernels_py"):
        assert m not in seen, m


def test_the_list_of_loaded_modules_takes_no_bigger_block_than_it_needs():
    # A load notes the modules loaded before it (what its import pulls in goes with it). That list, grown by
    # appends, took a block of the next power of two (512 bytes for the app's 33-64 modules): what a cut-up heap
    # lacked most often in the core soak from ROMFS at 84wK (GETs answered 503). Now it is made at its size.
    from devtest import cut_heap, largest_free

    for m in ("app", "config", "log", "supervisor", "auth", "store.core", "store.reader", "store.figures",
              "store.recover", "store.meta", "store.plan", "http.api", "http.data_api", "http.labels",
              "http.session", "http.static", "http.model_api", "http.authz", "store.capture", "store.retain"):
        if len(sys.modules) < 40:  # (about as many as the app has loaded)
            __import__("sensorbox.device." + m)
    n = len(sys.modules)
    assert 33 <= n <= 56, n  # (a grown list: 512 bytes; this one 8 bytes a module on the unix port)
    reserve = lazy._reserve
    lazy._reserve = None  # (used already: its 2 KB would make room for either)
    gc.collect()
    held = cut_heap(8 * n + 32)
    try:
        assert largest_free() < 512, largest_free()
        m = lazy.load("errno")  # (built in: its import allocates nothing, the list is all there is to make)
    finally:
        held.clear()
        lazy._reserve = reserve
    assert m.ENOENT == 2
