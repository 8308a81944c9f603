"""DSP kernels in plain Python: the reference implementations (CPython, MicroPython, MicroPython WebAssembly).

``sensorbox/device/kernels_fast.py`` has the same integer kernels compiled with ``@micropython.viper``; both
compute bit-identical results (tests/device/test_kernels_fast.py checks them against each other with edge
values). Use them through ``sensorbox.shared.kernels``, which picks the fastest variant present.

Integer kernels work on ``array('h')`` (int16) data and keep every intermediate value inside the signed 32-bit
range for the input ranges documented below, so the viper versions give the same results on a 32-bit ESP32
(whose viper integers wrap modulo 2**32) as here. Arithmetic right shifts round towards minus infinity in
both. Float kernels (``fft_float``, ``IIRFloat``, ``linear_map``) are the fallbacks for emlearn's C modules.

They are written for the interpreter (the browser runs them in MicroPython WebAssembly, where a loop step
costs several times what it does on the unix port): slices and builtins where they do the work in C
(``sorted``, ``math.sqrt`` with an exact correction, slice copies). Some allocate per call; the device never
runs them (it has the viper kernels). Results stay bit-identical to the viper kernels.
"""

import array
from math import sqrt as _sqrt

_Q = 14  # iir_q: coefficients are Q28 split into (c >> 14, c & 0x3FFF); signal values split the same way
_QMASK = 0x3FFF
IIR_FRAC = 8  # iir_q: fraction bits of the signal inside the cascade (input int16 << 8)


def _bit_reverse(re, im, n):
    # The radix-2 FFT's input permutation, in place.
    j = 0
    for i in range(1, n):
        bit = n >> 1
        while j & bit:
            j ^= bit
            bit >>= 1
        j ^= bit
        if i < j:
            t = re[i]
            re[i] = re[j]
            re[j] = t
            t = im[i]
            im[i] = im[j]
            im[j] = t


