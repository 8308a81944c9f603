"""ML benchmarks on the MicroPython unix port: tree-ensemble evaluation (viper kernel vs the plain-Python kernel
over the same arrays, same run; target >= 12x) and the heap a loaded model takes.

``run()`` returns rows (name, value, baseline, ratio, unit). Ratio = baseline / value for times (speed-up).
"""

import os

from bench.mp import run_script

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
MODEL = os.path.join(REPO, "models", "default")


def _mp(script, *args):
    return run_script(script, heap="1024wK", args=args, path=(os.path.join(REPO, "tests", "support"),))


def run():
    args = ()
    if os.path.exists(os.path.join(MODEL, "model.csv")):
        args = (os.path.join(MODEL, "model.csv"), os.path.join(MODEL, "meta.json"))
    r = _mp("mp_ml.py", *args)
    v, base, unit = r["trees_predict_us"]
    rows = [("trees: viper vs plain (10 trees, depth 8, {:.0f} nodes)".format(r["trees_nodes"][0]),
             round(v, 2), round(base, 2), round(base / v, 1), unit)]
    if "model_heap_bytes" in r:
        v, nodes, unit = r["model_heap_bytes"]
        rows.append(("heap of the shipped model ({:.0f} nodes)".format(nodes), int(v), None, None, unit))
    if "window_extract_us" in r:
        ext = r["window_extract_us"][0]
        cls = r["window_classify_us"][0]
        rows.append(("pipeline window: features (128 x 3)", round(ext, 1), None, None, "us"))
        rows.append(("pipeline window: classify (shipped model)", round(cls, 1), None, None, "us"))
        # 50 Hz, hop 64: 50/64 windows per second; fraction of one core on this machine's unix port
        frac = (ext + cls) * 50 / 64 / 1e6
        rows.append(("pipeline CPU share at 50 Hz 3-axis (hop 64), unix port", round(100 * frac, 3), None, None,
                     "% of a core (x50-100 on an ESP32: {:.1f}-{:.1f} %)".format(5000 * frac, 10000 * frac)))
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
