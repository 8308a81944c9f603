"""Sound level meter: A-weighting, Fast/Slow time weighting, Leq/Lmin/Lmax and L10/L50/L90 per interval.

    m = SoundLevelMeter(16000, weighting="A", time_weighting="fast", sensitivity_dbfs=-26.0, interval_ms=1000)
    m.on_interval = print            # called with each interval's result
    m.process(pcm, n)                # int16 samples; pcm[:n] is overwritten with the weighted signal

Levels: dBFS here means RMS relative to 32767 (a full-scale sine is -3.01 dBFS, as the simulated microphone
defines it). ``sensitivity_dbfs`` is what the microphone reads for a 94 dB SPL tone at 1 kHz, so
dB SPL = dBFS - sensitivity_dbfs + 94.

Weighting: ``"A"`` runs the fixed-point biquad cascade ``dsp_setup.A_WEIGHTING[rate]`` through
``kernels.iir_q`` (viper on the device): the low-frequency poles come from the bilinear transform of IEC
61672's analog A-weighting, the top section is fitted to the analog curve up to 0.45 fs, so the response
stays within 0.3 dB of the IEC table (class 1 allows 0.7 to 2.5 dB) up to 6.3 kHz at 16 kHz and 3.15 kHz at
8 kHz (tests/host/test_soundlevel_host.py). The integer coefficients make the weighted signal bit-identical on
every interpreter. A device with emlearn-micropython's ``emlearn_iir`` installed runs the same coefficients in
float32 there (``kernels.iir``; levels within the tolerances of tests/device/test_emlearn.py). ``"Z"`` is
unweighted.

Time weighting works on 8 ms blocks (rate/125 samples): each block's mean square updates an exponential
average with the per-block factor of the Fast (125 ms) or Slow (1 s) time constant. Per interval:
``Leq`` is the energy average of the weighted signal over the interval; ``Lmin``/``Lmax`` the extremes of the
time-weighted level at block ends; ``L10``/``L50``/``L90`` the time-weighted levels exceeded 10/50/90 % of the
time, from a histogram of 0.2 dB bins. Results are tuples of ints in centi-dB SPL
``(leq, lmin, lmax, l10, l50, l90)``; a level below ``FLOOR_DBFS`` reads as FLOOR_DBFS.

No allocation per sample or per block (``process`` runs under ``micropython.heap_lock`` in
tests/shared/test_soundlevel.py, on WebAssembly with 31-bit small ints too, and live in tests/device/test_alloc.py):
on an ESP32 every float operation and every int beyond +-2**30 is a heap object,
so everything between interval ends is small-int arithmetic, identical on every interpreter:

- the interval's energy is summed exactly in three words (2**40, 2**16 and 1 units);
- the time-weighted energy is a 21-bit mantissa and an exponent (``m * 2**s``) updated with the time
  constant's factor in Q20 (relative precision ~1e-6, i.e. 5e-6 dB; the factor within 5e-5 of exact);
- the level (for Lmin/Lmax and the histogram) is 10*log10 in Q16 dB from a 65-entry table of 10*log10(1 + k/64)
  (Q14) with linear interpolation: within 2e-4 dB of the exact logarithm.

Floats appear only at an interval's end (the result tuple) and when ``level_cdb`` is read. Against the same
meter in float64 the time-weighted level stays within 0.001 dB (measured 0.0004 dB; checked block by block in
tests/host/test_soundlevel_host.py), so Lmin/Lmax/level_cdb differ by at most one centi-dB step of rounding,
L10/L50/L90 by one 0.2 dB bin only for a level that close to a bin edge (6 of 20,000 percentiles in a
random-signal comparison), and Leq (an exact integer sum) not at all.
"""

import array
import math

from sensorbox.shared import kernels

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