def fft_q15(re, im, n, tw):
    """In-place radix-2 complex FFT of ``n`` points (a power of two, <= 512) in fixed point.

    ``re``/``im``: int16 arrays. ``tw``: twiddles from ``kernels.fft_table(n)``: Q15 cos(2 pi k/n) for
    k < n/2, then Q15 sin(2 pi k/n). Forward transform (e^-i), scaled by 1/n: every stage halves (with floor).
    Inputs within +-16384 (per component) cannot overflow: magnitudes stay below 23,200 and every product
    below 2**31.

    Decimation in time after a bit-reversal permutation. The stages are done two at a time (radix 2**2): one
    pass loads four points, does the two butterflies of stage A (span h) and the two of stage B (span 2h) on
    them in locals and stores them once; twiddles are loaded once per pass and offset. Every butterfly and
    its rounding are those of the textbook stage-by-stage loop; an odd number of stages ends with one plain
    radix-2 stage. ``kernels_fast.fft_q15`` is this code (plus a loop for each pass's first butterflies
    that leaves out the products by zero twiddle components).
    """
    _bit_reverse(re, im, n)
    half = n >> 1
    h = 1
    step = half  # twiddle index step of stage A (span h): n / (2h)
    while 4 * h <= n:
        h2 = h + h
        h4 = h2 + h2
        sb = step >> 1  # stage B (span 2h)
        q = 0
        while q < h:
            ka = q * step
            ar = tw[ka]
            ai = tw[half + ka]
            kb = q * sb
            br = tw[kb]
            bi = tw[half + kb]
            kc = kb + h * sb
            cr = tw[kc]
            ci = tw[half + kc]
            m0 = q
            while m0 < n:
                m1 = m0 + h
                m2 = m0 + h2
                m3 = m1 + h2
                # stage A on (m0, m1) and (m2, m3), twiddle a
                xr = re[m1]
                xi = im[m1]
                tr = (ar * xr + ai * xi + 16384) >> 15
                ti = (ar * xi - ai * xr + 16384) >> 15
                ur = re[m0]
                ui = im[m0]
                r0 = (ur + tr) >> 1
                i0 = (ui + ti) >> 1
                r1 = (ur - tr) >> 1
                i1 = (ui - ti) >> 1
                xr = re[m3]
                xi = im[m3]
                tr = (ar * xr + ai * xi + 16384) >> 15
                ti = (ar * xi - ai * xr + 16384) >> 15
                ur = re[m2]
                ui = im[m2]
                r2 = (ur + tr) >> 1
                i2 = (ui + ti) >> 1
                r3 = (ur - tr) >> 1
                i3 = (ui - ti) >> 1
                # stage B on (m0, m2), twiddle b, and on (m1, m3), twiddle c
                tr = (br * r2 + bi * i2 + 16384) >> 15
                ti = (br * i2 - bi * r2 + 16384) >> 15
                re[m0] = (r0 + tr) >> 1
                im[m0] = (i0 + ti) >> 1
                re[m2] = (r0 - tr) >> 1
                im[m2] = (i0 - ti) >> 1
                tr = (cr * r3 + ci * i3 + 16384) >> 15
                ti = (cr * i3 - ci * r3 + 16384) >> 15
                re[m1] = (r1 + tr) >> 1
                im[m1] = (i1 + ti) >> 1
                re[m3] = (r1 - tr) >> 1
                im[m3] = (i1 - ti) >> 1
                m0 += h4
            q += 1
        h = h4
        step = sb >> 1
    if h < n:  # the last stage of an odd count (span h = n/2, twiddle step 1)
        q = 0
        while q < h:
            wr = tw[q]
            wi = tw[half + q]
            m1 = q + h
            xr = re[m1]
            xi = im[m1]
            tr = (wr * xr + wi * xi + 16384) >> 15
            ti = (wr * xi - wi * xr + 16384) >> 15
            ur = re[q]
            ui = im[q]
            re[q] = (ur + tr) >> 1
            im[q] = (ui + ti) >> 1
            re[m1] = (ur - tr) >> 1
            im[m1] = (ui - ti) >> 1
            q += 1


def _mul(ch, cl, v):
    # (c * v) >> 28 for c = ch * 2**14 + cl (Q28, |c| < 2**29) and |v| < 2**29, in 32-bit pieces.
    vh = v >> _Q
    vl = v & _QMASK
    return ch * vh + ((ch * vl + cl * vh + ((cl * vl) >> _Q) + 8192) >> _Q)


def iir_q(x, y, n, coefs, state, nsec):
    """Fixed-point biquad cascade (direct form I), ``n`` samples from int16 ``x`` into int16 ``y`` (may be x).

    ``coefs``: int16 array, 10 per section, from ``kernels.iir_q_coefs(sos)`` (b0, b1, b2, a1, a2, each as the
    pair (c >> 14, c & 0x3FFF) of its Q28 value; |c| < 2). ``state``: int16 array of 8 per section (x1, x2,
    y1, y2 split the same way), zero to start. Inside the cascade the signal is int16 << IIR_FRAC and must
    stay below 2**29 (an intermediate gain below 2**(29 - 15 - IIR_FRAC) = 64); the output is rounded and
    saturated to int16.
    """
    half = 1 << (IIR_FRAC - 1)
    for i in range(n):
        v = x[i] << IIR_FRAC
        for s in range(nsec):
            c = s * 10
            o = s * 8
            acc = _mul(coefs[c], coefs[c + 1], v)
            acc += _mul(coefs[c + 2], coefs[c + 3], (state[o] << _Q) + state[o + 1])
            acc += _mul(coefs[c + 4], coefs[c + 5], (state[o + 2] << _Q) + state[o + 3])
            acc -= _mul(coefs[c + 6], coefs[c + 7], (state[o + 4] << _Q) + state[o + 5])
            acc -= _mul(coefs[c + 8], coefs[c + 9], (state[o + 6] << _Q) + state[o + 7])
            state[o + 2] = state[o]
            state[o + 3] = state[o + 1]
            state[o] = v >> _Q
            state[o + 1] = v & _QMASK
            state[o + 6] = state[o + 4]
            state[o + 7] = state[o + 5]
            state[o + 4] = acc >> _Q
            state[o + 5] = acc & _QMASK
            v = acc
        v = (v + half) >> IIR_FRAC
        if v > 32767:
            v = 32767
        elif v < -32768:
            v = -32768
        y[i] = v


