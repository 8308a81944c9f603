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
  (``{"segments": [{"start", "frames", "label", "subject"}...]}``, the excerpt's format), or a directory of them.

Several sources train one model together (``sensorbox train watch pulled/``): classes are the union, groups stay
apart. Features come from the shared extractor (``sensorbox.shared.features``), exactly as the device computes
them from the same int16 counts (so the devices should sample at the range and rate the data were recorded at).

Evaluation: grouped k-fold cross-validation (no subject, or session, in both train and test), predictions made
the way the device makes them (hard majority vote, device thresholds). The final model is trained on all data and
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

from sensorbox.host import datasets, export
from sensorbox.shared import features as feat
from sensorbox.shared import trees

REPO = datasets.REPO


class DataError(Exception):
    pass


# --- recordings -------------------------------------------------------------------------------------------------

def _sidecar_recordings(npy_path):
    """(frames int16 array, label, subject) per labelled segment of an .npy file with a .json sidecar."""
    side = npy_path[:-4] + ".json"
    if not os.path.exists(side):
        raise DataError("{} has no {} listing its labelled segments (start, frames, label, subject)".format(
            npy_path, os.path.basename(side)))
    data = np.load(npy_path)
    if data.dtype != np.int16 or data.ndim != 2:
        raise DataError("{}: expected int16 frames x channels, got {} {}".format(npy_path, data.dtype, data.shape))
    with open(side) as f:
        meta = json.load(f)
    segs = meta.get("segments")
    if not segs:
        raise DataError("{}: no 'segments' in {}".format(npy_path, side))
    out = []
    for s in segs:
        try:
            a, n = int(s["start"]), int(s["frames"])
            out.append((data[a:a + n], str(s["label"]), str(s.get("subject", os.path.basename(npy_path)))))
        except (KeyError, ValueError, TypeError) as e:
            raise DataError("{}: bad segment {} ({})".format(side, s, e))
    return out


def recordings(source, group_by="session"):
    """List of (frames int16 [n x ch], label, group) from ``source`` (see module doc)."""
    return dataset(source, group_by)[0]


def dataset(source, group_by="session"):
    """(recordings, sample rate in Hz, what the groups are) from one source or a list of them."""
    if isinstance(source, (list, tuple)):
        if len(source) == 1:
            return dataset(source[0], group_by)
        recs, rates, kinds = [], set(), []
        for k, src in enumerate(source):
            r, rate, kind = dataset(src, group_by)
            recs.extend((x, label, "{}:{}".format(k, g)) for x, label, g in r)
            rates.add(rate)
            kinds.append(kind)
        if len(rates) > 1:
            raise DataError("the sources were sampled at different rates ({} Hz): a model's windows need one "
                            "rate; train on one of them".format(" and ".join(str(r) for r in sorted(rates))))
        return recs, rates.pop(), " + ".join(sorted(set(kinds)))
    if source == "watch":
        d = datasets.watch_dataset()
        return ([(datasets.to_counts(x), d["y_labels"][int(y)], str(int(s)))
                 for x, y, s in zip(d["X"], d["y"], d["subject"])], datasets.RATE_HZ, "subject")
    if source == "excerpt":
        return _sidecar_recordings(datasets.EXCERPT), datasets.RATE_HZ, "subject"
    if os.path.isdir(source):
        devices = pulled_devices(source)
        if devices:
            recs, rate = pulled_recordings(source, devices, group_by)
            return recs, rate, "labelled session" if group_by == "session" else "device and day"
        out = []
        for name in sorted(os.listdir(source)):
            if name.endswith(".npy"):
                out.extend(_sidecar_recordings(os.path.join(source, name)))
        if not out:
            raise DataError("{} holds neither data pulled from devices (sensorbox pull URL --out {}) nor .npy "
                            "recordings with .json segment sidecars".format(source, source))
        return out, datasets.RATE_HZ, "subject"
    if source.endswith(".npy") and os.path.exists(source):
        return _sidecar_recordings(source), datasets.RATE_HZ, "subject"
    raise DataError("DATA must be 'watch', 'excerpt', a folder written by 'sensorbox pull', an .npy recording "
                    "with a .json sidecar, or a directory of them; got {!r}".format(source))


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


def pulled_recordings(source, devices, group_by="session"):
    """Labelled recordings from device folders written by ``sensorbox pull``: (recordings, rate in Hz).

    A recording is a run of frames that one label covers with no gap in the samples (a step other than one
    sample period, within half a period: the device's store records every interruption, and a rate change).
    Its group is the label range (``session``: one labelled bout of activity) or the device and UTC day
    (``day``)."""
    import datetime

    recs, rates, summary = [], set(), []
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
        # The rate the labelled frames were sampled at (the manifest has the device's current setting, which
        # may have changed since): the most common step between labelled neighbours.
        steps = np.diff(t)[(owner[1:] >= 0) & (owner[1:] == owner[:-1])]
        if len(steps):
            vals, counts = np.unique(steps, return_counts=True)
            rate = int(round(1000 / vals[np.argmax(counts)]))
        else:
            rate = ((man.get("resources") or {}).get("accel", {}).get("schema") or {}).get("rate_hz") or 50
        period = 1000.0 / rate
        gap = np.concatenate([[True], (np.diff(t) > 1.5 * period) | (np.diff(t) < 0.5 * period) |
                              (np.diff(owner) != 0)])
        starts = np.flatnonzero(gap)
        ends = np.append(starts[1:], len(t))
        used = 0
        for i, j in zip(starts, ends):
            k = owner[i]
            if k < 0:
                continue
            if group_by == "day":
                day = datetime.datetime.fromtimestamp(t[i] / 1000, datetime.timezone.utc).strftime("%Y-%m-%d")
                group = "{}/{}".format(dev, day)
            else:
                group = "{}/{}".format(dev, labels[k][0])
            recs.append((frames[i:j], labels[k][2], group))
            used += j - i
        if used:
            rates.add(int(rate))
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
    if len(rates) > 1:
        raise DataError("{}: the devices sampled at different rates ({} Hz); train on one rate".format(
            source, ", ".join(str(r) for r in sorted(rates))))
    return recs, rates.pop()


# --- features ---------------------------------------------------------------------------------------------------

def windows(recs, channels, window, hop, progress=None):
    """Feature matrix (int16), labels (str), groups (subject) over sliding windows, via the shared Extractor."""
    ex = feat.Extractor(channels, window)
    n_feat = len(feat.names(channels))
    out = array.array("h", bytes(2 * n_feat))
    frames = array.array("h", bytes(2 * window * channels))
    X, y, g = [], [], []
    for i, (rec, label, subject) in enumerate(recs):
        if rec.shape[1] < channels:
            raise DataError("a recording has {} channels, {} requested".format(rec.shape[1], channels))
        rec = np.ascontiguousarray(rec[:, :channels], dtype=np.int16)
        for a in range(0, len(rec) - window + 1, hop):
            frames[:] = array.array("h", rec[a:a + window].tobytes())
            ex.extract(frames, out)
            X.append(list(out))
            y.append(label)
            g.append(subject)
        if progress:
            progress(i + 1, len(recs))
    if not X:
        raise DataError("no complete {}-frame windows in the data: every labelled stretch is shorter than a "
                        "window; label longer stretches of activity".format(window))
    return np.array(X, dtype=np.int16), np.array(y), np.array(g)


# --- training ---------------------------------------------------------------------------------------------------

def make_estimator(opts, seed=0):
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

    kind = ExtraTreesClassifier if opts.get("extra_trees") else RandomForestClassifier
    return kind(n_estimators=opts["trees"], max_depth=opts.get("max_depth"),
                max_leaf_nodes=opts.get("max_leaf_nodes"), min_samples_leaf=opts.get("min_samples_leaf", 1),
                class_weight="balanced", random_state=seed, n_jobs=-1)


def cross_validate(X, y_idx, groups, opts, folds=5, progress=None):
    """Subject-grouped k-fold. Returns per-fold accuracies and out-of-fold device predictions (hard vote)."""
    from sklearn.model_selection import GroupKFold

    n_groups = len(set(groups.tolist()))
    if n_groups < 2:
        raise DataError("cross-validation needs at least 2 groups (subjects, labelled sessions or device-days), "
                        "got {}: label more sessions (each label range is one), or use --group-by session"
                        .format(n_groups))
    folds = min(folds, n_groups)
    pred = np.full(len(y_idx), -1)
    accs = []
    for k, (tr, te) in enumerate(GroupKFold(n_splits=folds).split(X, y_idx, groups)):
        est = make_estimator(opts, seed=k).fit(X[tr], y_idx[tr])
        p = est.classes_[export.hard_vote_predict(est, X[te])]
        pred[te] = p
        accs.append(float((p == y_idx[te]).mean()))
        if progress:
            progress(k + 1, folds)
    return accs, pred


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
          cv_only=False, group_by="session"):
    """Build the dataset, cross-validate, train on all data, export to ``out_dir``, write the report.
    ``source``: one data source or a list (see module doc). Returns the report dict."""
    opts = dict(DEFAULTS, **(opts or {}))
    window = window or feat.WINDOW
    hop = hop or window // 2
    prog = (lambda label: None) if quiet else _bar
    recs, rate, group_kind = dataset(source, group_by)
    X, labels, groups = windows(recs, channels, window, hop, prog("features"))
    classes = sorted(set(labels.tolist()), key=_class_order(source))
    if len(classes) < 2:
        raise DataError("the labelled windows are all of one class ({}): a classifier needs at least 2; label "
                        "recordings of another activity too".format(", ".join(classes)))
    if isinstance(source, (list, tuple)):
        source = " + ".join(source)
    y = np.array([classes.index(v) for v in labels])
    names = list(feat.names(channels))
    if len(names) > trees.MAX_FEATURES and not cv_only:
        raise DataError("{} channels give {} features; emlearn's tree format takes at most {}: use --channels 3, "
                        "or --cv-only to only cross-validate".format(channels, len(names), trees.MAX_FEATURES))
    accs, oof = cross_validate(X, y, groups, opts, folds, prog("cross-validation"))
    if cv_only:
        rep = {"accuracy_mean": float(np.mean(accs)), "accuracy_std": float(np.std(accs)), "fold_accuracy": accs,
               "channels": channels, "features": len(names), "windows": int(len(X)), "grouped_by": group_kind}
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "report.json"), "w") as fh:
            json.dump(rep, fh, indent=1)
        return rep
    est = make_estimator(opts).fit(X, y)
    meta = export.export(est, out_dir, {
        "feature_version": feat.FEATURE_VERSION, "features": names, "channels": channels, "window": window,
        "hop": hop, "rate_hz": rate, "classes": classes, **_class_texts(classes),
        "scaling": getattr(feat, "SCALING", None),
        "training": {"source": source, "recordings": len(recs), "windows": int(len(X)),
                     "subjects": len(set(groups.tolist())), "grouped_by": group_kind,
                     "per_class": {c: int((y == i).sum()) for i, c in enumerate(classes)},
                     "estimator": type(est).__name__, "params": opts},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "metrics": {"cv_folds": len(accs), "cv_accuracy_mean": round(float(np.mean(accs)), 4),
                    "cv_accuracy_std": round(float(np.std(accs)), 4)}})
    report = evaluate(est, X, y, classes, accs, oof, meta, out_dir, plot)
    return report


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


