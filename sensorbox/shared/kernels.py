"""DSP kernels facade: the one module the rest of sensorbox imports for FFT, IIR and array conversion.

It picks, once at import, the fastest implementation present:

- emlearn-micropython's C modules when importable (installed on a real device with mip): ``emlearn_fft``
  (float FFT), ``emlearn_iir`` (float biquad cascade), ``emlearn_arrayutils`` (``linear_map``);
- otherwise ``sensorbox.device.kernels_fast`` (``@micropython.viper``: the unix port and ESP32s);
- otherwise ``sensorbox.shared.kernels_py`` (plain Python: CPython and MicroPython WebAssembly).

``VARIANT`` names the integer kernels in use (``"viper"`` or ``"python"``), ``FLOAT_VARIANT`` the float ones
(``"emlearn"`` or ``"python"``). The integer kernels (``fft_q15``, ``iir_q``, ``moments``, ...; documented
in kernels_py) exist only in sensorbox and give bit-identical results in every variant, so features and
sound levels are the same on the device, the host and in the browser. The float classes ``FFT`` and ``IIR``
follow emlearn's API; emlearn's C and the plain fallback agree within float32 rounding: FFT outputs within
1e-4 of the input's peak amplitude times n, IIR outputs within 1e-4 of full scale for stable filters
(tests/host/test_kernels_host.py checks the fallbacks against numpy/scipy).
"""

import array

try:
    from sensorbox.device import kernels_fast as _k

    VARIANT = "viper"
except (ImportError, SyntaxError):  # CPython has no micropython module; WebAssembly no viper emitter
    from sensorbox.shared import kernels_py as _k

    VARIANT = "python"

fft_q15 = _k.fft_q15
iir_q = _k.iir_q
isqrt = _k.isqrt
gather = _k.gather
copy_i16 = _k.copy_i16
magnitude = _k.magnitude
moments = _k.moments
sumsq_dev = _k.sumsq_dev
center = _k.center
crossings = _k.crossings
sort_i16 = _k.sort_i16
band_power = _k.band_power
argmax_power = _k.argmax_power
dot = _k.dot
sumsq_i16 = _k.sumsq_i16
IIR_FRAC = 8  # kernels_py.IIR_FRAC

try:
    import emlearn_fft
except ImportError:
    emlearn_fft = None
try:
    import emlearn_iir
except ImportError:
    emlearn_iir = None
try:
    import emlearn_arrayutils
except ImportError:
    emlearn_arrayutils = None

FLOAT_VARIANT = "emlearn" if emlearn_fft is not None and emlearn_iir is not None else "python"

# Q15 sin(2 pi i / 512) for i = 0..128 (a quarter wave), as 4-digit hex. Integer tables make the fixed-point
# FFT identical on every interpreter: computing them with math.sin on a float32 ESP32 would round some
# entries differently from the host's float64.
_SIN512 = (
    "00000192032404b6064807d9096a0afb0c8c0e1c0fab113a12c8145515e2176e18f91a821c0b1d931f1a209f222323a6"
    "252826a8282629a32b1f2c992e112f8730fb326e33df354d36ba3824398c3af23c563db83f17407341ce4325447a45cd"
    "471c486949b44afb4c3f4d814ebf4ffb51335268539b54c955f5571d584259645a825b9c5cb35dc75ed75fe360eb61f0"
    "62f163ee64e865dd66cf67bc68a6698b6a6d6b4a6c236cf86dc96e966f5e702270e2719d7254730773b5745f750475a5"
    "764176d8776b77fa7884790979897a057a7c7aee7b5c7bc57c297c887ce37d397d897dd57e1d7e5f7e9c7ed57f097f37"
    "7f617f867fa67fc17fd87fe97ff57ffd7fff"
)
FFT_MAX = 512


def _sin512(j):
    j &= 511
    sign = 1
    if j >= 256:
        sign = -1
        j -= 256
    if j > 128:
        j = 256 - j
    return sign * int(_SIN512[4 * j:4 * j + 4], 16)


def fft_table(n):
    """Twiddles for ``fft_q15(re, im, n, tw)``: int16 array of n, Q15 cos(2 pi k/n) (k < n/2) then sin."""
    if n < 2 or n > FFT_MAX or n & (n - 1):
        raise ValueError("FFT size must be a power of two from 2 to {}, got {}".format(FFT_MAX, n))
    step = FFT_MAX // n
    half = n >> 1
    tw = array.array("h", bytes(2 * n))
    for k in range(half):
        tw[k] = _sin512(k * step + 128)
        tw[half + k] = _sin512(k * step)
    return tw


