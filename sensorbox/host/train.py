"""Train the device's activity classifier on the host: labelled recordings -> windows -> features (the SHARED
feature code, exactly what the device runs) -> random forest / extra trees -> emlearn export + report.

Data sources (``sensorbox train DATA``):

- ``watch``: seglearn's full smartwatch dataset (140 recordings, 10 subjects, 7 exercises; ``datasets.watch_dataset``)
- ``excerpt``: the bundled replay recording ``data/watch_excerpt.npy`` with its segment list (2 subjects)
- a folder written by ``sensorbox pull URL --out DIR`` (``DIR``, or one device's ``DIR/<device id>``): each
  device's raw accelerometer (``accel.npy``: t, x, y, z) cut by its time-range labels (``labels.csv``: start, end,
  label; made in the web UI or with ``POST /api/labels``). Windows lie wholly inside one label and inside one
  stretch of samples without a gap; unlabelled frames, and frames two different labels claim, are dropped. A label
  range is a session: cross-validation groups by session (``--group-by session``, the default) or by device and
  UTC day (``--group-by day``), so windows of one session are never in both train and test.
- a ``.npy`` file of int16 frames x channels with a ``.json`` sidecar listing labelled segments
  (``{"rate_hz": 50, "segments": [{"start", "frames", "label", "subject"}...]}``, the excerpt's format; a segment
  may give its own ``rate_hz``; 50 when neither does), or a directory of them.

A model's windows need one sample rate. Data pulled from devices is split where the rate changes (measured from
the frames' times); when the data holds several rates, one is used (``rate``, else the one with the most labelled
frames among those with two or more classes) and a warning names what was found and what was left out.

Several sources train one model together (``sensorbox train watch pulled/``): classes are the union, groups stay
apart. Features come from the shared extractor (``sensorbox.shared.features``), exactly as the device computes
them from the same int16 counts (so the devices should sample at the range and rate the data were recorded at).

Evaluation: grouped k-fold cross-validation (no subject, or session, in both train and test), predictions made
the way the device makes them (hard majority vote, device thresholds), compared with chance (a warning when the
balanced accuracy is at or below 1 / number of classes). The final model is trained on all data and
exported; the report holds accuracy mean ± std, per-class precision/recall/F1, the confusion matrix (text and PNG),
model size, node count, estimated device RAM, and agreement between the device evaluator, emlearn's C code and
scikit-learn.
"""

import array
import json
import os
import sys
import time

import numpy as np

from sensorbox.host import client, datasets, export
from sensorbox.shared import features as feat
from sensorbox.shared import trees

REPO = datasets.REPO


class DataError(datasets.DatasetError):
    """The data cannot make a model; the message says why and what to do."""


# --- recordings -------------------------------------------------------------------------------------------------

class Rec(tuple):
    """A labelled recording: the tuple (frames int16 [n x channels], label, group), with ``name`` (where it came
    from), ``t0_ms`` (epoch ms of its first frame, or None) and ``rate`` (Hz) as attributes."""

    def __new__(cls, frames, label, group, name="", t0_ms=None, rate=datasets.RATE_HZ, sensor="accel"):
        r = tuple.__new__(cls, (frames, label, group))
        r.name = name
        r.t0_ms = t0_ms
        r.rate = rate
        r.sensor = sensor  # "accel" or "sound" (16-bit PCM, one channel)
        return r


def _sidecar_recordings(npy_path, notes=None):
    """A ``Rec`` per labelled segment of an .npy file with a .json sidecar (the dataset folder format,
    docs/datasets.md). The rate is the segment's ``rate_hz``, else the sidecar's, else 50 Hz; the group is the
    segment's ``group`` (or ``subject``), else the file name. ``notes`` (a dict) collects files whose sidecar
    says the data has no gravity (``no_gravity``)."""
    side = npy_path[:-4] + ".json"
    if not os.path.exists(side):
        raise DataError("{} has no {} listing its labelled segments (start, frames, label, group); sensorbox import "
                        "writes both".format(npy_path, os.path.basename(side)))
    data = np.load(npy_path)
    if data.dtype != np.int16 or data.ndim != 2:
        raise DataError("{}: expected int16 frames x channels, got {} {}".format(npy_path, data.dtype, data.shape))
    with open(side) as f:
        meta = json.load(f)
    segs = meta.get("segments")
    if not segs:
        raise DataError("{}: no 'segments' in {}".format(npy_path, side))
    if notes is not None and meta.get("gravity") is False:
        notes.setdefault("no_gravity", []).append(os.path.basename(npy_path))
    sensor = meta.get("sensor", "accel")
    out = []
    base = os.path.basename(npy_path)[:-4]
    for i, s in enumerate(segs):
        try:
            a, n = int(s["start"]), int(s["frames"])
            rate = float(s.get("rate_hz", meta.get("rate_hz", datasets.RATE_HZ)))
            if not rate > 0:
                raise ValueError("rate_hz must be > 0")
            group = s.get("group", s.get("subject", base))
            out.append(Rec(data[a:a + n], str(s["label"]), str(group), s.get("name") or "{}#{}".format(base, i),
                           s.get("t0_ms"), int(rate) if rate == int(rate) else rate, sensor))
        except (KeyError, ValueError, TypeError) as e:
            raise DataError("{}: bad segment {} ({})".format(side, s, e))
    return out


def recordings(source, group_by="session"):
    """List of ``Rec`` (frames int16 [n x ch], label, group) from ``source`` (see module doc)."""
    return dataset(source, group_by)[0]


def dataset(source, group_by="session", rate=None, notes=None):
    """(recordings, sample rate in Hz, what the groups are) from one source or a list of them.

    A model's windows need one sample rate. When the data holds several, the recordings at ``rate`` are used
    (default: the rate with the most labelled frames among those with at least two classes); ``notes`` (a dict),
    if given, gets ``rates`` (what was found at each rate) and ``warnings`` (what was left out, and why: other
    rates, recordings without gravity)."""
    local = {} if notes is None else notes
    rated, kind = _rated(source, group_by, local)
    recs, used, found, warning = pick_rate(rated, rate)
    local["rates"] = found
    local["rate_hz"] = used
    local.setdefault("warnings", [])
    if warning:
        local["warnings"].append(warning)
    ng = local.pop("no_gravity", None)
    if ng:
        local["warnings"].append(
            "{} file(s) have no gravity in their accelerometer data ({}{}): the grav_* and magnitude features differ "
            "from what a device computes, so the model will not transfer to a device".format(
                len(ng), ", ".join(ng[:3]), ", ..." if len(ng) > 3 else ""))
    return recs, used, kind


def _rated(source, group_by, notes=None):
    """(``Rec`` list, what the groups are) from one source or a list of them."""
    if isinstance(source, (list, tuple)):
        if len(source) == 1:
            return _rated(source[0], group_by, notes)
        recs, kinds = [], []
        for k, src in enumerate(source):
            r, kind = _rated(src, group_by, notes)
            recs.extend(Rec(x, label, "{}:{}".format(k, g), r0.name, r0.t0_ms, r0.rate, r0.sensor)
                        for r0 in r for x, label, g in [r0])
            kinds.append(kind)
        return recs, " + ".join(sorted(set(kinds)))
    if source == "watch":
        d = datasets.watch_dataset()
        return ([Rec(datasets.to_counts(x), d["y_labels"][int(y)], str(int(s)), "watch#{}".format(i), None,
                     datasets.RATE_HZ) for i, (x, y, s) in enumerate(zip(d["X"], d["y"], d["subject"]))], "subject")
    if source == "excerpt":
        return _sidecar_recordings(datasets.EXCERPT, notes), "subject"
    if source == "sounds":  # the real recordings Debian packages ship (host/sounds.py)
        from sensorbox.host import sounds

        return _rated(sounds.dataset(), group_by, notes)[0], "key or speech collection"
    if os.path.isdir(source):
        devices = pulled_devices(source)
        if devices:
            return (pulled_recordings(source, devices, group_by),
                    "labelled session" if group_by == "session" else "device and day")
        out = []
        for name in sorted(os.listdir(source)):
            if name.endswith(".npy"):
                out.extend(_sidecar_recordings(os.path.join(source, name), notes))
        if not out:
            raise DataError("{} holds neither data pulled from devices (sensorbox pull URL --out {}) nor .npy "
                            "recordings with .json segment sidecars (sensorbox import FILES --out {} makes them)"
                            .format(source, source, source))
        return out, "the data's groups"
    if source.endswith(".npy") and os.path.exists(source):
        return _sidecar_recordings(source, notes), "the data's groups"
    raise DataError("DATA must be 'watch', 'excerpt', 'sounds', a folder written by 'sensorbox pull' or "
                    "'sensorbox import', "
                    "an .npy recording with a .json sidecar, or a directory of them; got {!r}".format(source))


def _at_rate(found, r):
    f = found[str(r)]
    return "{} Hz ({} recordings, {} frames; {} {})".format(r, f["recordings"], f["frames"],
                                                           "class" if len(f["classes"]) == 1 else "classes",
                                                           ", ".join(f["classes"]))