def evaluate(est, X, y, classes, accs, oof, meta, out_dir, plot=True):
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    labels = list(range(len(classes)))
    cm = confusion_matrix(y, oof, labels=labels)
    p, r, f, s = precision_recall_fscore_support(y, oof, labels=labels, zero_division=0)
    # agreement on the training windows: device evaluator (shared code) vs emlearn's C vs scikit-learn
    _, t = export.load_trees(out_dir)
    dev = export.device_predict(t, X)
    c_pred = np.asarray(export.convert(est).predict(X.astype(np.float32)))
    report = {
        "accuracy_mean": float(np.mean(accs)), "accuracy_std": float(np.std(accs)), "fold_accuracy": accs,
        "classes": classes,
        "per_class": {c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
                      for i, c in enumerate(classes)},
        "confusion_matrix": cm.tolist(),
        "model": {"trees": meta["trees"], "nodes": meta["nodes"], "leaves": meta["leaves"],
                  "csv_bytes": meta["csv_bytes"], "device_ram_bytes": meta["ram_bytes"]},
        "agreement": {"device_vs_emlearn_c": float((dev == c_pred).mean()),
                      "device_vs_sklearn_hard_vote": float((dev == export.hard_vote_predict(est, X)).mean()),
                      "device_vs_sklearn_predict": float((dev == est.predict(X)).mean()), "windows": int(len(X))},
        "training": meta["training"],
    }
    with open(os.path.join(out_dir, "report.json"), "w") as fh:
        json.dump(report, fh, indent=1)
    with open(os.path.join(out_dir, "report.txt"), "w") as fh:
        fh.write(report_text(report))
    if plot:
        plot_confusion(cm, classes, os.path.join(out_dir, "confusion.png"),
                       "accuracy {:.3f} ± {:.3f} ({}-fold CV grouped by {})".format(
                           report["accuracy_mean"], report["accuracy_std"], len(accs),
                           meta["training"].get("grouped_by", "subject")))
    return report


