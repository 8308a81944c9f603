"""The .npy header reader/writer, checked against a file numpy wrote (data/watch_excerpt.npy)."""

import struct

from sensorbox.shared import npy

DATA_FILES = ["data/watch_excerpt.npy"]


def test_reads_numpy_header():
    with open("data/watch_excerpt.npy", "rb") as f:
        head = f.read(128)
    descr, shape, offset = npy.parse_header(head)
    assert descr == "<i2"
    assert shape[1] == 6 and shape[0] > 20000
    assert offset % 64 == 0


def test_header_roundtrip():
    for descr, shape in (("<i2", (10, 3)), ("<f4", (7,)), ("<i8", (0, 2)), ("<u4", (123456789, 1))):
        h = npy.header(descr, shape)
        assert len(h) % 64 == 0
        d2, s2, off = npy.parse_header(h)
        assert (d2, s2, off) == (descr, shape, len(h))


def test_rejects_garbage():
    for bad in (b"", b"hello world, not numpy", b"\x93NUMPY\x09\x00" + b"x" * 20,
                npy.header("<i2", (3,)).replace(b"False", b"True ")):
        try:
            npy.parse_header(bad)
            raise AssertionError("accepted {}".format(bad))
        except npy.NpyError:
            pass


def test_values_match_struct_layout():
    with open("data/watch_excerpt.npy", "rb") as f:
        head = f.read(128)
        _, shape, offset = npy.parse_header(head)
        f.seek(offset)
        row = struct.unpack("<6h", f.read(12))
    # First frame of the excerpt: a wrist nearly at rest, so the acceleration is about 1 g = 4096 counts.
    g2 = row[0] * row[0] + row[1] * row[1] + row[2] * row[2]
    assert 3000 * 3000 < g2 < 5500 * 5500, row


def test_structured_header_for_tables():
    h = npy.header([("t", "<i8"), ("x", "<i2")], (5,))
    assert len(h) % 64 == 0 and h[:6] == npy.MAGIC
    text = h[10:].decode()
    assert text.startswith("{'descr': [('t', '<i8'), ('x', '<i2')], 'fortran_order': False, 'shape': (5,), }")
    assert text.endswith("\n")
    for bad in ([("t", "<i3")], [("", "<i2")], [("a'b", "<i2")]):
        try:
            npy.header(bad, (1,))
            raise AssertionError("accepted {}".format(bad))
        except npy.NpyError:
            pass


def test_wide_header_comes_in_small_pieces():
    # 87 named columns (t + the 86 features): ~1.7 KB of header, streamed by the device in pieces of a field each
    cols = [("t", "<i8")] + [("feature_{}_mean".format(i), "<i2") for i in range(86)]
    pieces = list(npy.header_pieces(cols, (7,)))
    h = b"".join(pieces)
    assert h == npy.header(cols, (7,)) and len(h) > 1500 and len(h) % 64 == 0
    assert max(len(p) for p in pieces) < 128  # a field each; the last carries the padding
    assert npy.header_length(h) == len(h)
    text = h[10:].decode()
    assert text.startswith("{'descr': [('t', '<i8'), ('feature_0_mean', '<i2'), ")
    assert "('feature_85_mean', '<i2')], 'fortran_order': False, 'shape': (7,), }" in text
