# Re-analysing one hour of 50 Hz 3-axis data with sensorbox.shared.analysis on the MicroPython unix port (the
# browser's code: bench_analysis.py runs it with the very .mpy files the page imports, plain kernels; or with the
# device's bundle, viper kernels). Prints "name value baseline unit" lines for bench.mp.run_script's reader.
#     micropython mp_analysis.py RECORDING.npy MODEL_DIR SECONDS
import array
import json
import sys
import time

from sensorbox.shared import analysis, features, kernels

rec, mdir, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(rec, "rb") as f:
    src = analysis.read_frames(f, 0, 1 << 30)
n = seconds * 50
frames = array.array("h", bytes(6 * n))
for i in range(0, 3 * n, len(src)):  # the recording, looped
    k = min(len(src), 3 * n - i)
    frames[i:i + k] = src[:k]
src = None
with open(mdir + "/meta.json") as f:
    meta = json.load(f)
with open(mdir + "/model.csv") as f:
    t = analysis.load_model(meta, f)
t0 = time.ticks_ms()
ends = analysis.grid_ends([(0, n)], 128, 64)
nf = len(features.names(3))
feats = analysis.extract(frames, ends, 128, 3, array.array("h", bytes(2 * nf * len(ends))))
t1 = time.ticks_ms()
v = analysis.votes(t, feats, nf, 0, len(ends), array.array("H", bytes(2 * t.n_classes * len(ends))))
cls, conf, _ = analysis.replay(v, len(ends), t.n_classes, t.n_trees, 3, 500)
t2 = time.ticks_ms()
print("analysis_s", time.ticks_diff(t2, t0) / 1000, len(ends), kernels.VARIANT)
print("features_s", time.ticks_diff(t1, t0) / 1000, len(ends), kernels.VARIANT)
