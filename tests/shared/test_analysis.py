"""The browser's analysis (sensorbox.shared.analysis) on CPython, MicroPython and WebAssembly: windows over stored
frames as the device makes them (gaps, stored prediction times), features equal to the Extractor's, the shipped
model's votes, the pipeline's smoothing and unknown threshold, a restart read from the stored record, label
proposals, confusion matrices and scores, histograms, a spectrogram's peak, and the exported tables."""

import array
import json
import struct

from sensorbox.shared import analysis as A
from sensorbox.shared import features, npy, trees
from testrng import Rng

DATA_FILES = ["data/watch_excerpt.npy", "models/default/meta.json", "models/default/model.csv"]


def _frames(first, count):
    with open("data/watch_excerpt.npy", "rb") as f:
        out = A.read_frames(f, first, count)
    assert len(out) == 3 * count
    with open("data/watch_excerpt.npy", "rb") as f:  # the recording's first columns, as they are
        _, shape, off = npy.parse_header(f.read(128))
        f.seek(off + first * 2 * shape[1])
        row = array.array("h", f.read(2 * shape[1]))
    assert out[:3] == row[:3]
    return out


def _model():
    with open("models/default/meta.json") as f:
        meta = json.load(f)
    with open("models/default/model.csv") as f:
        return A.load_model(meta, f), meta


