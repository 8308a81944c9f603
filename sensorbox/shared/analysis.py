"""Re-running the device's analysis on stored data, and what a data scientist looks at next: the browser's Analysis
page runs this in MicroPython WebAssembly (``web/analysis*``); the host can run it on CPython.

Host and browser only (the unix bundle carries it for the tests; a board's bundle does not): the device runs the
same steps in ``sensorbox.device.analysis.pipeline`` with the same shared code (``features.Extractor``, ``trees.Trees``,
``trees.decide``). What this module adds is the pipeline's bookkeeping around them (sliding windows, the smoothing
history) and ``smooth``, the plain-Python twin of the pipeline's viper smoothing kernel
(``sensorbox.device.analysis.trees.smooth``). ``tests/device/test_replay.py`` runs the pipeline and this module on the
same frames and finds the same class and confidence for every window.

Data: ``frames`` are int16 x, y, z interleaved (``array('h')``); ``times`` their times in ms after a base time
(``array('i')``: an epoch time is no small int in the browser's MicroPython); ``runs`` the gap-free stretches as
(first frame, frame count) pairs (``runs_of``). A window is named by the index of its last frame, its "end", as
the device names it by that frame's time. Arrays of several values per window are flat, row after row.
"""

import array
import struct

from sensorbox.shared import features, kernels, model, npy, trees

UNKNOWN = "unknown"


# ---- windows over recorded frames ----

def read_frames(f, first, count, channels=3):
    """``count`` frames from ``first`` of an int16 .npy recording (an open binary file, frames x columns): the
    first ``channels`` columns, interleaved (the shape of stored accelerometer data)."""
    f.seek(0)
    _, shape, off = npy.parse_header(f.read(128))
    count = max(0, min(count, shape[0] - first))
    f.seek(off + first * 2 * shape[1])
    raw = array.array("h", f.read(2 * shape[1] * count))
    out = array.array("h", bytes(2 * channels * count))
    for i in range(count):
        for c in range(channels):
            out[channels * i + c] = raw[shape[1] * i + c]
    return out


def runs_of(times, rate_hz):
    """The gap-free stretches of frame ``times`` (ms, increasing) as (first, count) pairs. Neighbours belong to
    one stretch when they are one nominal frame apart: the store times frame i of a segment t0 + i * 1000 // rate,
    so 1000 // rate or one ms more."""
    lo = 1000 // rate_hz
    hi = lo if 1000 % rate_hz == 0 else lo + 1
    out = []
    n = len(times)
    if n == 0:
        return out
    first = 0
    prev = times[0]
    for i in range(1, n):
        t = times[i]
        d = t - prev
        if d < lo or d > hi:
            out.append((first, i - first))
            first = i
        prev = t
    out.append((first, n - first))
    return out


def grid_ends(runs, window, hop):
    """Window ends as a device would make them had its analysis started at each stretch's first frame: every
    ``hop`` frames once ``window`` frames are in."""
    out = array.array("i")
    for first, count in runs:
        e = first + window - 1
        last = first + count - 1
        while e <= last:
            out.append(e)
            e += hop
    return out


def device_ends(times, runs, stored, window, rate_hz):
    """The frame each stored prediction's window ended on (its time is that frame's): for each time in
    ``stored`` (ascending, as ``times``), the index of the frame at that time (the nearest within half a frame),
    or -1 when there is none or the window would not lie inside one gap-free stretch."""
    out = array.array("i", bytes(4 * len(stored)))
    half = 500 // rate_hz
    n = len(times)
    ri = 0
    for k in range(len(stored)):
        t = stored[k]
        lo = 0
        hi = n
        while lo < hi:  # the first frame at or after t
            mid = (lo + hi) >> 1
            if times[mid] < t:
                lo = mid + 1
            else:
                hi = mid
        best = -1
        for i in (lo - 1, lo):
            if 0 <= i < n and abs(times[i] - t) <= half and (best < 0 or abs(times[i] - t) < abs(times[best] - t)):
                best = i
        if best >= 0:
            while ri > 0 and runs[ri][0] > best:
                ri -= 1
            while ri + 1 < len(runs) and runs[ri + 1][0] <= best:
                ri += 1
            if best - window + 1 < runs[ri][0]:
                best = -1
        out[k] = best
    return out


