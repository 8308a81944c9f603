"""Cold code: ``lazy.load``/``unload`` give back the module and the modules its import pulled in for the first
time (a cold module's own imports are cold too), and keep what was loaded before."""

import gc
import sys

from sensorbox.device import lazy
from sensorbox.device.http import server  # noqa: F401 - resident in the app; web_lazy imports it

_WEB = "sensorbox.device.http.web_lazy"
_DEPS = ("sensorbox.device.http.authz", "sensorbox.device.http.static")


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
        assert d in sys.modules, d  # web_lazy imports them at its top
    m = None
    lazy.unload(_WEB)
    for d in (_WEB,) + _DEPS:
        assert d not in sys.modules, d
    gc.collect()
    # every byte comes back (the modules take ~10 KB while loaded; before, authz and static stayed for good)
    assert gc.mem_alloc() - base <= 64, gc.mem_alloc() - base


def test_a_module_loaded_before_stays():
    from sensorbox.device.http import static  # noqa: F401 - now resident

    lazy.load(_WEB)
    lazy.unload(_WEB)
    assert "sensorbox.device.http.static" in sys.modules
    assert "sensorbox.device.http.server" in sys.modules
    assert _WEB not in sys.modules
    lazy.unload("sensorbox.device.http.static")