def pick_rate(rated, rate=None):
    """Keep the recordings of one sample rate. Returns (recordings as (frames, label, group), the rate, what was
    found at each rate ({"50": {"recordings", "frames", "classes"}}), a warning naming what was left out or
    None)."""
    found = {}
    for rec in rated:
        x, label, r = rec[0], rec[1], rec.rate
        f = found.setdefault(r, {"recordings": 0, "frames": 0, "classes": set()})
        f["recordings"] += 1
        f["frames"] += len(x)
        f["classes"].add(label)
    found = {str(r): {"recordings": f["recordings"], "frames": f["frames"], "classes": sorted(f["classes"])}
             for r, f in sorted(found.items())}
    rates = sorted({rec.rate for rec in rated})
    listing = "; ".join(_at_rate(found, r) for r in rates)
    if rate is not None:
        if rate not in rates:
            raise DataError("no data sampled at {} Hz; found {}".format(rate, listing))
        used = next(r for r in rates if r == rate)
    elif len(rates) == 1:
        used = rates[0]
    else:
        usable = [r for r in rates if len(found[str(r)]["classes"]) >= 2]
        if not usable:
            raise DataError("the data was sampled at {} rates and none has two classes: {}. A model's windows "
                            "need one rate: record (and label) at least two activities at one rate, e.g. set the "
                            "device's accel.rate_hz and keep it".format(len(rates), listing))
        used = max(usable, key=lambda r: (found[str(r)]["frames"], r))
    recs = [rec for rec in rated if rec.rate == used]
    if len(rates) == 1:
        return recs, used, found, None
    lost = sorted(set().union(*(found[str(r)]["classes"] for r in rates if r != used)) -
                  set(found[str(used)]["classes"]))
    others = [str(r) for r in rates if r != used and len(found[str(r)]["classes"]) >= 2]
    warning = ("the data was sampled at {} rates: {}. A model's windows need one rate: training on the {} Hz data "
               "only{}; the rest is left out{}. {}".format(
                   len(rates), listing, used, "" if rate is not None else
                   " (the most labelled frames among rates with two or more classes)",
                   " (classes lost: {})".format(", ".join(lost)) if lost else "",
                   "Choose another with --rate {}.".format(" or --rate ".join(others)) if others else
                   "No other rate has two classes to train on."))
    return recs, used, found, warning


# --- data pulled from devices (sensorbox pull) -------------------------------------------------------------------

def pulled_devices(folder):
    """The device folders (with a manifest.json from ``sensorbox pull``) in ``folder``, or ``folder`` itself."""
    if os.path.exists(os.path.join(folder, "manifest.json")):
        return [folder]
    return [os.path.join(folder, d) for d in sorted(os.listdir(folder))
            if os.path.exists(os.path.join(folder, d, "manifest.json"))]


def _read_labels(path):
    import csv

    out = []
    if not os.path.exists(path):
        return out
    with open(path, newline="") as f:
        for i, row in enumerate(csv.DictReader(f)):
            try:
                a, b, name = int(row["start"]), int(row["end"]), row["label"]
            except (KeyError, TypeError, ValueError):
                raise DataError("{} line {}: expected start,end,label (epoch ms, ms, name), got {}".format(
                    path, i + 2, row))
            if b > a and name:
                out.append((a, b, name))
    return sorted(out)


def _read_accel(folder):
    """All accel rows of a pulled device folder (accel.npy, accel.1.npy, ...) by time, as (t, frames)."""
    parts = [np.load(os.path.join(folder, f)) for f in sorted(os.listdir(folder))
             if f.startswith("accel.") and f.endswith(".npy")]
    parts = [p for p in parts if len(p) and p.dtype.names and all(c in p.dtype.names for c in ("t", "x", "y", "z"))]
    if not parts:
        return np.zeros(0, np.int64), np.zeros((0, 3), np.int16)
    a = np.concatenate([p[["t", "x", "y", "z"]] for p in parts])
    a = a[np.argsort(a["t"], kind="stable")]
    a = a[np.concatenate([[True], np.diff(a["t"]) > 0])]  # a row pulled twice counts once
    frames = np.stack([a["x"], a["y"], a["z"]], axis=1).astype(np.int16)
    return a["t"].astype(np.int64), frames


def sample_runs(t, owner, min_steps=16):
    """Runs of frames that one owner (label index >= 0) covers at one sample period without a gap, as
    (start, end, rate in Hz) with end exclusive.

    A device's store records every interruption (dropped samples, a restart, a rate change) as a jump in time. The
    sample periods are the steps between frames of one owner that occur at least ``min_steps`` times (periods
    within 25 % of a more common one count as it: timestamps on a ms grid alternate at rates like 52 Hz). A step is
    a sample step if it is within half a period of its nearest period; any other step, a step between owners and
    a change of period end a run. A run's rate comes from the mean of its period's steps."""
    if len(t) < 2:
        return []
    dt = np.diff(t)
    same = (owner[1:] == owner[:-1]) & (owner[1:] >= 0) & (dt > 0)
    vals, counts = np.unique(dt[same], return_counts=True)
    periods = []
    for k in np.argsort(-counts, kind="stable"):
        if counts[k] < min_steps and periods:
            break
        if all(abs(vals[k] - p) > 0.25 * p for p in periods):
            periods.append(int(vals[k]))
    if not periods:
        return []
    per = np.array(periods, dtype=float)
    near = np.argmin(np.abs(dt[:, None] - per[None, :]), axis=1)
    kind = np.where(same & (np.abs(dt - per[near]) <= 0.5 * per[near]), near, -1)  # -1: not a sample step
    rates = [round(1000.0 / float(dt[kind == i].mean())) if (kind == i).any() else 0 for i in range(len(periods))]
    prev = np.concatenate([[-1], kind[:-1]])
    cut = (kind == -1) | ((prev != -1) & (kind != prev))  # a run ends after frame k
    starts = np.concatenate([[0], np.flatnonzero(cut) + 1])
    ends = np.append(starts[1:], len(t))
    return [(int(i), int(j), rates[kind[i]]) for i, j in zip(starts, ends) if j - i >= 2 and owner[i] >= 0]


def pulled_recordings(source, devices, group_by="session"):
    """Labelled recordings from device folders written by ``sensorbox pull``, as (frames, label, group, rate).

    A recording is a run of frames that one label covers at one sample rate with no gap (``sample_runs``). Its
    group is the label range (``session``: one labelled bout of activity) or the device and UTC day (``day``).
    The rate is measured from the frames' times (the manifest has only the device's current setting)."""
    import datetime

    recs, summary = [], []
    n_labels = 0
    for folder in devices:
        with open(os.path.join(folder, "manifest.json")) as f:
            man = json.load(f)
        dev = str(man.get("device") or os.path.basename(folder))
        labels = _read_labels(os.path.join(folder, "labels.csv"))
        n_labels += len(labels)
        t, frames = _read_accel(folder)
        if not labels or not len(t):
            summary.append("{}: {} labels, {} accel rows".format(dev, len(labels), len(t)))
            continue
        # which label owns each frame: -1 none, -2 two different labels (dropped)
        owner = np.full(len(t), -1)
        names = sorted(set(x[2] for x in labels))
        name_of = np.array([names.index(x[2]) for x in labels])
        for k, (a, b, name) in enumerate(labels):
            seg = owner[np.searchsorted(t, a, "left"):np.searchsorted(t, b, "left")]  # a view: start <= t < end
            clash = (seg >= 0) & (name_of[np.maximum(seg, 0)] != name_of[k])
            seg[seg == -1] = k
            seg[clash] = -2
        used = 0
        for i, j, rate in sample_runs(t, owner):
            k = owner[i]
            if group_by == "day":
                day = datetime.datetime.fromtimestamp(t[i] / 1000, datetime.timezone.utc).strftime("%Y-%m-%d")
                group = "{}/{}".format(dev, day)
            else:
                group = "{}/{}".format(dev, labels[k][0])
            recs.append(Rec(frames[i:j], labels[k][2], group, "{}/{}".format(dev, int(t[i])), int(t[i]), rate))
            used += j - i
        summary.append("{}: {} labels, {} accel rows ({}..{}), {} of them labelled".format(
            dev, len(labels), len(t), int(t[0]), int(t[-1]), used))
    if not n_labels:
        raise DataError("{}: the pulled data has no labels ({}). Label what the device recorded (in its web UI, "
                        "or POST /api/labels {{\"start\": ms, \"end\": ms, \"label\": name}}), then run "
                        "'sensorbox pull URL --out {}' again".format(source, "; ".join(summary), source))
    if not recs:
        raise DataError("{}: no labelled accelerometer data: no label covers pulled accel rows ({}). Check the "
                        "labels' times (epoch ms) against the data, or pull again if the data is newer than the "
                        "last pull".format(source, "; ".join(summary)))
    return recs


# --- features ---------------------------------------------------------------------------------------------------

def check_sensor(recs, sensor):
    """Refuse recordings of another sensor than the one a model is for."""
    other = sorted({getattr(r, "sensor", "accel") for r in recs} - {sensor})
    if other:
        raise DataError("the data holds {} recordings{}: {}".format(
            " and ".join(other), "" if sensor == "accel" else " as well",
            "train sound models with --sensor sound" if "sound" in other else
            "a sound model trains on sound only (sensorbox import --sensor sound)"))


