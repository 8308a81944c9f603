"""Sound features: framed log mel-band energies and their statistics per window, the input of sound classifiers,
computed identically on the device (from the microphone stream), the host (training on WAV recordings) and in
the browser.

    sf = SoundFeatures(16000)                 # allocates every buffer once
    sf.on_window = got                        # called with the samples of the chunk that follow the window's end
    sf.process(pcm, n)                        # int16 samples, any chunk size; sf.out: the latest window's features
    names()                                   # ('level_mean', 'level_std', ...): the order of ``sf.out``

Frames: 32 ms (512 samples at 16 kHz, 256 at 8 kHz) every 16 ms, with the frame's mean removed, scaled to a peak of
8192..16383 (block floating point: the shift is put back in the logarithm), a Hann window (Q15) and the shared
fixed-point FFT (``kernels.fft``: emlearn's ``emlearn_fft`` when installed, else ``fft_q15``, viper on a device,
plain in the browser). Per frame (``COLUMNS``):

- ``level``: the energy of bins 1 .. n/2 - 1 (about 31 Hz to the Nyquist frequency);
- ``mel00`` .. ``mel15``: the energy in ``BANDS`` triangular bands evenly spaced on the mel scale (HTK:
  2595 log10(1 + f/700)) from 0 Hz to half the rate, each bin's power split between its two bands in Q8 weights
  (the bands' edges are computed with exact integer roots, so every interpreter makes the same table; no area
  normalisation: a band's energy is the sum of its weighted bins);
- ``flux``: the sum over the bands of the rise in log energy since the previous frame (onsets: clicks, knocks).

Energies are 64 * log2(mean square / 32767**2) of the unwindowed signal (the Hann window's mean square, 3/8, is
taken out), so 0 is a full-scale square wave, -64 a full-scale sine (-3.01 dBFS) and a value v is v * 3.0103 / 64
dBFS (0.047 dB per unit). The floor is ``FLOOR`` (-144.5 dBFS): silence and empty bands read it. Everything is
integer arithmetic through ``sensorbox.shared.kernels`` and the sound kernels (viper on a device:
``sensorbox.shared.kernels_sound``; else the plain ones of ``kernels_py``): no float, no int beyond 2**30 and no
allocation per frame (tests/shared/test_soundfeatures.py runs frames under ``micropython.heap_lock``),
bit-identical everywhere except with ``emlearn_fft``, whose float32 FFT differs from ``fft_q15`` by a few units.

Windows: ``WINDOW`` frames (272 ms), one every ``WINDOW_HOP`` frames (128 ms). Per column the window's ``mean``,
``std`` (population standard deviation, floor), ``min`` and ``max`` (``STATS``), in the column's units:
``names()`` is ``level_mean, level_std, level_min, level_max, mel00_mean, ..., flux_max`` (72 for 16 bands).
``FEATURE_VERSION`` changes whenever a name, order or scale changes.
"""

import array

from sensorbox.shared import kernels

_ks = None  # the sound kernels, imported with the first SoundFeatures (_kernels)

FEATURE_VERSION = 1
RATE_HZ = 16000
RATES = (8000, 16000)
FRAME_MS = 32
HOP_MS = 16
BANDS = 16
WINDOW = 16  # frames per window (272 ms)
WINDOW_HOP = 8  # frames between windows (128 ms)
STATS = ("mean", "std", "min", "max")
FLOOR = -3072  # 64 * log2(energy / full scale): -144.5 dBFS
_FS2_Q6 = 1920  # 64 * log2(32767**2), rounded
_HANN_Q6 = 91  # 64 * log2(8 / 3): the Hann window's mean square taken out
_ZERO = 64  # zeros copied into the FFT's imaginary part, a piece at a time


