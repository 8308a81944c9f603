"""Viper kernels against the plain reference, bit for bit, on random and edge values (int16 extremes, zero
runs, the largest inputs each kernel's contract allows)."""

import array

from sensorbox.shared import kernels_viper as V
from sensorbox.shared import kernels as K
from sensorbox.shared import kernels_py as P
from testrng import Rng

EDGES = (-32768, -32767, -16385, -16384, -1, 0, 1, 16383, 16384, 32766, 32767)


def _data(seed, n, lo=-32768, hi=32767, edges=True):
    out = array.array("h", bytes(2 * n))
    rng = Rng(seed)
    for i in range(n):
        seed = rng.next()
        if edges and seed % 5 == 0:
            v = EDGES[(seed >> 8) % len(EDGES)]
            out[i] = lo if v < lo else (hi if v > hi else v)
        else:
            out[i] = lo + (seed >> 8) % (hi - lo + 1)
    return out


def test_facade_uses_viper():
    assert K.VARIANT == "viper" and K.fft_q15 is V.fft_q15 and V.IIR_FRAC == P.IIR_FRAC


def _odd_table(n):
    # fft_table(n) scaled by 3/4 with a non-zero sine at k = 0: the viper version's loop for zero twiddles
    # must not be taken, and the general one must still agree
    tw = K.fft_table(n)
    for k in range(n):
        tw[k] = tw[k] * 3 // 4
    tw[n >> 1] = 1000
    return tw


def test_fft_identical():
    for n in (2, 4, 8, 16, 32, 64, 128, 256, 512):
        for seed in (1, 2, 3, 4):
            tw = K.fft_table(n) if seed < 4 else _odd_table(n)
            re = _data(seed, n, -16384, 16384)
            im = _data(seed + 7, n, -16384, 16384)
            if seed == 3:
                for i in range(n):  # the worst case: every component at the contract's limit
                    re[i] = 16384 if i & 1 else -16384
                    im[i] = -16384
            r2 = array.array("h", re)
            i2 = array.array("h", im)
            V.fft_q15(re, im, n, tw)
            P.fft_q15(r2, i2, n, tw)
            assert re == r2 and im == i2, (n, seed)


def test_fft_allocates_nothing():
    import micropython

    n = 256
    tw = K.fft_table(n)
    re = _data(5, n, -16384, 16384)
    im = _data(6, n, -16384, 16384)
    r2 = array.array("h", re)
    i2 = array.array("h", im)
    micropython.heap_lock()
    try:
        V.fft_q15(re, im, n, tw)
    finally:
        micropython.heap_unlock()
    P.fft_q15(r2, i2, n, tw)
    assert re == r2 and im == i2


