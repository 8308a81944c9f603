"""DSP benchmarks on the MicroPython unix port: the viper kernels (fixed-point FFT, A-weighting biquad cascade)
and the per-window feature extraction, each against the plain-Python version of the same algorithm over the
same arrays in the same run. Targets: FFT 256 >= 40x, IIR >= 30x, features <= 0.25 ms per 3-axis window."""

import os
import subprocess

from sensorbox.host import bundle

HERE = os.path.dirname(os.path.abspath(__file__))


def run():
    out_dir = bundle.build("unix")
    res = subprocess.run([bundle.micropython_path(), "-X", "heapsize=512wK", os.path.join(HERE, "mp_dsp.py")],
                         env=bundle.micropython_env(out_dir), cwd=bundle.REPO, capture_output=True, text=True,
                         timeout=600)
    if res.returncode != 0:
        raise RuntimeError("mp_dsp.py failed:\n{}{}".format(res.stdout, res.stderr))
    r = {}
    for line in res.stdout.splitlines():
        p = line.split()
        if len(p) == 4:
            r[p[0]] = (float(p[1]), float(p[2]), p[3])
    rows = []
    for key, label in (("fft256_us", "FFT 256 fixed point: viper vs plain (target >= 40x)"),
                       ("iir2000_us", "A-weighting IIR, 3 biquads x 2000 samples: viper vs plain (>= 30x)"),
                       ("features3_us", "features, 128x3 window: viper kernels vs plain (target <= 250 us)")):
        v, b, unit = r[key]
        rows.append((label, round(v, 1), round(b, 1), round(b / v, 1), unit))
    return rows