def report_text(rep):
    classes = rep["classes"]
    w = max(6, max(len(c) for c in classes))
    kind = rep["training"].get("grouped_by", "subject")
    lines = ["accuracy ({}-fold CV grouped by {}, device predictions): {:.3f} ± {:.3f}   folds: {}".format(
        len(rep["fold_accuracy"]), kind, rep["accuracy_mean"], rep["accuracy_std"],
        " ".join("{:.3f}".format(a) for a in rep["fold_accuracy"])), "",
        "{:<{w}}  precision  recall     f1  support".format("class", w=w)]
    for c in classes:
        m = rep["per_class"][c]
        lines.append("{:<{w}}  {:9.3f}  {:6.3f}  {:5.3f}  {:7d}".format(c, m["precision"], m["recall"], m["f1"],
                                                                       m["support"], w=w))
    lines += ["", "confusion matrix (rows: true, columns: predicted)",
              " " * (w + 2) + " ".join("{:>6}".format(c[:6]) for c in classes)]
    for c, row in zip(classes, rep["confusion_matrix"]):
        lines.append("{:<{w}}  ".format(c, w=w) + " ".join("{:6d}".format(v) for v in row))
    m, a = rep["model"], rep["agreement"]
    lines += ["", "model: {} trees, {} decision nodes, {} leaves; model.csv {} bytes; device RAM ~{} bytes".format(
        m["trees"], m["nodes"], m["leaves"], m["csv_bytes"], m["device_ram_bytes"]),
        "agreement over {} windows: device vs emlearn C {:.4f}, device vs scikit-learn hard vote {:.4f}, "
        "device vs scikit-learn predict (soft vote) {:.4f}".format(
            a["windows"], a["device_vs_emlearn_c"], a["device_vs_sklearn_hard_vote"], a["device_vs_sklearn_predict"]),
        "data: {} recordings, {} windows, {} groups ({}), from {}".format(
            rep["training"]["recordings"], rep["training"]["windows"], rep["training"]["subjects"], kind,
            rep["training"]["source"]), ""]
    return "\n".join(lines)


