"""DSP kernels facade: the one module the rest of sensorbox imports for the integer FFT, IIR and statistics.

It picks, once at import, the fastest implementation present:

- ``sensorbox.shared.kernels_viper`` (``@micropython.viper``: the unix port and ESP32s);
- otherwise ``sensorbox.shared.kernels_py`` (plain Python: CPython and MicroPython WebAssembly).

``VARIANT`` names the kernels in use (``"viper"`` or ``"python"``); ``dots3`` and ``spectrum``, which the plain
kernels do in one pass, are made of the single kernels where a variant lacks them. The integer kernels (``fft_q15``,
``iir_q``, ``moments``, ...; documented in kernels_py) exist only in sensorbox and give bit-identical results
in every variant, so features and sound levels are the same on the device, the host and in the browser.

``fft(n)`` and ``iir(q28)`` make the FFT of the features and the sound meter's filter: emlearn-micropython's C
modules ``emlearn_fft`` / ``emlearn_iir`` when a device has them installed (``sensorbox.shared.kernels_emlearn``,
float32 in C, the same arrays and scaling; ``EMLEARN`` names the modules in use), else ``FFTQ`` / ``IIRQ`` over the
integer kernels. The C modules are faster but not bit-identical: tests/device/test_emlearn.py states the tolerances. The
float kernels with emlearn's API (``FFT``, ``IIR``, ``linear_map``) for host code are in ``kernels_float``.
"""

import array
import sys

try:
    from sensorbox.shared import kernels_viper as _k

    VARIANT = "viper"
except (ImportError, SyntaxError):  # CPython has no micropython module; WebAssembly no viper emitter
    from sensorbox.shared import kernels_py as _k

    VARIANT = "python"

EMLEARN = ()  # emlearn-micropython's C DSP modules installed here, used through sensorbox.shared.kernels_emlearn
for _n in ("emlearn_fft", "emlearn_iir"):
    try:
        __import__(_n)
        EMLEARN += (_n,)
    except ImportError:
        pass
_c = None
if EMLEARN:
    try:
        __import__("sensorbox.shared.kernels_emlearn")  # (by a string: its name interned only where it is used)
        _c = sys.modules["sensorbox.shared.kernels_emlearn"]
    except (ImportError, SyntaxError):  # not a device (no viper): the integer kernels
        EMLEARN = ()

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
dots3 = getattr(_k, "dots3", None)
spectrum = getattr(_k, "spectrum", None)
if dots3 is None:  # the viper kernels: their dot, six times (kernels_py.dots3 does one pass)

    def dots3(a, b, c, n, shift, out):
        out[0] = dot(a, a, n, shift)
        out[1] = dot(b, b, n, shift)
        out[2] = dot(c, c, n, shift)
        out[3] = dot(a, b, n, shift)
        out[4] = dot(a, c, n, shift)
        out[5] = dot(b, c, n, shift)

if spectrum is None:  # the viper kernels: band_power per band, then argmax_power (kernels_py.spectrum: one pass)

    def spectrum(re, im, bands, lo, hi, out):
        for i in range(len(bands)):
            out[i] = band_power(re, im, bands[i][0], bands[i][1])
        out[len(bands)] = argmax_power(re, im, lo, hi)
IIR_FRAC = 8  # kernels_py.IIR_FRAC

_NIBBLE_BITS = b"\x00\x01\x02\x02\x03\x03\x03\x03\x04\x04\x04\x04\x04\x04\x04\x04"


def bitlen(v):
    """Bits of an int ``v >= 0`` (``int.bit_length``, which MicroPython lacks): 16, 8, 4 bits at a time, so a value
    below 2**30 never leaves the small ints."""
    n = 0
    while v >= 0x10000:
        v >>= 16
        n += 16
    if v >= 0x100:
        v >>= 8
        n += 8
    if v >= 0x10:
        v >>= 4
        n += 4
    return n + _NIBBLE_BITS[v]


FFT_MAX = 512


#: The device's module loader (``sensorbox.device.lazy``: ``load``/``unload``), which the device installs here at
#: start (``boot.init``); None elsewhere. Shared code imports nothing of the device.
lazy = None


def setup(fn, *args):
    """``fn(*args)`` of ``sensorbox.shared.dsp_setup``: the set-up code of FFTQ, IIRQ, ``features.Extractor`` and
    ``soundlevel.SoundLevelMeter``. On a device the module is loaded for the call only (through ``lazy``, whose
    reserve helps on a fragmented heap) and gives its heap back after; on MicroPython without it (WebAssembly, a
    test of these modules alone) it is dropped from ``sys.modules`` after too; CPython keeps it."""
    name = "sensorbox.shared.dsp_setup"
    lz = lazy
    try:
        if lz is not None:
            m = lz.load(name)
        else:
            m = __import__(name).shared.dsp_setup
        return getattr(m, fn)(*args)
    finally:
        if lz is not None:
            lz.unload(name)
        elif sys.implementation.name == "micropython" and sys.modules.pop(name, None) is not None:
            del sys.modules["sensorbox.shared"].dsp_setup


def fft_table(n):
    """Twiddles for ``fft_q15(re, im, n, tw)``: int16 array of n, Q15 cos(2 pi k/n) (k < n/2) then sin (from a
    table of integers: identical on every interpreter)."""
    return setup("fft_table", n)


class FFTQ:
    """``fft_q15`` with its twiddles: ``FFTQ(n).run(re, im)`` transforms int16 ``re``/``im`` (n each) in place,
    scaled by 1/n. (What ``fft(n)`` may give instead writes only bins 0..n/2: callers use no more.)"""

    def __init__(self, n):
        self.n = n
        self.tw = fft_table(n)

    def run(self, re, im):
        fft_q15(re, im, self.n, self.tw)


def fft(n):
    """An FFT of ``n`` points with ``FFTQ``'s interface: ``emlearn_fft`` when installed, else ``FFTQ``."""
    if "emlearn_fft" in EMLEARN:
        return _c.FFT(n)
    return FFTQ(n)


def iir(q28):
    """A biquad cascade with ``IIRQ``'s interface for the Q28 coefficients ``q28``: ``emlearn_iir`` when installed,
    else ``IIRQ``."""
    if "emlearn_iir" in EMLEARN:
        return _c.IIR(q28)
    return IIRQ(q28)


# Fixed-point IIR (iir_q): coefficients are Q28 integers, split into int16 pairs.

Q28 = 1 << 28


def iir_q_pack(q28):
    """Pack Q28 integer coefficients (b0, b1, b2, a1, a2 per section; a0 is 1) for ``iir_q``. Ship integer
    coefficients so every interpreter (float32 on an ESP32 included) runs exactly the same filter."""
    return setup("iir_q", q28)


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
