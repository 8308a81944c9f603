"""DSP kernels in plain Python: the reference implementations (CPython, MicroPython, MicroPython WebAssembly).

``sensorbox/shared/kernels_viper.py`` has the same integer kernels compiled with ``@micropython.viper``; both
compute bit-identical results (tests/device/test_kernels_viper.py checks them against each other with edge
values). Use them through ``sensorbox.shared.kernels``, which picks the fastest variant present.

Integer kernels work on ``array('h')`` (int16) data and keep every intermediate value inside the signed 32-bit
range for the input ranges documented below, so the viper versions give the same results on a 32-bit ESP32
(whose viper integers wrap modulo 2**32) as here. Arithmetic right shifts round towards minus infinity in
both. Float kernels (``fft_float``, ``IIRFloat``, ``linear_map``) are the fallbacks for emlearn's C modules.

They are written for the interpreter (the browser runs them in MicroPython WebAssembly, where every bytecode
that calls into the runtime costs a round trip through JavaScript): struct, slices and list sorts where they do
the work in C, a float square root where floats are float64 (exact there), one pass for what the features ask
together (``dots3``, ``spectrum``), and ``fft_q15_many``: many FFTs side by side in the lanes of big integers.
Some allocate per call; the device never runs them (it has the viper kernels). Results stay bit-identical to
the viper kernels.
"""

import array
import struct
from math import sqrt as _sqrt

_F64 = 1.0 + 2.0 ** -40 != 1.0  # float64 (not an ESP32's float32): int(sqrt(v)) is floor(sqrt(v)) below 2**52
_ARGS = 1024  # most values a kernel passes as one call's arguments (MicroPython WebAssembly's stack)
_CONSTS = {}  # formats and lane constants by size, made once


def _keep(key, value):
    if len(_CONSTS) > 48:
        _CONSTS.clear()
    _CONSTS[key] = value
    return value


