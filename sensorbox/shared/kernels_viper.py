"""The integer DSP kernels of ``sensorbox.shared.kernels_py``, compiled with ``@micropython.viper``.

Same names, arguments and results as the plain versions, bit for bit (tests/device/test_kernels_viper.py).
Device only: a port without the viper emitter (WebAssembly) raises SyntaxError on import, which
``sensorbox.shared.kernels`` catches. Viper notes: ``ptr16`` loads are unsigned, so int16 values are
sign-extended with ``(v ^ 0x8000) - 0x8000``; pointers are not bounds-checked, so every function trusts its
``n``/offsets (the facade and callers size the arrays); integers wrap modulo 2**32 on a 32-bit ESP32, which is
why the algorithms keep every intermediate below 2**31 (see kernels_py). 32-bit arrays are only written here.
"""

import micropython
from micropython import const

IIR_FRAC = const(8)  # as kernels_py.IIR_FRAC (written as 8 and 128 inside iir_q)


@micropython.viper
def fft_q15(re, im, n: int, tw):
    # kernels_py.fft_q15: the same butterflies in the same order, hence the same results. The work is done by
    # two helpers whose first parameters are their hottest variables: viper keeps a function's first three
    # locals in registers (the rest live in its stack frame), and parameters come first. The arrays are passed
    # on as objects: a pointer would be passed as an int object holding the address, a long int (allocated)
    # wherever addresses exceed the small-int range.
    _bit_reverse(0, 0, re, im, n)
    _stages(0, 0, re, 0, im, n, tw)


@micropython.viper
def _bit_reverse(i: int, j: int, re: ptr16, im: ptr16, n: int):
    # kernels_py._bit_reverse's permutation, visiting only the pairs that swap: an index is (a, mid, b), a
    # and b of hb bits each and a middle bit when log2(n) is odd; its reverse (rev(b), mid, rev(a)) is larger
    # exactly when a < rev(b) (equal means a fixed point). hb <= 4 for n <= 512 (kernels.FFT_MAX): an hb-bit
    # reverse is the 4-bit one shifted right by 4 - hb. No per-index test (i < j) and no reversed counter to step.
    hb = 0
    while (4 << (hb + hb)) <= n:
        hb += 1
    hh = 1 << hb  # H
    s = n >> hb  # stride of a: H << mid
    mids = s >> hb  # 1 or 2
    sh = 4 - hb
    b = 0
    while b < hh:
        rb = ((((b & 1) << 3) | ((b & 2) << 1) | ((b >> 1) & 2) | ((b >> 3) & 1)) >> sh)
        a = 0
        while a < rb:
            ra = ((((a & 1) << 3) | ((a & 2) << 1) | ((a >> 1) & 2) | ((a >> 3) & 1)) >> sh)
            i = a * s + b
            j = rb * s + ra
            m = 0
            while m < mids:
                t = re[i]
                re[i] = re[j]
                re[j] = t
                t = im[i]
                im[i] = im[j]
                im[j] = t
                i += hh
                j += hh
                m += 1
            a += 1
        b += 1


