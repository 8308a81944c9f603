"""Cold code gives back all it took: with the app's parts built as at boot (and the modules its services load),
every other module of the bundle is loaded and unloaded again and again, as requests do (``lazy``), and the
live heap must come back to the same figure each time.

A module that pulls in a module with native code (``@micropython.viper``) leaked on every load: the native
code and its data are kept for good (IRAM on an ESP32, a tracked pointer per load in the GC heap here). So
``models.py``, loaded for every ``GET /api/model``, leaked ~32 bytes a request by re-importing ``trees_fast`` (now
``analysis.trees``), until ``boot`` imported that once for good."""

import gc
import os
import sys

from sensorbox.device import lazy

HEAPSIZE = "160wK"
from sensorbox.device.boot import WARM_SKIP as _NEVER  # (as boot.warm: not loaded on this device)

_PER_REQUEST = ("sensorbox.device.analysis.soundclass", "sensorbox.shared.soundfeatures")


def _modules(path, pkg):
    for e in os.ilistdir(path):
        n = e[0]
        if e[1] == 0x4000:
            yield from _modules(path + "/" + n, pkg + "." + n)
        elif n.endswith(".mpy") and not n.startswith("__init__."):
            yield pkg + "." + n[:-4]


def test_every_cold_module_gives_back_all_it_took():
    import sensorbox
    from sensorbox.device import app
    from sensorbox.device.platform import unix

    plat = unix.Platform()
    plat.data_dir = os.getenv("SENSORBOX_TEST_TMP") + "/dev"
    dev = app.Device(plat, echo_log=False)  # the parts, as at boot
    from sensorbox.device.analysis import pipeline  # noqa: F401 - what the services load when they start
    from sensorbox.device.http import server  # noqa: F401
    from sensorbox.shared import soundlevel  # noqa: F401
    from sensorbox.device.sensors import sim_mic  # noqa: F401 - the simulated microphone's sampler

    # The sound classifier's modules are not warmed, but the model API loads them per request (?sensor=sound)
    # while sound.classify is off: they must give back all they took too. (Its viper kernels are imported with
    # the first SoundFeatures, for good: never per request.)
    skip = tuple(p for p in _NEVER if p not in _PER_REQUEST) + tuple(plat.warm_skip)
    root = sensorbox.__path__ if isinstance(sensorbox.__path__, str) else sensorbox.__path__[0]
    cold = [m for m in _modules(root, "sensorbox") if m not in sys.modules and not m.startswith(skip)]
    assert "sensorbox.device.analysis.models" in cold and "sensorbox.device.http.device_api" in cold, cold
    assert "sensorbox.device.analysis.soundclass" in cold and "sensorbox.shared.kernels_sound" not in cold, cold
    grew = []
    for name in cold:
        lazy.load(name)  # the first load interns the module's names for good
        lazy.unload(name)
        gc.collect()
        before = gc.mem_alloc()
        for _ in range(5):
            lazy.load(name)
            lazy.unload(name)
        gc.collect()
        if gc.mem_alloc() != before:
            grew.append((name, gc.mem_alloc() - before))
    assert not grew, grew
    assert dev.store is not None
