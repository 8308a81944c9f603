"""emlearn-micropython's native modules as sensorbox calls them, on the MicroPython unix port: the real modules when
``SENSORBOX_NATMODS`` names a folder of them (docs/analysis.md), else the test doubles of tests/support/natmods
(whose speed means nothing: the rows say which).

- trees (a random forest of 10 trees, depth 8, 10 features; and the shipped model): the raw ``predict`` call, the
  pipeline's classify step through emlearn_trees (``predict`` + the smoothing kernel, which decodes the float
  outputs), and the wrapper overhead: the raw call plus what decoding costs (that step less the same step with the
  kernel reading vote counts, as the viper path does), over the raw call. Target <= 1.2x, 0 bytes per call. Also
  ``CTrees.classify`` (predict + decode in one Python call, not on the pipeline's path) and the viper evaluator's
  step;
- FFT 128 (features) and the A-weighting IIR over 2000 samples (sound meter) through emlearn against the integer
  kernels; bytes allocated per call, and per 256-sample sound meter chunk over 2 s (two interval ends).
"""

import os

from bench.mp import run_script
from sensorbox.host import bundle

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def _doubles():
    """tests/support/natmods compiled to .mpy (build/bench-natmods), for runs without SENSORBOX_NATMODS."""
    src = os.path.join(REPO, "tests", "support", "natmods")
    out = os.path.join(REPO, "build", "bench-natmods")
    for f in os.listdir(src):
        if f.endswith(".py"):
            dst = os.path.join(out, f[:-3] + ".mpy")
            if not os.path.exists(dst) or os.path.getmtime(dst) < os.path.getmtime(os.path.join(src, f)):
                bundle.compile_one(os.path.join(src, f), dst, bundle.TARGETS["unix"], "tests/support/natmods/" + f)
    return out


def run():
    path = (os.path.join(REPO, "tests", "support"),)
    if not bundle.natmods_dir():
        path += (_doubles(),)
    r = run_script("mp_emlearn.py", heap="1024wK", path=path)
    which = "real modules" if r["real"][0] else "test doubles"
    rows = []
    for tag, label in (("forest", "10 trees, depth 8"), ("shipped", "shipped model")):
        raw = r[tag + "_raw_us"][0]
        step = r[tag + "_step_us"][0]
        counts = r[tag + "_counts_us"][0]
        vstep = r[tag + "_viper_step_us"][0]
        cl = r[tag + "_classify_us"][0]
        rows.append(("emlearn_trees predict, raw call ({}, {})".format(label, which), round(raw, 3), None, None,
                     "us/sample"))
        rows.append(("classify step via emlearn_trees: predict + decode/smoothing kernel", round(step, 3),
                     round(vstep, 3), round(step / vstep, 2), "us (baseline: the viper evaluator's step)"))
        rows.append(("wrapper overhead: (raw predict + float decoding) / raw predict (target <= 1.2)",
                     round(raw + step - counts, 3), round(raw, 3), round((raw + step - counts) / raw, 2), "us"))
        rows.append(("CTrees.classify (predict + decode, one Python call) / raw predict", round(cl, 3), round(raw, 3),
                     round(cl / raw, 2), "us"))
        rows.append(("heap allocated per classify step / per CTrees.classify", r[tag + "_step_alloc"][0], None,
                     r[tag + "_classify_alloc"][0], "B"))
    v, b, unit = r["fft128_us"]
    rows.append(("FFT 128 (int16 in/out): emlearn_fft vs fft_q15 viper ({})".format(which), round(v, 2), round(b, 2),
                 round(b / v, 2), unit))
    v, b, unit = r["iir2000_us"]
    rows.append(("A-weighting, 2000 samples: emlearn_iir vs iir_q viper", round(v, 1), round(b, 1), round(b / v, 2),
                 unit))
    v, b, unit = r["features_us"]
    rows.append(("features, 128x3 window: with emlearn_fft vs fft_q15", round(v, 1), round(b, 1), round(b / v, 2),
                 unit))
    rows.append(("heap allocated per FFT / per IIR run / per sound meter chunk (2 s, 2 interval ends)",
                 r["fft128_alloc"][0], r["iir2000_alloc"][0], round(r["sound_alloc"][0], 1), "B"))
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