def window_table(recs, channels, window, hop, progress=None, sensor="accel"):
    """Windows of ``recs`` through the shared Extractor, as a dict: ``X`` (int16 features), ``y`` (labels), ``g``
    (groups), ``rec`` (index into ``recs``), ``start`` (first frame in its recording), and ``dropped``: the
    recordings shorter than a window (``recordings``, ``frames``, ``per_class``) and the classes left with no
    window at all (``classes_lost``). ``sensor`` "sound": the sound features (``sound_window_table``)."""
    check_sensor(recs, sensor)
    if sensor == "sound":
        return sound_window_table(recs, window, hop, progress)
    # frequency features in Hz at the recordings' rate (one rate per model: ``dataset`` picks it), as a device
    # computes them at its sensor's rate
    rate = getattr(recs[0], "rate", feat.RATE_HZ) if recs else feat.RATE_HZ
    ex = feat.Extractor(channels, window, int(round(rate)))
    n_feat = len(feat.names(channels))
    out = array.array("h", bytes(2 * n_feat))
    frames = array.array("h", bytes(2 * window * channels))
    X, y, g, ri, st = [], [], [], [], []
    short = {"recordings": 0, "frames": 0, "per_class": {}}
    for i, (rec, label, subject) in enumerate(recs):
        if rec.shape[1] < channels:
            raise DataError("a recording has {} channels, {} requested{}".format(
                rec.shape[1], channels, " (import 6-channel data, or train with --channels 3)" if channels == 6
                else ""))
        if len(rec) < window:
            short["recordings"] += 1
            short["frames"] += len(rec)
            short["per_class"][label] = short["per_class"].get(label, 0) + 1
        rec = np.ascontiguousarray(rec[:, :channels], dtype=np.int16)
        for a in range(0, len(rec) - window + 1, hop):
            frames[:] = array.array("h", rec[a:a + window].tobytes())
            ex.extract(frames, out)
            X.append(list(out))
            y.append(label)
            g.append(subject)
            ri.append(i)
            st.append(a)
        if progress:
            progress(i + 1, len(recs))
    have = set(y)
    short["classes_lost"] = sorted({label for _, label, _ in recs} - have)
    if not X:
        rate = getattr(recs[0], "rate", feat.RATE_HZ) if recs else feat.RATE_HZ
        raise DataError("no complete {}-frame windows in the data: all {} recordings are shorter than a window "
                        "({:.2f} s at {:g} Hz); label (or import) longer stretches of activity{}".format(
                            window, len(recs), window / float(rate), rate,
                            "" if rate == feat.RATE_HZ else ", or import at --to-rate {}".format(feat.RATE_HZ)))
    return {"X": np.array(X, dtype=np.int16), "y": np.array(y), "g": np.array(g), "rec": np.array(ri),
            "start": np.array(st), "dropped": short}


def sound_window_table(recs, window=None, hop=None, progress=None, bands=None):
    """``window_table`` for sound recordings (int16 PCM at 8 or 16 kHz): windows of ``window`` frames every ``hop``
    frames through the shared ``SoundFeatures``, as a device computes them on its microphone stream, one stream per
    recording (windows never cross its ends); ``start`` is the window's first sample."""
    from sensorbox.shared import soundfeatures as sf

    window = window or sf.WINDOW
    hop = hop or sf.WINDOW_HOP
    bands = bands or sf.BANDS
    X, y, g, ri, st = [], [], [], [], []
    short = {"recordings": 0, "frames": 0, "per_class": {}}
    chunk = 4096
    buf = array.array("h", bytes(2 * chunk))
    extractors = {}
    for i, r in enumerate(recs):
        rec, label, group = r
        rate = int(r.rate)
        if rate not in sf.RATES:
            raise DataError("sound recordings must be at 8000 or 16000 Hz, found {} Hz: sensorbox import "
                            "--sensor sound resamples".format(r.rate))
        ex = extractors.get(rate)
        if ex is None:
            ex = extractors[rate] = sf.SoundFeatures(rate, bands, window, hop)
        ex.reset()
        span = ex.frame + (window - 1) * ex.hop_samples
        if len(rec) < span:
            short["recordings"] += 1
            short["frames"] += len(rec)
            short["per_class"][label] = short["per_class"].get(label, 0) + 1
            continue
        pcm = np.ascontiguousarray(rec[:, 0], dtype="<i2")
        pos = [0]

        def on(after, ex=ex, i=i, label=label, group=group):
            X.append(list(ex.out))
            y.append(label)
            g.append(group)
            ri.append(i)
            st.append(pos[0] - after - span)

        ex.on_window = on
        for a in range(0, len(pcm), chunk):
            part = pcm[a:a + chunk]
            buf[:len(part)] = array.array("h", part.tobytes())
            pos[0] = a + len(part)
            ex.process(buf, len(part))
        ex.on_window = None
        if progress:
            progress(i + 1, len(recs))
    short["classes_lost"] = sorted({label for _, label, _ in recs} - set(y))
    if not X:
        raise DataError("no complete sound windows in the data: all {} recordings are shorter than a window ({} "
                        "frames of 32 ms every 16 ms: {:.3f} s)".format(len(recs), window, (window + 1) * 0.016))
    return {"X": np.array(X, dtype=np.int16), "y": np.array(y), "g": np.array(g), "rec": np.array(ri),
            "start": np.array(st), "dropped": short}


def windows(recs, channels, window, hop, progress=None):
    """Feature matrix (int16), labels (str), groups (subject) over sliding windows, via the shared Extractor."""
    w = window_table(recs, channels, window, hop, progress)
    return w["X"], w["y"], w["g"]