def isqrt(v):
    """floor(sqrt(v)) for 0 <= v < 2**31: the float square root, corrected by one step where it rounded (exact
    with float64, and with float32 too)."""
    r = int(_sqrt(v))
    if r * r > v:
        r -= 1
    elif (r + 1) * (r + 1) <= v:
        r += 1
    return r


def gather(src, off, stride, n, dst):
    """dst[i] = src[off + i * stride] for i < n (de-interleave one channel of int16 frames)."""
    if stride == 1 and n > 0:
        try:
            dst[0:n] = src[off:off + n]
            return
        except TypeError:  # CPython assigns only arrays to an array's slice (this was a memoryview)
            pass
    for i in range(n):
        dst[i] = src[off + i * stride]


def copy_i16(src, soff, dst, doff, n):
    """dst[doff + i] = src[soff + i] for i < n: a copy between int16 arrays at offsets (the viper version avoids
    the memoryview slices, each an allocation on MicroPython, that ``dst[a:b] = src[c:d]`` needs). Source and
    destination ranges must not overlap unless ``doff <= soff`` (copies run forwards)."""
    if n > 0 and src is not dst:
        try:
            dst[doff:doff + n] = src[soff:soff + n]
            return
        except TypeError:  # CPython assigns only arrays to an array's slice
            pass
    for i in range(n):
        dst[doff + i] = src[soff + i]


def magnitude(src, off, stride, n, dst):
    """dst[i] = |(a, b, c)| of the three int16 values at src[off + i * stride ...], floor of the square root.
    Each component is clamped to +-26753 first (so the sum of squares fits 31 bits), the result to 32767."""
    if n <= 0:
        return
    s = list(src[off:off + (n - 1) * stride + 3])
    out = []
    for a, b, c in zip(s[0::stride], s[1::stride], s[2::stride]):
        if a < 0:
            a = -a
        if b < 0:
            b = -b
        if c < 0:
            c = -c
        if a > 26753:
            a = 26753
        if b > 26753:
            b = 26753
        if c > 26753:
            c = 26753
        v = a * a + b * b + c * c
        m = int(_sqrt(v))
        if m * m > v:
            m -= 1
        elif (m + 1) * (m + 1) <= v:
            m += 1
        out.append(32767 if m > 32767 else m)
    dst[0:n] = array.array("h", out)


def moments(x, n, out):
    """One pass over int16 x[:n] (n >= 1): out[0] = sum, out[1] = min, out[2] = max, out[3] = sum of
    |x[i] - x[i-1]|, out[4] = max |x[i] - x[i-1]|. ``out`` is an int32 array ('i') of length >= 5."""
    s = x[0]
    lo = s
    hi = s
    prev = s
    sd = 0
    md = 0
    for v in x[1:n]:
        s += v
        if v < lo:
            lo = v
        if v > hi:
            hi = v
        d = v - prev
        if d < 0:
            d = -d
        sd += d
        if d > md:
            md = d
        prev = v
    out[0] = s
    out[1] = lo
    out[2] = hi
    out[3] = sd
    out[4] = md


def sumsq_dev(x, n, mean, shift):
    """sum of ((x[i] - mean)**2 >> shift), each |x[i] - mean| clamped to 46340. The caller picks ``shift`` so
    that n * max_dev**2 >> shift < 2**31."""
    s = 0
    for v in x[0:n]:
        d = v - mean
        if d < 0:
            d = -d
        if d > 46340:
            d = 46340
        s += (d * d) >> shift
    return s


