"""Load a module for a moment and give its RAM back: for code the device needs rarely (config validation, set-up).

Modules loaded from .mpy keep their bytecode in the heap for as long as they are imported (~3x the .mpy size on
the unix port). ``load`` imports a module; ``unload`` removes it from ``sys.modules`` and from its package so
the garbage collector can free it (only interned names stay), together with the modules its import pulled in
that were not loaded before (a cold module's own imports are cold too: ``web_lazy`` brings ``authz`` and
``static``, which would otherwise stay for good). Call both in one synchronous stretch, with no ``await`` in
between, so no other task can find the module half-gone; and keep no reference to it afterwards.

An import needs contiguous blocks (bytecode, constant strings), which a fragmented heap may lack with tens of KB
free: requests then failed with 503 for seconds at a time. So a ``RESERVE``-byte block is held from boot; an import
that runs out of memory releases it, collects and tries once more, and ``rearm`` (housekeeping) takes the block
back as soon as the heap allows.
"""

import gc
import sys

from micropython import const

RESERVE = const(2048)
_pulled = {}  # module name -> names of the modules its load imported for the first time
_reserve = bytearray(RESERVE)
used_reserve = 0  # times an import needed the reserve (in /api/status)


def load(name):
    global _reserve, used_reserve
    before = None if name in sys.modules else list(sys.modules)
    try:
        try:
            mod = __import__(name)
        except MemoryError:
            if _reserve is None:
                raise
            _reserve = None
            used_reserve += 1
            gc.collect()
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


def warm(package, skip=()):
    """Load and unload once every module of ``package`` (a dotted name) not loaded yet, except ``skip``
    prefixes and what does not import here (another board's drivers): at boot, while the heap is whole.

    MicroPython interns every name a module uses, for good, in pools that double: on this port the ~1,260th name
    makes it allocate a ~15 KB pool in one piece (its MemoryError reads "allocating 1280 bytes": entries, not
    bytes). Left to chance, that happens when some cold module is first used on a fragmented heap, and from then
    on every import that brings a new name fails. Interning them all at boot makes it happen once, at a time it
    can. Returns (modules loaded, modules skipped)."""
    import os

    root = __import__(package)
    for part in package.split(".")[1:]:
        root = getattr(root, part)
    loaded = skipped = 0
    todo = [(root.__path__ if isinstance(root.__path__, str) else root.__path__[0], package)]
    while todo:
        path, pkg = todo.pop()
        for e in os.ilistdir(path):
            n = e[0]
            if e[1] == 0x4000:
                todo.append((path + "/" + n, pkg + "." + n))
                continue
            if not (n.endswith(".mpy") or n.endswith(".py")) or n.startswith("__init__."):
                continue
            name = pkg + "." + n[:n.rfind(".")]
            if name in sys.modules or any(name.startswith(p) for p in skip):
                continue
            try:
                load(name)
                loaded += 1
            except Exception:  # ImportError, SyntaxError (no viper here), another platform's module
                skipped += 1
            unload(name)
            gc.collect()
    return loaded, skipped


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