def window_span(window, rate, sensor="accel"):
    """Samples (frames) one window of ``window`` spans: sound windows count 16 ms frames of 32 ms."""
    if sensor != "sound":
        return window
    from sensorbox.shared import soundfeatures as sf

    n = sf.frame_size(int(rate))
    return n + (window - 1) * (n // 2)


def dropped_warning(dropped, window, rate):
    """The warning for recordings too short to give a window, or None."""
    if not dropped["recordings"]:
        return None
    return ("{} recordings ({} frames) are shorter than one {}-frame window ({:.2f} s at {:g} Hz) and were left "
            "out: {}{}".format(dropped["recordings"], dropped["frames"], window, window / float(rate), rate,
                               ", ".join("{} {}".format(n, c) for c, n in sorted(dropped["per_class"].items())),
                               "; classes with no window left: {}".format(", ".join(dropped["classes_lost"]))
                               if dropped["classes_lost"] else ""))


# --- feature groups ---------------------------------------------------------------------------------------------

#: Named groups of the accelerometer features (``sensorbox.shared.features``) for ``train --features``: a model
#: takes the union of the groups, names and patterns given, in the extractor's order (a device computes them all
#: and hands the model these).
FEATURE_GROUPS = {
    "stats": ("mean", "std", "min", "max", "rms"),
    "percentiles": ("p10", "p25", "p50", "p75", "p90", "iqr"),
    "jerk": ("jerk", "jerkmax"),
    "zc": ("zc",),
    "bands": ("e0", "e1", "e2", "e3", "e4"),
    "domf": ("domf",),
    "time": ("mean", "std", "min", "max", "rms", "p10", "p25", "p50", "p75", "p90", "iqr", "jerk", "jerkmax", "zc"),
    "freq": ("e0", "e1", "e2", "e3", "e4", "domf"),
}
#: Groups of whole signals and sensors: ``ax`` .. ``am`` (and ``gx`` .. ``gm`` with 6 channels) each take their
#: signal's features; ``corr`` and ``grav`` the axis correlations and the gravity direction; ``accel`` and ``gyro``
#: everything of that sensor; ``all`` every feature.
FEATURE_HELP = ("groups: {} (those features of every signal); a signal: ax ay az am gx gy gz gm (its features); "
                "corr, grav, accel, gyro, all; or feature names and patterns (am_e*, grav_?)".format(
                    ", ".join(FEATURE_GROUPS)))


def feature_subset(spec, channels, sensor="accel"):
    """The feature names a model takes for ``spec`` (comma-separated groups, feature names and shell patterns, see
    ``FEATURE_GROUPS``), in the order the extractor computes them; None for ``spec`` None or empty. DataError
    naming a term that selects nothing."""
    import fnmatch

    if not spec:
        return None
    if sensor == "sound":
        from sensorbox.shared import soundfeatures as sf

        names = list(sf.names())
    else:
        names = list(feat.names(channels))
    keep = set()
    for term in [t.strip() for t in spec.split(",") if t.strip()]:
        got = []
        for n in names:
            sig, _, f = n.partition("_")
            if (term == "all" or n == term or fnmatch.fnmatchcase(n, term)
                    or (sensor != "sound" and (
                        (term in FEATURE_GROUPS and f in FEATURE_GROUPS[term] and len(sig) == 2)
                        or (term == sig and len(sig) == 2)
                        or (term == "corr" and f.startswith("corr_")) or (term == "grav" and sig == term)
                        or (term == "accel" and (sig.startswith("a") or sig == "grav"))
                        or (term == "gyro" and sig.startswith("g") and sig != "grav")))):
                got.append(n)
        if not got:
            raise DataError("--features: {!r} selects none of the {} features of {} ({})".format(
                term, len(names), "the sound sensor" if sensor == "sound" else "{} channels".format(channels),
                FEATURE_HELP))
        keep.update(got)
    return [n for n in names if n in keep]


def feature_columns(meta):
    """Positions of a model's features (``meta["features"]``) in the extractor's (its channels or the sound
    features), or None when it takes them all: the columns of a window table the model reads. DataError when one
    is not an extractor feature."""
    if meta.get("sensor") == "sound":
        from sensorbox.shared import soundfeatures as sf

        names = list(sf.names())
    else:
        names = list(feat.names(meta["channels"]))
    want = list(meta["features"])
    if want == names:
        return None
    missing = [n for n in want if n not in names]
    if missing:
        raise DataError("the model's features {} are not computed here (feature version {}): retrain it with this "
                        "sensorbox".format(", ".join(missing[:5]), feat.FEATURE_VERSION))
    return [names.index(n) for n in want]


# --- training ---------------------------------------------------------------------------------------------------

#: Model kinds: exported ones (``forest``, ``extra-trees``: emlearn tree ensembles; ``knn``, ``anomaly``: k-nearest
#: neighbours, sensorbox.shared.neighbors) and ``baseline`` (scikit-learn's RandomForestClassifier with its
#: defaults, soft vote, float thresholds: a yardstick in comparisons, not something a device runs).
KINDS = ("forest", "extra-trees", "knn", "anomaly", "baseline")


def make_estimator(opts, seed=0):
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

    kind = ExtraTreesClassifier if opts.get("extra_trees") else RandomForestClassifier
    return kind(n_estimators=opts["trees"], max_depth=opts.get("max_depth"),
                max_leaf_nodes=opts.get("max_leaf_nodes"), min_samples_leaf=opts.get("min_samples_leaf", 1),
                class_weight="balanced", random_state=seed, n_jobs=-1)


def make_folds(groups, folds=5):
    """Grouped k-fold splits (no group in both train and test) as a list of (train, test) index arrays."""
    from sklearn.model_selection import GroupKFold

    n_groups = len(set(groups.tolist()))
    if n_groups < 2:
        raise DataError("cross-validation needs at least 2 groups (subjects, labelled sessions or device-days), "
                        "got {}: label more sessions (each label range is one), or use --group-by session"
                        .format(n_groups))
    folds = min(folds, n_groups)
    return list(GroupKFold(n_splits=folds).split(groups, groups=groups))


def fit_kind(kind, X, y, n_classes, opts, knn_opts=None, seed=0, groups=None):
    """A fitted model of ``kind`` (see KINDS; not ``anomaly``) on int16 features ``X`` and class indices ``y``."""
    if kind in ("forest", "extra-trees"):
        return make_estimator(dict(opts, extra_trees=kind == "extra-trees"), seed).fit(X, y)
    if kind == "baseline":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(random_state=seed, n_jobs=-1).fit(X, y)
    if kind == "knn":
        from sensorbox.host import knn

        return knn.fit_knn(X, y, n_classes, seed=seed, **dict(knn_defaults("knn"), **(knn_opts or {})))
    raise ValueError("unknown model kind {!r}".format(kind))


def predict_kind(kind, model, X):
    """Class indices as a device would compute them (trees: hard vote; knn: the shared evaluator's arithmetic)."""
    if kind in ("forest", "extra-trees"):
        return model.classes_[export.hard_vote_predict(model, X)]
    if kind == "baseline":
        return model.predict(X)
    from sensorbox.host import knn

    return knn.predict(model, X)


def knn_defaults(kind):
    from sensorbox.host import knn

    return dict(knn.KNN_DEFAULTS if kind == "knn" else knn.ANOMALY_DEFAULTS)


def cross_validate(X, y_idx, groups, opts, folds=5, progress=None, kind="forest", knn_opts=None, splits=None):
    """Grouped k-fold cross-validation of one model kind. Returns per-fold accuracies and out-of-fold predictions
    made the way a device makes them."""
    splits = splits or make_folds(groups, folds)
    pred = np.full(len(y_idx), -1)
    accs = []
    n_classes = int(y_idx.max()) + 1
    for k, (tr, te) in enumerate(splits):
        m = fit_kind(kind, X[tr], y_idx[tr], n_classes, opts, knn_opts, seed=k)
        p = predict_kind(kind, m, X[te])
        pred[te] = p
        accs.append(float((p == y_idx[te]).mean()))
        if progress:
            progress(k + 1, len(splits))
    return accs, pred


def cross_validate_anomaly(X, labels, groups, normal, splits, knn_opts=None, progress=None):
    """Grouped cross-validation of an anomaly model trained on the ``normal`` labels' windows of each training
    fold. Returns (per-fold balanced accuracy or 1 - false alarms, held-out scores, per-window threshold)."""
    from sensorbox.host import knn

    opts = dict(knn_defaults("anomaly"), **(knn_opts or {}))
    is_normal = np.array([lab in normal for lab in labels])
    scores = np.zeros(len(X), dtype=np.int64)
    thr = np.zeros(len(X), dtype=np.int64)
    per_fold = []
    for k, (tr, te) in enumerate(splits):
        trn = tr[is_normal[tr]]
        if len(trn) < 2:
            raise DataError("a fold has fewer than 2 normal windows to train on: label more normal data")
        m = knn.fit_anomaly(X[trn], groups[trn], seed=k, **opts)
        scores[te] = knn.score(m, X[te])
        thr[te] = m["threshold"]
        flag = scores[te] > m["threshold"]
        fa = float(flag[is_normal[te]].mean()) if is_normal[te].any() else None
        det = float(flag[~is_normal[te]].mean()) if (~is_normal[te]).any() else None
        per_fold.append((1 - fa + det) / 2 if fa is not None and det is not None else
                        (1 - fa if fa is not None else det))
        if progress:
            progress(k + 1, len(splits))
    return per_fold, scores, thr


def _bar(label):
    t0 = time.time()
    state = [-1]

    def show(i, n):
        w = 30
        done = w * i // n
        if done == state[0] and i != n:
            return
        state[0] = done
        end = "\n" if i == n else ("\r" if sys.stderr.isatty() else "\n")
        if not sys.stderr.isatty() and i != n and done % 10:
            return
        sys.stderr.write("{:<18} [{}{}] {}/{} {:.0f}s{}".format(label, "#" * done, "." * (w - done), i, n,
                                                               time.time() - t0, end))
        sys.stderr.flush()

    return show


def train(source, out_dir, channels=3, window=None, hop=None, folds=5, opts=None, quiet=False, plot=True,
          cv_only=False, group_by="session", rate=None, warn=None, kind=None, compare=None, test=None,
          normal=None, knn_opts=None, sensor="accel", features=None):
    """Build the dataset, cross-validate, train on all data, export to ``out_dir``, write the report.

    ``source``: one data source or a list (see module doc); ``rate``: which sample rate to train on when the data
    holds several. ``kind``: the model to export (``KINDS``; default forest, or extra-trees with
    ``opts["extra_trees"]``); ``compare``: more kinds cross-validated on the same folds for the report (and on
    ``test``); ``test``: held-out data the exported model is then evaluated on (``sensorbox.host.evaluate``);
    ``normal``: for ``anomaly``, the labels that are normal (default: all); ``knn_opts``: k, per_class, features
    (knn) or k, items, features, quantile (anomaly); ``sensor``: "accel" (default) or "sound" (recordings of 16-bit
    PCM, the sound features; ``window``/``hop`` in their 16 ms frames); ``features``: the part of the features the
    model takes (``feature_subset``'s spec, e.g. "time,grav", or a list of names; default all): a device computes
    them all and hands the model these. Warnings (data left out, accuracy at or below chance) go to ``warn``
    (default: stderr) and into the report. Returns the report dict."""
    opts = dict(DEFAULTS, **(opts or {}))
    kind = kind or ("extra-trees" if opts.get("extra_trees") else "forest")
    compare = [k for k in [kind] + [c for c in (compare or []) if c != kind]]
    for k in compare:
        if k not in KINDS:
            raise DataError("unknown model kind {!r}: one of {}".format(k, ", ".join(KINDS)))
    if kind == "baseline" and not cv_only:
        raise DataError("the baseline is scikit-learn's own forest, which a device cannot run: compare with it "
                        "(--compare baseline) and export forest, extra-trees, knn or anomaly")
    sound = sensor == "sound"
    if sound:
        from sensorbox.shared import soundfeatures as sf

        window = window or sf.WINDOW
        hop = hop or sf.WINDOW_HOP
        channels = 1
    window = window or feat.WINDOW
    hop = hop or window // 2
    cols = None
    if features:  # (checked before the data is read)
        sub = feature_subset(features, channels, sensor) if isinstance(features, str) else list(features)
        cols = feature_columns({"features": sub, "channels": channels, "sensor": sensor})
    prog = (lambda label: None) if quiet else _bar
    warn = warn or _warn
    notes = {}
    recs, rate, group_kind = dataset(source, group_by, rate, notes)
    table = window_table(recs, channels, window, hop, prog("features"), sensor)
    X, labels, groups = table["X"], table["y"], table["g"]
    w = dropped_warning(table["dropped"], window_span(window, rate, sensor), rate)
    if w:
        notes["warnings"].append(w)
    for w in notes["warnings"]:
        warn(w)
    classes = sorted(set(labels.tolist()), key=_class_order(source))
    if len(classes) < 2 and kind != "anomaly":
        raise DataError("the labelled windows are all of one class ({}){}: a classifier needs at least 2; label "
                        "recordings of another activity too (an anomaly model learns from one: --kind anomaly)"
                        .format(", ".join(classes), "" if len(notes["rates"]) < 2 else
                                " at {} Hz (found: {})".format(rate, "; ".join(_at_rate(notes["rates"], r) for r in
                                                                             notes["rates"]))))
    if isinstance(source, (list, tuple)):
        source = " + ".join(source)
    y = np.array([classes.index(v) for v in labels])
    names = list(sf.names() if sound else feat.names(channels))
    if cols is not None:
        X = X[:, cols]
        names = [names[i] for i in cols]
    if len(names) > trees.MAX_FEATURES and not cv_only and kind in ("forest", "extra-trees"):
        raise DataError("{} channels give {} features; emlearn's tree format takes at most {}: choose a part of "
                        "them (--features accel, --features time,grav: {} or fewer), use --channels 3, --kind knn "
                        "(which keeps the most informative features), or --cv-only to only cross-validate".format(
                            channels, len(names), trees.MAX_FEATURES, trees.MAX_FEATURES))
    if kind == "anomaly":
        normal = list(normal or classes)
        missing = [c for c in normal if c not in classes]
        if missing:
            raise DataError("--normal {}: no windows labelled so (labels: {})".format(", ".join(missing),
                                                                                    ", ".join(classes)))
    splits = make_folds(groups, folds)
    fold_info = [{"test_groups": sorted(set(groups[te].tolist())), "windows": int(len(te))} for _, te in splits]
    # every kind on the same folds
    kinds = {}
    oof_main = accs = None
    for k in compare:
        if k == "anomaly":
            if kind != "anomaly":
                continue
            per_fold, scores, thr = cross_validate_anomaly(X, labels, groups, normal, splits, knn_opts,
                                                           prog("CV anomaly"))
            kinds[k] = {"fold_score": per_fold, "score_mean": float(np.mean(per_fold))}
            anomaly_cv = _anomaly_cv(labels, scores, thr, normal)
            kinds[k].update(anomaly_cv)
            accs = per_fold
            continue
        ko = knn_opts if k == kind else None
        f_accs, oof = cross_validate(X, y, groups, opts, progress=prog("CV " + k), kind=k, knn_opts=ko,
                                     splits=splits)
        ck = chance(y, oof, len(classes), f_accs)
        kinds[k] = {"fold_accuracy": f_accs, "accuracy_mean": float(np.mean(f_accs)),
                    "accuracy_std": float(np.std(f_accs)), "balanced_accuracy": ck["balanced_accuracy"]}
        if k == kind:
            oof_main, accs = oof, f_accs
    for i, f in enumerate(fold_info):
        for k, v in kinds.items():
            f.setdefault("accuracy", {})[k] = (v.get("fold_accuracy") or v.get("fold_score"))[i]
    if kind == "anomaly":
        ch = {"balanced_accuracy": kinds["anomaly"].get("balanced_accuracy"), "level": 0.5,
              "majority": None, "warning": kinds["anomaly"].get("warning")}
    else:
        ch = chance(y, oof_main, len(classes), accs)
    if ch["warning"]:
        warn(ch["warning"])
    data = {"rate_hz": rate, "rates_found": notes["rates"], "warnings": list(notes["warnings"]),
            "dropped": table["dropped"]}
    if ch["warning"]:
        data["warnings"].append(ch["warning"])
    common = {"folds": fold_info, "kinds": kinds, "kind": kind}
    if cv_only:
        rep = {"accuracy_mean": float(np.mean(accs)), "accuracy_std": float(np.std(accs)), "fold_accuracy": accs,
               "channels": channels, "features": len(names), "windows": int(len(X)), "grouped_by": group_kind,
               "chance": ch, "data": data}
        rep.update(common)
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "report.json"), "w") as fh:
            json.dump(rep, fh, indent=1)
        return rep
    if not quiet:
        sys.stderr.write("training the final {} model on all {} windows and exporting it...\n".format(
            kind, len(X)))
    metrics = {"cv_folds": len(accs), "cv_accuracy_mean": round(float(np.mean(accs)), 4),
               "cv_accuracy_std": round(float(np.std(accs)), 4), "chance": round(ch["level"], 4)}
    if ch["balanced_accuracy"] is not None:
        metrics["cv_balanced_accuracy"] = round(ch["balanced_accuracy"], 4)
    if ch["warning"]:
        metrics["warning"] = ch["warning"]
    meta = {"feature_version": sf.FEATURE_VERSION if sound else feat.FEATURE_VERSION, "features": names,
            "channels": channels, "window": window, "hop": hop, "rate_hz": rate, "classes": classes,
            **({"sensor": "sound", "bands": sf.BANDS, "frame": sf.frame_size(int(rate))} if sound else {}),
            **_class_texts(classes),
            "scaling": getattr(feat, "SCALING", None),
            "training": {"source": source, "recordings": len(recs), "windows": int(len(X)),
                         "subjects": len(set(groups.tolist())), "grouped_by": group_kind,
                         "per_class": {c: int((y == i).sum()) for i, c in enumerate(classes)},
                         "params": opts if kind in ("forest", "extra-trees") else
                         dict(knn_defaults(kind), **(knn_opts or {}))},
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "metrics": metrics}
    if cols is not None:
        meta["training"]["feature_subset"] = {"spec": features if isinstance(features, str) else ",".join(names),
                                              "features": len(names), "of": len(table["X"][0])}
    if kind in ("forest", "extra-trees"):
        est = fit_kind(kind, X, y, len(classes), opts)
        meta["training"]["estimator"] = type(est).__name__
        meta = export.export(est, out_dir, meta)
        report = evaluate(est, X, y, classes, accs, oof_main, meta, out_dir, plot, ch, data, extra=common,
                          write=False)
    else:
        report = _knn_report(kind, X, y, labels, groups, classes, accs, oof_main, meta, out_dir, ch, data, common,
                             normal, knn_opts)
    if test is not None:
        report["test"] = _test(out_dir, test, compare, kind, X, y, labels, groups, classes, opts, knn_opts, normal,
                               group_by, quiet, warn)
        tw = report["test"].get("warnings") or []
        report["data"]["warnings"] += ["test data: " + w for w in tw if w not in report["data"]["warnings"]]
    _write_report(report, out_dir, plot)
    return report


