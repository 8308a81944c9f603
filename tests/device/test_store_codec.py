"""The block codec on the device (issue 16.1): the viper encoder (``device/store/core.encode``) writes exactly the
bytes of the shared reference (``shared/codec_enc``), every block decodes to its rows, and encoding a block allocates
nothing."""

import array

from sensorbox.device.store import core as viper  # the store's viper encoder and decoder

codec_dec = viper
from sensorbox.shared import codec, codec_enc
from testrng import Rng, spread


def _rng(seed):
    return Rng(spread(seed)).below


def _rand_block(rand, n, w, kind):
    a = array.array("h", bytes(2 * n * w))
    for i in range(n * w):
        if kind == 0:  # full-scale noise
            a[i] = rand(65536) - 32768
        elif kind == 1:  # small steps from a walking value
            a[i] = (a[i - w] if i >= w else rand(2000) - 1000) + rand(9) - 4
        elif kind == 2:  # the edges
            a[i] = (32767, -32768, 0, -1, 1)[rand(5)]
        elif kind == 3:  # a ramp (a clock) and a constant
            a[i] = (i // w) * 1280 if i % w == 0 else 7
        else:  # mostly 0, as a class rollup's seconds per class (sparse columns), with the edges now and then
            a[i] = 0 if rand(3) else (1, 60, 359, -1, 32767, -32768)[rand(6)]
    return a


def test_viper_encoder_writes_the_reference_bytes_and_blocks_round_trip():
    rand = _rng(3)
    out_v = bytearray(2100)
    out_p = bytearray(2100)
    dec = bytearray(2100)
    coded = raw = 0
    for t in range(200):
        n = 1 + rand(170)
        w = 1 + rand(6)
        src = _rand_block(rand, n, w, t % 5)
        b = bytes(src)
        mv = viper.encode(src, n, w, out_v, 2100, src, 255)
        mp = codec_enc.encode(b, n, w, out_p, 2100)
        assert mv == mp, (t, n, w, mv, mp)
        if mv > 0:
            assert out_v[:mv] == out_p[:mp], (t, n, w)
            assert codec.decode(out_v, 0, mv, w, dec, 0, 2100) == n
            assert dec[:2 * n * w] == b, (t, n, w)
            coded += 1
        else:
            raw += 1
            assert t % 5 in (0, 2) or n < 3, (t, n, w)  # noise is left raw (and a row or two: headers)
        for cap in (mp - 1, 8):  # too small a buffer: refused, never overrun
            if 0 < cap < mp:
                out_v[cap:] = b"\xee" * (2100 - cap)
                assert viper.encode(src, n, w, out_v, cap, src, 255) == -1
                assert out_v[cap:] == b"\xee" * (2100 - cap)
    assert coded > 60 and raw > 10, (coded, raw)


def test_a_block_in_two_buffers_codes_as_in_one():
    # the rollups' blocks: the first k2 rows in one buffer, the rest at the start of another (two of 510 bytes, no
    # 1 KB block): the same bytes as the rows in one buffer
    rand = _rng(17)
    out_v = bytearray(2100)
    out_p = bytearray(2100)
    split = 0
    for t in range(100):
        n = 1 + rand(120)
        w = 1 + rand(12)
        src = bytes(_rand_block(rand, n, w, (1, 3, 4)[t % 3]))
        k2 = 2 + rand(n)
        a = bytearray(src[:2 * w * k2]) + b"\xee" * 8  # (bytes after a part are never read)
        b = bytearray(src[2 * w * k2:]) + b"\xee" * 8
        mv = viper.encode(a, n, w, out_v, 2100, b, k2)
        mp = codec_enc.encode(src, n, w, out_p, 2100)
        assert mv == mp and (mv < 0 or out_v[:mv] == out_p[:mp]), (t, n, w, k2)
        split += k2 < n and mv > 0
    assert split > 40, split
    assert viper.encode(src, 3, 1, out_v, 2100, src, 1) == -1  # (the first two rows are in the first part)


def test_encoding_a_block_allocates_nothing():
    import micropython

    rand = _rng(5)
    src = _rand_block(rand, 128, 3, 1)
    mv = memoryview(src)
    out = bytearray(1024)
    micropython.heap_lock()
    try:
        n = viper.encode(mv, 128, 3, out, 1024, mv, 255)
    finally:
        micropython.heap_unlock()
    assert n > 0


def test_viper_decoder_reads_and_refuses_as_the_reference():
    rand = _rng(11)
    out = bytearray(2100)
    d1 = bytearray(2100)
    d2 = bytearray(2100)
    for t in range(150):
        n = 1 + rand(170)
        w = 1 + rand(6)
        src = _rand_block(rand, n, w, t % 5)
        m = viper.encode(src, n, w, out, 2100, src, 255)
        if m < 0:
            m = 1 + 2 * n * w
            out[0] = 0
            out[1:m] = bytes(src)
        for cut in (m, m - 1, m // 2):  # whole, then cut short
            for cap in (2 * n * w, 2 * n * w - 1):
                k1 = codec.decode(out, 0, cut, w, d1, 0, cap)
                k2 = codec_dec.decode(out, 0, cut, w, d2, 0, cap)
                assert k1 == k2 and (k1 < 0 or d1[:2 * n * w] == d2[:2 * n * w]), (t, cut, cap, k1, k2)
        if m > 2:  # a byte changed: the same answer
            out[1 + rand(m - 1)] ^= 0x24
            k1 = codec.decode(out, 0, m, w, d1, 0, 2100)
            k2 = codec_dec.decode(out, 0, m, w, d2, 0, 2100)
            assert k1 == k2 and (k1 < 0 or d1[:2 * n * w] == d2[:2 * n * w]), (t, k1, k2)
