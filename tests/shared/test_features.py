"""Window features: names and order, value sanity, and parity: the features of the real recording
(data/watch_excerpt.npy) are bit-identical on CPython, MicroPython (viper kernels) and WebAssembly (plain)."""

import array

from sensorbox.shared import features as F
from sensorbox.shared import npy

DATA_FILES = ["data/watch_excerpt.npy"]


def _frames(first, count):
    with open("data/watch_excerpt.npy", "rb") as f:
        descr, shape, off = npy.parse_header(f.read(128))
        f.seek(off + first * 12)
        return array.array("h", f.read(12 * count))


def test_names_are_unique_and_ordered():
    n3 = F.names(3)
    n6 = F.names(6)
    assert len(set(n3)) == len(n3) == 4 * len(F.SIGNAL_FEATURES) + 3 + 3
    assert len(set(n6)) == len(n6) == 8 * len(F.SIGNAL_FEATURES) + 6 + 3
    assert n3[0] == "ax_mean" and n3[-1] == "grav_z"
    assert n6[:80] == n3[:80]  # the accelerometer's signal features keep their place
    for bad in (1, 2, 4):
        try:
            F.names(bad)
            raise AssertionError("accepted {} channels".format(bad))
        except ValueError:
            pass


def _run(ch, nframes=2048):
    raw = _frames(0, nframes)
    ex = F.Extractor(ch)
    out = array.array("h", bytes(2 * len(F.names(ch))))
    fr = array.array("h", bytes(2 * F.WINDOW * ch))
    acc = 0
    first = None
    for start in range(0, nframes - F.WINDOW + 1, F.HOP):
        for i in range(F.WINDOW):
            for c in range(ch):
                fr[i * ch + c] = raw[(start + i) * 6 + c]
        ex.extract(fr, out)
        if first is None:
            first = array.array("h", out)
        for j in range(len(out)):
            acc = (acc * 31 + out[j] + j) & 0xFFFFFFF
    return first, acc


def test_parity_on_recording_3_channels():
    first, acc = _run(3)
    assert acc == 161878424, acc
    got = dict(zip(F.names(3), first))
    assert got["ax_mean"] == FIRST3[0] and got["ax_std"] == FIRST3[1] and got["ax_domf"] == FIRST3[2]
    assert got["a_corr_xy"] == FIRST3[3] and got["grav_z"] == FIRST3[4]


def test_parity_on_recording_6_channels():
    first, acc = _run(6)
    assert acc == 81331526, acc


def test_values_of_known_signals():
    # x: 2 Hz square-ish sine of amplitude 1000 on a 4096 (1 g) offset; y: constant; z: a ramp.
    import math

    n = F.WINDOW
    fr = array.array("h", bytes(2 * 3 * n))
    for i in range(n):
        fr[3 * i] = 4096 + int(round(1000 * math.sin(2 * math.pi * 2.0 * i / F.RATE_HZ)))
        fr[3 * i + 1] = -200
        fr[3 * i + 2] = i
    ex = F.Extractor(3)
    out = ex.extract(fr, array.array("h", bytes(2 * len(F.names(3)))))
    v = dict(zip(F.names(3), out))
    assert abs(v["ax_mean"] - 4096) <= 8
    assert abs(v["ax_std"] - 707) <= 8
    assert abs(v["ax_min"] - (4096 - 1000)) <= 5 and abs(v["ax_max"] - (4096 + 1000)) <= 5
    assert abs(v["ax_domf"] - 200) <= 40  # 2 Hz, bin width 0.39 Hz
    assert v["ax_e1"] > v["ax_e0"] + 400 and v["ax_e1"] > v["ax_e3"] + 400  # the energy sits in 1-2.5 Hz
    assert v["ax_zc"] in (9, 10, 11)
    assert v["ay_std"] == 0 and v["ay_domf"] == 0 and v["ay_e0"] == F.LOG_FLOOR and v["ay_mean"] == -200
    assert v["az_p50"] in (63, 64) and v["az_iqr"] in (63, 64) and v["az_jerk"] == 16
    assert v["a_corr_xy"] == 0
    # gravity points along x mostly (4096 against 200 on y and ~64 on z)
    assert v["grav_x"] > 4080 and v["grav_y"] < -150


def test_frequency_features_scale_with_the_rate():
    # issue 17: at another sensor rate an FFT bin is another frequency; domf (centi-Hz) and the band that holds the
    # energy (e0..e4 in Hz) follow the rate. A pure tone on bin k of a 128-frame window is k * rate / 128 Hz: bin 41
    # at 25 Hz is 8.0 Hz (e3, 5-10 Hz; read as 50 Hz it would be 16 Hz, e4), bin 5 at 100 Hz is 3.9 Hz (e2; as
    # 50 Hz: 1.95 Hz, e1), bin 26 at 100 Hz is 20.3 Hz (e4, above what 50 Hz can see)
    import math

    n = F.WINDOW
    for rate, k, domf, band in ((25, 41, 800, 3), (100, 5, 390, 2), (100, 26, 2031, 4), (50, 10, 390, 2)):
        fr = array.array("h", bytes(2 * 3 * n))
        for i in range(n):
            fr[3 * i] = 4096 + int(round(1000 * math.sin(2 * math.pi * k * i / n)))
            fr[3 * i + 1] = -200
            fr[3 * i + 2] = 300
        ex = F.Extractor(3, n, rate)
        v = dict(zip(F.names(3), ex.extract(fr, array.array("h", bytes(2 * len(F.names(3)))))))
        assert v["ax_domf"] == domf == k * 100 * rate // n, (rate, k, v["ax_domf"])
        e = [v["ax_e{}".format(b)] for b in range(5)]
        # the tone's energy, 1000**2 / 2 counts**2 = 64 * log2(500000) ~ 1211, is all in its band
        assert abs(e[band] - 1211) <= 16 and max(e[:band] + e[band + 1:]) < e[band] - 400, (rate, k, e)
        assert v["ay_domf"] == 0 and v["ay_e0"] == F.LOG_FLOOR


def test_extract_checks_sizes():
    ex = F.Extractor(3)
    try:
        ex.extract(array.array("h", bytes(10)), array.array("h", bytes(2 * len(F.names(3)))))
        raise AssertionError("accepted a short window")
    except ValueError:
        pass


FIRST3 = (3064, 783, 78, 2161, -2834)  # ax_mean, ax_std, ax_domf, a_corr_xy, grav_z of the first window
