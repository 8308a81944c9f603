"""Float DSP kernels with emlearn's interface: ``FFT``, ``IIR``, ``linear_map``, and ``iir_q_quantize`` (float
SOS to the Q28 integers of ``kernels.IIRQ``).

Nothing on the device uses them (features and the sound meter run on the integer kernels in ``kernels``), so
they live apart from the facade and cost a device no heap unless imported. Each picks, once at import,
emlearn-micropython's C module when importable (``emlearn_fft``, ``emlearn_iir``, ``emlearn_arrayutils``, as
installed on a real device with mip), else the plain fallback in ``kernels_py``. ``FLOAT_VARIANT`` names which:
``"emlearn"`` or ``"python"``. emlearn's C and the plain fallback agree within float32 rounding: FFT outputs
within 1e-4 of the input's peak amplitude times n, IIR outputs within 1e-4 of full scale for stable filters
(tests/host/test_kernels_host.py checks the fallbacks against numpy/scipy).
"""

import array

from sensorbox.shared.kernels import Q28

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


def iir_q_quantize(sos):
    """Float SOS (scipy.signal.sosfilt layout, 6 per section) to the Q28 integers ``kernels.iir_q_pack`` takes."""
    out = []
    for s in range(len(sos) // 6):
        a0 = sos[6 * s + 3]
        for i in (0, 1, 2, 4, 5):
            v = sos[6 * s + i] / a0 * Q28
            out.append(int(v + 0.5) if v >= 0 else -int(-v + 0.5))
    return out


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