@micropython.viper
def _stages(tr: int, ti: int, re: ptr16, m0: int, im: ptr16, n: int, tw: ptr16):
    # The radix-2**2 passes of kernels_py.fft_q15; the first butterflies of each pass (q = 0), a third of all
    # for n = 256, have the twiddles (1, 0) and (0, 1) and get a loop without the products by zero.
    half = n >> 1
    h = 1
    step = half  # twiddle index step of stage A (span h): n / (2h)
    while 4 * h <= n:
        h2 = h + h
        h4 = h2 + h2
        sb = step >> 1  # stage B (span 2h)
        q = 0
        if int(tw[half]) == 0 and int(tw[half >> 1]) == 0:
            # q = 0: stage A and B's first twiddle are (cos 0, 0), B's second (0, sin pi/2). The zero products
            # are left out; every other operation is the general loop's, so the results are the same.
            ar = (int(tw[0]) ^ 0x8000) - 0x8000
            ci = (int(tw[half + (half >> 1)]) ^ 0x8000) - 0x8000
            m0 = 0
            while m0 < n:
                m1 = m0 + h
                m2 = m0 + h2
                m3 = m1 + h2
                xr = (int(re[m1]) ^ 0x8000) - 0x8000
                xi = (int(im[m1]) ^ 0x8000) - 0x8000
                tr = (ar * xr + 16384) >> 15
                ti = (ar * xi + 16384) >> 15
                ur = (int(re[m0]) ^ 0x8000) - 0x8000
                ui = (int(im[m0]) ^ 0x8000) - 0x8000
                r0 = (ur + tr) >> 1
                i0 = (ui + ti) >> 1
                r1 = (ur - tr) >> 1
                i1 = (ui - ti) >> 1
                xr = (int(re[m3]) ^ 0x8000) - 0x8000
                xi = (int(im[m3]) ^ 0x8000) - 0x8000
                tr = (ar * xr + 16384) >> 15
                ti = (ar * xi + 16384) >> 15
                ur = (int(re[m2]) ^ 0x8000) - 0x8000
                ui = (int(im[m2]) ^ 0x8000) - 0x8000
                r2 = (ur + tr) >> 1
                i2 = (ui + ti) >> 1
                r3 = (ur - tr) >> 1
                i3 = (ui - ti) >> 1
                tr = (ar * r2 + 16384) >> 15
                ti = (ar * i2 + 16384) >> 15
                re[m0] = (r0 + tr) >> 1
                im[m0] = (i0 + ti) >> 1
                re[m2] = (r0 - tr) >> 1
                im[m2] = (i0 - ti) >> 1
                tr = (ci * i3 + 16384) >> 15
                ti = (16384 - ci * r3) >> 15
                re[m1] = (r1 + tr) >> 1
                im[m1] = (i1 + ti) >> 1
                re[m3] = (r1 - tr) >> 1
                im[m3] = (i1 - ti) >> 1
                m0 += h4
            q = 1
        ka = q * step
        kb = q * sb
        quarter = h * sb  # n / 4: stage B's second twiddle is a quarter turn on from its first
        while q < h:
            ar = (int(tw[ka]) ^ 0x8000) - 0x8000
            ai = (int(tw[half + ka]) ^ 0x8000) - 0x8000
            br = (int(tw[kb]) ^ 0x8000) - 0x8000
            bi = (int(tw[half + kb]) ^ 0x8000) - 0x8000
            kc = kb + quarter
            cr = (int(tw[kc]) ^ 0x8000) - 0x8000
            ci = (int(tw[half + kc]) ^ 0x8000) - 0x8000
            ka += step
            kb += sb
            m0 = q
            while m0 < n:
                m1 = m0 + h
                m2 = m0 + h2
                m3 = m1 + h2
                # stage A on (m0, m1) and (m2, m3), twiddle a
                xr = (int(re[m1]) ^ 0x8000) - 0x8000
                xi = (int(im[m1]) ^ 0x8000) - 0x8000
                tr = (ar * xr + ai * xi + 16384) >> 15
                ti = (ar * xi - ai * xr + 16384) >> 15
                ur = (int(re[m0]) ^ 0x8000) - 0x8000
                ui = (int(im[m0]) ^ 0x8000) - 0x8000
                r0 = (ur + tr) >> 1
                i0 = (ui + ti) >> 1
                r1 = (ur - tr) >> 1
                i1 = (ui - ti) >> 1
                xr = (int(re[m3]) ^ 0x8000) - 0x8000
                xi = (int(im[m3]) ^ 0x8000) - 0x8000
                tr = (ar * xr + ai * xi + 16384) >> 15
                ti = (ar * xi - ai * xr + 16384) >> 15
                ur = (int(re[m2]) ^ 0x8000) - 0x8000
                ui = (int(im[m2]) ^ 0x8000) - 0x8000
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
            wr = (int(tw[q]) ^ 0x8000) - 0x8000
            wi = (int(tw[half + q]) ^ 0x8000) - 0x8000
            m1 = q + h
            xr = (int(re[m1]) ^ 0x8000) - 0x8000
            xi = (int(im[m1]) ^ 0x8000) - 0x8000
            tr = (wr * xr + wi * xi + 16384) >> 15
            ti = (wr * xi - wi * xr + 16384) >> 15
            ur = (int(re[q]) ^ 0x8000) - 0x8000
            ui = (int(im[q]) ^ 0x8000) - 0x8000
            re[q] = (ur + tr) >> 1
            im[q] = (ui + ti) >> 1
            re[m1] = (ur - tr) >> 1
            im[m1] = (ui - ti) >> 1
            q += 1


