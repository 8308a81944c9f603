"""The set-up code of the DSP objects: what ``kernels.FFTQ``/``IIRQ``, ``features.Extractor`` and
``soundlevel.SoundLevelMeter`` run once, when one is made (twiddle tables, the A-weighting filter's coefficients,
feature names, band and percentile positions, argument checks), and nothing that runs per window or sample.

On a device it is loaded for that moment and unloaded after (``kernels.setup``: ``sensorbox.device.lazy``), so its
code takes no heap while the objects run. The public names
(``fft_table``, ``iir_q_pack``, ``features.names``, ...) stay where they were documented and call in here, by
names the device interns anyway (``iir_q``, ``window``, ``features``, ``meter``: each name this module defines is
interned for good when it loads, docs/heap.md "Interned names").
"""

import array
import math

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
FFT_MAX = 512  # (kernels.FFT_MAX)


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
    """``kernels.fft_table``: int16 array of n, Q15 cos(2 pi k/n) (k < n/2) then sin."""
    if n < 2 or n > FFT_MAX or n & (n - 1):
        raise ValueError("FFT size must be a power of two from 2 to {}, got {}".format(FFT_MAX, n))
    step = FFT_MAX // n
    half = n >> 1
    tw = array.array("h", bytes(2 * n))
    for k in range(half):
        tw[k] = _sin512(k * step + 128)
        tw[half + k] = _sin512(k * step)
    return tw


def iir_q(q28):
    """``kernels.iir_q_pack``: Q28 integer coefficients (b0, b1, b2, a1, a2 per section) as ``iir_q``'s int16
    pairs."""
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


def window(n):
    """``soundfeatures.hann``: the periodic Hann window of ``n`` points, Q15 (0 .. 32767)."""
    w = array.array("h", bytes(2 * n))
    step = FFT_MAX // n
    for i in range(n):
        w[i] = (32767 - _sin512(i * step + 128)) >> 1
    return w


# ---- features (sensorbox.shared.features) ----

BANDS_CHZ = ((30, 100), (100, 250), (250, 500), (500, 1000), (1000, 2500))  # centi-Hz [low, high): e0..e4
PERCENTILES = (10, 25, 50, 75, 90)  # p10 .. p90
_SENSORS = ("a", "g")
_AXES = ("x", "y", "z", "m")


def signals(channels):
    """``features.signals``."""
    if channels not in (3, 6):
        raise ValueError("features need 3 or 6 channels, got {}".format(channels))
    out = []
    for s in range(channels // 3):
        for a in _AXES:
            out.append(_SENSORS[s] + a)
    return tuple(out)


def iter_names(channels):
    """``features.iter_names``."""
    from sensorbox.shared.features import SIGNAL_FEATURES

    for sig in signals(channels):
        for f in SIGNAL_FEATURES:
            yield sig + "_" + f
    for s in range(channels // 3):
        for pair in ("xy", "xz", "yz"):
            yield _SENSORS[s] + "_corr_" + pair
    for a in ("x", "y", "z"):
        yield "grav_" + a


def features(channels, n, rate_hz):
    """What ``features.Extractor(channels, n, rate_hz)`` holds: (signals, number of features, the FFT bins of
    each band, the percentiles' sorted positions, bits of ``n``)."""
    from sensorbox.shared.features import SIGNAL_FEATURES
    from sensorbox.shared.kernels import bitlen

    sig = signals(channels)
    if n < 16 or n > FFT_MAX or n & (n - 1):
        raise ValueError("window must be a power of two from 16 to {}, got {}".format(FFT_MAX, n))
    bins = []  # bin k is at k * rate / n Hz
    for lo, hi in BANDS_CHZ:
        a = max(1, (lo * n + 100 * rate_hz - 1) // (100 * rate_hz))
        b = min(n // 2, (hi * n + 100 * rate_hz - 1) // (100 * rate_hz))
        bins.append((a, max(a, b)))
    return (sig, len(sig) * len(SIGNAL_FEATURES) + 3 * (channels // 3) + 3, tuple(bins),
            tuple((p * (n - 1) + 50) // 100 for p in PERCENTILES), bitlen(n))


# ---- the sound level meter (sensorbox.shared.soundlevel) ----

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


def meter(rate_hz, weighting, time_weighting, interval_ms):
    """What ``soundlevel.SoundLevelMeter`` needs made: (the filter's Q28 coefficients or None, samples per block,
    blocks per interval, the time constant's factor per block in Q20), the arguments checked."""
    from sensorbox.shared.soundlevel import BLOCKS_PER_S
    if weighting not in WEIGHTINGS:
        raise ValueError("weighting must be one of {}, got {!r}".format(", ".join(WEIGHTINGS), weighting))
    if weighting == "A" and rate_hz not in A_WEIGHTING:
        raise ValueError("A-weighting needs a rate of 8000 or 16000 Hz, got {}".format(rate_hz))
    tau = TIME_CONSTANTS_MS.get(time_weighting)
    if tau is None:
        raise ValueError("time weighting must be fast or slow, got {!r}".format(time_weighting))
    if rate_hz % BLOCKS_PER_S:
        raise ValueError("rate must be a multiple of {} Hz, got {}".format(BLOCKS_PER_S, rate_hz))
    return (A_WEIGHTING[rate_hz] if weighting == "A" else None, rate_hz // BLOCKS_PER_S,
            max(1, (interval_ms * BLOCKS_PER_S + 500) // 1000),
            int((1.0 - math.exp(-1000.0 / BLOCKS_PER_S / tau)) * 1048576 + 0.5))  # (floats are fine here)