def _anomaly_cv(labels, scores, thr, normal):
    """Held-out anomaly figures: false alarms on normal windows, detection per other label, balanced accuracy."""
    flag = scores > thr
    is_normal = np.array([lab in normal for lab in labels])
    out = {"false_alarm_rate": float(flag[is_normal].mean()),
           "detection": {lab: float(flag[labels == lab].mean()) for lab in sorted(set(labels.tolist()))
                         if lab not in normal}}
    if (~is_normal).any():
        det = float(flag[~is_normal].mean())
        out["detection_rate"] = det
        out["balanced_accuracy"] = (1 - out["false_alarm_rate"] + det) / 2
        out["warning"] = None if out["balanced_accuracy"] > 0.5 + 1e-9 else (
            "cross-validated balanced accuracy {:.3f} of normal vs other windows is at or below chance (0.500): the "
            "anomaly score does not separate them".format(out["balanced_accuracy"]))
    else:
        out["balanced_accuracy"] = None
        out["warning"] = None
    return out


def _knn_report(kind, X, y, labels, groups, classes, accs, oof, meta, out_dir, ch, data, common, normal, knn_opts):
    """Fit the final knn/anomaly model, export it, check the shared evaluator against the numpy one (and, for knn,
    emlearn's C code), and build the report."""
    from sensorbox.host import knn

    ko = dict(knn_defaults(kind), **(knn_opts or {}))
    if kind == "knn":
        model = knn.fit_knn(X, y, len(classes), **ko)
    else:
        keep = np.array([lab in normal for lab in labels])
        model = knn.fit_anomaly(X[keep], groups[keep], **ko)
        meta["classes"] = ["normal"]
        meta["normal"] = list(normal)
        for k in ("class_names", "class_descriptions"):  # (of the labels: the model has one class)
            meta.pop(k, None)
    meta = knn.export(model, out_dir, meta)
    _, nb = knn.load(out_dir)
    sample = np.arange(len(X))[:: max(1, len(X) // 500)]
    if kind == "knn":
        fast = knn.predict(model, X[sample])
        dev = knn.device_predict(nb, X[sample])
        agree = {"device_vs_numpy": float((dev == fast).mean()), "windows": int(len(sample))}
        try:
            import emlearn
            from sklearn.neighbors import KNeighborsClassifier

            export._emlearn()  # (its C code compiled in a directory of this process's own)

            Q = knn.scale(X[sample], model["scaling"])
            est = KNeighborsClassifier(n_neighbors=model["k"], algorithm="brute").fit(model["items"],
                                                                                     model["labels"])
            c_pred = np.asarray(emlearn.convert(est, method="loadable").predict(Q.astype(np.float32)))
            _, d = knn.nearest(Q, model["items"], model["k"] + 1)
            clear = d[:, -1] != d[:, -2] if d.shape[1] > model["k"] else np.ones(len(Q), bool)
            agree["device_vs_emlearn_c_without_ties"] = float((c_pred[clear] == dev[clear]).mean())
            agree["windows_with_ties"] = int((~clear).sum())
        except Exception as e:  # emlearn's C compile needs gcc; say so rather than fail the training
            agree["emlearn_c"] = "not checked: {}".format(e)
    else:
        s = knn.score(model, X[sample])
        agree = {"device_vs_numpy": float((knn.device_score(nb, X[sample]) == s).mean()),
                 "windows": int(len(sample))}
    rep = {"accuracy_mean": float(np.mean(accs)), "accuracy_std": float(np.std(accs)), "fold_accuracy": accs,
           "classes": meta["classes"], "chance": ch, "data": data, "training": meta["training"],
           "model": {"kind": kind, "k": meta["k"], "items": meta["items"], "inputs": len(meta["inputs"]),
                     "csv_bytes": meta["csv_bytes"], "device_ram_bytes": meta["ram_bytes"]},
           "agreement": agree}
    if kind == "knn":
        m = evaluate_module().metrics(y, oof, classes)["window"]
        rep.update({"per_class": m["per_class"], "confusion_matrix": m["confusion_matrix"]})
    else:
        rep["model"]["threshold"] = meta["threshold"]
        rep["anomaly"] = common["kinds"]["anomaly"]
        rep["normal"] = list(normal)
    rep.update(common)
    return rep


def evaluate_module():
    from sensorbox.host import evaluate as ev

    return ev


def _test(out_dir, test, compare, kind, X, y, labels, groups, classes, opts, knn_opts, normal, group_by, quiet,
          warn):
    """The exported model evaluated on ``test`` (the shared evaluators), and every compared kind trained on all
    training windows, scored on the same test windows."""
    ev_mod = evaluate_module()
    meta, _ = export.read(out_dir)
    table, recs = ev_mod.load_windows(test, meta, group_by, None if quiet else _bar("test features"))
    ev = ev_mod.evaluate(out_dir, test, out_dir=os.path.join(out_dir, "test"), quiet=quiet, group_by=group_by,
                         warn=warn, windows=(table, recs))
    out = {"data": ev["data"], "windows": ev["windows"], "recordings": ev["recordings"], "warnings": ev["warnings"],
           "dropped": ev["dropped"]}
    if kind == "anomaly":
        out["anomaly"] = ev["anomaly"]
        return out
    out["window"] = {k: ev["window"][k] for k in ("accuracy", "balanced_accuracy", "n")}
    out["recording"] = {k: ev["recording"][k] for k in ("accuracy", "balanced_accuracy", "n")}
    known = np.array([lab in classes for lab in table["y"]])
    yt = np.array([classes.index(v) for v in table["y"][known]])
    kinds = {}
    for k in compare:
        if k == "anomaly":
            continue
        m = fit_kind(k, X, y, len(classes), opts, knn_opts if k == kind else None)
        p = predict_kind(k, m, table["X"][known])
        r = ev_mod.metrics(yt, p, classes, table["rec"][known])
        kinds[k] = {"window_accuracy": r["window"]["accuracy"],
                    "window_balanced_accuracy": r["window"]["balanced_accuracy"],
                    "recording_accuracy": r["recording"]["accuracy"]}
    out["kinds"] = kinds
    return out


def _write_report(report, out_dir, plot):
    with open(os.path.join(out_dir, "report.json"), "w") as fh:
        json.dump(report, fh, indent=1)
    with open(os.path.join(out_dir, "report.txt"), "w") as fh:
        fh.write(report_text(report))
    if plot and "confusion_matrix" in report:
        plot_confusion(np.array(report["confusion_matrix"]), report["classes"], os.path.join(out_dir,
                                                                                               "confusion.png"),
                       "accuracy {:.3f} ± {:.3f}, balanced {:.3f} (chance {:.3f}){}\n{}-fold CV grouped by {}".format(
                           report["accuracy_mean"], report["accuracy_std"], report["chance"]["balanced_accuracy"],
                           report["chance"]["level"], ": AT OR BELOW CHANCE" if report["chance"]["warning"] else "",
                           len(report["fold_accuracy"]), report["training"].get("grouped_by", "subject")))


def _warn(text):
    sys.stderr.write("\n*** WARNING: {} ***\n\n".format(text))
    sys.stderr.flush()


def chance(y, oof, n_classes, accs):
    """How the cross-validated predictions compare with chance. The level is 1 / classes: what any model that
    ignores its input scores in balanced accuracy (mean recall over classes), however unequal the classes are;
    "majority" is what always answering the most common class scores in plain accuracy. ``warning`` is set when
    the balanced accuracy is at or below chance."""
    recalls = [float((oof[y == c] == c).mean()) for c in range(n_classes) if (y == c).any()]
    bal = float(np.mean(recalls)) if recalls else 0.0
    level = 1.0 / n_classes
    majority = float(np.bincount(y, minlength=n_classes).max() / len(y)) if len(y) else 0.0
    warning = None
    if bal <= level + 1e-9:
        warning = ("cross-validated balanced accuracy {:.3f} (accuracy {:.3f}) is at or below chance ({:.3f} for {} "
                   "classes): this model does no better than guessing; do not deploy it. Label more and longer "
                   "stretches of each activity, check that the labels match what was recorded, and train on data "
                   "of one sample rate".format(bal, float(np.mean(accs)), level, n_classes))
    return {"balanced_accuracy": bal, "level": level, "majority": majority, "warning": warning}


DEFAULTS = {"trees": 20, "max_depth": None, "max_leaf_nodes": 32, "min_samples_leaf": 1, "extra_trees": False}


WATCH_LABELS = ("PEN", "ABD", "FEL", "IR", "ER", "TRAP", "ROW")  # seglearn's class order


def _class_texts(classes):
    """``class_names``/``class_descriptions`` for meta.json when some classes are the watch dataset's codes."""
    from sensorbox.host.datasets import WATCH_CLASSES

    if not any(c in WATCH_CLASSES for c in classes):
        return {}
    return {"class_names": [WATCH_CLASSES.get(c, (c, ""))[0] for c in classes],
            "class_descriptions": [WATCH_CLASSES.get(c, (c, ""))[1] for c in classes]}


def _class_order(source):
    return lambda c: (WATCH_LABELS.index(c) if c in WATCH_LABELS else len(WATCH_LABELS), c)


def evaluate(est, X, y, classes, accs, oof, meta, out_dir, plot=True, ch=None, data=None, extra=None, write=True):
    """The report of an exported tree ensemble: cross-validated scores and agreement between the device evaluator
    (shared code), emlearn's C code and scikit-learn on the training windows."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    labels = list(range(len(classes)))
    cm = confusion_matrix(y, oof, labels=labels)
    p, r, f, s = precision_recall_fscore_support(y, oof, labels=labels, zero_division=0)
    _, t = export.load_trees(out_dir)
    dev = export.device_predict(t, X)
    c_pred = np.asarray(export.convert(est).predict(X.astype(np.float32)))
    report = {
        "accuracy_mean": float(np.mean(accs)), "accuracy_std": float(np.std(accs)), "fold_accuracy": accs,
        "classes": classes,
        "per_class": {c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
                      for i, c in enumerate(classes)},
        "confusion_matrix": cm.tolist(),
        "model": {"kind": "trees", "trees": meta["trees"], "nodes": meta["nodes"], "leaves": meta["leaves"],
                  "csv_bytes": meta["csv_bytes"], "device_ram_bytes": meta["ram_bytes"]},
        "agreement": {"device_vs_emlearn_c": float((dev == c_pred).mean()),
                      "device_vs_sklearn_hard_vote": float((dev == export.hard_vote_predict(est, X)).mean()),
                      "device_vs_sklearn_predict": float((dev == est.predict(X)).mean()), "windows": int(len(X))},
        "training": meta["training"],
        "chance": ch or chance(y, oof, len(classes), accs),
        "data": data or {"rate_hz": meta.get("rate_hz"), "rates_found": {}, "warnings": []},
    }
    report.update(extra or {})
    if write:
        _write_report(report, out_dir, plot)
    return report


def report_text(rep):
    """The training report as text for people."""
    classes = rep["classes"]
    kind = rep["training"].get("grouped_by", "subject")
    ch = rep["chance"]
    mk = rep.get("kind", "forest")
    lines = []
    if mk == "anomaly":
        an = rep["anomaly"]
        lines += ["anomaly model ({}-fold CV grouped by {}, normal: {}): false alarms on held-out normal windows "
                  "{:.1%}{}".format(len(rep["fold_accuracy"]), kind, ", ".join(rep["normal"]),
                                    an["false_alarm_rate"],
                                    "; detection of the other labels {:.1%}, balanced accuracy {:.3f} (chance 0.5)"
                                    .format(an["detection_rate"], an["balanced_accuracy"])
                                    if an.get("balanced_accuracy") is not None else
                                    " (no other labels to detect)")]
        for lab, v in sorted(an.get("detection", {}).items()):
            lines.append("  {}: {:.1%} of its windows above the threshold".format(lab, v))
    else:
        lines += ["accuracy ({}-fold CV grouped by {}, device predictions, {}): {:.3f} ± {:.3f}   folds: {}".format(
            len(rep["fold_accuracy"]), kind, mk, rep["accuracy_mean"], rep["accuracy_std"],
            " ".join("{:.3f}".format(a) for a in rep["fold_accuracy"])),
            "balanced accuracy (mean recall): {:.3f}; chance: {:.3f} (1/{} classes); always the most common class: "
            "{:.3f}".format(ch["balanced_accuracy"], ch["level"], len(classes), ch["majority"]), ""]
        lines.append(evaluate_module().class_table(classes, rep))
        lines += ["", evaluate_module().confusion_text(classes, rep["confusion_matrix"], "(cross-validated)")]
    if rep.get("kinds") and len(rep["kinds"]) > 1:
        lines += ["", "model kinds on the same folds:", "  {:<12} {:>9} {:>9} {:>9}".format(
            "kind", "accuracy", "± std", "balanced")]
        for k, v in rep["kinds"].items():
            if "accuracy_mean" in v:
                lines.append("  {:<12} {:9.3f} {:9.3f} {:9.3f}".format(k, v["accuracy_mean"], v["accuracy_std"],
                                                                      v["balanced_accuracy"]))
            else:
                lines.append("  {:<12} {:>9} {:>9} {:9.3f}".format(k, "-", "-", v.get("balanced_accuracy") or 0))
    if rep.get("folds"):
        lines += ["", "folds (test groups; the other groups trained):"]
        for i, f in enumerate(rep["folds"]):
            groups = f["test_groups"]
            shown = ", ".join(groups[:8]) + (", ... ({} in all)".format(len(groups)) if len(groups) > 8 else "")
            acc = " ".join("{} {:.3f}".format(k, v) for k, v in f.get("accuracy", {}).items())
            lines.append("  {}: {} windows; {}; {}".format(i + 1, f["windows"], acc, shown))
    m, a = rep["model"], rep["agreement"]
    if m.get("kind", "trees") == "trees":
        lines += ["", "model: {} trees, {} decision nodes, {} leaves; model.csv {} bytes; device RAM ~{} bytes".format(
            m["trees"], m["nodes"], m["leaves"], m["csv_bytes"], m["device_ram_bytes"]),
            "agreement over {} windows: device vs emlearn C {:.4f}, device vs scikit-learn hard vote {:.4f}, "
            "device vs scikit-learn predict (soft vote) {:.4f}".format(
                a["windows"], a["device_vs_emlearn_c"], a["device_vs_sklearn_hard_vote"],
                a["device_vs_sklearn_predict"])]
    else:
        lines += ["", "model: {}, k {}, {} stored examples x {} features{}; model.csv {} bytes; device RAM ~{} "
                      "bytes".format(m["kind"], m["k"], m["items"], m["inputs"],
                                     "; threshold {}".format(m["threshold"]) if "threshold" in m else "",
                                     m["csv_bytes"], m["device_ram_bytes"]),
                  "agreement over {} windows: shared evaluator vs numpy {:.4f}{}".format(
                      a["windows"], a["device_vs_numpy"],
                      ", vs emlearn C (no tie at the k-th place) {:.4f}".format(a["device_vs_emlearn_c_without_ties"])
                      if "device_vs_emlearn_c_without_ties" in a else "")]
    fs = rep["training"].get("feature_subset")
    if fs:
        lines.append("features: {} of the {} (--features {})".format(fs["features"], fs["of"], fs["spec"]))
    d = rep["data"].get("dropped") or {}
    lines.append("data: {} recordings, {} windows, {} groups ({}), at {} Hz, from {}{}".format(
        rep["training"]["recordings"], rep["training"]["windows"], rep["training"]["subjects"], kind,
        rep["data"]["rate_hz"], rep["training"]["source"],
        "; {} recordings shorter than a window left out".format(d["recordings"]) if d.get("recordings") else ""))
    t = rep.get("test")
    if t:
        lines += ["", "held-out test data {}: {} windows, {} recordings".format(t["data"], t["windows"],
                                                                             t["recordings"])]
        if "anomaly" in t:
            an = t["anomaly"]
            lines.append("  false alarms {}, detection {}".format(
                "-" if an["false_alarm_rate"] is None else "{:.1%}".format(an["false_alarm_rate"]),
                "-" if an["detection_rate"] is None else "{:.1%}".format(an["detection_rate"])))
        else:
            lines.append("  exported model ({}): accuracy {:.3f} per window (balanced {:.3f}), {:.3f} per recording "
                         "(majority vote)".format(mk, t["window"]["accuracy"], t["window"]["balanced_accuracy"],
                                                  t["recording"]["accuracy"]))
            if len(t.get("kinds", {})) > 1:
                lines.append("  {:<12} {:>15} {:>9} {:>18}".format("kind", "window accuracy", "balanced",
                                                                   "recording accuracy"))
                for k, v in t["kinds"].items():
                    lines.append("  {:<12} {:15.3f} {:9.3f} {:18.3f}".format(
                        k, v["window_accuracy"], v["window_balanced_accuracy"], v["recording_accuracy"]))
    lines.append("")
    lines += ["WARNING: " + x for x in rep["data"]["warnings"]]
    return "\n".join(lines).rstrip("\n") + "\n"


def plot_confusion(cm, classes, path, title):
    """The confusion matrix as a PNG: cells sized to the number of classes, the whole title and every label
    inside the image whatever their length."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(classes)
    cell = 0.55 if n > 8 else 0.7
    side = max(2.6, cell * n)
    fig, ax = plt.subplots(figsize=(side + 1.4, side + 1.2))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(n), classes, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(n), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9, color="firebrick" if "BELOW CHANCE" in title else "black")
    top = cm.max() or 1
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="white" if cm[i, j] > top / 2 else "black",
                    fontsize=8 if n <= 12 else 6)
    # "tight": the saved image grows to hold the title and the labels, so nothing is clipped
    fig.savefig(path, dpi=100, bbox_inches="tight", pad_inches=0.15)
    plt.close(fig)