@micropython.viper
def iir_q(x, y, n: int, coefs, state, nsec: int):
    px = ptr16(x)
    py = ptr16(y)
    pc = ptr16(coefs)
    ps = ptr16(state)
    i = 0
    while i < n:
        v = ((int(px[i]) ^ 0x8000) - 0x8000) << 8
        s = 0
        while s < nsec:
            c = s * 10
            o = s * 8
            # acc = b0*v + b1*x1 + b2*x2 - a1*y1 - a2*y2, each product as kernels_py._mul
            vh = v >> 14
            vl = v & 0x3FFF
            ch = (int(pc[c]) ^ 0x8000) - 0x8000
            cl = int(pc[c + 1])
            acc = ch * vh + ((ch * vl + cl * vh + ((cl * vl) >> 14) + 8192) >> 14)
            sh = (int(ps[o]) ^ 0x8000) - 0x8000
            sl = int(ps[o + 1])
            ch = (int(pc[c + 2]) ^ 0x8000) - 0x8000
            cl = int(pc[c + 3])
            acc += ch * sh + ((ch * sl + cl * sh + ((cl * sl) >> 14) + 8192) >> 14)
            sh = (int(ps[o + 2]) ^ 0x8000) - 0x8000
            sl = int(ps[o + 3])
            ch = (int(pc[c + 4]) ^ 0x8000) - 0x8000
            cl = int(pc[c + 5])
            acc += ch * sh + ((ch * sl + cl * sh + ((cl * sl) >> 14) + 8192) >> 14)
            sh = (int(ps[o + 4]) ^ 0x8000) - 0x8000
            sl = int(ps[o + 5])
            ch = (int(pc[c + 6]) ^ 0x8000) - 0x8000
            cl = int(pc[c + 7])
            acc -= ch * sh + ((ch * sl + cl * sh + ((cl * sl) >> 14) + 8192) >> 14)
            sh = (int(ps[o + 6]) ^ 0x8000) - 0x8000
            sl = int(ps[o + 7])
            ch = (int(pc[c + 8]) ^ 0x8000) - 0x8000
            cl = int(pc[c + 9])
            acc -= ch * sh + ((ch * sl + cl * sh + ((cl * sl) >> 14) + 8192) >> 14)
            ps[o + 2] = ps[o]
            ps[o + 3] = ps[o + 1]
            ps[o] = vh
            ps[o + 1] = vl
            ps[o + 6] = ps[o + 4]
            ps[o + 7] = ps[o + 5]
            ps[o + 4] = acc >> 14
            ps[o + 5] = acc & 0x3FFF
            v = acc
            s += 1
        v = (v + 128) >> 8
        if v > 32767:
            v = 32767
        elif v < -32768:
            v = -32768
        py[i] = v
        i += 1


@micropython.viper
def isqrt(v: int) -> int:
    r = 0
    bit = 16384
    bit <<= 16  # 2**30, built at run time: as a literal it would be a long-int object for mpy-cross
    while bit > v:
        bit >>= 2
    while bit:
        if v >= r + bit:
            v -= r + bit
            r = (r >> 1) + bit
        else:
            r >>= 1
        bit >>= 2
    return r


@micropython.viper
def gather(src, off: int, stride: int, n: int, dst):
    ps = ptr16(src)
    pd = ptr16(dst)
    p = off
    for i in range(n):
        pd[i] = ps[p]
        p += stride


@micropython.viper
def copy_i16(src, soff: int, dst, doff: int, n: int):
    ps = ptr16(src)
    pd = ptr16(dst)
    i = 0
    while i < n:
        pd[doff + i] = ps[soff + i]
        i += 1


