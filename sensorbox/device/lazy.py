"""Load a module for a moment and give its RAM back: for code the device needs rarely (config validation, set-up).

Modules loaded from .mpy keep their bytecode in the heap for as long as they are imported (~3x the .mpy size on
the unix port). ``load`` imports a module; ``unload`` removes it from ``sys.modules`` and from its package so
the garbage collector can free it (only interned names stay), together with the modules its import pulled in
that were not loaded before (a cold module's own imports are cold too: ``web_lazy`` brings ``authz`` and
``static``, which would otherwise stay for good). Call both in one synchronous stretch, with no ``await`` in
between, so no other task can find the module half-gone; and keep no reference to it afterwards.
"""

import sys

_pulled = {}  # module name -> names of the modules its load imported for the first time


def load(name):
    before = None if name in sys.modules else list(sys.modules)
    mod = __import__(name)
    if before is not None:
        new = [m for m in sys.modules if m != name and m not in before]
        if new:
            _pulled[name] = new
    for part in name.split(".")[1:]:
        mod = getattr(mod, part)
    return mod


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
