"""DSP benchmarks on the MicroPython unix port: the viper kernels (fixed-point FFT, A-weighting biquad cascade)
and the per-window feature extraction, each against the plain-Python version of the same algorithm over the
same arrays in the same run. Targets: FFT 256 >= 40x, IIR >= 30x, features <= 0.25 ms per 3-axis window. The sound
level meter per 256-sample chunk, against its A-weighting filter alone, and the bytes it allocates per chunk
(only at interval ends: ~17 B averaged over 1 s intervals)."""

from bench.mp import run_script


def run():
    r = run_script("mp_dsp.py", heap="512wK")
    rows = []
    for key, label in (("fft256_us", "FFT 256 fixed point: viper vs plain (target >= 40x)"),
                       ("iir2000_us", "A-weighting IIR, 3 biquads x 2000 samples: viper vs plain (>= 30x)"),
                       ("features3_us", "features, 128x3 window: viper kernels vs plain (target <= 250 us)")):
        v, b, unit = r[key]
        rows.append((label, round(v, 1), round(b, 1), round(b / v, 1), unit))
    v, b, unit = r["sound256_us"]
    rows.append(("sound meter, 256-sample chunk (A, Fast) vs its A-weighting filter alone", round(v, 1), round(b, 1),
                 round(b / v, 2), unit))
    v, b, unit = r["sound_alloc"]
    rows.append(("sound meter: heap allocated per 256-sample chunk, 2 s incl. 2 interval ends", round(v, 1), None,
                 None, unit))
    return rows