# The A-weighting filter's coefficients (``A_WEIGHTING``) and the argument checks are in ``dsp_setup``: set-up
# code, which a device loads only while a meter is made (kernels.setup).
BLOCKS_PER_S = 125  # 8 ms blocks
FLOOR_DBFS = -120.0
_HIST_STEP = const(5)  # bins per dB (0.2 dB)
_HIST_BINS = const(650)  # -120 .. +10 dBFS
_FS2 = 32767.0 * 32767.0
_Q = const(65536)  # levels inside an interval: dB in Q16 ints
_FLOOR_Q = const(-7864320)  # FLOOR_DBFS (-120) in Q16
_DB2_Q = const(197283)  # 10*log10(2) in Q16
_MIN_EXP = const(-60)  # a time-weighted energy below 2**-39 (far under FLOOR_DBFS) is zero
# round(10*log10(1 + k/64) * 16384) for k = 0..64 (dB in Q14), uint16 little-endian: integer constants, so the
# level is the same on every interpreter (a table computed with math.log10 on a float32 ESP32 could round
# differently). 130 bytes, read in place: no table is built per meter.
_DB_TABLE = (
    b"\x00\x00\x4f\x04\x8e\x08\xbc\x0c\xda\x10\xe9\x14\xe8\x18\xda\x1c\xbd\x20\x92\x24\x5a\x28\x16\x2c\xc4\x2f"
    b"\x66\x33\xfc\x36\x87\x3a\x06\x3e\x7a\x41\xe3\x44\x41\x48\x95\x4b\xdf\x4e\x20\x52\x56\x55\x84\x58\xa8\x5b"
    b"\xc3\x5e\xd5\x61\xde\x64\xe0\x67\xd9\x6a\xca\x6d\xb3\x70\x94\x73\x6e\x76\x40\x79\x0b\x7c\xcf\x7e\x8d\x81"
    b"\x43\x84\xf2\x86\x9b\x89\x3e\x8c\xda\x8e\x70\x91\xff\x93\x89\x96\x0d\x99\x8b\x9b\x04\x9e\x77\xa0\xe4\xa2"
    b"\x4c\xa5\xaf\xa7\x0d\xaa\x65\xac\xb9\xae\x07\xb1\x51\xb3\x96\xb5\xd6\xb7\x11\xba\x48\xbc\x7b\xbe\xa9\xc0"
)
_bitlen = kernels.bitlen  # bits of an int v >= 0


