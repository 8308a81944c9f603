"""Run every benchmark module (bench/bench_*.py) and print a table of ratios against same-run baselines.

    python -m bench                 # all
    python -m bench runtime store   # only bench_runtime.py and bench_store.py
Results are also written to build/bench.json.
"""

import importlib
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def _fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return "{:.3g}".format(v)
    return str(v)


def main(argv):
    names = sorted(f[6:-3] for f in os.listdir(HERE) if f.startswith("bench_") and f.endswith(".py"))
    if argv:
        unknown = [a for a in argv if a not in names]
        if unknown:
            sys.exit("unknown benchmark {}; available: {}".format(", ".join(unknown), ", ".join(names)))
        names = argv
    results = {}
    failed = 0
    for name in names:
        t0 = time.time()
        print("== {}".format(name), flush=True)
        try:
            rows = importlib.import_module("bench.bench_" + name).run()
        except Exception as e:  # one broken benchmark must not hide the others
            print("   FAILED: {}: {}".format(type(e).__name__, e))
            failed += 1
            continue
        results[name] = [list(r) for r in rows]
        w = max([len(r[0]) for r in rows] + [10])
        print("   {:<{w}}  {:>12}  {:>12}  {:>8}  {}".format("figure", "value", "baseline", "ratio", "unit", w=w))
        for r in rows:
            print("   {:<{w}}  {:>12}  {:>12}  {:>8}  {}".format(r[0], _fmt(r[1]), _fmt(r[2]), _fmt(r[3]), r[4], w=w))
        print("   ({:.1f} s)".format(time.time() - t0))
    os.makedirs(os.path.join(os.path.dirname(HERE), "build"), exist_ok=True)
    with open(os.path.join(os.path.dirname(HERE), "build", "bench.json"), "w") as f:
        json.dump(results, f, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