def _fmt(n):
    # struct format of n little-endian int16
    return _CONSTS.get(n) or _keep(n, "<%dh" % n)

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
    radix-2 stage. ``kernels_viper.fft_q15`` is this code (plus a loop for each pass's first butterflies
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


_LANES = 128  # transforms per pass of fft_q15_many (keeps struct's argument lists short)
_SWAR = {}  # fft_q15_many's constants per (n, lanes): built once


def _swar_consts(n, k, tw):
    # Per stage (span h, g = n / 2h groups): the masks for its lane count and, per butterfly, the twiddle and the
    # per-lane constant that turns its products of biased lanes into a rounded, biased result.
    key = (n, k)
    c = _SWAR.get(key)
    if c is None:
        half = n >> 1
        c = []
        h = 1
        while h < n:
            g = half // h
            ones = int.from_bytes(b"\x01\x00\x00\x00" * (g * k), "little")
            tws = []
            for q in range(h):
                ar = tw[q * g]
                ai = tw[half + q * g]
                # lanes hold v + 2**15: ar*(x + b) + ai*(y + b) needs -(ar + ai)*b, then + 2**14 to round and
                # + 2**30 to keep every lane's sum positive (a multiple of 2**15: the bias after the shift is b)
                tws.append((ar, ai, 0x40004000 - ((ar + ai) << 15), 0x40004000 - ((ar - ai) << 15)))
            low = (1 << (16 * g * k)) - 1  # the even groups' lanes (the next stage's first half)
            c.append((h, ones, ones * 0xFFFF8000, ones * 0xFFFFFFFE, ones << 16, tws, low, 16 * g * k))
            h <<= 1
        if len(_SWAR) > 8:
            _SWAR.clear()
        _SWAR[key] = c
    return c


def fft_q15_many(res, ims, n, tw):
    """``fft_q15`` of several transforms at once: ``res[j]``, ``ims[j]`` as ``fft_q15(res[j], ims[j], n, tw)``
    would leave them, bin for bin, but only bins 0..n/2 are written (what the features and spectra read).
    Inputs within +-16384, as for ``fft_q15``.

    For interpreters where each bytecode is dear (MicroPython WebAssembly): the transforms run side by side in
    the lanes of Python integers (SIMD within a register), 32 bits per value, offset by 2**15 so that every lane
    stays positive. A butterfly is then a few integer operations for all lanes: products by the twiddle (a
    small integer: the same for every lane), additions, and each rounding shift as a mask that clears the
    bits the shift drops in every lane, then one shift. The lanes of one integer are the transforms' values at
    the same place of the decimation in time (a stage's groups with one twiddle, the transforms inside), so
    a stage needs only integers of the same layout, and the next stage's are the halves of this one's. Exact
    integer arithmetic: the same values as ``fft_q15`` in every lane."""
    if len(res) > _LANES:
        for i in range(0, len(res), _LANES):
            fft_q15_many(res[i:i + _LANES], ims[i:i + _LANES], n, tw)
        return
    k = len(res)
    if k == 0:
        return
    half = n >> 1
    stages = _swar_consts(n, k, tw)
    flip = int.from_bytes(b"\x00\x80\x00\x00" * (half * k), "little")  # int16 -> int16 + 2**15 in a 32-bit lane
    fmt = "<" + "hxx" * k
    vals = [0] * ((n + 2) * k)
    rd = _fmt(n)
    nk = n * k

    def pack(arrs):
        # V0 = the transforms' first halves, V1 their second: lane (p, j) = arrs[j][p] (p-major, j inside)
        for j in range(k):
            vals[j * n:(j + 1) * n] = struct.unpack_from(rd, arrs[j])
        v0 = b"".join([struct.pack(fmt, *vals[p:nk:n]) for p in range(half)])
        v1 = b"".join([struct.pack(fmt, *vals[p:nk:n]) for p in range(half, n)])
        return [int.from_bytes(v0, "little") ^ flip, int.from_bytes(v1, "little") ^ flip]

    zero = array.array("h", bytes(2 * n))
    real = True
    for a in ims:
        if a[0:n] != zero:
            real = False
            break
    V = pack(res)
    W = None if real else pack(ims)  # None: every imaginary part is 0 (and stays 0 through the first stage)
    last = len(stages) - 1
    for s in range(len(stages)):
        h, ones, m15, m1, c2b, tws, low, sh = stages[s]
        if W is None:  # the first stage (h = 1, twiddle (32767, 0)) of real input: imaginary parts stay 0
            ar, ai, cr, ci = tws[0]
            ur = V[0]
            tr = ((ar * V[1] + cr * ones) & m15) >> 15
            V = [((ur + tr) & m1) >> 1, ((ur - tr + c2b) & m1) >> 1]
            W = [c2b >> 1, c2b >> 1]  # lanes of 0 (+ the bias)
        else:
            for q in range(h):
                ar, ai, cr, ci = tws[q]
                cr *= ones
                ci *= ones
                xr = V[q + h]
                xi = W[q + h]
                if ai == 0:
                    tr = ((ar * xr + cr) & m15) >> 15
                    ti = ((ar * xi + ci) & m15) >> 15
                elif ar == 0:
                    tr = ((ai * xi + cr) & m15) >> 15
                    ti = ((ci - ai * xr) & m15) >> 15
                else:
                    tr = ((ar * xr + ai * xi + cr) & m15) >> 15
                    ti = ((ar * xi - ai * xr + ci) & m15) >> 15
                ur = V[q]
                ui = W[q]
                V[q] = ((ur + tr) & m1) >> 1
                W[q] = ((ui + ti) & m1) >> 1
                if s < last or q == 0:  # the last stage: bins 0..n/2 only
                    V[q + h] = ((ur - tr + c2b) & m1) >> 1
                    W[q + h] = ((ui - ti + c2b) & m1) >> 1
        if s < last:
            V = [v & low for v in V] + [v >> sh for v in V]
            W = [v & low for v in W] + [v >> sh for v in W]
    # bins 0..n/2 (n/2: the first butterfly's difference), lane j of each: transform j
    flip = int.from_bytes(b"\x00\x80\x00\x00" * k, "little")
    nb = half + 1
    fmt = _fmt(nb)
    for src, dst in ((V, res), (W, ims)):
        blob = b"".join([(src[r] ^ flip).to_bytes(4 * k, "little") for r in range(nb)])
        vals[0:2 * k * nb] = struct.unpack("<%dh" % (2 * k * nb), blob)
        for j in range(k):
            dst[j][0:nb] = array.array("h", struct.pack(fmt, *vals[2 * j:2 * k * nb:2 * k]))


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
    if n <= 0:
        return
    if stride == 1:
        try:
            dst[0:n] = src[off:off + n]
            return
        except TypeError:  # CPython assigns only arrays to an array's slice (this was a memoryview)
            pass
    # struct and list slices do the stepping in C, up to _ARGS values at a time
    step = _ARGS // stride
    i = 0
    while i < n:
        c = n - i if n - i <= step else step
        m = (c - 1) * stride + 1
        v = [0] * m
        v[0:m] = struct.unpack_from(_fmt(m), src, 2 * (off + i * stride))
        dst[i:i + c] = array.array("h", struct.pack(_fmt(c), *v[0:m:stride]))
        i += c


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
    sq = _sqrt
    f64 = _F64
    step = (_ARGS - 3) // stride + 1
    i0 = 0
    while i0 < n:  # up to _ARGS values at a time
        c = n - i0 if n - i0 <= step else step
        t = struct.unpack_from(_fmt((c - 1) * stride + 3), src, 2 * (off + i0 * stride))
        out = [0] * c
        i = 0
        j = 0
        while i < c:
            a = t[j]
            b = t[j + 1]
            d = t[j + 2]
            v = a * a + b * b + d * d
            # below 26753**2 no component needs its clamp and the root stays below 32767
            out[i] = int(sq(v)) if f64 and v <= 715723009 else _magnitude1(a, b, d)
            i += 1
            j += stride
        dst[i0:i0 + c] = array.array("h", struct.pack(_fmt(c), *out))
        i0 += c


def _magnitude1(a, b, c):
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
    return 32767 if m > 32767 else m


def moments(x, n, out):
    """One pass over int16 x[:n] (n >= 1): out[0] = sum, out[1] = min, out[2] = max, out[3] = sum of
    |x[i] - x[i-1]|, out[4] = max |x[i] - x[i-1]|. ``out`` is an int32 array ('i') of length >= 5."""
    if 8 <= n <= _ARGS:
        return _moments_lanes(x, n, out)
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


def _lane_consts(n):
    # For n values in 32-bit lanes: their struct format (an int16 and two pad bytes each), a 1 in every lane,
    # the mask of the first n - 1 lanes.
    key = ("lanes", n)
    return _CONSTS.get(key) or _keep(key, ("<" + "hxx" * n, int.from_bytes(b"\x01\x00\x00\x00" * n, "little"),
                                            (1 << (32 * (n - 1))) - 1))


def _moments_lanes(x, n, out):
    # ``moments`` with the values side by side in 32-bit lanes of one integer (offset by 2**15: every lane
    # positive): the differences of neighbours and their absolute values lane by lane, each sum as the integer
    # modulo 2**32 - 1 (2**32 is 1 there; the sums stay far below it); extremes from sorted lists.
    t = struct.unpack_from(_fmt(n), x)
    v = [0] * n
    v[0:n] = t
    v.sort()
    out[1] = v[0]
    out[2] = v[n - 1]
    fmt, ones, low = _lane_consts(n)
    p = int.from_bytes(struct.pack(fmt, *t), "little") ^ (ones << 15)
    out[0] = p % 0xFFFFFFFF - (n << 15)
    ones >>= 32  # n - 1 lanes: the differences x[i + 1] - x[i], + 2**16
    d = (p >> 32) + (ones << 16) - (p & low)
    neg = ((d >> 16) & ones) ^ ones  # 1 where the difference is negative
    a = (d ^ (neg * 0x1FFFF)) - (ones << 16) + neg  # its absolute value
    out[3] = a % 0xFFFFFFFF
    v = [0] * (n - 1)
    v[0:n - 1] = struct.unpack("<%dI" % (n - 1), a.to_bytes(4 * (n - 1), "little"))
    v.sort()
    out[4] = v[n - 2]


def sumsq_dev(x, n, mean, shift):
    """sum of ((x[i] - mean)**2 >> shift), each |x[i] - mean| clamped to 46340. The caller picks ``shift`` so
    that n * max_dev**2 >> shift < 2**31."""
    s = 0
    if -13573 <= mean <= 13572:  # then no int16 is further than 46340 from it: nothing to clamp
        for v in x[0:n]:
            d = v - mean
            s += (d * d) >> shift
        return s
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
        if n > _ARGS:
            x[0:n] = array.array("h", sorted(x[0:n]))
            return
        v = [0] * n
        v[0:n] = struct.unpack_from(_fmt(n), x)
        v.sort()
        x[0:n] = array.array("h", struct.pack(_fmt(n), *v))


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


def spectrum(re, im, bands, lo, hi, out):
    """``band_power`` of each (low, high) pair in ``bands`` into out[0:len(bands)], then ``argmax_power(re, im,
    lo, hi)`` into out[len(bands)]; ``out``: an int32 array ('i'). One pass over the bins when the bands are
    ascending, do not overlap and lie in [lo, hi) (the features' bands)."""
    nb = len(bands)
    j = 0
    e = lo
    for a, b in bands:
        if a < e or b < a or b > hi:  # another layout: one bin at a time
            for i in range(nb):
                out[i] = band_power(re, im, bands[i][0], bands[i][1])
            out[nb] = argmax_power(re, im, lo, hi)
            return
        e = b
    best = -1
    at = lo
    k = lo
    for j in range(nb + 1):
        a, b = bands[j] if j < nb else (hi, hi)
        if k < a:  # bins between the bands (and after the last): the argmax only
            g = argmax_power(re, im, k, a)
            p = re[g] * re[g] + im[g] * im[g]
            if p > best:
                best = p
                at = g
        s = 0
        for k in range(a, b):
            u = re[k]
            v = im[k]
            p = u * u + v * v
            s += p
            if p > best:
                best = p
                at = k
        if j < nb:
            out[j] = s
        k = b
    out[nb] = at


def dot(a, b, n, shift):
    """sum of ((a[i] * b[i]) >> shift) for int16 a, b; the caller keeps the sum below 2**31."""
    s = 0
    for i in range(n):
        s += (a[i] * b[i]) >> shift
    return s


def dots3(a, b, c, n, shift, out):
    """out[0:6] = dot(a, a), dot(b, b), dot(c, c), dot(a, b), dot(a, c), dot(b, c) (each with ``n``, ``shift``)
    in one pass. ``out``: an int32 array ('i')."""
    aa = bb = cc = ab = ac = bc = 0
    for i in range(n):
        u = a[i]
        v = b[i]
        w = c[i]
        aa += (u * u) >> shift
        bb += (v * v) >> shift
        cc += (w * w) >> shift
        ab += (u * v) >> shift
        ac += (u * w) >> shift
        bc += (v * w) >> shift
    out[0] = aa
    out[1] = bb
    out[2] = cc
    out[3] = ab
    out[4] = ac
    out[5] = bc


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
