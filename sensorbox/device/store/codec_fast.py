"""The store's block encoder (``sensorbox.shared.codec_enc.encode``) and decoder (``sensorbox.shared.codec.decode``)
in ``@micropython.viper``: the same bytes and rows, and the same refusals, checked against the plain ones by
tests/device/test_store_codec.py. Resident with the store (every block written passes through the encoder; the
decoder serves every reader: export, the outbox, recovery). Native code lives outside the GC heap on an ESP32; one
module, not two, saves a 4 KB littlefs block of the bundle's flash. The decoder bounds-checks every byte it reads
and writes (viper pointers are not checked).

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
