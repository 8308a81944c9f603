"""The browser's re-analysis (sensorbox.shared.analysis) is the device's: the real pipeline, fed recorded frames
with a gap and a restart of its analysis, publishes for every window the class and confidence that analysis.py
computes from the same frames; and the pipeline's viper smoothing kernel equals analysis.smooth, the plain one."""

import array

import asyncio

from devtest import ClassIds, RingSensor, StubConfig, quiet_log, tmpdir, until
from sensorbox.device.log import Bus
from sensorbox.device.analysis.pipeline import ModelSlot, Pipeline
from sensorbox.device.sensors.ring import Batch
from sensorbox.device.analysis.trees import smooth
from sensorbox.shared import analysis
from testrng import Rng

HEAPSIZE = "256wK"  # 3,000 recorded frames and their features held at once (a check of results, not of RAM)


class _Dev:
    def __init__(self):
        self.log = quiet_log()
        self.config = StubConfig()
        self.bus = Bus(self.log)
        self.platform = type("P", (), {"data_dir": tmpdir(), "www_dir": "./www"})()
        self.sensors = {"accel": RingSensor(50)}  # (features at the rate the model was trained at)
        self.ml = ModelSlot()
        self.store = ClassIds()


async def _feed(ring, frames, seq, first, n):
    # frames[first:first + n] as sensor frames seq, seq + 1, ... (ring time: 20 ms per frame at its 50 Hz)
    b = Batch(3, 16)
    done = 0
    while done < n:
        k = min(16, n - done)
        for i in range(3 * k):
            b.data[i] = frames[3 * (first + done) + i]
        b.n = k
        b.seq = seq + done
        b.t_ms = 1000 + 20 * (seq + done)
        ring.write(b)
        done += k
        await asyncio.sleep_ms(2)


async def test_pipeline_and_analysis_agree_on_every_window():
    dev = _Dev()
    pipe = Pipeline(dev)
    got = []
    dev.bus.subscribe("predictions", lambda topic, t, v: got.append((t, v[0], v[1])))
    task = asyncio.create_task(pipe.run())
    await until(lambda: dev.ml.model is not None)
    with open("data/watch_excerpt.npy", "rb") as f:
        frames = analysis.read_frames(f, 5000, 3000)
    ring = dev.sensors["accel"].ring
    await _feed(ring, frames, 0, 0, 1400)  # windows over frames 0..1399
    await until(lambda: pipe.windows == 20)
    await _feed(ring, frames, 1600, 1600, 700)  # a gap (frames 1400..1599 lost): windows restart at 1600
    await until(lambda: pipe.windows == len(got) == 29)
    task.cancel()  # the service restarts (as on an ml.* change): its smoothing history starts afresh
    await asyncio.sleep_ms(0)
    n = pipe.windows
    task = asyncio.create_task(pipe.run())
    await asyncio.sleep_ms(50)
    await _feed(ring, frames, 2300, 2300, 700)
    await until(lambda: pipe.windows == len(got) == n + 9)
    task.cancel()
    await asyncio.sleep_ms(0)
    assert pipe.gaps == 1 and len(got) == pipe.windows == 38, (pipe.gaps, len(got))

    # the same frames through analysis.py: frame i at 1000 + 20 i ms, a gap where none arrived
    times = array.array("i", [1000 + 20 * i for i in list(range(1400)) + list(range(1600, 3000))])
    kept = array.array("h", frames[:3 * 1400])
    kept.extend(frames[3 * 1600:])
    runs = analysis.runs_of(times, 50)
    assert runs == [(0, 1400), (1400, 1400)], runs
    stored_t = array.array("i", [p[0] for p in got])
    ends = analysis.device_ends(times, runs, stored_t, 128, 50)
    assert min(ends) >= 0
    t = dev.ml.model.trees
    nf = t.n_features
    feats = analysis.extract(kept, ends, 128, 3, array.array("h", bytes(2 * nf * len(ends))))
    v = analysis.votes(t, feats, nf, 0, len(ends), array.array("H", bytes(2 * t.n_classes * len(ends))))
    stored = (array.array("b", [p[1] for p in got]), array.array("H", [p[2] for p in got]))
    cfg = dev.config
    cls, conf, restarts = analysis.replay(v, len(ends), t.n_classes, t.n_trees, cfg.get("ml.smooth"),
                                          cfg.get("ml.unknown_permille"), ends, cfg.get("ml.hop"), stored)
    assert analysis.parity(cls, conf, stored[0], stored[1], ends) == (len(got), len(got), -1)
    # the restart is read from the stored record (the first window after it differs from a continued history);
    # the gap was none
    first_after = [i for i in range(len(got)) if stored_t[i] >= 1000 + 20 * 2300][0]
    assert restarts == [first_after], (restarts, first_after)
    # and the features are the ones the pipeline computed (its last window's, still in its array)
    assert feats[(len(ends) - 1) * nf:] == pipe.feats


def test_viper_smoothing_equals_the_plain_kernel():
    rng = Rng(12345)
    for n_classes, n_trees, count in ((2, 1, 1), (7, 20, 3), (5, 255, 16), (127, 3, 2)):
        h1 = array.array("H", bytes(2 * n_classes * count))
        h2 = array.array("H", bytes(2 * n_classes * count))
        for step in range(3 * count):
            votes = array.array("H", bytes(2 * n_classes))
            outs = array.array("f", bytes(4 * n_classes))
            for _ in range(n_trees):
                votes[rng.below(n_classes)] += 1
            for c in range(n_classes):
                outs[c] = votes[c] / n_trees
            base = (step % count) * n_classes
            k = min(step + 1, count)
            for flt, out in ((0, votes), (1, outs)):
                r1 = smooth(out, flt, n_trees, h1, base, k, n_classes)
                r2 = analysis.smooth(out, flt, n_trees, h2, base, k, n_classes)
                assert r1 == r2 and h1 == h2, (n_classes, n_trees, step, flt, r1, r2)