def extract(frames, ends, window, channels, feats, start=0, stop=None, progress=None, every=64,
            rate_hz=features.RATE_HZ):
    """The shared features of the windows ``ends[start:stop]`` into ``feats`` (int16, ``len(features.names())``
    per window, at the window's index), for frames sampled at ``rate_hz`` (as the device: its sensor's rate).
    ``progress(done)`` is called every ``every`` windows."""
    stop = len(ends) if stop is None else stop
    ex = features.Extractor(channels, window, int(rate_hz))
    nf = ex.n_features
    if BATCH > 1 and kernels.VARIANT == "python" and not kernels.EMLEARN:
        return _extract_batched(ex, frames, ends, feats, start, stop, progress, every)
    out = array.array("h", bytes(2 * nf))
    mv = memoryview(frames)
    for i in range(start, stop):
        e = ends[i]
        ex.extract(mv[(e - window + 1) * channels:(e + 1) * channels], out)
        feats[i * nf:(i + 1) * nf] = out
        if progress is not None and (i - start + 1) % every == 0:
            progress(i - start + 1)
    return feats


BATCH = 32  # windows whose FFTs the plain kernels run side by side (fft_q15_many); 1: one window at a time


def _extract_batched(ex, frames, ends, feats, start, stop, progress, every):
    # ``extract`` with the plain kernels: the Extractor's own steps (``_time``, ``_pairs``, ``_freq``), window
    # after window, but the FFTs of BATCH windows run together (kernels_py.fft_q15_many: several times faster
    # than one by one where bytecodes are dear, as in WebAssembly), and the signals of overlapping windows are
    # read from the frames once. The same values as ``Extractor.extract`` (tests/shared/test_analysis.py).
    from sensorbox.shared import kernels_py

    k = kernels
    n = ex.window
    ch = ex.channels
    nf = ex.n_features
    nsig = 4 * (ch // 3)
    per = len(features.SIGNAL_FEATURES)
    nb = min(BATCH, max(1, stop - start))
    cens = [array.array("h", bytes(2 * n)) for _ in range(nb * nsig)]
    ims = [array.array("h", bytes(2 * n)) for _ in range(nb * nsig)]
    axes = [[cens[w * nsig + 4 * (c // 3) + c % 3] for c in range(ch)] for w in range(nb)]  # _pairs' order
    outs = [array.array("h", bytes(2 * nf)) for _ in range(nb)]
    sigs = [array.array("h", bytes(2 * nb * n)) for _ in range(nsig)]  # the batch's frames, per signal
    fss = [0] * (nb * nsig)
    means = array.array("i", bytes(12))
    zero = array.array("h", bytes(2 * (n // 2 + 1)))  # what the FFT writes of an imaginary part
    tw = ex._fft.tw
    buf = ex._buf
    mv = memoryview(frames)
    i = start
    while i < stop:
        m = min(nb, stop - i)
        lo = hi = ends[i]
        for w in range(1, m):
            e = ends[i + w]
            lo = e if e < lo else lo
            hi = e if e > hi else hi
        lo -= n - 1
        shared = hi - lo + 1 <= m * n  # then each signal once per frame for the whole batch (windows overlap)
        if shared:
            fr = mv[lo * ch:(hi + 1) * ch]
            for s in range(ch // 3):
                for axis in range(3):
                    k.gather(fr, s * 3 + axis, ch, hi - lo + 1, sigs[s * 4 + axis])
                k.magnitude(fr, s * 3, ch, hi - lo + 1, sigs[s * 4 + 3])
        for w in range(m):
            e = ends[i + w]
            fr = mv[(e - n + 1) * ch:(e + 1) * ch]
            out = outs[w]
            j = w * nsig
            o = 0
            for s in range(ch // 3):
                for axis in range(4):
                    if shared:
                        k.copy_i16(sigs[s * 4 + axis], e - n + 1 - lo, buf, 0, n)
                    elif axis < 3:
                        k.gather(fr, s * 3 + axis, ch, n, buf)
                    else:
                        k.magnitude(fr, s * 3, ch, n, buf)
                    mean = ex._time(buf, cens[j], out, o)
                    if axis < 3 and s == 0:
                        means[axis] = mean
                    fss[j] = ex._fs
                    j += 1
                    o += per
            ex._pairs(axes[w], means, out, o)
        used = m * nsig
        for a in ims[:used]:
            a[0:n // 2 + 1] = zero
        kernels_py.fft_q15_many(cens[:used], ims[:used], n, tw)
        for w in range(m):
            out = outs[w]
            j = w * nsig
            o = 0
            for _ in range(nsig):
                ex._freq(cens[j], ims[j], out, o, fss[j])
                j += 1
                o += per
            feats[(i + w) * nf:(i + w + 1) * nf] = out
            if progress is not None and (i + w + 1 - start) % every == 0:
                progress(i + w + 1 - start)
        i += m
    return feats


# ---- models and the pipeline's post-processing ----

def load_model(meta, lines, channels=3):
    """A ``trees.Trees`` of the model (``meta.json`` as a dict, ``model.csv`` as lines), checked as the device
    checks it (except the window, which the page may vary). Raises ``model.ModelError`` saying what is wrong.
    A model on a part of the features (``train --features``) reads them from the whole vector: its nodes' feature
    numbers are mapped to the extractor's and ``n_features`` is the extractor's count, as for any model."""
    cols = model.check_meta(meta, features.FEATURE_VERSION, features.iter_names(channels), channels)
    t = model.load(lines, meta, trees.Trees(meta["trees"], meta["nodes"], meta["leaves"]))
    if cols is not None:
        n = t.nodes
        for j in range(t.n_nodes):
            n[4 * j] = cols[0][n[4 * j]]
        t.n_features = cols[1]
    return t


def votes(t, feats, n_features, start, stop, out):
    """Each window's tree votes (``t.classify``) into ``out`` (uint16, n_classes per window)."""
    nc = t.n_classes
    if LANES > 1 and t.kernel is trees.vote and kernels.VARIANT == "python":
        for i in range(start, stop, LANES):
            _votes_lanes(t, feats, n_features, i, min(stop, i + LANES), out)
        return out
    mv = memoryview(feats)
    for i in range(start, stop):
        t.classify(mv[i * n_features:(i + 1) * n_features])
        v = t.votes()
        o = i * nc
        for c in range(nc):
            out[o + c] = v[c]
    return out


LANES = 256  # windows whose trees _votes_lanes walks together; 1: each window's own walk


def _votes_lanes(t, feats, nf, start, stop, out):
    # ``votes`` for the plain kernels: every tree walked once for all the windows, which run side by side in the
    # 32-bit lanes of Python integers (as kernels_py.fft_q15_many's transforms). A node splits the set of windows
    # that reached it (a mask: 1 in the lane of each) by comparing its feature, lane by lane, with its threshold;
    # a leaf adds its set to its class's counts. The same counts as the tree walk of each window (``trees.vote``).
    k = stop - start
    nc = t.n_classes
    nodes = t.nodes
    ones = int.from_bytes(b"\x01\x00\x00\x00" * k, "little")
    fmt = "<" + "hxx" * k
    vals = [0] * (k * nf)
    vals[0:k * nf] = struct.unpack_from("<%dh" % (k * nf), feats, 2 * start * nf)
    cols = {}  # feature -> its values in the lanes, + 2**15 (lanes of 0..65535)
    acc = [0] * nc
    flip = ones << 15
    for tr in range(t.n_trees):
        todo = [(t.roots[tr], ones)]
        while todo:
            i, mask = todo.pop()
            if i < 0:
                acc[t.leaves[-i - 1]] += mask
                continue
            j = i << 2
            f = nodes[j]
            x = cols.get(f)
            if x is None:
                x = int.from_bytes(struct.pack(fmt, *vals[f::nf]), "little") ^ flip
                cols[f] = x
            # lanes of x >= threshold: x + 2**15 - threshold reaches 2**16 (and stays below 2**17); the mask's
            # lanes are 0 or 1
            right = ((x + ((1 << 15) - nodes[j + 1]) * ones) >> 16) & mask
            left = mask - right
            if left:
                todo.append((nodes[j + 2], left))
            if right:
                todo.append((nodes[j + 3], right))
    # class counts per lane -> window after window, nc uint16 each
    per = [struct.unpack("<%dI" % k, a.to_bytes(4 * k, "little")) for a in acc]
    flat = []
    for c in range(nc):
        flat += per[c]
    row = "<%dH" % nc
    out[start * nc:stop * nc] = array.array("H", b"".join([struct.pack(row, *flat[w::k]) for w in range(k)]))


def smooth(out, flt, n_trees, hist, base, count, n_classes):
    """``sensorbox.device.analysis.trees.smooth`` in plain Python (same arguments, same result): this window's votes
    ``out`` (uint16 counts, ``flt`` 0; or emlearn_trees' float32 outputs votes / n_trees, ``flt`` 1, decoded from their
    bits as the viper kernel does) into ``hist`` at ``base``, then the class with the most votes summed over the first
    ``count`` rows (the first such class; -1 if none) and that sum, as ``sum << 8 | (class + 1)``."""
    for c in range(n_classes):
        if flt:
            b = struct.unpack("<I", struct.pack("<f", out[c]))[0]
            e = (b >> 23) & 0xFF
            v = 0
            if e:
                sh = 142 - e
                if 0 < sh < 31:
                    v = ((((b & 0x7FFFFF) | 0x800000) >> 8) * n_trees + (1 << (sh - 1))) >> sh
        else:
            v = out[c]
        hist[base + c] = v
    best = -1
    most = 0
    end = count * n_classes
    for c in range(n_classes):
        s = 0
        for k in range(c, end, n_classes):
            s += hist[k]
        if s > most:
            most = s
            best = c
    return (most << 8) | (best + 1)


class Smoother:
    """The pipeline's post-processing, window after window: the votes of the last ``smooth_n`` windows summed, the
    class with the most, "unknown" (-1) below ``threshold`` permille (``trees.decide``). Its history starts empty,
    as when the device's analysis (re)starts or its model changes."""

    def __init__(self, n_classes, n_trees, smooth_n, threshold):
        self.nc = n_classes
        self.n_trees = n_trees
        self.n = smooth_n
        self.threshold = threshold
        self.hist = array.array("H", bytes(2 * smooth_n * n_classes))
        self.nh = 0

    def reset(self):
        self.nh = 0

    def step(self, v):
        """(class, confidence permille) after one window's votes ``v`` (n_classes counts)."""
        count = self.nh + 1 if self.nh + 1 < self.n else self.n
        r = smooth(v, 0, self.n_trees, self.hist, (self.nh % self.n) * self.nc, count, self.nc)
        self.nh += 1
        return trees.decide(r, count, self.n_trees, self.threshold)


def replay(v, n, n_classes, n_trees, smooth_n, threshold, ends=None, hop=0, stored=None):
    """The predictions of ``n`` windows from their votes ``v`` (flat, n_classes each), as the device's pipeline
    makes them. Returns (classes array('b'), confidences array('H'), restarts).

    ``stored``: the device's (classes, confidences) for the same windows (``device_ends``), or None. The smoothing
    history goes on across a gap in the windows (``ends`` not ``hop`` apart), as the pipeline's does across a gap
    in sampling; but if the device's analysis restarted there (a reboot, a config change) its history started
    afresh, which the stored record shows: where the stored class and confidence match a fresh start and not the
    continued history, the history restarts here too. ``restarts`` lists those window indices."""
    sm = Smoother(n_classes, n_trees, smooth_n, threshold)
    cls = array.array("b", bytes(n))
    conf = array.array("H", bytes(2 * n))
    restarts = []
    mv = memoryview(v)
    for i in range(n):
        row = mv[i * n_classes:(i + 1) * n_classes]
        c, k = sm.step(row)
        if stored is not None and i > 0 and ends is not None and ends[i] != ends[i - 1] + hop \
                and ends[i] >= 0 and (c != stored[0][i] or k != stored[1][i]):
            fresh = Smoother(n_classes, n_trees, smooth_n, threshold).step(row)
            if fresh[0] == stored[0][i] and fresh[1] == stored[1][i]:
                sm.reset()
                c, k = sm.step(row)
                restarts.append(i)
        cls[i] = c
        conf[i] = k
    return cls, conf, restarts


def parity(cls, conf, stored_cls, stored_conf, ends, start=0):
    """(equal, compared, first differing index or -1): windows from ``start`` whose end frame is known (>= 0)
    and whose class and confidence equal the stored ones."""
    same = total = 0
    first = -1
    for i in range(start, len(cls)):
        if ends[i] < 0:
            continue
        total += 1
        if cls[i] == stored_cls[i] and conf[i] == stored_conf[i]:
            same += 1
        elif first < 0:
            first = i
    return same, total, first


# ---- labels ----

def window_spans(ends, window, hop, times, period_ms):
    """Each window's share of time as (start, end) ms, disjoint: a window continuing the previous one (``hop``
    frames on) covers the frames after that one's end, a window after a gap all of its frames; end exclusive."""
    n = len(ends)
    out = array.array("i", bytes(8 * n))
    for i in range(n):
        e = ends[i]
        first = e - hop + 1 if i > 0 and ends[i - 1] == e - hop else e - window + 1
        out[2 * i] = times[first]
        out[2 * i + 1] = times[e] + period_ms
    return out


def label_runs(cls, spans, min_ms):
    """Label proposals from predictions: runs of windows of one class (>= 0) whose spans touch, merged, at least
    ``min_ms`` long, as (start, end, class) with the end exclusive."""
    out = []
    cur = None
    for i in range(len(cls)):
        c = cls[i]
        s = spans[2 * i]
        e = spans[2 * i + 1]
        if cur is not None and c == cur[2] and s <= cur[1]:
            cur[1] = e
            continue
        if cur is not None and cur[1] - cur[0] >= min_ms:
            out.append(tuple(cur))
        cur = [s, e, c] if c >= 0 else None
    if cur is not None and cur[1] - cur[0] >= min_ms:
        out.append(tuple(cur))
    return out


def window_labels(ends, window, times, labels):
    """Per window the index in ``labels`` ((start, end, name) with times as ``times``, end exclusive) of the
    label its frames all lie in, else -1."""
    out = array.array("b", bytes(len(ends)))
    for i in range(len(ends)):
        t0 = times[ends[i] - window + 1]
        t1 = times[ends[i]]
        k = -1
        for j in range(len(labels)):
            if labels[j][0] <= t0 and t1 < labels[j][1]:
                k = j
                break
        out[i] = k
    return out


def class_of_labels(names, classes, display=None):
    """For each label name the index of the model class it names (the class code or its display name, either
    case), else -1."""
    out = []
    for name in names:
        low = name.strip().lower()
        k = -1
        for c in range(len(classes)):
            if classes[c].lower() == low or (display is not None and display[c] and display[c].lower() == low):
                k = c
                break
        out.append(k)
    return out


def confusion(truth, cls, n_truth, n_classes):
    """Counts of (true label, predicted class) over the windows with a label (``truth`` >= 0): ``n_truth`` rows,
    ``n_classes + 1`` columns (the last: unknown)."""
    m = [[0] * (n_classes + 1) for _ in range(n_truth)]
    for i in range(len(truth)):
        t = truth[i]
        if t >= 0:
            c = cls[i]
            m[t][c if c >= 0 else n_classes] += 1
    return m


def scores(m, label_class, n_classes):
    """Per class (precision, recall, support) from a ``confusion`` matrix whose rows are labels mapped to classes
    by ``label_class`` (-1: no class of the model); only rows with a class count. None where undefined."""
    out = []
    for k in range(n_classes):
        tp = fp = fn = 0
        for r in range(len(m)):
            c = label_class[r]
            if c < 0:
                continue
            if c == k:
                tp += m[r][k]
                fn += sum(m[r]) - m[r][k]
            else:
                fp += m[r][k]
        out.append((tp / (tp + fp) if tp + fp else None, tp / (tp + fn) if tp + fn else None, tp + fn))
    return out


def histogram(feats, n_features, column, groups, n_groups, bins):
    """Per group (``groups[i]`` of window i, -1: none) the counts of feature ``column`` in ``bins`` equal bins
    between the smallest and largest value of the grouped windows. Returns (lo, hi, counts per group)."""
    lo = hi = None
    for i in range(len(groups)):
        if groups[i] >= 0:
            x = feats[i * n_features + column]
            if lo is None or x < lo:
                lo = x
            if hi is None or x > hi:
                hi = x
    counts = [[0] * bins for _ in range(n_groups)]
    if lo is None:
        return 0, 0, counts
    width = hi - lo + 1
    for i in range(len(groups)):
        g = groups[i]
        if g >= 0:
            counts[g][(feats[i * n_features + column] - lo) * bins // width] += 1
    return lo, hi, counts


# ---- spectrogram ----

SIGNALS = ("x", "y", "z", "magnitude")


def spectrogram(frames, ends, window, channels, signal, columns, out):
    """Power spectra (dB re 1 count squared, one-sided, bins 0 .. window/2 - 1) of up to ``columns`` windows spread
    evenly over ``ends``, by the shared fixed-point FFT, mean removed, into ``out`` (float, window/2 per column).
    ``signal``: 0-2 an axis, 3 the magnitude. Returns the window indices used."""
    from math import log10

    from sensorbox.shared import kernels

    n = window
    fft = kernels.FFTQ(n)
    buf = array.array("h", bytes(2 * n))
    re = array.array("h", bytes(2 * n))
    im = array.array("h", bytes(2 * n))
    m = array.array("i", bytes(20))
    total = len(ends)
    cols = min(columns, total)
    picked = []
    mv = memoryview(frames)
    half = n // 2
    for j in range(cols):
        i = j * total // cols
        picked.append(i)
        w = mv[(ends[i] - n + 1) * channels:(ends[i] + 1) * channels]
        if signal < 3:
            kernels.gather(w, signal, channels, n, buf)
        else:
            kernels.magnitude(w, 0, channels, n, buf)
        kernels.moments(buf, n, m)
        mean = (2 * m[0] + n) // (2 * n)
        maxd = min(max(m[2] - mean, mean - m[1]), 46340)
        fs = 14 - kernels.bitlen(maxd) if maxd else 0  # the features' block scaling: peak 8192..16383
        kernels.center(buf, n, mean, fs, re)
        for k in range(n):
            im[k] = 0
        fft.run(re, im)
        # |X|^2 of the scaled, 1/n-normalised transform back in counts squared, doubled for one side
        off = 20 * 0.30103 * fs
        for k in range(half):
            p = re[k] * re[k] + im[k] * im[k]
            out[j * half + k] = (10 * log10(2 * p) - off) if p else -30.0 - off
    return picked


# ---- tables ----

def table_columns(feature_names, with_device, models):
    """Column (name, numpy dtype) pairs of the windows table: time, optional label and device columns, each
    model's class and confidence, then the features."""
    cols = [("t", "<i8"), ("label", "<i2")]
    if with_device:
        cols += [("device_class", "<i2"), ("device_confidence", "<i2")]
    for m in models:
        cols += [(m + "_class", "<i2"), (m + "_confidence", "<i2")]
    return cols + [(f, "<i2") for f in feature_names]


def table_npy(cols, base, t, ints, n):
    """A structured .npy (bytes) of ``n`` rows: ``cols`` from ``table_columns``; row i's time is base + t[i]
    (epoch ms), its other values ``ints[i * (len(cols) - 1):...]``."""
    k = len(cols) - 1
    fmt = "<q" + "h" * k
    body = bytearray(struct.calcsize(fmt) * n)
    size = struct.calcsize(fmt)
    for i in range(n):
        struct.pack_into(fmt, body, i * size, base + t[i], *ints[i * k:(i + 1) * k])
    return npy.header(cols, (n,)) + bytes(body)


def table_csv(cols, base, t, ints, n, names=None):
    """The same table as CSV text; ``names``: {column: (names, text for -1)} writes an index column as names."""
    k = len(cols) - 1
    named = [names.get(c[0]) if names else None for c in cols[1:]]
    lines = [",".join(c[0] for c in cols)]
    for i in range(n):
        row = [str(base + t[i])]
        for j in range(k):
            v = ints[i * k + j]
            nm = named[j]
            row.append(str(v) if nm is None else nm[0][v] if 0 <= v < len(nm[0]) else nm[1])
        lines.append(",".join(row))
    return "\n".join(lines) + "\n"
