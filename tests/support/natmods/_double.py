"""Shared by the test doubles of emlearn-micropython's native modules (this folder): what the C code's
``mp_get_buffer_raise`` and typecode checks do, on MicroPython, whose arrays have no ``typecode`` attribute."""

import array


def typecode(a):
    """The typecode the C code would see for ``a``; TypeError for an object without the buffer protocol."""
    if isinstance(a, array.array):
        return repr(a)[7]  # "array('h', [...])"
    if isinstance(a, (bytes, bytearray, memoryview)):
        return "B"
    raise TypeError("object with buffer protocol required")


def require(a, code, seen=None):
    """ValueError unless ``a`` is an array of typecode ``code``. ``seen``: a list of arrays already checked (the
    check makes a string; steady-state calls with the same arrays must allocate nothing, as the C code does)."""
    if seen is not None:
        for s in seen:
            if s is a:
                return
    if typecode(a) != code:
        raise ValueError("expecting {} array".format("int16 (h)" if code == "h" else "float"))
    if seen is not None:
        if len(seen) >= 16:
            seen.pop(0)
        seen.append(a)
