"""The store's block codec (shared/codec.py, the reference encoder shared/codec_enc.py), the same on CPython,
MicroPython and MicroPython WebAssembly: golden bytes (an interpreter that coded otherwise would write segments
the others misread), every int16 block round-trips, noise is left as it is, damaged payloads never make the decoder
raise or write past the room it was given."""

import struct

from sensorbox.shared import codec, codec_enc
from testrng import Rng

DATA_FILES = ["data/watch_excerpt.npy"]


def _rand(seed):
    return Rng(seed).below


def _pack(vals):
    return struct.pack("<{}h".format(len(vals)), *vals)


def _recording(rows):
    """The first ``rows`` accelerometer frames (x, y, z) of the replayed recording, as the store keeps them."""
    with open("data/watch_excerpt.npy", "rb") as f:
        head = f.read(128)
        from sensorbox.shared import npy

        f.seek(npy.header_length(head))
        b = f.read(12 * rows)
    out = bytearray(6 * rows)
    for i in range(rows):
        out[6 * i:6 * i + 6] = b[12 * i:12 * i + 6]
    return bytes(out)


# (rows, words, values) -> coded bytes (hex), made on CPython; the third block is a class rollup's (windows, then
# the seconds of two classes: sparse columns, order 0)
GOLDEN = (
    (3, 2, (0, 0, 1, -1, 2, -2), "03840e002006"),
    (4, 3, (1000, 7, -5, 1010, 7, -4, 1020, 7, -3, 1030, 7, -2), "04a10f14a5b4030068ff5f54"),
    (6, 3, (47, 60, 0, 46, 0, 0, 47, 31, 29, 47, 0, 60, 46, 0, 0, 47, 0, 0), "06bd004892d85d0f18b93b"),
)
# ... as the version before sparse columns coded them: still read as they were
OLD = ((3, 2, (0, 0, 1, -1, 2, -2), "0301008806001003"),)


def test_golden_bytes_and_the_recording():
    out = bytearray(2048)
    for n, w, vals, want in GOLDEN:
        k = codec_enc.encode(_pack(vals), n, w, out, len(out))
        assert "".join("{:02x}".format(x) for x in out[:k]) == want, (n, w, out[:k])
    for n, w, vals, hexed in GOLDEN + OLD:
        src = bytes(int(hexed[i:i + 2], 16) for i in range(0, len(hexed), 2))
        dec = bytearray(2 * n * w)
        assert codec.decode(src, 0, len(src), w, dec, 0, len(dec)) == n and bytes(dec) == _pack(vals), hexed
    src = _recording(50)
    k = codec_enc.encode(src, 50, 3, out, len(out))
    assert 150 < k < 230, k  # 300 bytes of the recording: ~1.5x
    dec = bytearray(300)
    assert codec.decode(out, 0, k, 3, dec, 0, 300) == 50 and bytes(dec) == src


def test_blocks_round_trip_and_noise_stays_raw():
    rand = _rand(7)
    out = bytearray(2048)
    dec = bytearray(2048)
    coded = 0
    for t in range(60):
        n = 1 + rand(60)
        w = 1 + rand(5)
        kind = t % 4
        vals = []
        for i in range(n * w):
            if kind == 0:
                vals.append(rand(65536) - 32768)
            elif kind == 1:
                vals.append((vals[i - w] if i >= w else 0) + rand(21) - 10 if i >= w else rand(65536) - 32768)
            elif kind == 2:
                vals.append((32767, -32768, 0)[rand(3)])
            else:  # mostly 0 (a rollup's seconds per class): sparse columns
                vals.append(0 if rand(3) else (1, 60, 255, -1, -32768)[rand(5)])
        vals = [((v + 32768) & 0xFFFF) - 32768 for v in vals]
        src = _pack(vals)
        k = codec_enc.encode(src, n, w, out, len(out))
        if k < 0:
            assert kind in (0, 2) or n < 4, (t, n, w)
            continue
        coded += 1
        assert k < 1 + 2 * n * w
        assert codec.decode(out, 0, k, w, dec, 0, len(dec)) == n and bytes(dec[:2 * n * w]) == src, (t, n, w)
    assert coded >= 20
    # a block stored raw: a 0 byte and the rows
    raw = b"\x00" + _pack([1, 2, 3, 4])
    assert codec.decode(raw, 0, len(raw), 2, dec, 0, 100) == 2 and bytes(dec[:8]) == _pack([1, 2, 3, 4])


def test_corrupt_payloads_are_refused_never_overrun():
    out = bytearray(512)
    src = _recording(40)
    k = codec_enc.encode(src, 40, 3, out, len(out))
    dec = bytearray(240)
    bad = 0
    for cut in (1, 5, k - 1):
        assert codec.decode(out, 0, cut, 3, dec, 0, 240) == -1  # cut short
    assert codec.decode(out, 0, k, 3, dec, 0, 239) == -1  # more rows than the room given
    assert codec.decode(out, 0, k, 4, dec, 0, 240) == -1  # the wrong width
    junk = bytearray(out[:k])
    dec = bytearray(250)
    for i in range(k):  # any byte changed: refused or decoded into the room given, never past it, never raising
        junk[i] ^= 0x5A
        dec[240:] = b"\xee" * 10
        got = codec.decode(junk, 0, k, 3, dec, 0, 240)
        assert got == -1 or 0 < got <= 40, (i, got)
        bad += got == -1
        assert bytes(dec[240:]) == b"\xee" * 10, i
        junk[i] ^= 0x5A
    assert bad > 0  # (a payload is read only once its block's CRC-32 holds: that is what finds damage)
    assert codec.decode(b"\x00\x01\x02\x03", 0, 4, 2, dec, 0, 240) == -1  # raw, not a whole row