def test_iir_identical_with_full_scale_input():
    from sensorbox.shared.dsp_setup import A_WEIGHTING

    for rate in (16000, 8000):
        q = A_WEIGHTING[rate]
        a = K.IIRQ(q)
        b = K.IIRQ(q)
        x = _data(11, 600)
        for i in range(100, 200):
            x[i] = 32767 if (i // 3) & 1 else -32768  # full-scale square wave
        y1 = array.array("h", bytes(1200))
        y2 = array.array("h", bytes(1200))
        V.iir_q(x, y1, 600, a.coefs, a.state, a.nsec)
        P.iir_q(x, y2, 600, b.coefs, b.state, b.nsec)
        assert y1 == y2 and a.state == b.state, rate
    # extreme coefficients: -2 and just under 2
    q = (-2 * K.Q28, 2 * K.Q28 - 1, -2 * K.Q28, 2 * K.Q28 - 1, K.Q28 - 1)
    a = K.IIRQ(q)
    b = K.IIRQ(q)
    x = _data(12, 50, -300, 300)
    y1 = array.array("h", bytes(100))
    y2 = array.array("h", bytes(100))
    V.iir_q(x, y1, 50, a.coefs, a.state, a.nsec)
    P.iir_q(x, y2, 50, b.coefs, b.state, b.nsec)
    assert y1 == y2


def test_scalar_kernels_identical():
    for v in (0, 1, 2, 3, 99, 1 << 20, (1 << 30) - 1, 1 << 30, (1 << 31) - 1):
        assert V.isqrt(v) == P.isqrt(v), v
    for seed in (1, 2, 3, 4):
        n = 128
        x = _data(seed, 3 * n)
        out1 = array.array("i", bytes(20))
        out2 = array.array("i", bytes(20))
        d1 = array.array("h", bytes(2 * n))
        d2 = array.array("h", bytes(2 * n))
        V.magnitude(x, 0, 3, n, d1)
        P.magnitude(x, 0, 3, n, d2)
        assert d1 == d2
        V.gather(x, 2, 3, n, d1)
        P.gather(x, 2, 3, n, d2)
        assert d1 == d2
        V.moments(d1, n, out1)
        P.moments(d2, n, out2)
        assert out1 == out2
        for mean in (-32768, -5, 0, 77, 32767):
            for sh in (0, 3, 9):
                assert V.sumsq_dev(d1, n, mean, sh) == P.sumsq_dev(d1, n, mean, sh)
        c1 = array.array("h", bytes(2 * n))
        c2 = array.array("h", bytes(2 * n))
        for mean, sh in ((0, -2), (100, -1), (0, 0)):
            V.center(d1, n, mean, sh, c1)
            P.center(d1, n, mean, sh, c2)
            assert c1 == c2
        small = _data(seed, n, -4000, 4000)
        V.center(small, n, -3, 2, c1)
        P.center(small, n, -3, 2, c2)
        assert c1 == c2
        assert V.crossings(c1, n) == P.crossings(c2, n)
        assert V.dot(c1, small, n, 8) == P.dot(c2, small, n, 8)
        assert V.band_power(small, c1, 3, 100) == P.band_power(small, c2, 3, 100)
        assert V.argmax_power(small, c1, 1, 64) == P.argmax_power(small, c2, 1, 64)
        V.sumsq_i16(x, 5, 300, out1)
        P.sumsq_i16(x, 5, 300, out2)
        assert out1[0] == out2[0] and out1[1] == out2[1]
        s1 = array.array("h", x)
        s2 = array.array("h", x)
        V.sort_i16(s1, 3 * n)
        P.sort_i16(s2, 3 * n)
        assert s1 == s2
        for i in range(1, 3 * n):
            assert s1[i - 1] <= s1[i]


def test_plain_shortcuts_identical():
    # The plain kernels' shortcuts (the browser's): magnitudes below the clamp (a float square root), sums of
    # squares around a mean too close to every int16 to clamp, the batch FFT; viper as the reference.
    n = 128
    fr = _data(21, 3 * n, -15000, 15000)
    for i, t in enumerate(((26753, 0, 0), (-26753, 0, 0), (26754, 0, 0), (15447, 15447, 15446),
                           (15446, 15446, 15446), (-32768, -32768, -32768), (32767, 1, -1), (0, 0, 0))):
        for k in range(3):
            fr[9 * i + k] = t[k]
    d1 = array.array("h", bytes(2 * n))
    d2 = array.array("h", bytes(2 * n))
    V.magnitude(fr, 0, 3, n, d1)
    P.magnitude(fr, 0, 3, n, d2)
    assert d1 == d2
    x = _data(22, n)
    for mean in (-13574, -13573, 13572, 13573):
        assert V.sumsq_dev(x, n, mean, 4) == P.sumsq_dev(x, n, mean, 4), mean
    for n, count in ((16, 5), (128, 3)):
        tw = K.fft_table(n)
        res = [_data(30 + j, n, -16384, 16384) for j in range(count)]
        ims = [_data(40 + j, n, -16384, 16384) if j == 1 else array.array("h", bytes(2 * n)) for j in range(count)]
        want = [(array.array("h", r), array.array("h", i)) for r, i in zip(res, ims)]
        for r, i in want:
            V.fft_q15(r, i, n, tw)
        P.fft_q15_many(res, ims, n, tw)
        h = n // 2 + 1
        for j in range(count):
            assert res[j][:h] == want[j][0][:h] and ims[j][:h] == want[j][1][:h], (n, j)


def test_sort_identical_on_every_size_and_order():
    # Shell sort: sizes around the gap boundaries (4, 13, 40, 121), sorted, reversed and constant input, and
    # elements past n left alone.
    for n in (0, 1, 2, 3, 4, 5, 13, 14, 40, 41, 121, 122, 128, 512):
        for kind in range(4):
            x = _data(n + kind, n + 2)
            if kind == 1:
                for i in range(n + 2):
                    x[i] = i - 100
            elif kind == 2:
                for i in range(n + 2):
                    x[i] = 32767 - 257 * i
            elif kind == 3:
                for i in range(n):
                    x[i] = -32768 if i & 1 else 32767
            y = array.array("h", x)
            want = sorted(x[:n]) + list(x[n:])
            V.sort_i16(x, n)
            P.sort_i16(y, n)
            assert list(x) == want and list(y) == want, (n, kind)


def test_copy_i16_matches_and_stays_in_range():
    # The sample ring's copy: offsets on both sides, int16 extremes, the overlapping forward copy the pipeline's
    # window slide does (destination before source), and nothing written outside [doff, doff + n).
    x = _data(17, 300)
    for soff, doff, n in ((0, 0, 300), (5, 17, 100), (299, 0, 1), (40, 3, 0), (128, 0, 172)):
        d1 = array.array("h", [7] * 320)
        d2 = array.array("h", [7] * 320)
        V.copy_i16(x, soff, d1, doff, n)
        P.copy_i16(x, soff, d2, doff, n)
        assert d1 == d2, (soff, doff, n)
        assert list(d1[doff:doff + n]) == list(x[soff:soff + n])
        assert all(v == 7 for v in d1[:doff]) and all(v == 7 for v in d1[doff + n:])
    y1 = array.array("h", x)
    y2 = array.array("h", x)
    V.copy_i16(y1, 100, y1, 0, 200)
    P.copy_i16(y2, 100, y2, 0, 200)
    assert y1 == y2 and list(y1[:200]) == list(x[100:300]) and K.copy_i16 is V.copy_i16


def test_plain_kernels_exact_where_they_take_shortcuts():
    # kernels_py computes square roots with math.sqrt (one correction step) and copies with slices (memoryviews
    # too): the same results as the viper kernels at every perfect square's edge and on int16 extremes
    for k in (1, 2, 3, 181, 4095, 4096, 23170, 26753, 32767, 32768, 46339, 46340):
        for v in (k * k - 1, k * k, k * k + 1):
            if v < (1 << 31):
                assert V.isqrt(v) == P.isqrt(v), v
    for vals in ((-32768, 32767, -32767), (26753, -26753, 26754), (32767, 32767, 32767), (0, 0, 0), (1, -1, 0)):
        x = array.array("h", list(vals) * 64)
        d1 = array.array("h", bytes(128))
        d2 = array.array("h", bytes(128))
        V.magnitude(x, 0, 3, 64, d1)
        P.magnitude(memoryview(x), 0, 3, 64, d2)
        assert d1 == d2, vals
    x = _data(3, 400)
    for off, n in ((0, 128), (17, 200), (399, 1), (5, 0)):
        d1 = array.array("h", [9] * 256)
        d2 = array.array("h", [9] * 256)
        V.gather(x, off, 1, n, d1)
        P.gather(memoryview(x), off, 1, n, d2)
        assert d1 == d2, (off, n)


def test_sound_feature_kernels_identical_at_their_limits():
    # window_q15, mel_q8, log2s_q6, pos_diff_sum (sensorbox.shared.soundfeatures): random and extreme inputs
    from sensorbox.shared import kernels_sound as VS
    from sensorbox.shared import soundfeatures as SF

    SF.SoundFeatures(16000)
    assert SF._ks is VS  # (imported with the first SoundFeatures)

    n = 512
    win = SF.hann(n)
    seg, wt = SF.mel_table(n, 16000, 16)
    d1 = array.array("h", bytes(2 * n))
    d2 = array.array("h", bytes(2 * n))
    for seed in (1, 2, 3):
        x = _data(seed, n)
        for mean, sh in ((0, -2), (-32768, -2), (32767, -2), (5, -1), (0, 0), (0, 3)):
            src = x if sh < 0 else _data(seed, n, -16384 >> sh, 16383 >> sh)
            VS.window_q15(src, n, mean if sh < 0 else 0, sh, win, d1)
            P.window_q15(src, n, mean if sh < 0 else 0, sh, win, d2)
            assert d1 == d2, (seed, mean, sh)
        re = _data(seed, n, -1000, 1000, False)
        im = _data(seed + 5, n, -1000, 1000, False)
        re[40 * seed] = im[40 * seed] = -23170  # one bin's power near 2**30, the total below 2**31

        a1 = array.array("i", bytes(4 * 18))
        a2 = array.array("i", bytes(4 * 18))
        a1[3] = a2[3] = 99  # zeroed first
        t1 = VS.mel_q8(re, im, 1, n // 2, seg, wt, a1, 18)
        t2 = P.mel_q8(re, im, 1, n // 2, seg, wt, a2, 18)
        assert t1 == t2 and a1 == a2 and sum(a1) == t1
    src = array.array("i", [0, 1, 2, 3, 63, 64, 65, 127, 128, 1000, 65535, 65536, (1 << 30) - 1, 1 << 30,
                            (1 << 31) - 1])
    o1 = array.array("h", bytes(2 * len(src)))
    o2 = array.array("h", bytes(2 * len(src)))
    for add, floor in ((0, -3072), (-1765, -3072), (30000, -32768), (-40000, -5)):
        VS.log2s_q6(src, 0, len(src), o1, 0, add, floor)
        P.log2s_q6(src, 0, len(src), o2, 0, add, floor)
        assert o1 == o2, (add, floor, o1, o2)
    VS.log2s_q6(src, 2, 5, o1, 3, 0, -3072)
    assert list(o1[3:8]) == [64, 96, 382, 384, 385], list(o1[3:8])  # 2, 3, 63, 64, 65: exact at powers of two
    a = _data(7, 40)
    b = _data(8, 40)
    assert VS.pos_diff_sum(a, 3, b, 1, 32) == P.pos_diff_sum(a, 3, b, 1, 32)
