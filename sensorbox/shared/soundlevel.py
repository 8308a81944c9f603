"""Sound level meter: A-weighting, Fast/Slow time weighting, Leq/Lmin/Lmax and L10/L50/L90 per interval.

    m = SoundLevelMeter(16000, weighting="A", time_weighting="fast", sensitivity_dbfs=-26.0, interval_ms=1000)
    m.on_interval = print            # called with each interval's result
    m.process(pcm, n)                # int16 samples; pcm[:n] is overwritten with the weighted signal

Levels: dBFS here means RMS relative to 32767 (a full-scale sine is -3.01 dBFS, as the simulated microphone
defines it). ``sensitivity_dbfs`` is what the microphone reads for a 94 dB SPL tone at 1 kHz, so
dB SPL = dBFS - sensitivity_dbfs + 94.

Weighting: ``"A"`` runs the fixed-point biquad cascade ``A_WEIGHTING[rate]`` through ``kernels.iir_q`` (viper
on the device): the low-frequency poles come from the bilinear transform of IEC 61672's analog A-weighting,
the top section is fitted to the analog curve up to 0.45 fs, so the response stays within 0.3 dB of the IEC
table (class 1 allows 0.7 to 2.5 dB) up to 6.3 kHz at 16 kHz and 3.15 kHz at 8 kHz
(tests/host/test_soundlevel_host.py). The integer coefficients make the weighted signal bit-identical on
every interpreter. ``"Z"`` is unweighted.

Time weighting works on 8 ms blocks (rate/125 samples): each block's mean square updates an exponential
average with the exact per-block factor of the Fast (125 ms) or Slow (1 s) time constant. Per interval:
``Leq`` is the energy average of the weighted signal over the interval; ``Lmin``/``Lmax`` the extremes of the
time-weighted level at block ends; ``L10``/``L50``/``L90`` the time-weighted levels exceeded 10/50/90 % of the
time, from a histogram of 0.2 dB bins. Results are tuples of ints in centi-dB SPL
``(leq, lmin, lmax, l10, l50, l90)``; a level below ``FLOOR_DBFS`` reads as FLOOR_DBFS.
"""

import array
import math

from sensorbox.shared import kernels

# A-weighting as Q28 integer biquads (b0, b1, b2, a1, a2 per section; a0 = 1), lowest-frequency poles first
# so their rounding noise is high-passed by the next section's zeros at DC. Design: bilinear transform of the
# analog poles at 20.6 (double), 107.7 and 737.9 Hz with four zeros at DC; the top section (the 12194 Hz pole
# pair) is a scipy.optimize.least_squares fit of a free biquad to the analog curve in dB from 10 Hz to 0.45 fs;
# the gain is normalised to 0 dB at 1 kHz. tests/host/test_soundlevel_host.py checks the result.
A_WEIGHTING = {
    16000: (268435456, -536870912, 268435456, -532545546, 264127514,
            227766614, -455533227, 227766614, -457819256, 192196451,
            295624071, 120855769, -1879920, 70011080, -7979953),
    8000: (268435456, -536870912, 268435456, -528254889, 259888570,
           196494961, -392989922, 196494961, -394481448, 135830278,
           -151323257, 276434762, 93374984, -60976180, -33850110),
}
WEIGHTINGS = ("A", "Z")
TIME_CONSTANTS_MS = {"fast": 125, "slow": 1000}
BLOCKS_PER_S = 125  # 8 ms blocks
FLOOR_DBFS = -120.0
_HIST_STEP = 5  # bins per dB (0.2 dB)
_HIST_BINS = 650  # -120 .. +10 dBFS
_FS2 = 32767.0 * 32767.0