def center(x, n, mean, shift, dst):
    """dst[i] = (x[i] - mean) << shift (shift >= 0) or >> -shift (shift < 0); the result must fit int16."""
    i = 0
    if shift >= 0:
        for v in x[0:n]:
            dst[i] = (v - mean) << shift
            i += 1
    else:
        shift = -shift
        for v in x[0:n]:
            dst[i] = (v - mean) >> shift
            i += 1


def crossings(x, n):
    """How often the sign of x[:n] changes (0 counts as positive)."""
    c = 0
    neg = x[0] < 0
    for v in x[1:n]:
        if (v < 0) != neg:
            c += 1
            neg = not neg
    return c


def sort_i16(x, n):
    """Sort x[:n] in place, ascending (the viper version: a Shell sort that allocates nothing)."""
    if n > 1:
        x[0:n] = array.array("h", sorted(x[0:n]))


def band_power(re, im, lo, hi):
    """sum of re[k]**2 + im[k]**2 for lo <= k < hi (below 2**31 for fft_q15 output of inputs within +-16384)."""
    s = 0
    for k in range(lo, hi):
        a = re[k]
        b = im[k]
        s += a * a + b * b
    return s


def argmax_power(re, im, lo, hi):
    """The k in [lo, hi) with the largest re[k]**2 + im[k]**2 (the first one on ties); lo when lo >= hi."""
    best = -1
    at = lo
    for k in range(lo, hi):
        a = re[k]
        b = im[k]
        p = a * a + b * b
        if p > best:
            best = p
            at = k
    return at


def dot(a, b, n, shift):
    """sum of ((a[i] * b[i]) >> shift) for int16 a, b; the caller keeps the sum below 2**31."""
    s = 0
    for i in range(n):
        s += (a[i] * b[i]) >> shift
    return s


def sumsq_i16(x, off, n, out):
    """Sum of squares of int16 x[off:off + n] (n <= 65536) as out[0] * 65536 + out[1] (out: int32 array,
    0 <= out[1] < 65536), accumulated without ever leaving 32 bits."""
    hi = 0
    lo = 0
    for i in range(off, off + n):
        v = x[i]
        q = v * v
        hi += q >> 16
        lo += q & 0xFFFF
        if lo >= 65536:
            hi += 1
            lo -= 65536
    out[0] = hi
    out[1] = lo


# Float kernels: plain fallbacks for emlearn_fft, emlearn_iir and emlearn_arrayutils (slow on a device).

def fft_float(re, im, n, cos_t, sin_t):
    """In-place radix-2 complex forward FFT (e^-i, unscaled, as numpy.fft.fft and emlearn_fft) on float
    arrays. cos_t/sin_t: cos/sin(2 pi k / n) for k < n/2."""
    _bit_reverse(re, im, n)
    size = 2
    while size <= n:
        h = size >> 1
        step = n // size
        for start in range(0, n, size):
            k = 0
            for m in range(start, start + h):
                wr = cos_t[k]
                wi = sin_t[k]
                xr = re[m + h]
                xi = im[m + h]
                tr = wr * xr + wi * xi
                ti = wr * xi - wi * xr
                re[m + h] = re[m] - tr
                im[m + h] = im[m] - ti
                re[m] += tr
                im[m] += ti
                k += step
        size <<= 1


def iir_float(sos, state, buf):
    """Biquad cascade in place on float ``buf``: transposed direct form II, scipy.signal.sosfilt convention
    (6 values per section: b0, b1, b2, a0 (= 1), a1, a2), as emlearn_iir. ``state``: 2 floats per section."""
    nsec = len(sos) // 6
    for i in range(len(buf)):
        v = buf[i]
        for s in range(nsec):
            c = s * 6
            o = s * 2
            out = state[o] + sos[c] * v
            state[o] = state[o + 1] + sos[c + 1] * v - sos[c + 4] * out
            state[o + 1] = sos[c + 2] * v - sos[c + 5] * out
            v = out
        buf[i] = v


