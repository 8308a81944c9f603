"""emlearn-micropython's C modules ``emlearn_fft`` and ``emlearn_iir`` (native .mpy a device installs with mip) behind
the interfaces of ``kernels.FFTQ`` and ``kernels.IIRQ``: int16 arrays in and out, the same scaling, float32 in C;
and ``emlearn_trees`` behind the evaluation interface of ``sensorbox.shared.trees.Trees`` (``CTrees``).

Imported by ``sensorbox.shared.kernels`` when emlearn_fft or emlearn_iir is installed and by the device's
``analysis.trees.new`` when emlearn_trees is (``sensorbox deploy --board`` installs the three), so a device without them
keeps none of this in RAM. The calls follow emlearn-micropython's ``stubs/emlearn_fft.py`` and ``stubs/emlearn_iir.py``:
``FFT(length)``, the module's ``fill(fft, n)``, ``run(real, imag)`` on two ``array('f')`` of exactly ``length``;
``new(coefficients)`` with 6 floats per section in scipy.signal.sosfilt's order (b0, b1, b2, a0 = 1, a1, a2; the C code
does not use a0), ``run(values)`` in place over the whole array. int16 <-> float32 conversions are the viper kernels
``to_f32``/``from_f32`` here, on the raw IEEE-754 bits: reading or writing an 'f' element from Python makes a float
object (a heap allocation on an ESP32), they do not.
"""

import array

import micropython

from sensorbox.shared.trees import TreesError

# bits of v for v < 256 (bit length), for to_f32's exponent
_BITS = b"\x00\x01\x02\x02" + b"\x03" * 4 + b"\x04" * 8 + b"\x05" * 16 + b"\x06" * 32 + b"\x07" * 64 + b"\x08" * 128


@micropython.viper
def to_f32(src, soff: int, dst, n: int):
    """dst[i] = float(src[soff + i]) for i < n: int16 array to float32 array (exact)."""
    ps = ptr16(src)
    pd = ptr32(dst)
    tb = ptr8(_BITS)
    sign = 16384
    sign <<= 17  # the sign bit, 2**31, built at run time (a literal would be a long int; on a 32-bit board it wraps)
    i = 0
    while i < n:
        v = (int(ps[soff + i]) ^ 0x8000) - 0x8000
        b = 0
        if v:
            s = 0
            if v < 0:
                v = 0 - v
                s = sign
            t = v >> 8
            if t:
                e = 7 + int(tb[t])  # floor(log2(v))
            else:
                e = int(tb[v]) - 1
            b = s | ((127 + e) << 23) | ((v << (23 - e)) & 0x7FFFFF)
        pd[i] = b
        i += 1


@micropython.viper
def from_f32(src, dst, doff: int, n: int, shift: int):
    """dst[doff + i] = src[i] / 2**shift rounded half up (floor(x + 0.5)) and saturated to int16, for i < n:
    float32 array to int16 array. Infinities saturate; NaN reads as a saturated value of its sign bit."""
    ps = ptr32(src)
    pd = ptr16(dst)
    sign = 16384
    sign <<= 17
    i = 0
    while i < n:
        b = int(ps[i])
        e = (b >> 23) & 0xFF
        r = 0
        if e:
            t = 150 + shift - e  # value = m / 2**t
            if t <= 8:  # |value| >= 2**15: saturated (m >= 2**23)
                r = 32767
                if b & sign:
                    r = -32768
            elif t < 25:  # |value| >= 0.25: may round away from 0
                m = (b & 0x7FFFFF) | 0x800000
                h = 1 << (t - 1)
                if b & sign:
                    r = 0 - ((m + h - 1) >> t)
                    if r < -32768:
                        r = -32768
                else:
                    r = (m + h) >> t
                    if r > 32767:
                        r = 32767
        pd[doff + i] = r
        i += 1


_PIECE = 128  # the longest float buffer of IIR; runs of any length go through buffers of 128, 64, ..., 1


class FFT:
    """``kernels.FFTQ``'s interface over ``emlearn_fft``: ``run(re, im)`` transforms int16 ``re``/``im``, scaled by
    1/n and rounded (``fft_q15`` floors at every stage: the two differ by a few units). Only bins 0..n/2 are written
    back (the one-sided spectrum, all the features use)."""

    def __init__(self, n):
        import emlearn_fft

        if n < 2 or n & (n - 1):
            raise ValueError("FFT size must be a power of two, got {}".format(n))
        self.n = n
        sh = 0
        while (1 << sh) < n:
            sh += 1
        self._sh = sh
        f = emlearn_fft.FFT(n)
        emlearn_fft.fill(f, n)
        self._f = f
        self._re = array.array("f", bytes(4 * n))
        self._im = array.array("f", bytes(4 * n))

    def run(self, re, im):
        n = self.n
        fr = self._re
        fi = self._im
        to_f32(re, 0, fr, n)
        to_f32(im, 0, fi, n)
        self._f.run(fr, fi)
        h = (n >> 1) + 1
        from_f32(fr, re, 0, h, self._sh)
        from_f32(fi, im, 0, h, self._sh)


