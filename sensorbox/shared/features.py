"""Accelerometer (and gyroscope) window features: the model's input, computed identically on the device, the host
(training) and in the browser.

    ex = Extractor(channels=3, window=WINDOW)        # allocates every buffer once
    ex.extract(frames, out)                          # frames: array('h'), window*channels interleaved counts
    names(3)                                         # ('ax_mean', 'ax_std', ...): the order of ``out``

Signals: the axes of each sensor and their magnitude: ``ax ay az am`` (accelerometer) and, with 6 channels,
``gx gy gz gm`` (gyroscope). Per signal (``SIGNAL_FEATURES``), then per sensor the pairwise axis correlations,
then the gravity direction. Everything is integer arithmetic through ``sensorbox.shared.kernels`` (fixed-point
FFT included), so the int16 outputs are identical on every interpreter; on a device with emlearn-micropython's
``emlearn_fft`` installed the FFT runs there (``kernels.fft``) and ``e0``..``e4``/``domf`` may differ slightly
(tests/device/test_emlearn.py states by how much). Trees only compare thresholds, so scales need only be fixed
and documented; these are:

- ``mean std min max p10 p25 p50 p75 p90 iqr rms``: input counts (accelerometer 4096/g, gyroscope 16.4/dps),
  ``std`` = population standard deviation (floor), ``rms`` of the raw signal, percentiles nearest-rank.
- ``jerk``: mean |x[i] - x[i-1]| in counts per sample, times 16; ``jerkmax``: max |x[i] - x[i-1]| (counts).
- ``zc``: sign changes of the mean-removed signal in the window (a frequency proxy).
- ``e0``..``e4``: energy of the mean-removed signal in the bands of ``dsp_setup.BANDS_CHZ`` (0.3-1, 1-2.5, 2.5-5, 5-10,
  10-25 Hz) as 64*log2(counts**2) (the bands plus DC and the rest sum to the variance); -2048 when empty.
- ``domf``: frequency of the strongest FFT bin above DC, in centi-Hz (0 for a flat signal).
- ``<sensor>_corr_xy/xz/yz``: Pearson correlation of the axes, 4096 = 1.
- ``grav_x/y/z``: the gravity direction (the window's mean acceleration as a unit vector), 4096 = 1.

Every value is clamped to int16. ``FEATURE_VERSION`` changes whenever a name, order or scale changes: a model
records the version it was trained on and the device refuses a mismatch.
"""

import array

from sensorbox.shared import kernels

FEATURE_VERSION = 1
WINDOW = 128  # frames per window (2.56 s at 50 Hz)
HOP = 64  # frames between window starts
RATE_HZ = 50

SIGNAL_FEATURES = ("mean", "std", "min", "max", "p10", "p25", "p50", "p75", "p90", "iqr", "rms", "jerk",
                   "jerkmax", "zc", "e0", "e1", "e2", "e3", "e4", "domf")
LOG_FLOOR = -2048
# The bands (BANDS_CHZ), the percentiles and the names are made in ``sensorbox.shared.dsp_setup``: set-up code,
# which a device loads only while an Extractor is made (kernels.setup).


def signals(channels):
    """Signal names for ``channels`` (3: accelerometer, 6: accelerometer + gyroscope)."""
    return kernels.setup("signals", channels)


def names(channels):
    """Feature names for a window of ``channels`` axes, in the order ``Extractor.extract`` writes them."""
    return tuple(kernels.setup("iter_names", channels))


def iter_names(channels):
    """``names(channels)`` one at a time, for comparing with a model's list without holding ~90 strings."""
    return kernels.setup("iter_names", channels)  # (a generator of dsp_setup's)


_bitlen = kernels.bitlen  # bits of an int v >= 0


