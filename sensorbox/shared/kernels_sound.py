"""The sound features' integer kernels (``window_q15``, ``mel_q8``, ``log2s_q6``, ``pos_diff_sum``; documented in
``sensorbox.shared.kernels_py``), compiled with ``@micropython.viper``, bit-identical to the plain versions
(tests/device/test_kernels_viper.py). Apart from ``kernels_viper`` because only the sound classifier needs them:
``sensorbox.shared.soundfeatures`` imports this module, which a device loads only while ``sound.classify`` is on,
so their native code costs no resident heap otherwise. Viper notes as in ``kernels_viper``.
"""

import micropython


@micropython.viper
def window_q15(x, n: int, mean: int, shift: int, win, dst):
    px = ptr16(x)
    pw = ptr16(win)
    pd = ptr16(dst)
    i = 0
    if shift >= 0:
        while i < n:
            pd[i] = ((((((int(px[i]) ^ 0x8000) - 0x8000) - mean) << shift) * int(pw[i])) + 16384) >> 15
            i += 1
    else:
        shift = 0 - shift
        while i < n:
            pd[i] = ((((((int(px[i]) ^ 0x8000) - 0x8000) - mean) >> shift) * int(pw[i])) + 16384) >> 15
            i += 1


@micropython.viper
def mel_q8(re, im, lo: int, hi: int, seg, wt, acc, na: int) -> int:
    pr = ptr16(re)
    pi = ptr16(im)
    ps = ptr8(seg)
    pw = ptr8(wt)
    pa = ptr32(acc)
    j = 0
    while j < na:
        pa[j] = 0
        j += 1
    total = 0
    k = lo
    while k < hi:
        a = (int(pr[k]) ^ 0x8000) - 0x8000
        b = (int(pi[k]) ^ 0x8000) - 0x8000
        p = a * a + b * b
        w = int(pw[k])
        r = (p >> 8) * w + (((p & 255) * w) >> 8)
        j = int(ps[k])
        pa[j + 1] = int(pa[j + 1]) + r
        pa[j] = int(pa[j]) + p - r
        total += p
        k += 1
    return total


@micropython.viper
def log2s_q6(src, off: int, n: int, dst, doff: int, add: int, floor: int):
    ps = ptr32(src)
    pd = ptr16(dst)
    i = 0
    while i < n:
        p = int(ps[off + i])
        if p <= 0:
            v = floor
        else:
            b = 0
            q = p
            while q >= 2:
                q >>= 1
                b += 1
            x = p - (1 << b)
            if b >= 6:
                v = 64 * b + (x >> (b - 6)) + add
            else:
                v = 64 * b + ((x << 6) >> b) + add
            if v < floor:
                v = floor
            elif v > 32767:
                v = 32767
        pd[doff + i] = v
        i += 1


@micropython.viper
def pos_diff_sum(a, aoff: int, b, boff: int, n: int) -> int:
    pa = ptr16(a)
    pb = ptr16(b)
    s = 0
    i = 0
    while i < n:
        d = ((int(pa[aoff + i]) ^ 0x8000) - 0x8000) - ((int(pb[boff + i]) ^ 0x8000) - 0x8000)
        if d > 0:
            s += d
        i += 1
    return s