# --- command line -----------------------------------------------------------------------------------------------

EPILOG_TRAIN = """examples:
  sensorbox train watch --out models/mine            seglearn's full smartwatch dataset (10 subjects)
  sensorbox train excerpt --out /tmp/m               the bundled 2-subject excerpt (quick)
  sensorbox pull http://127.0.0.1:8080 --out pulled/   (label activities on the device first: web UI or API)
  sensorbox train pulled/ --out models/mine          then train on the labelled accelerometer data pulled
  sensorbox train pulled/ --group-by day --out /tmp/m   CV groups: device + day instead of label ranges
  sensorbox train watch pulled/ --out models/mine    the watch data and your own labelled data together
  sensorbox train recs/ --out /tmp/m --trees 30      a folder of .npy recordings with .json segment sidecars
  sensorbox train watch --channels 6 --cv-only --out /tmp/cv6    accuracy with the gyroscope too (no export)
  sensorbox train watch --features time,grav --out /tmp/m    a model on a part of the features: the time-domain
      ones and gravity (no frequency bands); --features am,grav (the magnitude's), --features 'a?_e*,domf'
  sensorbox train watch --channels 6 --features accel,gm --out /tmp/m6   a 6-channel model within the tree
      format's 127 features (86 of the accelerometer, 20 of the gyroscope's magnitude): it runs on a device
      with accel.gyro on
  sensorbox train pulled/ --rate 100 --out /tmp/m    only the data sampled at 100 Hz (when the devices changed rate)
  sensorbox train pulled/ --out models/mine --push http://127.0.0.1:8080 --token sb_2_...   train, then run it there
  sensorbox import BasicMotions_TRAIN.ts --out data/bm-train --rate 10 --units m/s2 --gyro-units rad/s
  sensorbox train data/bm-train --test data/bm-test --compare knn,baseline --out /tmp/bm
      held-out test data, and three model kinds on the same folds (baseline: scikit-learn's default forest)
  sensorbox train data/few-shot --kind knn --out /tmp/knn          k-nearest neighbours ("teach by example")
  sensorbox train data/machine --kind anomaly --normal running --out /tmp/an   an anomaly score from normal data
  sensorbox train sounds --sensor sound --compare knn,baseline --out /tmp/snd
      a sound classifier (key press, key release, speech) on real recordings Debian packages ship
  sensorbox import clips/ --sensor sound --out data/clips --label-from folder
  sensorbox train data/clips --sensor sound --out models/sound      your own WAV files, labelled by folder

Writes MODEL_DIR/model.csv + meta.json (push with: sensorbox model push URL MODEL_DIR), report.txt,
report.json and confusion.png; with --test also MODEL_DIR/test/ (as sensorbox evaluate writes it). The report
names the groups in each fold and what was left out (recordings shorter than a window, other sample rates).
Devices run every kind but the baseline (knn and anomaly: the shared code, or emlearn_neighbors when
installed); features are computed at the recordings' rate, and the model's rate, window and hop configure the
device it is pushed to. A recording (.json sidecar) gives its sample rate as "rate_hz" (default 50);
data pulled from devices is measured. Training warns (on stderr and in the report) when data at other rates
was left out, and when the cross-validated balanced accuracy is at or below chance (1 / number of classes):
--push then refuses to push.
"""