# Fixed-point IIR (iir_q): coefficients are Q28 integers, split into int16 pairs.

Q28 = 1 << 28


def iir_q_pack(q28):
    """Pack Q28 integer coefficients (b0, b1, b2, a1, a2 per section; a0 is 1) for ``iir_q``. Ship integer
    coefficients so every interpreter (float32 on an ESP32 included) runs exactly the same filter."""
    if len(q28) % 5:
        raise ValueError("iir_q coefficients come in fives (b0, b1, b2, a1, a2), got {}".format(len(q28)))
    out = array.array("h", bytes(4 * len(q28)))
    lim = 1 << 29
    for i in range(len(q28)):
        c = q28[i]
        if c < -lim or c >= lim:
            raise ValueError("iir_q coefficient {} is outside [-2, 2) (Q28 {})".format(i, c))
        out[2 * i] = c >> 14
        out[2 * i + 1] = c & 0x3FFF
    return out


def iir_q_quantize(sos):
    """Float SOS (scipy.signal.sosfilt layout, 6 per section) to the Q28 integers ``iir_q_pack`` takes."""
    out = []
    for s in range(len(sos) // 6):
        a0 = sos[6 * s + 3]
        for i in (0, 1, 2, 4, 5):
            v = sos[6 * s + i] / a0 * Q28
            out.append(int(v + 0.5) if v >= 0 else -int(-v + 0.5))
    return out


class IIRQ:
    """A fixed-point biquad cascade with its state: ``run(x, y, n)`` filters int16 x[:n] into int16 y."""

    def __init__(self, q28):
        self.coefs = iir_q_pack(q28)
        self.nsec = len(q28) // 5
        self.state = array.array("h", bytes(16 * self.nsec))

    def reset(self):
        s = self.state
        for i in range(len(s)):
            s[i] = 0

    def run(self, x, y, n):
        if n > len(x) or n > len(y):
            raise ValueError("iir_q: n={} exceeds the arrays ({}, {})".format(n, len(x), len(y)))
        iir_q(x, y, n, self.coefs, self.state, self.nsec)


# Float kernels with emlearn's interface.

class FFT:
    """Complex forward FFT of ``n`` points (power of two) on float arrays, in place, unscaled (e^-i):
    ``FFT(n).run(re, im)``. emlearn_fft when present, else the plain fallback."""

    def __init__(self, n):
        if n < 2 or n & (n - 1):
            raise ValueError("FFT size must be a power of two, got {}".format(n))
        self.n = n
        if emlearn_fft is not None:
            self._e = emlearn_fft.FFT(n)
            emlearn_fft.fill(self._e, n)
        else:
            import math

            self._e = None
            self._cos = array.array("f", [math.cos(2 * math.pi * k / n) for k in range(n // 2)])
            self._sin = array.array("f", [math.sin(2 * math.pi * k / n) for k in range(n // 2)])

    def run(self, re, im):
        if len(re) < self.n or len(im) < self.n:
            raise ValueError("FFT of {} points needs arrays of that length".format(self.n))
        if self._e is not None:
            self._e.run(re, im)
        else:
            from sensorbox.shared.kernels_py import fft_float

            fft_float(re, im, self.n, self._cos, self._sin)


class IIR:
    """Float biquad cascade, scipy.signal.sosfilt convention (6 values per section), in place on an
    ``array('f')``: ``IIR(sos).run(buf)``. emlearn_iir when present, else the plain fallback."""

    def __init__(self, sos):
        if not len(sos) or len(sos) % 6:
            raise ValueError("IIR: sos needs 6 values per section, got {}".format(len(sos)))
        self.sos = array.array("f", sos)
        if emlearn_iir is not None:
            self._e = emlearn_iir.new(self.sos)
        else:
            self._e = None
            self._state = array.array("f", bytes(4 * 2 * (len(sos) // 6)))

    def run(self, buf):
        if self._e is not None:
            self._e.run(buf)
        else:
            from sensorbox.shared.kernels_py import iir_float

            iir_float(self.sos, self._state, buf)


def linear_map(src, dst, in_min, in_max, out_min, out_max):
    """Map src's values from [in_min, in_max] to [out_min, out_max] into dst (int16 <-> float arrays)."""
    if emlearn_arrayutils is not None:
        emlearn_arrayutils.linear_map(src, dst, in_min, in_max, out_min, out_max)
    else:
        from sensorbox.shared.kernels_py import linear_map as lm

        lm(src, dst, in_min, in_max, out_min, out_max)
