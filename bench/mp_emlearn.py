# Runs on the MicroPython unix port (started by bench/bench_emlearn.py) with emlearn_trees/_fft/_iir on the path:
# the real native modules (SENSORBOX_NATMODS) or the test doubles of tests/support/natmods. Prints "name value
# baseline unit" lines: emlearn's modules as sensorbox calls them against the raw call or the project's kernels.
import array
import gc
import json
import time

import emlearn_trees
from forestgen import Rng, forest_csv, inputs
from sensorbox.device.analysis import trees as device_trees
from sensorbox.shared import features, kernels, kernels_emlearn, trees, trees_csv
from sensorbox.shared.dsp_setup import A_WEIGHTING
from sensorbox.shared.soundlevel import SoundLevelMeter

REAL = 0 if "bench-natmods" in getattr(emlearn_trees, "__file__", "bench-natmods") else 1
print("real", REAL, 1, "flag")


def best(fns, reps, rounds=25):
    # Best (least disturbed) per-call time of each fn(reps), interleaved so that load from other processes falls
    # on all of them alike.
    out = [1e18] * len(fns)
    for _ in range(rounds):
        for i in range(len(fns)):
            t0 = time.ticks_us()
            fns[i](reps)
            t = time.ticks_diff(time.ticks_us(), t0) / reps
            if t < out[i]:
                out[i] = t
    return out


def alloc(fn, reps):
    gc.collect()
    gc.disable()
    a = gc.mem_alloc()
    fn(reps)
    b = gc.mem_alloc()
    gc.enable()
    return (b - a) / reps


def bench_trees(tag, lines, nt, nn, nl, nf, nc, xs):
    c = device_trees.new(nt, nn, nl)  # kernels_emlearn.CTrees over emlearn_trees
    trees_csv.load(lines, c)
    v = trees.Trees(nt, nn, nl, device_trees.vote)
    trees_csv.load(lines, v)
    m = c.model
    out = c.out
    votes = v.votes()
    hist = array.array("H", bytes(2 * 3 * nc))
    x = array.array("h", xs[0])
    for y in xs:
        if c.classify(y) != v.classify(y):
            raise SystemExit("emlearn_trees and viper disagree")
    smooth = device_trees.smooth

    # Each loop feeds the same input array (as the pipeline does); all loops have the same shape.
    def raw(n):
        for _ in range(n):
            m.predict(x, out)

    def step(n):  # pipeline._classify with emlearn_trees: its predict, then the smoothing kernel decoding floats
        for _ in range(n):
            m.predict(x, out)
            smooth(out, 1, nt, hist, 0, 3, nc)

    def counts(n):  # the same step with the smoothing kernel reading vote counts: what the viper path runs after
        for _ in range(n):  # its own kernel; step - counts is what decoding emlearn's float outputs costs
            m.predict(x, out)
            smooth(votes, 0, nt, hist, 0, 3, nc)

    def vstep(n):  # pipeline._classify with the viper evaluator
        for _ in range(n):
            v.classify(x)
            smooth(votes, 0, nt, hist, 0, 3, nc)

    def classify(n):  # CTrees.classify: predict + decode in one call (not on the pipeline's path)
        for _ in range(n):
            c.classify(x)

    r, s, sh, vs, cl = best((raw, step, counts, vstep, classify), 500, 40)
    print(tag + "_raw_us", r, r, "us")
    print(tag + "_step_us", s, r, "us")
    print(tag + "_counts_us", sh, r, "us")
    print(tag + "_viper_step_us", vs, r, "us")
    print(tag + "_classify_us", cl, r, "us")
    print(tag + "_step_alloc", alloc(step, 1000), 0, "B")
    print(tag + "_classify_alloc", alloc(classify, 1000), 0, "B")


def bench_fft():
    n = 128
    rng = Rng(4)
    src = array.array("h", bytes(2 * n))
    for i in range(n):
        src[i] = rng.below(32769) - 16384
    re = array.array("h", bytes(2 * n))
    im = array.array("h", bytes(2 * n))
    zero = array.array("h", bytes(2 * n))
    e = kernels_emlearn.FFT(n)
    q = kernels.FFTQ(n)

    def timed(fft):  # each call restores the input first (the transform is in place); timed alone as `copy`
        def fn(k):
            for _ in range(k):
                kernels.copy_i16(src, 0, re, 0, n)
                kernels.copy_i16(zero, 0, im, 0, n)
                if fft is not None:
                    fft.run(re, im)
        return fn

    copy, fe, fq = timed(None), timed(e), timed(q)

    c, a, b = best((copy, fe, fq), 50)
    print("fft128_us", a - c, b - c, "us")
    print("fft128_alloc", alloc(fe, 2), 0, "B")  # (the double allocates floats: few calls)


def bench_iir():
    n = 2000
    rng = Rng(6)
    src = array.array("h", bytes(2 * n))
    for i in range(n):
        src[i] = rng.below(40001) - 20000
    y = array.array("h", bytes(2 * n))
    e = kernels_emlearn.IIR(A_WEIGHTING[16000])
    q = kernels.IIRQ(A_WEIGHTING[16000])

    def ie(k):
        for _ in range(k):
            e.run(src, y, n)

    def iq(k):
        for _ in range(k):
            q.run(src, y, n)

    a, b = best((ie, iq), 5)
    print("iir2000_us", a, b, "us")
    print("iir2000_alloc", alloc(ie, 10), 0, "B")
    m = SoundLevelMeter(16000, "A", "fast", -26.0, 1000)
    m.on_interval = lambda r: None
    chunk = array.array("h", bytes(512))

    def meter(k):
        for _ in range(k):
            kernels.copy_i16(src, 0, chunk, 0, 256)
            m.process(chunk, 256)

    print("sound_alloc", alloc(meter, 125), 0, "B")  # 2 s of 16 kHz chunks, two interval ends


def bench_features():
    from sensorbox.shared import npy

    with open("data/watch_excerpt.npy", "rb") as f:
        _, shape, off = npy.parse_header(f.read(128))
        f.seek(off)
        raw = array.array("h", f.read(2 * shape[1] * 128))
    fr = array.array("h", [raw[shape[1] * (i // 3) + i % 3] for i in range(3 * 128)])  # x, y, z interleaved
    ex_e = features.Extractor(3, 128)
    ex_q = features.Extractor(3, 128)
    ex_q._fft = kernels.FFTQ(128)
    out = array.array("h", bytes(2 * ex_e.n_features))

    def fe(k):
        for _ in range(k):
            ex_e.extract(fr, out)

    def fq(k):
        for _ in range(k):
            ex_q.extract(fr, out)

    a, b = best((fe, fq), 5)
    print("features_us", a, b, "us")


rng = Rng(11)
lines = forest_csv(rng, n_trees=10, depth=8, n_features=10, n_classes=5)
nodes = len([line for line in lines if line.startswith("n,")])
bench_trees("forest", lines, 10, nodes, 5, 10, 5, inputs(rng, 50, 10))
with open("models/default/meta.json") as f:
    meta = json.load(f)
with open("models/default/model.csv") as f:
    shipped = [line.strip() for line in f]
bench_trees("shipped", shipped, meta["trees"], meta["nodes"], meta["leaves"], len(meta["features"]),
            len(meta["classes"]), inputs(Rng(3), 50, len(meta["features"])))
bench_fft()
bench_iir()
bench_features()
