"""The reference encoder of ``sensorbox.shared.codec`` (the format is described there): plain Python, integer only,
the same bytes on CPython, MicroPython and WebAssembly. The device writes with ``device/store/core.py`` (viper,
checked against this byte for byte); this one is for the host, the browser and boards without viper."""

from sensorbox.shared.codec import G


def _word(src, k):
    return src[2 * k] | (src[2 * k + 1] << 8)


def _zig(d):
    """Zigzag of the difference ``d`` wrapped to int16: 0, -1, 1, -2, ... -> 0, 1, 2, 3, ..."""
    d &= 0xFFFF
    return ((d << 1) ^ (0 - (d >> 15))) & 0xFFFF


def _width(m):
    k = 0
    while m >> k:
        k += 1
    return 16 if k == 15 else k


def _res(src, n, w, j, o, i):
    """Residual ``i`` (i >= 1; >= 2 for order 2) of column ``j`` under order ``o``, zigzagged."""
    x = _word(src, i * w + j)
    p = _word(src, (i - 1) * w + j)
    d = x - p
    if o == 2:
        d -= p - _word(src, (i - 2) * w + j)
    elif o == 3:
        d -= _word(src, i * w + j - 1) - _word(src, (i - 1) * w + j - 1)
    return _zig(d)


def _sparse(src, n, w, j):
    """(bits, width) of column ``j`` coded sparse (order 0): a bit per row, and each value that is not 0, less one."""
    m = 0
    k = 0
    for i in range(n):
        v = _word(src, i * w + j)
        if v:
            k += 1
            if v - 1 > m:
                m = v - 1
    wd = _width(m)
    return 6 + n + k * wd, wd


def cost(src, n, w, j, o):
    """Bits column ``j`` of a block costs coded with order ``o`` (the encoder's choice; also for tests)."""
    if o == 0:
        return _sparse(src, n, w, j)[0]
    s = 2 if o == 2 else 1
    bits = 18 + (16 if o == 2 and n > 1 else 0)
    i = s
    while i < n:
        e = i + G if i + G < n else n
        m = 0
        k = i
        while k < e:
            z = _res(src, n, w, j, o, k)
            if z > m:
                m = z
            k += 1
        bits += 4 + _width(m) * (e - i)
        i = e
    return bits


def encode(src, n, w, out, cap):
    """Code ``n`` rows (1..255) of ``w`` words from ``src`` (bytes-like, row-major int16 LE) into ``out``; returns
    the payload bytes, or -1 when the coded block is not smaller than ``1 + 2*n*w`` (store it raw: a 0 byte and
    the rows) or would not fit in ``cap`` bytes. Allocates nothing (small ints only)."""
    if n < 1 or n > 255:
        return -1
    limit = 2 * n * w if 2 * n * w < cap else cap  # payload bytes at most (a raw block would take 1 + 2*n*w)
    out[0] = n
    pos = 1
    acc = 0
    nb = 0
    for j in range(w):
        o = 1
        best = cost(src, n, w, j, 1)
        c = cost(src, n, w, j, 2)
        if c < best:
            best = c
            o = 2
        if j:
            c = cost(src, n, w, j, 3)
            if c < best:
                best = c
                o = 3
        c, wd = _sparse(src, n, w, j)
        if c < best:
            best = c
            o = 0
        if pos + (nb + best + 7) // 8 > limit:
            return -1
        if o == 0:  # sparse: the width, then a bit per row and the values that are not 0, less one
            acc |= (15 if wd == 16 else wd) << (nb + 2)
            nb += 6
            for i in range(n):
                v = _word(src, i * w + j)
                acc |= (1 | ((v - 1) << 1) if v else 0) << nb
                nb += 1 + wd if v else 1
                while nb >= 8:
                    out[pos] = acc & 0xFF
                    pos += 1
                    acc >>= 8
                    nb -= 8
            continue
        acc |= o << nb  # every field is followed by a flush: at most 24 bits are pending (32-bit ints suffice)
        nb += 2
        acc |= _word(src, j) << nb
        nb += 16
        while nb >= 8:
            out[pos] = acc & 0xFF
            pos += 1
            acc >>= 8
            nb -= 8
        s = 1
        if o == 2 and n > 1:
            acc |= ((_word(src, w + j) - _word(src, j)) & 0xFFFF) << nb
            nb += 16
            while nb >= 8:
                out[pos] = acc & 0xFF
                pos += 1
                acc >>= 8
                nb -= 8
            s = 2
        i = s
        while i < n:
            e = i + G if i + G < n else n
            m = 0
            k = i
            while k < e:
                z = _res(src, n, w, j, o, k)
                if z > m:
                    m = z
                k += 1
            wd = _width(m)
            acc |= (15 if wd == 16 else wd) << nb
            nb += 4
            k = i
            while k < e:
                acc |= _res(src, n, w, j, o, k) << nb
                nb += wd
                while nb >= 8:
                    out[pos] = acc & 0xFF
                    pos += 1
                    acc >>= 8
                    nb -= 8
                k += 1
            i = e
    if nb:
        out[pos] = acc & 0xFF
        pos += 1
    return pos