EPILOG_MODEL = """examples:
  sensorbox model push http://127.0.0.1:8080 models/mine          (password from SENSORBOX_PASSWORD or asked)
  sensorbox model push http://admin:secret@192.168.1.50 models/mine
  SENSORBOX_TOKEN=sb_2_... sensorbox model push http://192.168.1.50 models/mine   an admin API token
  sensorbox model info http://127.0.0.1:8080 --token sb_3_...     a read token may show the model
  sensorbox model info http://127.0.0.1:8080 --json               the device's answer as JSON
  sensorbox model rollback http://127.0.0.1:8080                  back to the previous model, live
"""


def cmd_train(args):
    opts = {"trees": args.trees, "max_leaf_nodes": args.max_leaf_nodes or None, "max_depth": args.max_depth,
            "min_samples_leaf": args.min_samples_leaf, "extra_trees": args.extra_trees}
    dev = None
    if args.push:
        if args.cv_only:
            sys.exit("error: --push needs a model: leave out --cv-only")
        try:  # the credential is checked (or asked for) now, not after the training
            dev = client.Client(args.push, args.password, args.token, ask=True)
        except client.DeviceError as e:
            sys.exit("error: {}".format(e))
    knn_opts = {k: v for k, v in (("k", args.k), ("per_class", args.knn_per_class),
                                  ("features", args.knn_features), ("items", args.anomaly_items),
                                  ("quantile", args.anomaly_quantile)) if v is not None}
    kind = args.kind or ("extra-trees" if args.extra_trees else "forest")
    if kind == "knn":
        knn_opts.pop("items", None)
        knn_opts.pop("quantile", None)
    elif kind == "anomaly":
        knn_opts.pop("per_class", None)
    else:
        knn_opts = {k: v for k, v in knn_opts.items() if k in ("k", "per_class", "features")}
    if args.push and export.push_refusal(kind):
        sys.exit("error: --push: " + export.push_refusal(kind))
    try:
        rep = train(args.data, args.out, channels=args.channels, window=args.window, hop=args.hop, folds=args.folds,
                    opts=opts, quiet=args.quiet, cv_only=args.cv_only, group_by=args.group_by, rate=args.rate, kind=kind,
                    compare=[c.strip() for c in args.compare.split(",") if c.strip()] if args.compare else None,
                    test=(args.test if len(args.test) > 1 else args.test[0]) if args.test else None,
                    normal=[c.strip() for c in args.normal.split(",")] if args.normal else None,
                    knn_opts=knn_opts, sensor=args.sensor, features=args.features)
    except datasets.DatasetError as e:  # DataError too
        sys.exit("error: {}".format(e))
    except ModuleNotFoundError as e:
        sys.exit("error: sensorbox train needs {}: pip install -e '.[train]' (scikit-learn, emlearn, matplotlib)"
                 .format(e.name))
    if args.cv_only:
        print("accuracy (CV grouped by {}): {:.3f} ± {:.3f}; balanced accuracy {:.3f}, chance {:.3f}".format(
            rep["grouped_by"], rep["accuracy_mean"], rep["accuracy_std"], rep["chance"]["balanced_accuracy"] or 0,
            rep["chance"]["level"]))
        for k, v in rep["kinds"].items():
            if "accuracy_mean" in v and len(rep["kinds"]) > 1:
                print("  {:<12} {:.3f} ± {:.3f}, balanced {:.3f}".format(k, v["accuracy_mean"], v["accuracy_std"],
                                                                       v["balanced_accuracy"]))
        return 0
    print(report_text(rep))
    print("model and report written to {}".format(args.out))
    if dev is None:
        return 0
    if rep["chance"]["warning"]:
        sys.exit("error: not pushed to {}: the model is no better than chance (see the warning above). To run it "
                 "anyway: sensorbox model push {} {}".format(dev.url, dev.url, args.out))
    try:
        info = export.push(dev, args.out, progress=None if not args.quiet else False)
    except (export.PushError, ValueError) as e:
        sys.exit("error: the model was written to {} but not pushed: {}".format(args.out, e))
    print("pushed to {}: it runs now".format(dev.url))
    print(export.summary(info, dev.url))
    return 0