class IIR:
    """``kernels.IIRQ``'s interface over ``emlearn_iir``: ``run(x, y, n)`` filters int16 x[:n] into int16 y (may be
    x), rounded and saturated like ``iir_q``; ``reset()`` starts from silence. The Q28 coefficients become float32
    (emlearn_iir filters whole arrays, so a run goes through float buffers of 128, 64, ..., 1 samples)."""

    def __init__(self, q28):
        if not len(q28) or len(q28) % 5:
            raise ValueError("iir coefficients come in fives (b0, b1, b2, a1, a2), got {}".format(len(q28)))
        nsec = len(q28) // 5
        sos = array.array("f", bytes(24 * nsec))
        for s in range(nsec):
            for i, j in ((0, 0), (1, 1), (2, 2), (4, 3), (5, 4)):
                sos[6 * s + i] = q28[5 * s + j] / 268435456  # Q28
            sos[6 * s + 3] = 1.0
        self._sos = sos
        bufs = []
        k = _PIECE
        while k:
            bufs.append(array.array("f", bytes(4 * k)))
            k >>= 1
        self._bufs = bufs
        self._f = None
        self.reset()

    def reset(self):
        import emlearn_iir

        self._f = None  # the old filter's state goes before the new one is made
        self._f = emlearn_iir.new(self._sos)

    def run(self, x, y, n):
        if n > len(x) or n > len(y):
            raise ValueError("iir: n={} exceeds the arrays ({}, {})".format(n, len(x), len(y)))
        f = self._f
        bufs = self._bufs
        i = 0
        k = 0
        size = _PIECE
        while i < n:
            while size > n - i:
                size >>= 1
                k += 1
            b = bufs[k]
            to_f32(x, i, b, size)
            f.run(b)
            from_f32(b, y, i, size, 0)
            i += size


# ``emlearn_trees`` (emlearn's C tree evaluator, a native module installed with mip on real devices) behind the
# evaluation interface of ``sensorbox.shared.trees.Trees``.
#
# Every call into the module follows emlearn-micropython's ``stubs/emlearn_trees.py``: ``new(max_trees, max_nodes,
# max_leaves)``, ``setdata(features, classes)``, ``addnode(left, right, feature, value)`` (children relative, as in
# the CSV), ``addroot(root)``, ``addleaf(value)``, ``outputs()``, ``predict(inputs, outputs)`` with an int16 input
# and a float output of exactly ``outputs()``. ``sensorbox.shared.trees_csv`` fills it (its ``Builder`` checks what
# the C code would silently truncate). The pipeline calls ``model.predict`` itself and decodes the float outputs
# (votes / n_trees) in its smoothing kernel (``smooth``: the device's, given to ``CTrees``), so nothing runs between it
# and the C code.
class CTrees:
    """An ``emlearn_trees`` model (``model``) with what the device needs around it: the counts ``trees_csv`` filled
    it with, ``out`` (the float outputs ``model.predict`` writes), and ``classify(x) -> class`` / ``votes()``.
    ``smooth``: the pipeline's smoothing kernel (``sensorbox.device.analysis.trees.smooth``), which ``classify``
    decodes the outputs with (given, as ``trees.Trees`` is given its ``vote``: shared code imports no device code)."""

    def __init__(self, model, max_trees, max_nodes, max_leaves, smooth):
        self.model = model
        self.smooth = smooth
        self.max_trees = max_trees
        self.max_nodes = max_nodes
        self.max_leaves = max_leaves
        self.n_trees = self.n_nodes = self.n_leaves = self.n_features = 0
        self.n_classes = -1
        self.out = None  # array('f', n_classes), made when trees_csv sets the model's data
        self._votes = None

    def outputs(self):
        return self.model.outputs()

    def predict(self, x, out):
        self.model.predict(x, out)

    def classify(self, x):
        """The winning class for int16 features ``x``; the vote counts are left in ``votes()``."""
        if len(x) < self.n_features:  # the C code reads x[feature] unchecked
            raise TreesError("{} features given, model needs {}".format(len(x), self.n_features))
        out = self.out
        self.model.predict(x, out)
        return (self.smooth(out, 1, self.n_trees, self._votes, 0, 1, self.n_classes) & 0xFF) - 1

    def votes(self):
        return self._votes
