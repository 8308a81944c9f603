"""Lossless codec for blocks of int16 columns: the payload of store segments with codec 1 (``device/store/core``).

One source for the device (which writes it), the host and the browser (which read it): this module decodes;
``codec_enc.py`` is the reference encoder (the device writes with ``device/store/core.py``, the same encoder
in viper, checked byte for byte against it). Integer arithmetic only, so every interpreter makes and reads the
same bytes.

A block is ``n`` rows of ``w`` 16-bit words, row-major, little-endian (as the store keeps rows: accel frames are
``w = 3`` words; a timed row is its int32 time offset as two words, low then high, then its values). Payload::

    n (uint8, 1..255), then one bit stream (least significant bit first) holding each column in turn:
        order (2 bits: 1 = delta, 2 = delta of delta, 3 = delta minus the previous column's delta in that row),
        the first value (16 bits), with order 2 the first delta (16 bits, when n > 1),
        the residuals (zigzag of the 16-bit wrapped difference) in groups of 16: the group's width (4 bits:
        0..14 bits, 15 = 16 bits), then each residual in that many bits
      or a sparse column (mostly zero: a rollup's seconds per class):
        order 0 (2 bits), a width (4 bits, as above), then per row one bit: 0 for a 0, or 1 and the value less
        one (16-bit wrapped, unsigned) in that many bits
    padded with zero bits to a whole byte
    or: 0 (uint8), then the rows as they are (a block the codec would not make smaller: noise)

Every column is coded on its own, so a block is decodable by itself (a corrupt block costs only its rows), and
the encoder picks the order per column by the bits it costs. Differences wrap modulo 2**16, so every int16
input round-trips exactly, whatever its range. Measured (``make bench``, store): ~1.5x on the replayed recording
(its zero-order entropy bound is ~1.7x), ~0.99x on white noise, far more on slowly changing columns (sound
levels, class ids, times).
"""

G = 16  # residuals per group (one width for each group)


def decode(src, a, b, w, out, o0, cap):
    """Decode the payload ``src[a:b]`` (rows of ``w`` words) into ``out[o0:]`` as row-major int16 LE, writing at
    most ``cap`` bytes; returns the rows, or -1 when the bytes are not a valid block."""
    if b <= a or w < 1:
        return -1
    n = src[a]
    rb = 2 * w
    if n == 0:  # stored raw
        k = b - a - 1
        if k <= 0 or k % rb or k > cap:
            return -1
        for i in range(k):
            out[o0 + i] = src[a + 1 + i]
        return k // rb
    if n * rb > cap:
        return -1
    pos = a + 1
    acc = 0
    nb = 0
    for j in range(w):
        # order (2 bits); then the first value (16 bits), the first delta with order 2; or a sparse column
        while nb < 6:
            if pos >= b:
                return -1
            acc |= src[pos] << nb
            pos += 1
            nb += 8
        o = acc & 3
        q = o0 + 2 * j
        if o == 0:  # sparse: the width (4 bits), then per row a bit (1: a value follows, 0: the value is 0)
            wd = (acc >> 2) & 15
            acc >>= 6
            nb -= 6
            if wd == 15:
                wd = 16
            mask = (1 << wd) - 1
            for i in range(n):
                if nb == 0:
                    if pos >= b:
                        return -1
                    acc = src[pos]
                    pos += 1
                    nb = 8
                x = 0
                if acc & 1:
                    while nb <= wd:
                        if pos >= b:
                            return -1
                        acc |= src[pos] << nb
                        pos += 1
                        nb += 8
                    x = (((acc >> 1) & mask) + 1) & 0xFFFF  # (a value v is coded as v - 1, unsigned)
                    acc >>= wd
                    nb -= wd
                acc >>= 1
                nb -= 1
                out[q] = x & 0xFF
                out[q + 1] = x >> 8
                q += rb
            continue
        while nb < 18:
            if pos >= b:
                return -1
            acc |= src[pos] << nb
            pos += 1
            nb += 8
        x = (acc >> 2) & 0xFFFF
        acc >>= 18
        nb -= 18
        if o == 3 and j == 0:
            return -1
        out[q] = x & 0xFF
        out[q + 1] = x >> 8
        d = 0
        s = 1
        if o == 2 and n > 1:
            while nb < 16:
                if pos >= b:
                    return -1
                acc |= src[pos] << nb
                pos += 1
                nb += 8
            d = acc & 0xFFFF
            acc >>= 16
            nb -= 16
            x = (x + d) & 0xFFFF
            q += rb
            out[q] = x & 0xFF
            out[q + 1] = x >> 8
            s = 2
        i = s
        while i < n:
            e = i + G if i + G < n else n
            while nb < 4:
                if pos >= b:
                    return -1
                acc |= src[pos] << nb
                pos += 1
                nb += 8
            wd = acc & 15
            acc >>= 4
            nb -= 4
            if wd == 15:
                wd = 16
            mask = (1 << wd) - 1
            while i < e:
                while nb < wd:
                    if pos >= b:
                        return -1
                    acc |= src[pos] << nb
                    pos += 1
                    nb += 8
                z = acc & mask
                acc >>= wd
                nb -= wd
                r = (z >> 1) ^ (0xFFFF if z & 1 else 0)  # un-zigzag (mod 2**16)
                if o == 1:
                    d = r
                elif o == 2:
                    d = (d + r) & 0xFFFF
                else:
                    c = o0 + i * rb + 2 * j - 2
                    d = (r + (out[c] | out[c + 1] << 8) - (out[c - rb] | out[c - rb + 1] << 8)) & 0xFFFF
                x = (x + d) & 0xFFFF
                q += rb
                out[q] = x & 0xFF
                out[q + 1] = x >> 8
                i += 1
    if pos != b or acc:  # the stream must end in this byte, padded with zero bits
        return -1
    return n