class SoundLevelMeter:
    def __init__(self, rate_hz, weighting="A", time_weighting="fast", sensitivity_dbfs=-26.0, interval_ms=1000):
        if weighting not in WEIGHTINGS:
            raise ValueError("weighting must be one of {}, got {!r}".format(", ".join(WEIGHTINGS), weighting))
        if weighting == "A" and rate_hz not in A_WEIGHTING:
            raise ValueError("A-weighting needs a rate of 8000 or 16000 Hz, got {}".format(rate_hz))
        tau = TIME_CONSTANTS_MS.get(time_weighting)
        if tau is None:
            raise ValueError("time weighting must be fast or slow, got {!r}".format(time_weighting))
        if rate_hz % BLOCKS_PER_S:
            raise ValueError("rate must be a multiple of {} Hz, got {}".format(BLOCKS_PER_S, rate_hz))
        self.rate_hz = rate_hz
        self.weighting = weighting
        self.time_weighting = time_weighting
        self.sensitivity_dbfs = sensitivity_dbfs
        self.block = rate_hz // BLOCKS_PER_S
        self.blocks_per_interval = max(1, (interval_ms * BLOCKS_PER_S + 500) // 1000)
        self.interval_ms = self.blocks_per_interval * 1000 // BLOCKS_PER_S
        self.filter = kernels.IIRQ(A_WEIGHTING[rate_hz]) if weighting == "A" else None
        self._alpha = 1.0 - math.exp(-1000.0 / BLOCKS_PER_S / tau)
        self._offset = 94.0 - sensitivity_dbfs  # dBFS -> dB SPL
        self._hist = array.array("H", bytes(2 * _HIST_BINS))
        self._sq = array.array("i", bytes(8))
        self.on_interval = None
        self.result = None  # the latest interval's (leq, lmin, lmax, l10, l50, l90), centi-dB SPL
        self.level_cdb = None  # the latest time-weighted level, centi-dB SPL
        self.intervals = 0
        self.reset()

    def reset(self):
        """Forget the signal so far (filter state, time weighting, the open interval)."""
        if self.filter is not None:
            self.filter.reset()
        self._tw = -1.0  # time-weighted mean square; < 0 until the first block
        self._blk_e = 0.0
        self._blk_n = 0
        self._clear_interval()

    def _clear_interval(self):
        h = self._hist
        for i in range(_HIST_BINS):
            h[i] = 0
        self._sum_e = 0.0
        self._nblocks = 0
        self._lmin = 1000.0
        self._lmax = -1000.0

    def process(self, x, n):
        """Take int16 samples x[:n] (overwritten with the weighted signal)."""
        if n > len(x):
            raise ValueError("process: n={} exceeds the array ({})".format(n, len(x)))
        if self.filter is not None:
            self.filter.run(x, x, n)
        sq = self._sq
        B = self.block
        i = 0
        while i < n:
            take = B - self._blk_n
            if take > n - i:
                take = n - i
            kernels.sumsq_i16(x, i, take, sq)
            self._blk_e += sq[0] * 65536.0 + sq[1]
            self._blk_n += take
            i += take
            if self._blk_n == B:
                self._end_block(self._blk_e / B)
                self._blk_e = 0.0
                self._blk_n = 0

    def _dbfs(self, ms):
        if ms <= 0.0:
            return FLOOR_DBFS
        v = 10.0 * math.log10(ms / _FS2)
        return v if v > FLOOR_DBFS else FLOOR_DBFS

    def _end_block(self, e):
        tw = self._tw
        tw = e if tw < 0.0 else tw + self._alpha * (e - tw)
        self._tw = tw
        lv = self._dbfs(tw)
        self.level_cdb = int(round((lv + self._offset) * 100))
        if lv < self._lmin:
            self._lmin = lv
        if lv > self._lmax:
            self._lmax = lv
        b = int((lv - FLOOR_DBFS) * _HIST_STEP)
        if b >= _HIST_BINS:
            b = _HIST_BINS - 1
        self._hist[b] += 1
        self._sum_e += e
        self._nblocks += 1
        if self._nblocks >= self.blocks_per_interval:
            off = self._offset
            r = (_cdb(self._dbfs(self._sum_e / self._nblocks) + off), _cdb(self._lmin + off),
                 _cdb(self._lmax + off), _cdb(self._exceeded(10) + off), _cdb(self._exceeded(50) + off),
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


def _cdb(db):
    return int(round(db * 100))
