"""Load a module for a moment and give its RAM back: for code the device needs rarely (config validation, set-up).

Modules loaded from .mpy keep their bytecode in the heap for as long as they are imported (~3x the .mpy size on
the unix port). ``load`` imports a module; ``unload`` removes it from ``sys.modules`` and from its package so
the garbage collector can free it (only interned names stay). Call both in one synchronous stretch, with no
``await`` in between, so no other task can find the module half-gone; and keep no reference to it afterwards.
"""

import sys


def load(name):
    mod = __import__(name)
    for part in name.split(".")[1:]:
        mod = getattr(mod, part)
    return mod


def unload(name):
    if sys.modules.pop(name, None) is None:
        return
    parent, _, child = name.rpartition(".")
    pkg = sys.modules.get(parent)
    if pkg is not None and child in pkg.__dict__:
        delattr(pkg, child)