class SoundLevelMeter:
    def __init__(self, rate_hz, weighting="A", time_weighting="fast", sensitivity_dbfs=-26.0, interval_ms=1000,
                 _hist=None):
        # (_hist: a previous meter's level histogram to reuse, cleared here: a device restarting its meter on a
        # cut-up heap may lack the 1.3 KB block a new one takes; the config fuzz found it, seed 648106693)
        # (the set-up code: dsp_setup)
        q28, self.block, self.blocks_per_interval, self._alpha = kernels.setup(
            "meter", rate_hz, weighting, time_weighting, interval_ms)
        self.rate_hz = rate_hz
        self.weighting = weighting
        self.time_weighting = time_weighting
        self.sensitivity_dbfs = sensitivity_dbfs
        self.interval_ms = self.blocks_per_interval * 1000 // BLOCKS_PER_S
        self.filter = kernels.iir(q28) if q28 is not None else None  # emlearn_iir if installed
        self._offset = 94.0 - sensitivity_dbfs  # dBFS -> dB SPL
        self._hist = array.array("H", bytes(2 * _HIST_BINS)) if _hist is None else _hist
        self._sq = array.array("i", bytes(8))
        # 10*log10 of a block's full-scale energy (block * 32767**2), Q16: a level is 10*log10(energy) - this
        fs = self.block * 32767 * 32767
        sh = _bitlen(fs >> 21)
        self._cq = self._log_q(fs >> sh, sh)
        self.on_interval = None
        self.result = None  # the latest interval's (leq, lmin, lmax, l10, l50, l90), centi-dB SPL
        self.intervals = 0
        self.reset()

    @property
    def level_cdb(self):
        """The latest time-weighted level, centi-dB SPL (None before the first 8 ms block)."""
        return None if self._lq is None else _cdb(self._lq / _Q + self._offset)

    def reset(self):
        """Forget the signal so far (filter state, time weighting, the open interval)."""
        if self.filter is not None:
            self.filter.reset()
        self._twm = -1  # time-weighted block energy twm * 2**tws (twm in [2**20, 2**21), or 0); -1: no block yet
        self._tws = 0
        self._lq = None  # its level, dBFS in Q16
        self._bhi = 0  # the open block's energy: bhi * 65536 + blo
        self._blo = 0
        self._blk_n = 0
        self._clear_interval()

    def _clear_interval(self):
        h = self._hist
        for i in range(_HIST_BINS):
            h[i] = 0
        self._e2 = 0  # the interval's energy: (e2 * 2**24 + e1) * 2**16 + e0, exactly
        self._e1 = 0
        self._e0 = 0
        self._nblocks = 0
        self._lmin = 1000 * _Q
        self._lmax = -1000 * _Q

    def process(self, x, n):
        """Take int16 samples x[:n] (overwritten with the weighted signal)."""
        if n > len(x):
            raise ValueError("process: n={} exceeds the array ({})".format(n, len(x)))
        if self.filter is not None:
            self.filter.run(x, x, n)
        sq = self._sq
        B = self.block
        hi = self._bhi
        lo = self._blo
        i = 0
        while i < n:
            take = B - self._blk_n
            if take > n - i:
                take = n - i
            kernels.sumsq_i16(x, i, take, sq)  # < 2**30 per block of 8 ms (hi < 2**22)
            hi += sq[0]
            lo += sq[1]
            if lo >= 65536:
                hi += 1
                lo -= 65536
            self._blk_n += take
            i += take
            if self._blk_n == B:
                self._end_block(hi, lo)
                hi = lo = 0
                self._blk_n = 0
        self._bhi = hi
        self._blo = lo

    @staticmethod
    def _log_q(m, s):
        # 10*log10(m * 2**s) in Q16 dB for m in [2**20, 2**21): table of 10*log10(1 + k/64), interpolated
        tab = _DB_TABLE
        k = 2 * ((m >> 14) - 64)
        t = tab[k] | (tab[k + 1] << 8)
        d = (tab[k + 2] | (tab[k + 3] << 8)) - t
        return (t << 2) + ((d * (m & 0x3FFF)) >> 12) + (s + 20) * _DB2_Q

    def _end_block(self, hi, lo):
        # The interval's energy, exactly
        e0 = self._e0 + lo
        e1 = self._e1 + hi
        if e0 >= 65536:
            e0 -= 65536
            e1 += 1
        if e1 >= 0x1000000:
            self._e2 += e1 >> 24
            e1 &= 0xFFFFFF
        self._e0 = e0
        self._e1 = e1
        # The block's energy hi * 65536 + lo as em * 2**es, em in [2**20, 2**21) (or 0)
        if hi:
            es = _bitlen(hi) - 5
        elif lo:
            es = _bitlen(lo) - 21
        else:
            es = 0
        if es >= 16:
            em = hi >> (es - 16)
        elif es >= 0:
            em = (hi << (16 - es)) | (lo >> es)
        else:
            em = ((hi << 16) | lo) << -es
        # Exponential time weighting: tw += alpha * (e - tw), aligned to the larger exponent
        tm = self._twm
        if tm < 0:  # the first block
            tm = em
            ts = es
        else:
            ts = self._tws
            if tm == 0:
                a = 0
                b = em
                ts = es
            elif em and es > ts:
                sh = es - ts
                a = tm >> sh if sh < 24 else 0
                b = em
                ts = es
            else:  # es <= ts, or silence (em == 0)
                sh = ts - es
                a = tm
                b = em >> sh if em and sh < 24 else 0
            d = b - a
            al = self._alpha
            # a + round(d * al / 2**20) in parts below 2**28 (d: 22 bits with its sign, al < 2**16); the result
            # lies between a and b, so below 2**21
            tm = a + (((d >> 10) * al + (((d & 1023) * al) >> 10) + 512) >> 10)
            if tm > 0:
                while tm < 0x100000:  # at most one step per block falling, a few rising
                    tm <<= 1
                    ts -= 1
                if ts < _MIN_EXP:
                    tm = 0
            else:
                tm = 0
        self._twm = tm
        self._tws = ts
        if tm:  # self._log_q(tm, ts) - self._cq, inline
            tab = _DB_TABLE
            k = 2 * ((tm >> 14) - 64)
            lq = tab[k] | (tab[k + 1] << 8)
            d = (tab[k + 2] | (tab[k + 3] << 8)) - lq
            lq = (lq << 2) + ((d * (tm & 0x3FFF)) >> 12) + (ts + 20) * _DB2_Q - self._cq
            if lq < _FLOOR_Q:
                lq = _FLOOR_Q
        else:
            lq = _FLOOR_Q
        self._lq = lq
        if lq < self._lmin:
            self._lmin = lq
        if lq > self._lmax:
            self._lmax = lq
        b = ((lq - _FLOOR_Q) * _HIST_STEP) >> 16
        if b >= _HIST_BINS:
            b = _HIST_BINS - 1
        self._hist[b] += 1
        self._nblocks += 1
        if self._nblocks >= self.blocks_per_interval:
            self._end_interval()

    def _end_interval(self):
        # Once per interval: floats from here on
        off = self._offset
        e = (self._e2 * 16777216.0 + self._e1) * 65536.0 + self._e0
        r = (_cdb(_dbfs(e / (self._nblocks * self.block)) + off), _cdb(self._lmin / _Q + off),
             _cdb(self._lmax / _Q + off), _cdb(self._exceeded(10) + off), _cdb(self._exceeded(50) + off),
             _cdb(self._exceeded(90) + off))
        self.result = r
        self.intervals += 1
        self._clear_interval()
        if self.on_interval is not None:
            self.on_interval(r)

    def _exceeded(self, pct):
        # The level (bin centre, dBFS) exceeded pct % of the interval's blocks: walk down from the top.
        need = self._nblocks * pct
        h = self._hist
        acc = 0
        b = _HIST_BINS - 1
        while b > 0:
            acc += h[b] * 100
            if acc >= need:
                break
            b -= 1
        return FLOOR_DBFS + (b + 0.5) / _HIST_STEP


def _dbfs(ms):
    if ms <= 0.0:
        return FLOOR_DBFS
    v = 10.0 * math.log10(ms / _FS2)
    return v if v > FLOOR_DBFS else FLOOR_DBFS


def _cdb(db):
    return int(round(db * 100))
