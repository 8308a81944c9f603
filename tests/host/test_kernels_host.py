"""The plain kernels against numpy and scipy (CPython): fixed-point FFT and IIR within their rounding, the float
fallbacks within float32 tolerance."""

import array

import numpy as np
from scipy import signal

from sensorbox.shared import kernels as K
from sensorbox.shared import kernels_float as KF
from sensorbox.shared import kernels_py as P
from sensorbox.shared.dsp_setup import A_WEIGHTING


def _sos(q):
    out = []
    for s in range(len(q) // 5):
        c = [v / K.Q28 for v in q[5 * s:5 * s + 5]]
        out.append([c[0], c[1], c[2], 1.0, c[3], c[4]])
    return np.array(out)


def test_fft_q15_matches_numpy():
    rng = np.random.default_rng(0)
    for n in (16, 128, 256, 512):
        x = rng.integers(-16384, 16385, n) + 1j * rng.integers(-16384, 16385, n)
        re = array.array("h", x.real.astype(int).tolist())
        im = array.array("h", x.imag.astype(int).tolist())
        P.fft_q15(re, im, n, K.fft_table(n))
        ref = np.fft.fft(x) / n
        err = np.abs(np.array(re) + 1j * np.array(im) - ref).max()
        assert err <= 0.6 * np.log2(n) + 1, (n, err)


def test_float_fft_fallback_matches_numpy():
    rng = np.random.default_rng(1)
    n = 256
    x = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    re = array.array("f", x.real)
    im = array.array("f", x.imag)
    f = KF.FFT(n)
    f.run(re, im)
    ref = np.fft.fft(np.array(array.array("f", x.real)) + 1j * np.array(array.array("f", x.imag)))
    assert np.abs(np.array(re) + 1j * np.array(im) - ref).max() <= 1e-4 * np.abs(x).max() * n


def test_float_iir_fallback_matches_sosfilt():
    sos = _sos(A_WEIGHTING[16000])
    x = np.random.default_rng(2).uniform(-1, 1, 4000)
    buf = array.array("f", x)
    KF.IIR(sos.ravel().tolist()).run(buf)
    ref = signal.sosfilt(sos, x)
    assert np.abs(np.array(buf) - ref).max() <= 1e-4


def test_iir_q_matches_sosfilt():
    for rate in (16000, 8000):
        q = A_WEIGHTING[rate]
        x = np.random.default_rng(3).integers(-10000, 10001, 8000)  # no clipping: the l1 gain is < 2.4
        f = K.IIRQ(q)
        y = array.array("h", bytes(2 * len(x)))
        f.run(array.array("h", x.tolist()), y, len(x))
        ref = signal.sosfilt(_sos(q), x.astype(float))
        err = np.abs(np.array(y) - ref)
        assert err.max() <= 2, (rate, err.max())
        assert np.abs(err.mean()) <= 0.5


def test_linear_map_fallback():
    src = array.array("h", [-32768, -1, 0, 16384, 32767])
    dst = array.array("f", bytes(20))
    KF.linear_map(src, dst, -32768, 32767, -1.0, 1.0)
    ref = -1 + (np.array(src, dtype=float) + 32768) * 2 / 65535
    assert np.abs(np.array(dst) - ref).max() < 1e-6