def test_runs_grid_and_device_ends():
    # 50 Hz: 20 ms apart; a gap after frame 299; 1000/3 Hz-like steps of 19/20 ms are one run at 52 Hz
    times = array.array("i", [20 * i for i in range(300)] + [20 * i + 7000 for i in range(300, 500)])
    runs = A.runs_of(times, 50)
    assert runs == [(0, 300), (300, 200)], runs
    t52 = array.array("i", [i * 1000 // 52 for i in range(100)])
    assert A.runs_of(t52, 52) == [(0, 100)]
    ends = A.grid_ends(runs, 128, 64)
    assert list(ends) == [127, 191, 255, 427, 491], list(ends)  # each run from its first frame: 300 + 127
    # stored prediction times: frames 127 and 255 exactly, one 8 ms off (nearest frame), one in the gap, one whose
    # window would reach into the previous run, one after the data
    stored = array.array("i", [times[127], times[255], times[427] + 8, 6500, times[350], 99999])
    got = A.device_ends(times, runs, stored, 128, 50)
    assert list(got) == [127, 255, 427, -1, -1, -1], list(got)


def test_extract_equals_the_extractor():
    frames = _frames(0, 640)
    ends = A.grid_ends([(0, 640)], 128, 64)
    nf = len(features.names(3))
    feats = array.array("h", bytes(2 * nf * len(ends)))
    seen = []
    A.extract(frames, ends, 128, 3, feats, progress=seen.append, every=4)
    assert seen == [4, 8]
    ex = features.Extractor(3, 128)
    want = array.array("h", bytes(2 * nf))
    for i in range(len(ends)):
        e = ends[i]
        ex.extract(frames[3 * (e - 127):3 * (e + 1)], want)
        assert feats[i * nf:(i + 1) * nf] == want, i


def test_extract_in_batches_equals_the_extractor():
    # The plain kernels extract BATCH windows at a time (their FFTs side by side): more windows than a batch,
    # uneven ends (overlapping, far apart, the same twice), 3 and 6 channels, windows of 64 and 256 frames.
    with open("data/watch_excerpt.npy", "rb") as f:
        raw6 = A.read_frames(f, 0, 1400, 6)
        raw3 = A.read_frames(f, 0, 1400)
    for ch, window, ends in ((3, 128, A.grid_ends([(0, 1400)], 128, 32)),
                             (6, 64, array.array("i", [63, 64, 64, 900, 901, 1399] + list(range(100, 1300, 37)))),
                             (3, 256, array.array("i", [255, 1399]))):
        frames = raw6 if ch == 6 else raw3
        assert len(ends) > A.BATCH or ch != 3 or window != 128
        nf = len(features.names(ch))
        feats = array.array("h", bytes(2 * nf * len(ends)))
        A.extract(frames, ends, window, ch, feats)
        ex = features.Extractor(ch, window)
        want = array.array("h", bytes(2 * nf))
        for i in range(len(ends)):
            e = ends[i]
            ex.extract(frames[ch * (e - window + 1):ch * (e + 1)], want)
            assert feats[i * nf:(i + 1) * nf] == want, (ch, window, i)


def test_model_votes_and_refusals():
    t, meta = _model()
    assert t.n_classes == len(meta["classes"]) and t.n_trees == meta["trees"]
    frames = _frames(2000, 384)
    ends = A.grid_ends([(0, 384)], 128, 64)
    nf = t.n_features
    feats = A.extract(frames, ends, 128, 3, array.array("h", bytes(2 * nf * len(ends))))
    v = A.votes(t, feats, nf, 0, len(ends), array.array("H", bytes(2 * t.n_classes * len(ends))))
    for i in range(len(ends)):
        t.classify(feats[i * nf:(i + 1) * nf])
        assert v[i * t.n_classes:(i + 1) * t.n_classes] == t.votes()
        assert sum(v[i * t.n_classes:(i + 1) * t.n_classes]) == t.n_trees
    bad = dict(meta, feature_version=meta["feature_version"] + 1)
    try:
        A.load_model(bad, open("models/default/model.csv"))
        raise AssertionError("accepted another feature version")
    except ValueError as e:
        assert "feature version" in str(e)


def test_a_model_on_a_part_of_the_features_reads_them_from_the_whole_vector():
    # the shipped 3-channel model is a model on a part of a 6-channel device's features (the accelerometer's:
    # train --channels 6 --features accel makes such models): loaded for 6 channels, it walks the extractor's whole
    # vector (the gyroscope's features in between) and votes as on the 3-channel one
    t, meta = _model()
    names3 = features.names(3)
    names6 = features.names(6)
    sub = A.load_model(dict(meta, channels=6), open("models/default/model.csv"), 6)
    assert t.n_features == len(names3) and sub.n_features == len(names6)
    frames = _frames(4000, 640)
    ends = A.grid_ends([(0, 640)], 128, 64)
    n = len(ends)
    f3 = A.extract(frames, ends, 128, 3, array.array("h", bytes(2 * len(names3) * n)))
    f6 = array.array("h", bytes(2 * len(names6) * n))
    rng = Rng(3)
    for i in range(n):
        for j in range(len(names6)):
            seed = rng.next()
            nm = names6[j]
            f6[i * len(names6) + j] = f3[i * len(names3) + names3.index(nm)] if nm in names3 else seed % 65536 - 32768
    nc = t.n_classes
    got = A.votes(sub, f6, len(names6), 0, n, array.array("H", bytes(2 * nc * n)))
    assert got == A.votes(t, f3, len(names3), 0, n, array.array("H", bytes(2 * nc * n)))
    try:  # a part out of the extractor's order
        A.load_model(dict(meta, channels=6, features=list(reversed(meta["features"]))),
                     open("models/default/model.csv"), 6)
        raise AssertionError("accepted features out of order")
    except ValueError as e:
        assert "order" in str(e)


def test_a_sensor_with_the_gyroscope_takes_three_channel_models_and_one_without_refuses_six():
    # check_meta (the device's upload check): a 3-channel model on a 6-channel sensor (accel.gyro on) takes its part
    # of the 6 channels' features, where they are (past the 127 a tree numbers: trees_csv.Loader.inputs); a
    # 6-channel model on a 3-channel sensor is refused naming the key that turns the gyroscope on
    from sensorbox.shared import model

    t, meta = _model()
    names6 = features.names(6)
    cols = model.check_meta(meta, features.FEATURE_VERSION, features.iter_names(6), 6)
    assert cols is not None and cols[1] == len(names6) == 169
    assert [names6[p] for p in cols[0]] == meta["features"]
    m6 = dict(meta, channels=6)
    try:
        model.check_meta(m6, features.FEATURE_VERSION, features.iter_names(3), 3)
        raise AssertionError("a 6-channel model accepted on 3 channels")
    except ValueError as e:
        assert e.field == "channels" and "the gyroscope is off (turn on accel.gyro" in e.reason, e.reason


def test_votes_of_many_windows_equal_each_walk():
    # The plain kernels walk each tree once for many windows (their lanes side by side): the same counts as
    # each window's own walk, for feature values at the thresholds (equal goes right), just below them, at the
    # int16 extremes, in chunks (LANES) and from an offset.
    t, meta = _model()
    nf = t.n_features
    n = 61
    feats = array.array("h", bytes(2 * nf * n))
    rng = Rng(7)
    for i in range(n * nf):
        seed = rng.next()
        j = (seed >> 8) % t.n_nodes
        thr = t.nodes[4 * j + 1]
        pick = seed % 5
        feats[i] = (thr if pick == 0 else thr - 1 if pick == 1 and thr > -32768 else -32768 if pick == 2
                    else 32767 if pick == 3 else (seed >> 4) % 65536 - 32768)
    lanes = A.LANES
    try:
        A.LANES = 16
        v = A.votes(t, feats, nf, 3, n, array.array("H", bytes(2 * t.n_classes * n)))
    finally:
        A.LANES = lanes
    for i in range(3, n):
        t.classify(feats[i * nf:(i + 1) * nf])
        assert v[i * t.n_classes:(i + 1) * t.n_classes] == t.votes(), i
    assert sum(v[:3 * t.n_classes]) == 0  # before ``start``: untouched


def test_smoothing_and_unknown_as_the_pipeline():
    # 3 classes, 10 trees; smoothing over 3 windows: the class with the most votes summed, first on ties
    rows = [(6, 4, 0), (0, 5, 5), (0, 5, 5), (2, 2, 6), (10, 0, 0)]
    sm = A.Smoother(3, 10, 3, 500)
    got = [sm.step(array.array("H", r)) for r in rows]
    want = []
    for i in range(len(rows)):
        span = rows[max(0, i - 2):i + 1]
        sums = [sum(r[c] for r in span) for c in range(3)]
        best = sums.index(max(sums))
        conf = max(sums) * 1000 // (len(span) * 10)
        want.append((best if conf >= 500 else -1, conf))
    assert got == want, (got, want)
    assert got[1] == (-1, 450)  # 9 of 20 votes: below 500 permille, unknown
    # the plain smoothing kernel decodes emlearn_trees' float outputs (votes / n_trees) exactly
    hist = array.array("H", bytes(2 * 3))
    for n_trees in (1, 7, 10, 100, 255):
        for k in range(n_trees + 1):
            out = array.array("f", [k / n_trees, (n_trees - k) / n_trees, 0.0])
            r = A.smooth(out, 1, n_trees, hist, 0, 1, 3)
            assert list(hist) == [k, n_trees - k, 0], (n_trees, k, list(hist))
            assert r >> 8 == max(k, n_trees - k)
    assert trees.decide((7 << 8) | 2, 1, 10, 700) == (1, 700)
    assert trees.decide((7 << 8) | 2, 1, 10, 701) == (-1, 700)


def test_replay_reads_a_restart_from_the_stored_record():
    rows = array.array("H", [9, 1, 9, 1, 0, 10, 0, 10, 0, 10, 10, 0])  # 6 windows, 2 classes, 10 trees
    ends = array.array("i", [127, 191, 255, 1000, 1064, 1128])  # a gap before window 3
    cont, conf, r = A.replay(rows, 6, 2, 10, 3, 500)
    assert r == [] and list(cont) == [0, 0, 0, 1, 1, 1] and list(conf) == [900, 900, 600, 700, 1000, 666]
    # the device restarted its analysis in the gap: window 3 stored as a fresh start (1, 1000)
    stored = (array.array("b", [0, 0, 0, 1, 1, 1]), array.array("H", [900, 900, 600, 1000, 1000, 666]))
    cls, conf, r = A.replay(rows, 6, 2, 10, 3, 500, ends, 64, stored)
    assert r == [3] and list(conf) == list(stored[1]), (r, list(conf))
    assert A.parity(cls, conf, stored[0], stored[1], ends) == (6, 6, -1)
    # without a gap there the history is never restarted, whatever was stored
    cls, conf, r = A.replay(rows, 6, 2, 10, 3, 500, array.array("i", [127 + 64 * i for i in range(6)]), 64, stored)
    assert r == [] and A.parity(cls, conf, stored[0], stored[1], ends) == (5, 6, 3)


def test_spans_label_runs_and_confusion():
    times = array.array("i", [20 * i for i in range(1000)])
    ends = array.array("i", [127, 191, 255, 319, 383, 447, 800, 864])
    spans = A.window_spans(ends, 128, 64, times, 20)
    assert list(spans[:4]) == [0, 2560, 2560, 3840], list(spans[:4])  # disjoint: the second from frame 128 on
    assert spans[12] == times[800 - 127] and spans[13] == times[800] + 20  # after a gap: the whole window
    cls = array.array("b", [2, 2, 2, -1, 1, 1, 1, 1])
    runs = A.label_runs(cls, spans, 2000)
    assert runs == [(0, 5120, 2), (6400, 8960, 1), (13460, 17300, 1)], runs
    assert A.label_runs(cls, spans, 3000) == [(0, 5120, 2), (13460, 17300, 1)]
    labels = [(0, 6000, "ROW"), (12000, 20000, "walking")]
    truth = A.window_labels(ends, 128, times, labels)
    assert list(truth) == [0, 0, 0, -1, -1, -1, 1, 1], list(truth)
    assert A.class_of_labels(["row", "walking", "Bent-over row"], ["PEN", "ROW"], [None, "Bent-over row"]) == \
        [1, -1, 1]
    m = A.confusion(truth, cls, 2, 3)
    assert m == [[0, 0, 3, 0], [0, 2, 0, 0]], m
    s = A.scores(m, [1, -1], 3)
    assert s[1] == (None, 0.0, 3) and s[0] == (None, None, 0) and s[2] == (0.0, None, 0), s
    s = A.scores([[0, 0, 3, 0], [0, 2, 1, 1]], [2, 1], 3)
    assert s[2] == (0.75, 1.0, 3) and s[1] == (1.0, 0.5, 4), s


def test_histogram():
    feats = array.array("h", [0, 10, 1, 20, 2, 30, 3, 40])  # 4 windows x 2 features
    lo, hi, counts = A.histogram(feats, 2, 1, array.array("b", [0, 0, 1, -1]), 2, 3)
    assert (lo, hi) == (10, 30) and counts == [[1, 1, 0], [0, 0, 1]], (lo, hi, counts)


def test_spectrogram_peaks_at_the_tone():
    from math import pi, sin

    n = 640
    frames = array.array("h", bytes(6 * n))
    for i in range(n):
        frames[3 * i] = int(2000 * sin(2 * pi * 5.0 * i / 50)) + 100  # 5 Hz on x
        frames[3 * i + 2] = 4096
    ends = A.grid_ends([(0, n)], 128, 64)
    out = array.array("f", bytes(4 * 64 * 4))
    picked = A.spectrogram(frames, ends, 128, 3, 0, 4, out)
    assert picked == [0, 2, 4, 6], picked
    for j in range(4):
        col = out[64 * j:64 * (j + 1)]
        k = max(range(1, 64), key=lambda b: col[b])
        assert k in (12, 13), (j, k)  # 5 Hz at 50 Hz / 128 points: bin 12.8
        assert col[k] > col[30] + 30  # far above the floor (dB)


def test_tables_npy_and_csv():
    cols = A.table_columns(("ax_mean", "ax_std"), True, ("a",))
    assert [c[0] for c in cols] == ["t", "label", "device_class", "device_confidence", "a_class", "a_confidence",
                                    "ax_mean", "ax_std"]
    t = array.array("i", [0, 1280])
    ints = array.array("h", [0, 2, 900, 2, 900, 5, 6, -1, -1, 0, -1, 0, -7, 8])
    base = 1700000000000
    data = A.table_npy(cols, base, t, ints, 2)
    off = npy.header_length(data)
    head = bytes(data[10:off]).decode()
    assert off % 64 == 0 and "('t', '<i8'), ('label', '<i2')" in head and "'shape': (2,)" in head, head
    row = struct.unpack_from("<q7h", data, off + 22)
    assert row == (base + 1280, -1, -1, 0, -1, 0, -7, 8), row
    text = A.table_csv(cols, base, t, ints, 2, {"label": (["walk"], ""), "a_class": (["A", "B", "C"], "unknown")})
    assert text.split("\n") == ["t,label,device_class,device_confidence,a_class,a_confidence,ax_mean,ax_std",
                                "1700000000000,walk,2,900,C,900,5,6", "1700000001280,,-1,0,unknown,0,-7,8", ""]
