"""The .npy file format (version 1.0), read and written without numpy: header parsing and building.

The device streams exports as .npy and replays recordings stored as .npy; the host reads them with numpy. Only
little-endian fixed-size numeric dtypes are supported, which is all sensorbox writes.
"""

import struct

MAGIC = b"\x93NUMPY"

# dtype descr -> (struct/array typecode, item size)
DTYPES = {
    "<i2": ("h", 2), "<u2": ("H", 2), "<i4": ("i", 4), "<u4": ("I", 4),
    "<i8": ("q", 8), "<f4": ("f", 4), "<f8": ("d", 8), "|i1": ("b", 1), "|u1": ("B", 1),
}


class NpyError(ValueError):
    pass


def header(descr, shape):
    """The bytes of a version 1.0 header for a C-order array of ``descr`` (e.g. '<i2') and ``shape``.

    ``descr`` may also be a list of (field name, descr) pairs: a structured array (a table with named columns,
    e.g. ``[("t", "<i8"), ("x", "<i2")]``), whose rows are the fields packed without padding."""
    return b"".join(header_pieces(descr, shape))


def _column(descr, i):
    # field i of a structured ``descr`` as the header spells it (checked)
    name, d = descr[i]
    if d not in DTYPES or not name or "'" in name or "\\" in name:
        raise NpyError("unsupported field {} {}".format(name, d))
    return "{}('{}', '{}')".format(", " if i else "", name, d)


def header_pieces(descr, shape):
    """``header`` as a sequence of small bytes objects (a field each), for a device streaming a wide table: the
    header of 87 named feature columns is ~1.7 KB, a block a fragmented heap may not have (the fields are made
    twice, measured, then sent, rather than kept in a list: 88 of them took a 1 KB block)."""
    n = 0
    if isinstance(descr, (list, tuple)):
        for i in range(len(descr)):
            n += len(_column(descr, i))
        head, tail = "{'descr': [", "]"
    elif descr not in DTYPES:
        raise NpyError("unsupported dtype {}".format(descr))
    else:
        n = len(descr) + 2
        head, tail = "{'descr': ", ""
    if len(shape) == 1:
        shape_s = "({},)".format(shape[0])
    else:
        shape_s = "({})".format(", ".join(str(int(d)) for d in shape))
    rest = tail + ", 'fortran_order': False, 'shape': " + shape_s + ", }"
    n += len(head) + len(rest)
    pad = (64 - (len(MAGIC) + 4 + n + 1) % 64) % 64
    yield MAGIC + b"\x01\x00" + struct.pack("<H", n + pad + 1) + head.encode()
    if tail:
        for i in range(len(descr)):
            yield _column(descr, i).encode()
    else:
        yield ("'" + descr + "'").encode()
    yield (rest + " " * pad + "\n").encode()


def parse_header(head):
    """Parse the start of a .npy file. Returns (descr, shape, data_offset). ``head`` must hold the whole header
    (the first 128 bytes are enough for what sensorbox writes; call ``header_length`` to know exactly)."""
    offset = header_length(head)
    text = bytes(head[offset - _len_field(head):offset]).decode()
    descr = _field(text, "descr").strip("'\"")
    if descr not in DTYPES:
        raise NpyError("unsupported dtype {}".format(descr))
    if _field(text, "fortran_order") != "False":
        raise NpyError("fortran_order arrays are not supported")
    shape_s = _field(text, "shape").strip("()")
    shape = tuple(int(p) for p in shape_s.split(",") if p.strip())
    return descr, shape, offset


def header_length(head):
    """Total bytes before the array data."""
    if bytes(head[:6]) != MAGIC:
        raise NpyError("not a .npy file")
    return 6 + 2 + (2 if head[6] == 1 else 4) + _len_field(head)


def _len_field(head):
    if len(head) < 12:
        raise NpyError("truncated .npy header")
    if head[6] == 1:
        return struct.unpack("<H", bytes(head[8:10]))[0]
    if head[6] in (2, 3):
        return struct.unpack("<I", bytes(head[8:12]))[0]
    raise NpyError("unsupported .npy version {}".format(head[6]))


def _field(text, name):
    key = "'{}':".format(name)
    i = text.find(key)
    if i < 0:
        raise NpyError("header has no {}".format(name))
    i += len(key)
    depth = 0
    j = i
    while j < len(text):
        c = text[j]
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif (c == "," and depth == 0) or c == "}":
            break
        j += 1
    return text[i:j].strip()
