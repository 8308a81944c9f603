"""Code that the device (MicroPython), the host (CPython) and the browser (MicroPython WebAssembly) all run.

Rules for modules here: pure functions and small classes over arrays; no I/O, no asyncio, no sockets; never depend
on dict order; nothing imported from ``sensorbox.device`` (tests/host/test_shared_imports.py). ``@micropython.viper``
only in the kernels a device compiles (``kernels_viper``, ``kernels_sound``, ``kernels_emlearn``): they are imported
under ``except (ImportError, SyntaxError)``, so CPython and the WebAssembly port (no viper emitter) take the plain
ones of ``kernels_py``.

The one shape of refused input, for all three: ``reason`` says what was wrong (in words a user can act on),
``field`` names what it concerns (a config key, a query parameter, a model file's field; or None). Subclasses
where the meaning differs: ``ModelError`` here (a model refused), ``ConfigError`` (``config_schema``: a config
value), ``QueryError`` (``device/store/core``: a query of the store), ``BadRequest`` (``device/http/server``: a
request, with its HTTP status).
"""


class InputError(ValueError):
    # (one __init__ for all: ``damaged`` is ModelError's; a second __init__ in ModelError cost ~160 bytes of heap
    # in every process that imports a shared module, the device's included)
    def __init__(self, reason, field=None, damaged=False):
        super().__init__(reason)
        self.reason = reason
        self.field = field
        self.damaged = damaged


class ModelError(InputError):
    """A model refused (``model.py`` checks it, ``device/analysis/models.py`` loads it). ``damaged``: its files are
    not what was stored (the device sets it aside at boot)."""