def cmd_model(args):
    url = args.url
    try:
        if args.action == "push":
            meta, data = export.read(args.model_dir)
            warning = export.below_chance(meta)
            if warning:
                print("warning: " + warning, file=sys.stderr)
            info = export.push(url, args.model_dir, args.password, args.token, progress=None, ask=True)
        else:
            info = export.device_call(url, args.action, args.password, args.token, ask=True,
                                      sensor=getattr(args, "sensor", "accel"))
    except (export.PushError, ValueError) as e:  # ValueError: ModelError from reading MODEL_DIR
        sys.exit("error: {}".format(e))
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    if args.action == "push":
        print("pushed {} ({} bytes of model.csv) to {}: it runs now".format(args.model_dir, len(data), url))
    elif args.action == "rollback":
        print("rolled back on {}".format(url))
    print(export.summary(info, url))
    return 0


def add_commands(sub):
    import argparse

    fmt = argparse.RawDescriptionHelpFormatter
    t = sub.add_parser("train", help="train a classifier from labelled recordings and export it for devices",
                       epilog=EPILOG_TRAIN, formatter_class=fmt)
    t.add_argument("data", metavar="DATA", nargs="+",
                   help="watch | excerpt | a folder from 'sensorbox pull' | recording.npy | directory of "
                        "recordings (several: trained together)")
    t.add_argument("--out", required=True, metavar="MODEL_DIR", help="where to write the model and report")
    t.add_argument("--sensor", choices=("accel", "sound"), default="accel",
                   help="accel (default): the accelerometer's features; sound: the sound features of 16-bit PCM "
                        "recordings (sensorbox import --sensor sound; 'sounds': the recordings Debian ships)")
    t.add_argument("--channels", type=int, choices=(3, 6), default=3,
                   help="3 = accelerometer, 6 = + gyroscope (a device samples it with accel.gyro on; default 3)")
    t.add_argument("--window", type=int, choices=(32, 64, 128, 256), default=None,
                   help="frames per window (default 128; a device running the model sets ml.window to it)")
    t.add_argument("--hop", type=int, default=None, help="frames between windows (default window/2)")
    t.add_argument("--features", metavar="GROUPS",
                   help="the part of the features the model takes, comma separated (default all; sensorbox evaluate "
                        "and devices then use that part): " + FEATURE_HELP.replace("%", "%%"))
    t.add_argument("--folds", type=int, default=5, help="grouped CV folds (default 5; at most the number of groups)")
    t.add_argument("--group-by", choices=("session", "day"), default="session",
                   help="pulled data: CV groups are label ranges (session, default) or device + UTC day (day)")
    t.add_argument("--trees", type=int, default=DEFAULTS["trees"], help="trees in the forest (default %(default)s)")
    t.add_argument("--max-leaf-nodes", type=int, default=DEFAULTS["max_leaf_nodes"],
                   help="leaves per tree, bounds model size (default %(default)s; 0 = unbounded)")
    t.add_argument("--max-depth", type=int, default=None, help="tree depth limit (default none)")
    t.add_argument("--min-samples-leaf", type=int, default=1,
                   help="fewest training windows in a leaf: larger = smaller, smoother trees (default 1)")
    t.add_argument("--extra-trees", action="store_true", help="extremely randomized trees instead of a random forest "
                                                              "(= --kind extra-trees)")
    t.add_argument("--kind", choices=[k for k in KINDS if k != "baseline"],
                   help="the model to export: forest (default), extra-trees, knn (k-nearest neighbours) or anomaly "
                        "(a score trained on --normal data)")
    t.add_argument("--compare", metavar="KINDS",
                   help="more kinds cross-validated on the same folds (and on --test), e.g. knn,extra-trees,baseline "
                        "(baseline: scikit-learn's RandomForestClassifier with its defaults)")
    t.add_argument("--test", metavar="DATA", nargs="+",
                   help="held-out data to evaluate the exported model on (like sensorbox evaluate MODEL_DIR DATA)")
    t.add_argument("--normal", metavar="LABELS", help="--kind anomaly: the labels that are normal (comma separated; "
                                                      "default all); the others measure detection")
    t.add_argument("--k", type=int, help="knn/anomaly: neighbours (default 3 for knn, 1 for anomaly)")
    t.add_argument("--knn-per-class", type=int, help="knn: stored examples per class, k-means centres when a class "
                                                     "has more windows (default 32)")
    t.add_argument("--knn-features", type=int, help="knn/anomaly: features used (default 24 / 32; the most "
                                                    "informative, near-duplicates skipped)")
    t.add_argument("--anomaly-items", type=int, help="anomaly: stored normal examples (k-means centres; default 64)")
    t.add_argument("--anomaly-quantile", type=float,
                   help="anomaly: the threshold is this quantile of held-out normal scores (default 0.99)")
    t.add_argument("--cv-only", action="store_true", help="only cross-validate; write report.json, no model")
    t.add_argument("--rate", type=float, metavar="HZ",
                   help="train on the recordings sampled at HZ when the data holds several rates (default: the rate "
                        "with the most labelled frames among those with two or more classes; the others are named)")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.add_argument("--push", metavar="URL",
                   help="then upload and activate the model on this device (not if it is no better than chance)")
    client.add_credential_args(t, "admin", "with --push: ")
    t.set_defaults(func=cmd_train)

    m = sub.add_parser("model", help="show a device's model, push one (upload + activate) or roll back",
                       description="Show, push (upload + activate, live) or roll back the model a device runs.",
                       epilog=EPILOG_MODEL, formatter_class=fmt)
    acts = m.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, needs, what in (("push", "admin", "upload MODEL_DIR (model.csv + meta.json) and activate it live"),
                              ("info", "read", "show the active model, whether a previous one is kept, the last "
                                               "error"),
                              ("rollback", "admin", "switch back to the previous model, live")):
        examples = "".join(x + "\n" for x in EPILOG_MODEL.splitlines() if " model {} ".format(name) in x)
        a = acts.add_parser(name, help=what, description=what[0].upper() + what[1:] + ".",
                            epilog="examples:\n" + examples, formatter_class=fmt)
        a.add_argument("url", metavar="URL", help="the device, e.g. http://127.0.0.1:8080")
        if name == "push":
            a.add_argument("model_dir", metavar="MODEL_DIR",
                           help="directory with model.csv + meta.json (written by sensorbox train)")
        client.add_credential_args(a, needs)
        if name != "push":  # (push reads it from meta.json)
            a.add_argument("--sensor", choices=("accel", "sound"), default="accel",
                           help="the activity model (accel, default) or the sound classifier's (sound)")
        a.add_argument("--json", action="store_true", help="print the device's answer as JSON")
        a.set_defaults(func=cmd_model)
