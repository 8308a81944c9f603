"""Load a module for a moment and give its RAM back: for code the device needs rarely (config validation, set-up).

    x = lazy.call("sensorbox.device.store.recover", "floor", clock, store, log)   # loaded, called, unloaded
    return await lazy.call(name, "handle", device, req)   # a coroutine: the module goes before it runs

``call`` is the one way to run a cold module's function: it loads the module, calls the function and unloads the
module when the call returns or raises. Code that needs several of a module's functions over a stretch uses
``load`` and ``unload`` itself, the unload in a ``finally``.

Modules loaded from .mpy keep their bytecode in the heap for as long as they are imported (~3x the .mpy size on
the unix port). ``load`` imports a module; ``unload`` removes it from ``sys.modules`` and from its package so
the garbage collector can free it (only interned names stay), together with the modules its import pulled in
that were not loaded before (a cold module's own imports are cold too: ``device_api`` brings ``authz`` and
``static``, which would otherwise stay for good). Call both in one synchronous stretch, with no ``await`` in
between, so no other task can find the module half-gone; and keep no reference to it afterwards.

An import needs contiguous blocks (bytecode, constant strings), which a fragmented heap may lack with tens of KB
free: requests then failed with 503 for seconds at a time. So a ``RESERVE``-byte block is held from boot; an import
that runs out of memory releases it, collects and tries once more (so does a GET or PUT request, ``release``,
then after pauses: http/server.py), and ``rearm`` (housekeeping) takes the block back as soon as the heap
allows. With the reserve used, the TLS spare (``tls_spare``: the first TLS context's block,
integrations/tls.spare) is given up in its place: a request or import saved now over a TLS start that may come
(the sink's next start without TLS takes it again).
"""

import gc
import sys

from micropython import const

RESERVE = const(2048)
_pulled = {}  # module name -> names of the modules its load imported for the first time
_reserve = bytearray(RESERVE)
used_reserve = 0  # times an import needed the reserve (in /api/status)
tls_spare = None  # integrations/tls.spare's context: given up when the reserve is used (release)


def modules():
    """The names of the modules loaded now, in a list of its exact size (one grown by appends took a 512-byte
    block, which a cut-up heap lacked more often than anything else a request asked for: the core soak from ROMFS
    at 84wK)."""
    s = [None] * len(sys.modules)
    i = 0
    for m in sys.modules:
        s[i] = m
        i += 1
    return s


def load(name):
    before = None
    try:
        try:
            if name not in sys.modules:
                before = modules()
            mod = __import__(name)
        except MemoryError:
            if not release():
                raise
            if before is None and name not in sys.modules:
                before = modules()
            mod = __import__(name)
            rearm()
    except BaseException:
        if before is not None:  # what a failed import left behind goes too
            for m in [m for m in sys.modules if m not in before]:
                _drop(m)
        raise
    if before is not None:
        new = [m for m in sys.modules if m != name and m not in before]
        if new:
            _pulled[name] = new
    for part in name.split(".")[1:]:
        mod = getattr(mod, part)
    return mod


def call(name, fn, *args):
    """Call function ``fn`` of module ``name`` with ``args``: the module is loaded for the call and unloaded when it
    returns or raises (with what its load pulled in). For a coroutine function the coroutine is made while the
    module is loaded and returned once it is unloaded: the coroutine keeps the code it runs until it ends."""
    try:
        return getattr(load(name), fn)(*args)
    finally:
        unload(name)


def release():
    """Give up the reserve (used already: the TLS spare) for a retry of whatever ran out of memory (an import, an
    idempotent request, see ``http/server.py``) and collect. False when both are used."""
    global _reserve, tls_spare, used_reserve
    if _reserve is not None:
        _reserve = None
    elif tls_spare is not None:
        tls_spare = None
    else:
        return False
    used_reserve += 1
    gc.collect()
    return True


def rearm():
    """Take the reserve back if it was used (False while the heap has no block for it)."""
    global _reserve
    if _reserve is None:
        try:
            _reserve = bytearray(RESERVE)
        except MemoryError:
            return False
    return True


def _drop(name):
    if sys.modules.pop(name, None) is None:
        return
    parent, _, child = name.rpartition(".")
    pkg = sys.modules.get(parent)
    if pkg is not None and child in pkg.__dict__:
        delattr(pkg, child)


def unload(name):
    _drop(name)
    for m in _pulled.pop(name, ()):
        _drop(m)
