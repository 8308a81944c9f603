# Runs on the MicroPython unix port (started by bench/bench_ml.py): times the ML kernels and prints one
# "name value baseline unit" line per figure. MICROPYPATH holds build/unix/lib and tests/support.
import gc
import sys
import time

from forestgen import Rng, forest_csv, inputs
from sensorbox.device.analysis import trees as device_trees
from sensorbox.shared import trees, trees_csv


def per_call_us(fn, xs, reps):
    t0 = time.ticks_us()
    for _ in range(reps):
        for x in xs:
            fn(x)
    return time.ticks_diff(time.ticks_us(), t0) / (reps * len(xs))


def bench_trees():
    # The configuration of FIELD-NOTES' emlearn_trees figure: 10 trees, depth 8, 10 features.
    rng = Rng(11)
    lines = forest_csv(rng, n_trees=10, depth=8, n_features=10, n_classes=5)
    n = len([line for line in lines if line.startswith("n,")])
    fast = trees.Trees(10, n, 5, device_trees.vote)  # the viper evaluator (emlearn_trees: bench_emlearn.py)
    trees_csv.load(lines, fast)
    plain = trees.Trees(10, n, 5)
    trees_csv.load(lines, plain)
    xs = inputs(rng, 200, 10)
    for x in xs:
        if fast.classify(x) != plain.classify(x):
            raise SystemExit("viper and plain disagree")
    base = per_call_us(plain.classify, xs, 3)
    fast_us = per_call_us(fast.classify, xs, 20)
    print("trees_predict_us", fast_us, base, "us/sample")
    print("trees_nodes", n, n, "nodes")


def bench_model_heap(csv_path, meta_path):
    import json

    with open(meta_path) as f:
        meta = json.load(f)
    gc.collect()
    before = gc.mem_alloc()
    t = device_trees.new(meta["trees"], meta["nodes"], meta["leaves"])
    with open(csv_path) as f:
        trees_csv.load(f, t)
    gc.collect()
    print("model_heap_bytes", gc.mem_alloc() - before, meta["nodes"], "bytes")


def bench_window(csv_path, meta_path):
    """One pipeline window on real frames: feature extraction + classification with the shipped model."""
    import array
    import json

    from sensorbox.shared import features, model, npy

    with open(meta_path) as f:
        meta = json.load(f)
    t = device_trees.new(meta["trees"], meta["nodes"], meta["leaves"])
    with open(csv_path) as f:
        model.load(f, meta, t)
    with open("data/watch_excerpt.npy", "rb") as f:
        _, shape, off = npy.parse_header(f.read(128))
        f.seek(off)
        raw = array.array("h", f.read(128 * shape[1] * 2))
    frames = array.array("h", bytes(2 * 128 * 3))
    for i in range(128):
        for c in range(3):
            frames[3 * i + c] = raw[shape[1] * i + c]
    ex = features.Extractor(3, 128)
    out = array.array("h", bytes(2 * len(features.names(3))))
    reps = 50
    t0 = time.ticks_us()
    for _ in range(reps):
        ex.extract(frames, out)
    ext = time.ticks_diff(time.ticks_us(), t0) / reps
    t0 = time.ticks_us()
    for _ in range(reps):
        t.classify(out)
    cls = time.ticks_diff(time.ticks_us(), t0) / reps
    print("window_extract_us", ext, ext, "us")
    print("window_classify_us", cls, cls, "us")


bench_trees()
if len(sys.argv) > 2:
    bench_model_heap(sys.argv[1], sys.argv[2])
    bench_window(sys.argv[1], sys.argv[2])