@micropython.viper
def magnitude(src, off: int, stride: int, n: int, dst):
    ps = ptr16(src)
    pd = ptr16(dst)
    p = off
    for i in range(n):
        a = (int(ps[p]) ^ 0x8000) - 0x8000
        b = (int(ps[p + 1]) ^ 0x8000) - 0x8000
        c = (int(ps[p + 2]) ^ 0x8000) - 0x8000
        p += stride
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
        r = 0
        bit = 16384
        bit <<= 16  # 2**30, built at run time: as a literal it would be a long-int object for mpy-cross
        while bit > v:
            bit >>= 2
        while bit:
            if v >= r + bit:
                v -= r + bit
                r = (r >> 1) + bit
            else:
                r >>= 1
            bit >>= 2
        if r > 32767:
            r = 32767
        pd[i] = r


@micropython.viper
def moments(x, n: int, out):
    px = ptr16(x)
    po = ptr32(out)
    s = (int(px[0]) ^ 0x8000) - 0x8000
    lo = s
    hi = s
    prev = s
    sd = 0
    md = 0
    i = 1
    while i < n:
        v = (int(px[i]) ^ 0x8000) - 0x8000
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
        i += 1
    po[0] = s
    po[1] = lo
    po[2] = hi
    po[3] = sd
    po[4] = md


@micropython.viper
def sumsq_dev(x, n: int, mean: int, shift: int) -> int:
    px = ptr16(x)
    s = 0
    for i in range(n):
        d = ((int(px[i]) ^ 0x8000) - 0x8000) - mean
        if d < 0:
            d = -d
        if d > 46340:
            d = 46340
        s += (d * d) >> shift
    return s


@micropython.viper
def center(x, n: int, mean: int, shift: int, dst):
    px = ptr16(x)
    pd = ptr16(dst)
    if shift >= 0:
        for i in range(n):
            pd[i] = (((int(px[i]) ^ 0x8000) - 0x8000) - mean) << shift
    else:
        shift = 0 - shift
        for i in range(n):
            pd[i] = (((int(px[i]) ^ 0x8000) - 0x8000) - mean) >> shift


@micropython.viper
def crossings(x, n: int) -> int:
    px = ptr16(x)
    c = 0
    neg = int(px[0]) & 0x8000
    for i in range(1, n):
        ng = int(px[i]) & 0x8000
        if ng != neg:
            c += 1
            neg = ng
    return c


@micropython.viper
def sort_i16(x: ptr16, n: int):
    g = 1
    while 3 * g + 1 < n:
        g = 3 * g + 1
    while g > 0:
        i = g
        while i < n:
            v = (int(x[i]) ^ 0x8000) - 0x8000
            j = i - g
            while j >= 0:
                w = (int(x[j]) ^ 0x8000) - 0x8000
                if w <= v:
                    break
                x[j + g] = w
                j -= g
            x[j + g] = v
            i += 1
        g = (g - 1) // 3


@micropython.viper
def band_power(re, im, lo: int, hi: int) -> int:
    pr = ptr16(re)
    pi = ptr16(im)
    s = 0
    k = lo
    while k < hi:
        a = (int(pr[k]) ^ 0x8000) - 0x8000
        b = (int(pi[k]) ^ 0x8000) - 0x8000
        s += a * a + b * b
        k += 1
    return s


@micropython.viper
def argmax_power(re, im, lo: int, hi: int) -> int:
    pr = ptr16(re)
    pi = ptr16(im)
    best = -1
    at = lo
    k = lo
    while k < hi:
        a = (int(pr[k]) ^ 0x8000) - 0x8000
        b = (int(pi[k]) ^ 0x8000) - 0x8000
        p = a * a + b * b
        if p > best:
            best = p
            at = k
        k += 1
    return at


@micropython.viper
def dot(a, b, n: int, shift: int) -> int:
    pa = ptr16(a)
    pb = ptr16(b)
    s = 0
    for i in range(n):
        s += (((int(pa[i]) ^ 0x8000) - 0x8000) * ((int(pb[i]) ^ 0x8000) - 0x8000)) >> shift
    return s


@micropython.viper
def sumsq_i16(x, off: int, n: int, out):
    px = ptr16(x)
    po = ptr32(out)
    hi = 0
    lo = 0
    i = off
    end = off + n
    while i < end:
        v = (int(px[i]) ^ 0x8000) - 0x8000
        q = v * v
        hi += q >> 16
        lo += q & 0xFFFF
        if lo >= 65536:
            hi += 1
            lo -= 65536
        i += 1
    po[0] = hi
    po[1] = lo