def isqrt(v):
    """floor(sqrt(v)) for any int v >= 0 (Newton's method above the 31-bit kernel)."""
    if v < 0x40000000:
        return kernels.isqrt(v) if v > 0 else 0
    x = 1 << ((_bitlen(v) + 1) >> 1)
    while True:
        y = (x + v // x) >> 1
        if y >= x:
            return x
        x = y


def log2_q6(p):
    """64 * log2(p) for an int p >= 1, linear between powers of two (exact at them); LOG_FLOOR for p <= 0."""
    if p <= 0:
        return LOG_FLOOR
    b = _bitlen(p) - 1
    x = p - (1 << b)
    return 64 * b + (x >> (b - 6) if b >= 6 else (x << 6) >> b)  # (x << 6) >> b, without x << 6 past 2**30


def _c16(v):
    return 32767 if v > 32767 else (-32768 if v < -32768 else v)


def _div_round(a, b):
    # round(a / b) for b > 0, halves up; floor division keeps it identical for negative a everywhere
    return (2 * a + b) // (2 * b)


class Extractor:
    """Computes ``names(channels)`` for one window. All scratch buffers are allocated here, once."""

    def __init__(self, channels, window=WINDOW, rate_hz=RATE_HZ):
        # (the set-up code: dsp_setup)
        self.signals, self.n_features, self._bins, self._pidx, self._dshift = kernels.setup(
            "features", channels, window, rate_hz)
        self.channels = channels
        self.window = n = window
        self.rate_hz = rate_hz
        self._fft = kernels.fft(n)  # emlearn_fft when installed, else the fixed-point fft_q15
        self._buf = array.array("h", bytes(2 * n))
        self._re = array.array("h", bytes(2 * n))
        self._im = array.array("h", bytes(2 * n))
        self._zero = array.array("h", bytes(2 * n))
        self._cen = [array.array("h", bytes(2 * n)) for _ in range(channels)]  # centred axes, for correlation
        self._m = array.array("i", bytes(4 * 6))  # moments, then dots3 or the bands' powers and the top bin (6)
        self._means = array.array("i", bytes(4 * 3))

    def extract(self, frames, out):
        """Write the features of ``frames`` (int16, window*channels interleaved) into ``out`` (int16 array of
        ``len(names(channels))``) and return ``out``."""
        n = self.window
        ch = self.channels
        if len(frames) < n * ch or len(out) < self.n_features:
            raise ValueError("extract: need {} frames x {} channels and {} outputs, got {} values and {}".format(
                n, ch, self.n_features, len(frames), len(out)))
        k = kernels
        o = 0
        for s in range(ch // 3):
            for axis in range(4):
                if axis < 3:
                    k.gather(frames, s * 3 + axis, ch, n, self._buf)
                    cen = self._cen[s * 3 + axis]
                else:
                    k.magnitude(frames, s * 3, ch, n, self._buf)
                    cen = self._re
                mean = self._time(self._buf, cen, out, o)
                if axis < 3 and s == 0:
                    self._means[axis] = mean
                re = self._re
                im = self._im
                if cen is not re:
                    k.gather(cen, 0, 1, n, re)
                k.gather(self._zero, 0, 1, n, im)
                self._fft.run(re, im)
                self._freq(re, im, out, o, self._fs)
                o += 20  # (len(SIGNAL_FEATURES))
        self._pairs(self._cen, self._means, out, o)
        return out

    def _pairs(self, cen, means, out, o):
        # Per sensor the axes' correlations (from the centred axes ``cen``), then the gravity direction (from the
        # accelerometer's axis ``means``), into out[o:].
        k = kernels
        n = self.window
        sh = self._dshift
        for s in range(self.channels // 3):
            a = cen[3 * s]
            b = cen[3 * s + 1]
            c = cen[3 * s + 2]
            d = self._m
            k.dots3(a, b, c, n, sh, d)  # aa, bb, cc, ab, ac, bc
            ra = isqrt(d[0])
            rb = isqrt(d[1])
            rc = isqrt(d[2])
            out[o] = self._corr(d[3], ra * rb)
            out[o + 1] = self._corr(d[4], ra * rc)
            out[o + 2] = self._corr(d[5], rb * rc)
            o += 3
        m = means
        norm = isqrt(m[0] * m[0] + m[1] * m[1] + m[2] * m[2])
        for i in range(3):
            out[o + i] = _c16(_div_round(m[i] * 4096, norm)) if norm else 0

    @staticmethod
    def _corr(num, den):
        if den <= 0:
            return 0
        d2 = 2 * den
        if d2 >= 0x20000000 or num > d2 or -num > d2:
            v = _div_round(num * 4096, den)
        else:
            # _div_round(num * 4096, den) = (8192 * num + den) // d2, by long division so that no intermediate
            # passes 2**30 (num * 4096 would: a heap int on a 32-bit board, per correlation and window)
            q = num // d2
            r = num - q * d2  # 0 <= r < d2
            for _ in range(13):
                r <<= 1
                q <<= 1
                if r >= d2:
                    r -= d2
                    q += 1
            v = q + 1 if r + den >= d2 else q
        return 4096 if v > 4096 else (-4096 if v < -4096 else v)

    def _time(self, buf, cen, out, o):
        # The SIGNAL_FEATURES of one signal that need no spectrum into out[o:]; leaves the centred, scaled
        # signal in ``cen`` (for the FFT: ``_freq``) and its scaling in ``self._fs`` (-1: a flat signal), sorts
        # ``buf``. Returns the mean.
        k = kernels
        n = self.window
        m = self._m
        k.moments(buf, n, m)
        lo = m[1]
        hi = m[2]
        mean = _div_round(m[0], n)
        maxd = hi - mean if hi - mean > mean - lo else mean - lo
        if maxd > 46340:
            maxd = 46340
        # _bitlen(maxd * maxd * n) - 31 without forming the product (past 2**30 a heap int on a 32-bit board);
        # n is a power of two (2**(_dshift - 1)) and maxd**2 < 2**31
        sh = (_bitlen(maxd * maxd) if maxd < 32768 else 31) + self._dshift - 32
        if sh < 0:
            sh = 0
        var = k.sumsq_dev(buf, n, mean, sh)
        lg = self._dshift - 1  # (var << sh) // n, as shifts: no intermediate beyond the result
        var = var << (sh - lg) if sh >= lg else var >> (lg - sh)
        out[o] = _c16(mean)
        out[o + 1] = _c16(isqrt(var))
        out[o + 2] = lo
        out[o + 3] = hi
        out[o + 10] = _c16(isqrt(mean * mean + var))
        out[o + 11] = _c16(_div_round(m[3] * 16, n - 1))
        out[o + 12] = _c16(m[4])
        # Centre and scale to a peak of 8192..16383 (block floating point) for the FFT and correlations.
        fs = 14 - _bitlen(maxd) if maxd else 0
        k.center(buf, n, mean, fs, cen)
        self._fs = fs if maxd else -1
        out[o + 13] = k.crossings(cen, n)
        # Percentiles last: sorting destroys the time order of buf.
        k.sort_i16(buf, n)
        pi = self._pidx
        for j in range(5):
            out[o + 4 + j] = buf[pi[j]]
        out[o + 9] = _c16(buf[pi[3]] - buf[pi[1]])
        return mean

    def _freq(self, re, im, out, o, fs):
        # The spectral SIGNAL_FEATURES into out[o:], from the FFT (bins 0..n/2) of the signal ``_time`` centred
        # with scaling ``fs`` (-1: flat).
        k = kernels
        n = self.window
        flat = fs < 0
        if flat:
            fs = 0
        sp = self._m
        k.spectrum(re, im, self._bins, 1, n >> 1, sp)  # the bands' powers, then the strongest bin above DC
        # one-sided band energy in counts**2: 2 * sum |X/n|**2 * 2**(-2 fs)
        nb = len(self._bins)
        for i in range(nb):
            p = sp[i]
            out[o + 14 + i] = log2_q6(p) + 64 - 128 * fs if p > 0 else LOG_FLOOR
        out[o + 19] = 0 if flat else sp[nb] * 100 * self.rate_hz // n