def plot_confusion(cm, classes, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * len(classes), 0.8 + 0.7 * len(classes)))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    top = cm.max() or 1
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="white" if cm[i, j] > top / 2 else "black",
                    fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
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

Writes MODEL_DIR/model.csv + meta.json (push with: sensorbox model push URL MODEL_DIR), report.txt,
report.json and confusion.png.
"""

EPILOG_MODEL = """examples:
  sensorbox model push http://127.0.0.1:8080 models/mine          (password from SENSORBOX_PASSWORD or asked)
  sensorbox model push http://admin:secret@192.168.1.50 models/mine
  sensorbox model info http://127.0.0.1:8080
  sensorbox model rollback http://127.0.0.1:8080
"""


def cmd_train(args):
    opts = {"trees": args.trees, "max_leaf_nodes": args.max_leaf_nodes or None, "max_depth": args.max_depth,
            "min_samples_leaf": args.min_samples_leaf, "extra_trees": args.extra_trees}
    try:
        rep = train(args.data, args.out, channels=args.channels, hop=args.hop, folds=args.folds, opts=opts,
                    quiet=args.quiet, cv_only=args.cv_only, group_by=args.group_by)
    except DataError as e:
        sys.exit("error: {}".format(e))
    if args.cv_only:
        print("accuracy (CV grouped by {}): {:.3f} ± {:.3f}".format(rep["grouped_by"], rep["accuracy_mean"],
                                                                   rep["accuracy_std"]))
    else:
        print(report_text(rep))
        print("model and report written to {}".format(args.out))
    return 0


def cmd_model(args):
    try:
        if args.action == "push":
            if not args.model_dir:
                sys.exit("error: model push needs MODEL_DIR (a directory with model.csv and meta.json)")
            res = export.push(args.url, args.model_dir, args.password)
        else:
            res = export.device_call(args.url, args.action, args.password)
    except (export.PushError, ValueError) as e:  # ValueError: ModelError from reading MODEL_DIR
        sys.exit("error: {}".format(e))
    print(json.dumps(res, indent=1))
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
    t.add_argument("--channels", type=int, choices=(3, 6), default=3,
                   help="3 = accelerometer (what the device samples), 6 = + gyroscope (default 3)")
    t.add_argument("--hop", type=int, default=None, help="frames between windows (default window/2)")
    t.add_argument("--folds", type=int, default=5, help="grouped CV folds (default 5; at most the number of groups)")
    t.add_argument("--group-by", choices=("session", "day"), default="session",
                   help="pulled data: CV groups are label ranges (session, default) or device + UTC day (day)")
    t.add_argument("--trees", type=int, default=DEFAULTS["trees"], help="trees in the forest (default %(default)s)")
    t.add_argument("--max-leaf-nodes", type=int, default=DEFAULTS["max_leaf_nodes"],
                   help="leaves per tree, bounds model size (default %(default)s; 0 = unbounded)")
    t.add_argument("--max-depth", type=int, default=None, help="tree depth limit (default none)")
    t.add_argument("--min-samples-leaf", type=int, default=1, help="(default 1)")
    t.add_argument("--extra-trees", action="store_true", help="extremely randomized trees instead of a random forest")
    t.add_argument("--cv-only", action="store_true", help="only cross-validate; write report.json, no model")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.set_defaults(func=cmd_train)

    m = sub.add_parser("model", help="show, push (upload + activate) or roll back a device's model",
                       epilog=EPILOG_MODEL, formatter_class=fmt)
    m.add_argument("action", choices=("push", "info", "rollback"))
    m.add_argument("url", metavar="URL", help="the device, e.g. http://127.0.0.1:8080")
    m.add_argument("model_dir", metavar="MODEL_DIR", nargs="?", help="for push: directory with model.csv + meta.json")
    m.add_argument("--password", default=None, help="admin password (default: from URL, SENSORBOX_PASSWORD, or asked)")
    m.set_defaults(func=cmd_model)
