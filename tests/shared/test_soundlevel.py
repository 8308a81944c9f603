"""The sound level meter on generated tones and noise of known level (plain and viper kernels alike)."""

import array
import math

from sensorbox.shared import soundlevel as S
from testrng import uniform

# (tests/conftest.py marks these `slow`: more than ~15 s on WebAssembly)
SLOW = ("test_a_weighting_of_tones_within_class_1", "test_1khz_tone_reads_its_level_calibrated",
        "test_process_allocates_nothing_between_interval_ends", "test_time_weighting_and_statistics_of_a_step")


def _tone(rate, hz, dbfs, n, out=None, at=0):
    a = 32767 * math.sqrt(2) * 10 ** (dbfs / 20)
    if out is None:
        out = array.array("h", bytes(2 * n))
    w = 2 * math.pi * hz / rate
    for i in range(n):
        out[at + i] = int(round(a * math.sin(w * i)))
    return out


def _noise(dbfs, n, seed=1):
    half = int(32767 * math.sqrt(3) * 10 ** (dbfs / 20))
    return uniform(seed, half, array.array("h", bytes(2 * n)))


def _measure(x, rate, chunk=256, repeat=1, **kw):
    m = S.SoundLevelMeter(rate, **kw)
    got = []
    m.on_interval = got.append
    c = array.array("h", bytes(2 * chunk))
    for i in list(range(0, len(x), chunk)) * repeat:
        k = min(chunk, len(x) - i)
        for j in range(k):
            c[j] = x[i + j]
        m.process(c, k)
    return m, got


def test_1khz_tone_reads_its_level_calibrated():
    for rate in (16000, 8000):
        x = _tone(rate, 1000, -20, rate)  # whole periods: played twice it is one 2 s tone
        m, got = _measure(x, rate, repeat=2, sensitivity_dbfs=-26.0, interval_ms=1000)
        assert len(got) == 2  # the first interval includes the filter settling in
        leq, lmin, lmax, l10, l50, l90 = got[-1]
        assert abs(leq - 10000) <= 5, got  # -20 dBFS + 26 + 94 = 100.00 dB SPL; A(1 kHz) = 0
        assert abs(lmin - 10000) <= 5 and abs(lmax - 10000) <= 5
        assert abs(l50 - 10000) <= 15 and l10 >= l50 >= l90
        assert abs(m.level_cdb - 10000) <= 5


def test_a_weighting_of_tones_within_class_1():
    # IEC 61672-1 nominal A-weighting and class 1 tolerance (dB)
    x = None
    for hz, a, tol in ((31.5, -39.4, 1.5), (100, -19.1, 1.0), (250, -8.6, 1.0), (2000, 1.2, 1.0),
                       (4000, 1.0, 1.0)):
        x = _tone(16000, hz, -10, 16000, x if hz != 31.5 else None)
        _, got = _measure(x, 16000, sensitivity_dbfs=-26.0, interval_ms=1000)
        assert abs(got[-1][0] / 100 - (110 + a)) <= tol, (hz, got[-1])


def test_z_weighting_is_flat_and_noise_level_known():
    # (each signal made in the call: two of 32 KB held at once leave a 96wK heap too fragmented for a third)
    _, got = _measure(_tone(16000, 100, -30, 16000), 16000, weighting="Z", sensitivity_dbfs=-30.0, interval_ms=500)
    assert abs(got[-1][0] - 9400) <= 5, got  # -30 dBFS at -30 dBFS/94 dB = 94 dB
    _, got = _measure(_noise(-40, 16000), 16000, weighting="Z", sensitivity_dbfs=-40.0, interval_ms=1000)
    assert abs(got[-1][0] - 9400) <= 10, got
    # A-weighted white noise at 16 kHz reads about the same as unweighted (its energy is mostly 1-8 kHz)
    _, got_a = _measure(_noise(-40, 16000), 16000, sensitivity_dbfs=-40.0, interval_ms=1000)
    assert abs(got_a[-1][0] - got[-1][0]) <= 100, (got_a, got)


