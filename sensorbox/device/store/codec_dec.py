"""The store's block decoder (``sensorbox.shared.codec.decode``) in ``@micropython.viper``: the same rows and the
same refusals, checked against the plain one by tests/device/test_store_codec.py. Loaded with ``reader.py`` (exports,
the outbox, recovery), never resident otherwise; ``reader.py`` falls back to the shared decoder where viper is
missing. Every input byte read and output byte written is bounds-checked (viper pointers are not), and every
intermediate stays below 2**31, as in the encoder (``codec_fast.py``).
"""

import micropython


@micropython.viper
def decode(src, a: int, b: int, w: int, out, o0: int, cap: int) -> int:
    if b <= a or w < 1:
        return -1
    s = ptr8(src)
    d = ptr8(out)
    n = int(s[a])
    rb = 2 * w
    if n == 0:  # stored raw
        k = b - a - 1
        if k <= 0 or k > cap:
            return -1
        r = k // rb
        if r * rb != k:
            return -1
        i = 0
        while i < k:
            d[o0 + i] = s[a + 1 + i]
            i += 1
        return r
    if n * rb > cap:
        return -1
    pos = a + 1
    acc = 0
    nb = 0
    j = 0
    while j < w:
        while nb < 18:
            if pos >= b:
                return -1
            acc = acc | (int(s[pos]) << nb)
            pos += 1
            nb += 8
        o = acc & 3
        x = (acc >> 2) & 0xFFFF
        acc = acc >> 18
        nb -= 18
        if o == 0 or (o == 3 and j == 0):
            return -1
        q = o0 + 2 * j
        d[q] = x & 0xFF
        d[q + 1] = x >> 8
        dl = 0
        i = 1
        if o == 2 and n > 1:
            while nb < 16:
                if pos >= b:
                    return -1
                acc = acc | (int(s[pos]) << nb)
                pos += 1
                nb += 8
            dl = acc & 0xFFFF
            acc = acc >> 16
            nb -= 16
            x = (x + dl) & 0xFFFF
            q += rb
            d[q] = x & 0xFF
            d[q + 1] = x >> 8
            i = 2
        while i < n:
            e = i + 16
            if e > n:
                e = n
            while nb < 4:
                if pos >= b:
                    return -1
                acc = acc | (int(s[pos]) << nb)
                pos += 1
                nb += 8
            wd = acc & 15
            acc = acc >> 4
            nb -= 4
            if wd == 15:
                wd = 16
            mask = (1 << wd) - 1
            while i < e:
                while nb < wd:
                    if pos >= b:
                        return -1
                    acc = acc | (int(s[pos]) << nb)
                    pos += 1
                    nb += 8
                z = acc & mask
                acc = acc >> wd
                nb -= wd
                r = ((z >> 1) ^ (0 - (z & 1))) & 0xFFFF
                if o == 1:
                    dl = r
                elif o == 2:
                    dl = (dl + r) & 0xFFFF
                else:
                    c = o0 + i * rb + 2 * j - 2
                    dl = (r + (int(d[c]) | (int(d[c + 1]) << 8)) - (int(d[c - rb]) | (int(d[c - rb + 1]) << 8))) & 0xFFFF
                x = (x + dl) & 0xFFFF
                q += rb
                d[q] = x & 0xFF
                d[q + 1] = x >> 8
                i += 1
        j += 1
    if pos != b or acc != 0:
        return -1
    return n
