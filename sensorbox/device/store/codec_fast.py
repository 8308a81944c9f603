"""The store's block encoder (``sensorbox.shared.codec_enc.encode``) in ``@micropython.viper``: the same bytes, checked
against the plain one by tests/device/test_store_codec.py. Resident with the store (every block written passes
through it); the decoder is the shared one, loaded only with what reads segments (export, the outbox, recovery).

One function and no calls: a viper call boxes its arguments, and a buffer passed as a pointer would be an int
object holding its address (a long int, allocated, on an ESP32). Every intermediate stays below 2**31 (at most 23
bits are pending in the bit accumulator), so the results are the same where viper ints wrap at 32 bits.
"""

import micropython


@micropython.viper
def encode(src, n: int, w: int, out, cap: int) -> int:
    if n < 1 or n > 255:
        return -1
    s = ptr8(src)
    d = ptr8(out)
    limit = 2 * n * w
    if cap < limit:
        limit = cap
    d[0] = n
    pos = 1
    acc = 0
    nb = 0
    rb = 2 * w
    j = 0
    while j < w:
        # the bits each order costs (as codec.cost): 1 = delta, 2 = delta of delta, 3 = delta minus the previous
        # column's delta in the same row
        best = 0
        o = 1
        t = 1
        while t <= 3:
            if t == 3 and j == 0:
                break
            st = 2 if t == 2 else 1
            bits = 18
            if t == 2 and n > 1:
                bits = 34
            i = st
            while i < n:
                e = i + 16
                if e > n:
                    e = n
                m = 0
                k = i
                while k < e:
                    q = k * rb + 2 * j
                    x = int(s[q]) | (int(s[q + 1]) << 8)
                    p = int(s[q - rb]) | (int(s[q - rb + 1]) << 8)
                    v = x - p
                    if t == 2:
                        v = v - p + (int(s[q - rb - rb]) | (int(s[q - rb - rb + 1]) << 8))
                    elif t == 3:
                        v = v - (int(s[q - 2]) | (int(s[q - 1]) << 8)) + (int(s[q - rb - 2]) | (int(s[q - rb - 1]) << 8))
                    v = v & 0xFFFF
                    z = ((v << 1) ^ (0 - (v >> 15))) & 0xFFFF
                    if z > m:
                        m = z
                    k += 1
                wd = 0
                while (m >> wd) != 0:
                    wd += 1
                if wd == 15:
                    wd = 16
                bits += 4 + wd * (e - i)
                i = e
            if t == 1 or bits < best:
                best = bits
                o = t
            t += 1
        if pos + (nb + best + 7) // 8 > limit:
            return -1
        acc = acc | (o << nb)
        nb += 2
        acc = acc | ((int(s[2 * j]) | (int(s[2 * j + 1]) << 8)) << nb)
        nb += 16
        while nb >= 8:
            d[pos] = acc & 0xFF
            pos += 1
            acc = acc >> 8
            nb -= 8
        st = 1
        if o == 2 and n > 1:
            q = rb + 2 * j
            v = (int(s[q]) | (int(s[q + 1]) << 8)) - (int(s[2 * j]) | (int(s[2 * j + 1]) << 8))
            acc = acc | ((v & 0xFFFF) << nb)
            nb += 16
            while nb >= 8:
                d[pos] = acc & 0xFF
                pos += 1
                acc = acc >> 8
                nb -= 8
            st = 2
        i = st
        while i < n:
            e = i + 16
            if e > n:
                e = n
            m = 0
            k = i
            while k < e:  # the group's width, then its residuals: the same residuals twice (no buffer)
                q = k * rb + 2 * j
                x = int(s[q]) | (int(s[q + 1]) << 8)
                p = int(s[q - rb]) | (int(s[q - rb + 1]) << 8)
                v = x - p
                if o == 2:
                    v = v - p + (int(s[q - rb - rb]) | (int(s[q - rb - rb + 1]) << 8))
                elif o == 3:
                    v = v - (int(s[q - 2]) | (int(s[q - 1]) << 8)) + (int(s[q - rb - 2]) | (int(s[q - rb - 1]) << 8))
                v = v & 0xFFFF
                z = ((v << 1) ^ (0 - (v >> 15))) & 0xFFFF
                if z > m:
                    m = z
                k += 1
            wd = 0
            while (m >> wd) != 0:
                wd += 1
            if wd == 15:
                wd = 16
            acc = acc | ((15 if wd == 16 else wd) << nb)
            nb += 4
            k = i
            while k < e:
                q = k * rb + 2 * j
                x = int(s[q]) | (int(s[q + 1]) << 8)
                p = int(s[q - rb]) | (int(s[q - rb + 1]) << 8)
                v = x - p
                if o == 2:
                    v = v - p + (int(s[q - rb - rb]) | (int(s[q - rb - rb + 1]) << 8))
                elif o == 3:
                    v = v - (int(s[q - 2]) | (int(s[q - 1]) << 8)) + (int(s[q - rb - 2]) | (int(s[q - rb - 1]) << 8))
                v = v & 0xFFFF
                acc = acc | ((((v << 1) ^ (0 - (v >> 15))) & 0xFFFF) << nb)
                nb += wd
                while nb >= 8:
                    d[pos] = acc & 0xFF
                    pos += 1
                    acc = acc >> 8
                    nb -= 8
                k += 1
            i = e
        j += 1
    if nb:
        d[pos] = acc & 0xFF
        pos += 1
    return pos