def linear_map(src, dst, in_min, in_max, out_min, out_max):
    """dst[i] = out_min + (src[i] - in_min) * (out_max - out_min) / (in_max - in_min), as
    emlearn_arrayutils.linear_map; into an int16 array the value is rounded and clamped."""
    scale = (out_max - out_min) / (in_max - in_min)
    to_int = len(dst) > 0 and isinstance(dst[0], int)
    for i in range(len(src)):
        v = out_min + (src[i] - in_min) * scale
        if to_int:
            v = int(v + 0.5) if v >= 0 else -int(-v + 0.5)
            if v > 32767:
                v = 32767
            elif v < -32768:
                v = -32768
        dst[i] = v


# Sound feature kernels (sensorbox.shared.soundfeatures): integer, bit-identical to their viper versions.

def window_q15(x, n, mean, shift, win, dst):
    """dst[i] = ((x[i] - mean) << shift) * win[i] / 2**15, rounded half up (shift < 0: ``>> -shift`` first).
    ``win``: int16 Q15 weights (0..32767). The caller keeps |x[i] - mean| << shift within 16384, so every product
    stays below 2**29 and the result within the FFT's input range."""
    out = []
    if shift >= 0:
        for v, w in zip(x[0:n], win[0:n]):
            out.append((((v - mean) << shift) * w + 16384) >> 15)
    else:
        shift = -shift
        for v, w in zip(x[0:n], win[0:n]):
            out.append((((v - mean) >> shift) * w + 16384) >> 15)
    if n > 0:
        dst[0:n] = array.array("h", out)


def mel_q8(re, im, lo, hi, seg, wt, acc, na):
    """Triangular band energies of FFT bins lo <= k < hi: acc[0:na] (int32) is zeroed, then each bin's power
    p = re[k]**2 + im[k]**2 is split between two neighbouring bands, ``(p >> 8) * w + (((p & 255) * w) >> 8)`` to
    acc[seg[k] + 1] (the band whose rising edge holds the bin) and the rest to acc[seg[k]] (falling edge), with
    ``seg``/``wt`` bytearrays (band index, weight 0..255 in Q8). Every intermediate stays below 2**31; the parts of
    a bin add up to its power exactly. Returns the sum of the powers (for fft_q15 output of inputs within +-16384,
    below 2**28 by Parseval)."""
    for j in range(na):
        acc[j] = 0
    total = 0
    for k in range(lo, hi):
        a = re[k]
        b = im[k]
        p = a * a + b * b
        w = wt[k]
        r = (p >> 8) * w + (((p & 255) * w) >> 8)
        j = seg[k]
        acc[j + 1] += r
        acc[j] += p - r
        total += p
    return total


def log2s_q6(src, off, n, dst, doff, add, floor):
    """dst[doff + i] = 64 * log2(src[off + i]) + add (int32 src, 0 <= src < 2**31: the viper version reads it
    unsigned), linear between powers of two and exact at them (as ``features.log2_q6``; a name of its own, so the
    bundle can still rename that one short), at least ``floor`` and at most 32767; ``floor`` for 0."""
    for i in range(n):
        p = src[off + i]
        if p <= 0:
            v = floor
        else:
            b = 0
            q = p
            while q >= 2:
                q >>= 1
                b += 1
            x = p - (1 << b)
            v = 64 * b + (x >> (b - 6) if b >= 6 else (x << 6) >> b) + add
            if v < floor:
                v = floor
            elif v > 32767:
                v = 32767
        dst[doff + i] = v


def pos_diff_sum(a, aoff, b, boff, n):
    """sum of max(0, a[aoff + i] - b[boff + i]) for i < n (int16 arrays; a spectral flux)."""
    s = 0
    for i in range(n):
        d = a[aoff + i] - b[boff + i]
        if d > 0:
            s += d
    return s