def test_time_weighting_and_statistics_of_a_step():
    # 0.5 s at -60 dBFS then 0.5 s at -20 dBFS: Fast follows within the interval, Slow lags; Leq is the energy mean.
    rate = 16000
    x = _tone(rate, 1000, -60, rate // 2, array.array("h", bytes(2 * rate)))
    _tone(rate, 1000, -20, rate // 2, x, rate // 2)
    _, fast = _measure(x, rate, time_weighting="fast", sensitivity_dbfs=-94.0, interval_ms=1000)
    _, slow = _measure(x, rate, time_weighting="slow", sensitivity_dbfs=-94.0, interval_ms=1000)
    leq, lmin, lmax, l10, l50, l90 = fast[0]
    want_leq = 10 * math.log10((10 ** -6 + 10 ** -2) / 2) + 94 + 94
    assert abs(leq / 100 - want_leq) <= 0.1, fast
    assert abs(lmin - 12800) <= 20 and abs(lmax - 16800) <= 20, fast  # -60/-20 dBFS + 188
    assert l10 >= 16700 and l90 <= 13000 and l10 >= l50 >= l90
    assert slow[0][2] < fast[0][2] - 100  # slow has not reached the top after 0.5 s (1 - e^-0.5: -4 dB)
    assert abs(slow[0][0] - leq) <= 2  # Leq does not depend on the time weighting


def test_silence_reads_the_floor_and_bad_settings_are_refused():
    x = array.array("h", bytes(2 * 16000))
    _, got = _measure(x, 16000, sensitivity_dbfs=-26.0, interval_ms=1000)
    assert got[-1][0] == int(round((S.FLOOR_DBFS + 120) * 100))
    for kw in ({"weighting": "C"}, {"time_weighting": "impulse"}):
        try:
            S.SoundLevelMeter(16000, **kw)
            raise AssertionError("accepted {}".format(kw))
        except ValueError:
            pass
    try:
        S.SoundLevelMeter(44100)
        raise AssertionError("accepted A-weighting at 44.1 kHz")
    except ValueError:
        pass


def _heap_lock():
    # (lock, unlock) on MicroPython (the unix port and WebAssembly); None on CPython, which has no heap to lock
    try:
        import micropython

        return micropython.heap_lock, micropython.heap_unlock
    except (ImportError, AttributeError):
        return None


def test_process_allocates_nothing_between_interval_ends():
    # Under micropython.heap_lock any allocation raises MemoryError. WebAssembly, like an ESP32, has 31-bit
    # small ints and boxed floats, so there this also proves no float and no int beyond 2**30 per block; the
    # unix port runs the viper kernels. The signal goes loud, quiet, silent (the time-weighted energy decays
    # to zero) and loud again, so every branch of the block update runs locked. CPython runs the same path.
    lock = _heap_lock()
    for rate, weighting, tw in ((16000, "A", "fast"), (8000, "A", "slow"), (8000, "Z", "fast")):
        m = S.SoundLevelMeter(rate, weighting, tw, -26.0, 60000)
        got = []
        m.on_interval = got.append
        chunk = array.array("h", bytes(2 * 256))
        loud = _tone(rate, 1000, -6, rate // 4)
        quiet = _noise(-85, rate // 4)
        silence = array.array("h", bytes(2 * 256))
        parts = [(loud, 256), (quiet, 250), (silence, 256)]
        seconds = 9 if weighting == "Z" else 1  # Fast decays to zero in ~6 s of silence
        plan = [p for p in parts[:2]] + [parts[2]] * (seconds * rate // 256) + [(loud, 256)]
        m.process(_tone(rate, 500, -20, 256), 256)  # the first block: past the start-up branch
        if lock is not None:
            lock[0]()
        try:
            for src, step in plan:
                i = 0
                while i + step <= len(src):  # (range() with a variable step allocates on MicroPython)
                    for j in range(step):
                        chunk[j] = src[i + j]
                    m.process(chunk, step)
                    i += step
        finally:
            if lock is not None:
                lock[1]()
        assert got == [] and m.level_cdb > 10000, (got, m.level_cdb)  # loud again: -6 dBFS + 120 = 114 dB
        if weighting == "Z":
            assert m._twm > 0  # it went to zero in the silence (checked below) and came back
        m.process(silence, 256)
        assert m.level_cdb < 11400


def test_silence_decays_to_the_floor():
    m = S.SoundLevelMeter(8000, "Z", "fast", -26.0, 60000)
    m.process(_tone(8000, 1000, -6, 256), 256)
    z = array.array("h", bytes(2 * 256))
    for _ in range(8 * 8000 // 256):
        m.process(z, 256)
    assert m._twm == 0 and m.level_cdb == int(round((S.FLOOR_DBFS + 120) * 100)), (m._twm, m.level_cdb)
