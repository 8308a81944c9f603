"""DSP kernels through the facade (viper on the unix port, plain Python on CPython and WebAssembly): the same
expected outputs on every interpreter."""

import array
import math
import sys

from sensorbox.shared import kernels as K
from sensorbox.shared import kernels_float as KF
from testrng import int16s

# A check of results, not of RAM (the device runs the viper kernels): the plain kernels' lane arithmetic (big-int
# temporaries of 1,024 lanes) left no 8 KB block at 96wK once the test helpers took ~1 KB more (testrng).
HEAPSIZE = "112wK"


def _checksum(*arrays):
    c = 0
    for a in arrays:
        for v in a:
            c = (c * 31 + v) & 0xFFFFFFF
    return c


def test_variant_is_the_fastest_present():
    if sys.implementation.name == "micropython" and sys.platform == "linux":
        assert K.VARIANT == "viper"
    else:
        assert K.VARIANT == "python"
    assert KF.FLOAT_VARIANT == "python"  # emlearn-micropython cannot be installed here


def test_fft_table_matches_cos_sin():
    for n in (2, 16, 128, 512):
        tw = K.fft_table(n)
        for k in range(n // 2):
            assert abs(tw[k] - 32767 * math.cos(2 * math.pi * k / n)) <= 0.5 + 1e-9
            assert abs(tw[n // 2 + k] - 32767 * math.sin(2 * math.pi * k / n)) <= 0.5 + 1e-9
    for bad in (0, 3, 100, 1024):
        try:
            K.fft_table(bad)
            raise AssertionError("accepted FFT size {}".format(bad))
        except ValueError:
            pass


def test_fft_q15_against_float_dft():
    n = 64
    re = int16s(3, n, -16384, 16384)
    im = int16s(4, n, -16384, 16384)
    ref = []
    for k in range(n):
        sr = si = 0.0
        for t in range(n):
            a = -2 * math.pi * k * t / n
            sr += re[t] * math.cos(a) - im[t] * math.sin(a)
            si += re[t] * math.sin(a) + im[t] * math.cos(a)
        ref.append((sr / n, si / n))
    K.fft_q15(re, im, n, K.fft_table(n))
    for k in range(n):
        assert abs(re[k] - ref[k][0]) <= 4 and abs(im[k] - ref[k][1]) <= 4, (k, re[k], im[k], ref[k])


def test_fft_q15_golden_256():
    # Bit-exact expected output (same on CPython, viper and WebAssembly), full-range input.
    n = 256
    re = int16s(1, n, -16384, 16384)
    im = int16s(2, n, -16384, 16384)
    K.fft_q15(re, im, n, K.fft_table(n))
    assert _checksum(re, im) == FFT256_CHECKSUM


def test_iir_q_close_to_float_and_golden():
    # A-weighting at 16 kHz (Q28) vs the same filter in float (transposed DF2).
    from sensorbox.shared import kernels_py
    from sensorbox.shared.dsp_setup import A_WEIGHTING

    q = A_WEIGHTING[16000]
    sos = []
    for s in range(3):
        c = q[5 * s:5 * s + 5]
        sos += [c[0] / K.Q28, c[1] / K.Q28, c[2] / K.Q28, 1.0, c[3] / K.Q28, c[4] / K.Q28]
    x = int16s(5, 800, -20000, 20000)
    f = K.IIRQ(q)
    y = array.array("h", bytes(1600))
    f.run(x, y, 400)
    f.run(x[400:], memoryview(y)[400:], 400)  # state carries across calls
    ref = array.array("d", x)
    kernels_py.iir_float(sos, array.array("d", [0.0] * 6), ref)
    worst = 0
    for i in range(800):
        worst = max(worst, abs(y[i] - ref[i]))
    assert worst <= 2, worst
    assert _checksum(y) == IIR_CHECKSUM


def test_iir_q_saturates_and_rejects_bad_coefficients():
    f = K.IIRQ((K.Q28, 0, 0, 0, 0))  # gain 1: identity
    x = array.array("h", [32767, -32768, 0, 5, -5])
    y = array.array("h", bytes(10))
    f.run(x, y, 5)
    assert list(y) == [32767, -32768, 0, 5, -5]
    g = K.IIRQ((2 * K.Q28 - 1, 0, 0, 0, 0))  # gain ~2: clips
    g.run(x, y, 5)
    assert list(y) == [32767, -32768, 0, 10, -10]
    for bad in ((2 * K.Q28, 0, 0, 0, 0), (0, 0, 0, 0)):
        try:
            K.IIRQ(bad)
            raise AssertionError("accepted {}".format(bad))
        except ValueError:
            pass


def test_integer_helpers():
    for v in (0, 1, 2, 3, 4, 15, 16, 17, 1 << 20, (1 << 30) - 1, (1 << 30), (1 << 31) - 1):
        r = K.isqrt(v)
        assert r * r <= v < (r + 1) * (r + 1), v
    x = array.array("h", [3, -7, 32767, -32768, 0, 3])
    m = array.array("i", bytes(20))
    K.moments(x, 6, m)
    assert list(m) == [-2, -32768, 32767, 10 + 32774 + 65535 + 32768 + 3, 65535]
    assert K.crossings(x, 6) == 4
    assert K.sumsq_dev(x, 6, 0, 0) == 9 + 49 + 32767 ** 2 + 32768 ** 2 + 9
    assert K.sumsq_dev(x, 3, -32768, 2) == ((32771 ** 2) >> 2) + ((32761 ** 2) >> 2) + ((46340 ** 2) >> 2)  # clamped
    K.sort_i16(x, 6)
    assert list(x) == [-32768, -7, 0, 3, 3, 32767]
    d = array.array("h", bytes(12))
    K.center(x, 6, 3, -2, d)
    assert list(d) == [(-32771) >> 2, -3, -1, 0, 0, 8191]
    K.center(array.array("h", [1, -1]), 2, 0, 3, d)
    assert d[0] == 8 and d[1] == -8
    fr = array.array("h", [3, 4, 0, 32767, 32767, 32767, -1, -1, -1])
    mag = array.array("h", bytes(6))
    K.magnitude(fr, 0, 3, 3, mag)
    assert list(mag) == [5, 32767, 1]
    g = array.array("h", bytes(6))
    K.gather(fr, 1, 3, 3, g)
    assert list(g) == [4, 32767, -1]
    a = array.array("h", [100, -200, 300])
    assert K.dot(a, a, 3, 2) == (10000 >> 2) + (40000 >> 2) + (90000 >> 2)
    assert K.band_power(a, a, 0, 3) == 2 * (10000 + 40000 + 90000)
    assert K.argmax_power(a, a, 0, 2) == 1 and K.argmax_power(a, a, 0, 3) == 2
    sq = array.array("i", bytes(8))
    big = array.array("h", [-32768] * 1000)
    K.sumsq_i16(big, 0, 1000, sq)
    assert sq[0] * 65536 + sq[1] == 1000 * 32768 * 32768 and 0 <= sq[1] < 65536


def _isqrt(v):
    r = 0
    b = 1 << 30
    while b:
        if (r + b) * (r + b) <= v:
            r += b
        b >>= 1
    return r


def test_fft_q15_many_equals_fft_q15():
    # The transforms side by side in the lanes of big integers (the plain kernels' batch FFT, for the browser and
    # the host): bins 0..n/2 as fft_q15 leaves them, for real and complex input, inputs at the contract's
    # limits, more transforms than one pass takes (130 > kernels_py._LANES).
    from sensorbox.shared import kernels_py as P

    sizes = ((2, 130), (16, 5), (128, 3), (256, 1))
    if not (sys.implementation.name == "micropython" and sys.platform == "linux"):  # (not in a device's heap)
        sizes += ((128, 40), (512, 3))
    tws = [K.fft_table(n) for n, _ in sizes]  # (first: each loads the set-up code for a moment, dsp_setup)
    for (n, count), tw in zip(sizes, tws):
        res = []
        ims = []
        for j in range(count):
            re = int16s(j + n, n, -16384, 16384)
            im = int16s(j + 99, n, -16384, 16384) if j % 3 == 1 else array.array("h", bytes(2 * n))
            if j % 3 == 2:
                for i in range(n):
                    re[i] = 16384 if (i * 7 + j) % 3 else -16384
            res.append(re)
            ims.append(im)
        want = [(array.array("h", r), array.array("h", i)) for r, i in zip(res, ims)]
        for r, i in want:
            K.fft_q15(r, i, n, tw)
        P.fft_q15_many(res, ims, n, tw)
        h = n // 2 + 1
        for j in range(count):
            assert res[j][:h] == want[j][0][:h] and ims[j][:h] == want[j][1][:h], (n, j)
    P.fft_q15_many([], [], 64, K.fft_table(64))  # nothing to do


def test_plain_kernels_fast_paths():
    # The plain kernels' shortcuts (struct, list sort, unclamped loops, float square roots) against the
    # definitions, at their edges; the fused kernels against the single ones, plain and through the facade.
    from sensorbox.shared import kernels_py as P

    fr = int16s(7, 3 * 200 + 3, -15000, 15000)
    for i, (a, b, c) in enumerate(((26753, 0, 0), (-26753, 0, 0), (26754, 0, 0), (15447, 15447, 15446),
                                   (15446, 15446, 15446), (-32768, -32768, -32768), (32767, 1, -1), (0, 0, 0))):
        fr[30 * i] = a
        fr[30 * i + 1] = b
        fr[30 * i + 2] = c
    for stride, n in ((3, 200), (6, 100), (3, 1500)):  # 1500: in pieces (struct argument lists)
        src = fr if (n - 1) * stride + 3 <= len(fr) else int16s(8, (n - 1) * stride + 3, -32768, 32767)
        mag = array.array("h", bytes(2 * n))
        P.magnitude(src, 0, stride, n, mag)
        for i in range(n):
            v = [min(abs(src[i * stride + k]), 26753) for k in range(3)]
            assert mag[i] == min(32767, _isqrt(v[0] ** 2 + v[1] ** 2 + v[2] ** 2)), (stride, i)
        g = array.array("h", bytes(2 * n))
        P.gather(src, 1, stride, n, g)
        assert list(g) == [src[1 + i * stride] for i in range(n)]
    for n in (8, 9, 128, 1024, 1025):  # moments: lanes (8..1024 values), else a loop
        x = int16s(n, n, -32768, 32767)
        x[n // 2] = -32768
        x[n // 2 + 1] = 32767
        x[n // 3] = 32767
        x[n // 3 + 1] = -32768
        m = array.array("i", bytes(20))
        P.moments(x, n, m)
        d = [abs(x[i] - x[i - 1]) for i in range(1, n)]
        assert list(m) == [sum(x), min(x), max(x), sum(d), max(d)], n
    x = int16s(9, 256, -32768, 32767)
    for mean in (-13574, -13573, 0, 13572, 13573):
        for sh in (0, 5):
            want = sum((min(abs(v - mean), 46340) ** 2) >> sh for v in x)
            assert P.sumsq_dev(x, 256, mean, sh) == want, (mean, sh)
    y = array.array("h", x)
    P.sort_i16(y, 255)
    assert list(y) == sorted(x[:255]) + [x[255]]
    a = int16s(10, 128, -16384, 16384)
    b = int16s(11, 128, -16384, 16384)
    c = int16s(12, 128, -16384, 16384)
    want = [K.dot(a, a, 128, 8), K.dot(b, b, 128, 8), K.dot(c, c, 128, 8), K.dot(a, b, 128, 8),
            K.dot(a, c, 128, 8), K.dot(b, c, 128, 8)]
    for f in (P.dots3, K.dots3):
        d = array.array("i", bytes(24))
        f(a, b, c, 128, 8, d)
        assert list(d) == want
    re = int16s(13, 128, -5000, 5000)  # (band powers below 2**31, as an FFT's of +-16384 input)
    im = int16s(14, 128, -5000, 5000)
    im[40] = 5000
    re[40] = 5000
    im[41] = -5000
    re[41] = -5000  # a tie: the first one wins
    for bands, lo, hi in ((((1, 3), (3, 7), (7, 13), (13, 26), (26, 64)), 1, 64),
                          (((4, 9), (9, 9), (20, 30)), 1, 64),  # gaps, an empty band
                          (((10, 20), (5, 12)), 1, 64),  # not ascending: band by band
                          (((1, 3),), 2, 60)):
        want = [K.band_power(re, im, p, q) for p, q in bands] + [K.argmax_power(re, im, lo, hi)]
        for f in (P.spectrum, K.spectrum):
            out = array.array("i", bytes(4 * (len(bands) + 1)))
            f(re, im, bands, lo, hi, out)
            assert list(out) == want, (bands, list(out), want)


def test_float_fft_and_iir_fallbacks():
    n = 16
    re = array.array("f", [math.cos(2 * math.pi * 3 * t / n) for t in range(n)])
    im = array.array("f", bytes(4 * n))
    KF.FFT(n).run(re, im)
    for k in range(n):
        want = n / 2 if k in (3, n - 3) else 0.0
        assert abs(re[k] - want) < 1e-4 and abs(im[k]) < 1e-4, (k, re[k], im[k])
    buf = array.array("f", [1.0, 0.0, 0.0, 0.0])
    KF.IIR([0.5, 0.5, 0.0, 1.0, -0.5, 0.0]).run(buf)  # y = 0.5x + 0.5x1 + 0.5y1
    assert [round(v, 6) for v in buf] == [0.5, 0.75, 0.375, 0.1875]
    src = array.array("h", [-32768, 0, 32767])
    dst = array.array("f", bytes(12))
    KF.linear_map(src, dst, -32768, 32767, -1.0, 1.0)
    assert abs(dst[0] + 1) < 1e-6 and abs(dst[2] - 1) < 1e-6
    back = array.array("h", bytes(6))
    KF.linear_map(dst, back, -1.0, 1.0, -32768, 32767)
    assert list(back) == [-32768, 0, 32767]


def test_iir_q_quantize_round_trips_q28():
    # float SOS made from Q28 integers (a0 scaled by 2) quantize back to exactly those integers
    q = (K.Q28, -2 * K.Q28 + 1, 12345, -3 * K.Q28 // 2, K.Q28 // 3 - 7)
    sos = [2 * q[0] / K.Q28, 2 * q[1] / K.Q28, 2 * q[2] / K.Q28, 2.0, 2 * q[3] / K.Q28, 2 * q[4] / K.Q28]
    assert KF.iir_q_quantize(sos) == list(q)
    assert KF.iir_q_quantize([0.5, 0, 0, 1.0, 0, 0] * 2) == [K.Q28 // 2, 0, 0, 0, 0] * 2


FFT256_CHECKSUM = 224907150
IIR_CHECKSUM = 201154341