def columns(bands=BANDS):
    """The per-frame values: ``level``, ``mel00``.., ``flux``."""
    out = ["level"]
    for b in range(bands):
        out.append("mel{}{}".format(b // 10, b % 10))
    out.append("flux")
    return tuple(out)


def names(bands=BANDS):
    """Feature names in the order ``SoundFeatures.out`` holds them."""
    out = []
    for c in columns(bands):
        for s in STATS:
            out.append(c + "_" + s)
    return tuple(out)


def frame_size(rate_hz):
    """Samples per frame (32 ms) at ``rate_hz``; the hop is half of it."""
    if rate_hz not in RATES:
        raise ValueError("sound features need a rate of 8000 or 16000 Hz, got {}".format(rate_hz))
    return rate_hz * FRAME_MS // 1000


def _iroot(v, k):
    """floor(v ** (1/k)) for ints v >= 0, k >= 1 (Newton's method on exact integers)."""
    if v < 2:
        return v
    x = 1 << ((kernels.bitlen(v) + k - 1) // k)  # above the root
    while True:
        y = ((k - 1) * x + v // x ** (k - 1)) // k
        if y >= x:
            return x
        x = y


def mel_table(n, rate_hz, bands=BANDS):
    """(seg, wt): for FFT bin k < n/2, the segment between mel band edges holding it (its band index + 1 rising,
    its band index falling) and its Q8 weight towards the upper band. Edges: f + 700 runs geometrically from 700 to
    700 + rate/2 (mel points evenly spaced), in 1/256 Hz, each an exact integer root."""
    half = n >> 1
    lo = 256 * 700
    hi = 256 * (700 + rate_hz // 2)
    m = bands + 1
    edges = [_iroot(lo ** (m - i) * hi ** i, m) - lo for i in range(m + 1)]
    seg = bytearray(half)
    wt = bytearray(half)
    j = 0
    for k in range(half):
        f = k * rate_hz * 256 // n
        while j < m - 1 and f >= edges[j + 1]:
            j += 1
        seg[k] = j
        wt[k] = (f - edges[j]) * 256 // (edges[j + 1] - edges[j])
    return seg, wt


def hann(n):
    """The periodic Hann window, Q15 (0 .. 32767), from the shared integer sine table (set-up code:
    ``kernels.setup``)."""
    return kernels.setup("window", n)


def _kernels():
    # The sound kernels: viper on a device (a module of their own: resident only while sound is classified), else
    # the plain ones (CPython, WebAssembly). Imported with the first SoundFeatures, not with this module: the
    # model API reads names() with the classifier off, and a module with native code imported again (this
    # module is loaded per request then) would leak its code every time (docs/heap.md).
    global _ks
    if _ks is None:
        try:
            from sensorbox.shared import kernels_sound as ks
        except (ImportError, SyntaxError):
            from sensorbox.shared import kernels_py as ks
        _ks = ks
    return _ks


def _c16(v):
    return 32767 if v > 32767 else (-32768 if v < -32768 else v)


class SoundFeatures:
    """Frames and windows of a sound stream at ``rate_hz``: ``process`` takes samples, ``out`` holds the latest
    window's ``names(bands)``, ``on_window(after)`` is called for each (``after``: samples of the chunk given to
    ``process`` that follow the window's last sample). Every buffer is allocated here, once."""

    def __init__(self, rate_hz=RATE_HZ, bands=BANDS, window=WINDOW, hop=WINDOW_HOP):
        n = frame_size(rate_hz)
        if not 2 <= bands <= 32:
            raise ValueError("bands must be 2..32, got {}".format(bands))
        if not 2 <= window <= 64 or not 1 <= hop <= window:
            raise ValueError("window must be 2..64 frames and hop 1..window, got {} and {}".format(window, hop))
        self.rate_hz = rate_hz
        self.frame = n
        self.hop_samples = n >> 1
        self.bands = bands
        self.window = window
        self.hop = hop
        self.n_features = len(STATS) * (bands + 2)
        _kernels()
        self._fft = kernels.fft(n)
        self._win = hann(n)
        self._seg, self._wt = mel_table(n, rate_hz, bands)
        self._buf = array.array("h", bytes(2 * n))
        self._re = array.array("h", bytes(2 * n))
        self._im = array.array("h", bytes(2 * n))
        self._zero = array.array("h", bytes(2 * _ZERO))
        self._acc = array.array("i", bytes(4 * (bands + 2)))
        self._m = array.array("i", bytes(4 * 5))
        self._ring = array.array("h", bytes(2 * window * (bands + 2)))  # a row per frame: level, bands, flux
        self._col = array.array("h", bytes(2 * window))
        self.out = array.array("h", bytes(2 * self.n_features))
        self.on_window = None
        self.frames = 0  # frames since the start (counts up to 2**30, then stays)
        self.windows = 0
        self.reset()

    def reset(self):
        """Forget the stream so far (a gap, a restart): the next window starts with the next frame."""
        self._fill = 0  # samples in _buf
        self._row = 0  # the ring's next row
        self._have = 0  # frames in the ring (up to window)
        self._since = 0  # frames since the last window

    def process(self, x, n):
        """Take int16 samples x[:n] (not modified)."""
        if n > len(x):
            raise ValueError("process: n={} exceeds the array ({})".format(n, len(x)))
        k = kernels
        fr = self.frame
        keep = fr - self.hop_samples
        buf = self._buf
        i = 0
        while i < n:
            take = fr - self._fill
            if take > n - i:
                take = n - i
            k.copy_i16(x, i, buf, self._fill, take)
            self._fill += take
            i += take
            if self._fill == fr:
                self._frame()
                k.copy_i16(buf, fr - keep, buf, 0, keep)
                self._fill = keep
                if self._have < self.window:
                    self._have += 1
                self._since += 1
                if self.frames < 0x40000000:
                    self.frames += 1
                if self._have == self.window and self._since >= self.hop:
                    self._since = 0
                    self._summarise()
                    if self.on_window is not None:
                        self.on_window(n - i)

    def _frame(self):
        # One frame of _buf into the ring's next row: level, band energies, flux.
        k = kernels
        n = self.frame
        nb = self.bands
        cols = nb + 2
        ring = self._ring
        row = self._row * cols
        m = self._m
        k.moments(self._buf, n, m)
        mean = (2 * m[0] + n) // (2 * n)
        hi = m[2] - mean
        lo = mean - m[1]
        maxd = hi if hi > lo else lo
        if maxd > 0:
            fs = 14 - kernels.bitlen(maxd)  # peak 8192..16383 after the shift
            re = self._re
            im = self._im
            _ks.window_q15(self._buf, n, mean, fs, self._win, re)
            j = 0
            while j < n:  # im = 0, from a small zero array (range() with a step would allocate)
                k.copy_i16(self._zero, 0, im, j, _ZERO)
                j += _ZERO
            self._fft.run(re, im)
            acc = self._acc
            acc[0] = _ks.mel_q8(re, im, 1, n >> 1, self._seg, self._wt, acc, nb + 2)  # acc[0]: the level
            # one-sided (x2: + 64), the shift, the window, full scale
            _ks.log2s_q6(acc, 0, nb + 1, ring, row, 64 + _HANN_Q6 - _FS2_Q6 - 128 * fs, FLOOR)
        else:
            for j in range(nb + 1):
                ring[row + j] = FLOOR
        if self._have:
            prev = (self._row - 1 if self._row else self.window - 1) * cols
            f = _ks.pos_diff_sum(ring, row + 1, ring, prev + 1, nb)
            ring[row + nb + 1] = f if f < 32767 else 32767
        else:
            ring[row + nb + 1] = 0
        self._row = self._row + 1 if self._row + 1 < self.window else 0

    def _summarise(self):
        # The window's statistics per column into out.
        k = kernels
        w = self.window
        cols = self.bands + 2
        col = self._col
        m = self._m
        out = self.out
        ns = len(STATS)
        for c in range(cols):
            k.gather(self._ring, c, cols, w, col)
            k.moments(col, w, m)
            mean = (2 * m[0] + w) // (2 * w)
            hi = m[2] - mean
            lo = mean - m[1]
            maxd = hi if hi > lo else lo
            # sum of squared deviations below 2**30: shifted by an even sh, put back as sh / 2 on the root
            sh = 2 * kernels.bitlen(maxd) + kernels.bitlen(w) - 30
            sh = sh + (sh & 1) if sh > 0 else 0
            s = k.sumsq_dev(col, w, mean, sh)
            o = c * ns
            out[o] = _c16(mean)
            out[o + 1] = k.isqrt(s // w) << (sh >> 1)
            out[o + 2] = m[1]
            out[o + 3] = m[2]
        self.windows += 1
