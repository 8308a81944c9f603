"""``sensorbox evaluate MODEL_DIR DATA``: how a trained model does on held-out data, computed the way a device computes
it (the shared evaluators: trees, k-nearest neighbours, anomaly score), per window and per recording.

    from sensorbox.host import evaluate
    ev = evaluate.evaluate("models/mine", "data/test")     # DATA as sensorbox train takes it
    ev["window"]["accuracy"], ev["recording"]["accuracy"], ev["window"]["per_class"]

Classifiers (``trees``, ``knn``): accuracy and balanced accuracy (mean recall) per window and per recording (the
majority of its windows' predictions; a tie goes to the lowest class index), precision/recall/F1 per class, the
confusion matrices, and a warning when the balanced accuracy is at or below chance (1 / classes). Windows whose
label the model does not know are counted and left out. Anomaly models: the share of windows above the threshold
for each label, the false-alarm rate on the model's normal labels, the detection rate on the others, and the
scores' distribution. Written to ``OUT``: ``evaluation.json``, ``evaluation.txt`` and ``confusion.png`` (or
``scores.png``).
"""

import json
import os
import sys

import numpy as np

from sensorbox.host import datasets, export, knn, train


def load_windows(data, meta, group_by="session", progress=None, notes=None):
    """(window table as ``train.window_table`` gives it, recordings) of ``data`` at the model's rate, channels,
    window and hop. DataError when the data has no recordings at the model's rate."""
    notes = {} if notes is None else notes
    try:
        recs, rate, _ = train.dataset(data, group_by, rate=meta.get("rate_hz"), notes=notes)
    except train.DataError as e:
        if "no data sampled at" in str(e):
            raise train.DataError("{}: the model was trained at {} Hz; {}. Import the data at the model's rate: "
                                  "sensorbox import ... --to-rate {}".format(data, meta.get("rate_hz"), e,
                                                                            meta.get("rate_hz")))
        raise
    table = train.window_table(recs, meta["channels"], meta["window"], meta["hop"], progress,
                               meta.get("sensor", "accel"))
    return table, recs


def majority(pred, rec, n_classes):
    """Per recording (index in ``rec``): the class most of its windows were given (ties: the lowest index)."""
    out = {}
    for r in np.unique(rec):
        out[int(r)] = int(np.argmax(np.bincount(pred[rec == r], minlength=n_classes)))
    return out


def metrics(y, pred, classes, rec=None):
    """Scores of predicted class indices ``pred`` against true indices ``y``: ``window`` (accuracy, balanced
    accuracy, per_class, confusion_matrix, chance) and, with ``rec`` (recording of each window), ``recording``
    (the same over recordings, by majority vote)."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    n = len(classes)

    def block(t, p):
        labels = list(range(n))
        cm = confusion_matrix(t, p, labels=labels)
        pr, rc, f1, sup = precision_recall_fscore_support(t, p, labels=labels, zero_division=0)
        acc = float((t == p).mean()) if len(t) else 0.0
        ch = train.chance(t, p, n, [acc])
        return {"accuracy": acc, "balanced_accuracy": ch["balanced_accuracy"], "n": int(len(t)),
                "per_class": {c: {"precision": float(pr[i]), "recall": float(rc[i]), "f1": float(f1[i]),
                                  "support": int(sup[i])} for i, c in enumerate(classes)},
                "confusion_matrix": cm.tolist(), "chance": ch}

    out = {"window": block(y, pred)}
    if rec is not None:
        votes = majority(pred, rec, n)
        rt = np.array([int(y[rec == r][0]) for r in sorted(votes)])
        rp = np.array([votes[r] for r in sorted(votes)])
        out["recording"] = block(rt, rp)
    return out


def anomaly_metrics(labels, scores, threshold, normal, rec=None):
    """Per label: windows and the share above ``threshold``; false alarms (normal labels) and detection (the
    others); balanced accuracy of normal-vs-anomaly when both are present (chance 0.5)."""
    flag = scores > threshold
    per = {}
    for lab in sorted(set(labels.tolist())):
        m = labels == lab
        per[lab] = {"windows": int(m.sum()), "flagged": float(flag[m].mean()), "normal": lab in normal,
                    "median_score": float(np.median(scores[m]))}
    is_normal = np.array([lab in normal for lab in labels])
    out = {"threshold": int(threshold), "per_label": per, "windows": int(len(labels)),
           "false_alarm_rate": float(flag[is_normal].mean()) if is_normal.any() else None,
           "detection_rate": float(flag[~is_normal].mean()) if (~is_normal).any() else None}
    if is_normal.any() and (~is_normal).any():
        out["balanced_accuracy"] = (1 - out["false_alarm_rate"] + out["detection_rate"]) / 2
        out["warning"] = None if out["balanced_accuracy"] > 0.5 + 1e-9 else (
            "balanced accuracy {:.3f} of normal vs anomalous windows is at or below chance (0.5): the score does not "
            "separate them".format(out["balanced_accuracy"]))
    if rec is not None:
        fr = [float(flag[rec == r].mean()) for r in np.unique(rec)]
        out["recordings"] = len(fr)
        out["recordings_mostly_flagged"] = int(sum(f > 0.5 for f in fr))
    return out


def evaluate(model_dir, data, out_dir=None, plot=True, quiet=True, group_by="session", warn=None, windows=None):
    """Evaluate the model in ``model_dir`` on ``data`` (anything ``sensorbox train`` reads). Writes the results to
    ``out_dir`` (default ``MODEL_DIR/evaluation``; "" writes nothing) and returns them as a dict. Warnings go to
    ``warn`` (default: stderr) and into the results. ``windows``: what ``load_windows`` gave for ``data``, if
    already computed."""
    meta, _ = export.read(model_dir)
    kind = meta.get("kind")
    bar = (lambda label: None) if quiet else train._bar
    notes = {}
    table, recs = windows or load_windows(data, meta, group_by, bar("features"), notes)
    classes = list(meta["classes"])
    labels = table["y"]
    ev = {"model": os.path.abspath(model_dir), "kind": kind, "data": data if isinstance(data, str) else list(data),
          "rate_hz": meta.get("rate_hz"), "windows": int(len(labels)), "recordings": len(set(table["rec"].tolist())),
          "dropped": table["dropped"], "warnings": list(notes.get("warnings", []))}
    w = train.dropped_warning(table["dropped"], train.window_span(meta["window"], meta.get("rate_hz"),
                                                                 meta.get("sensor", "accel")), meta.get("rate_hz"))
    if w:
        ev["warnings"].append(w)
    if kind == "anomaly":
        _, nb = knn.load(model_dir)
        scores = knn.device_score(nb, table["X"], bar("scoring"))
        ev["anomaly"] = anomaly_metrics(labels, scores, nb.threshold, set(meta.get("normal") or classes),
                                        table["rec"])
        ev["scores"] = scores.tolist()
        ev["labels"] = labels.tolist()
        if ev["anomaly"].get("warning"):
            ev["warnings"].append(ev["anomaly"]["warning"])
    else:
        if kind == "knn":
            _, nb = knn.load(model_dir)
            pred = knn.device_predict(nb, table["X"], bar("classifying"))
        else:
            _, t = export.load_trees(model_dir)
            pred = export.device_predict(t, table["X"])
        known = np.array([lab in classes for lab in labels])
        if not known.any():
            raise train.DataError("none of the data's labels ({}) is a class of the model ({})".format(
                ", ".join(sorted(set(labels.tolist()))), ", ".join(classes)))
        unknown = sorted(set(labels[~known].tolist()))
        if unknown:
            ev["warnings"].append("{} windows have labels the model does not know ({}): left out".format(
                int((~known).sum()), ", ".join(unknown)))
        y = np.array([classes.index(lab) for lab in labels[known]])
        ev.update(metrics(y, pred[known], classes, table["rec"][known]))
        ev["classes"] = classes
        ev["predictions"] = pred.tolist()
        for level in ("window", "recording"):
            if ev[level]["chance"]["warning"]:
                ev["warnings"].append("per {}: {}".format(level, ev[level]["chance"]["warning"]))
    ev["recording_names"] = [recs[i].name for i in sorted(set(table["rec"].tolist()))]
    for x in ev["warnings"]:
        (warn or train._warn)(x)
    if out_dir is None:
        out_dir = os.path.join(model_dir, "evaluation")
    if out_dir:
        write(ev, out_dir, plot)
    return ev


def write(ev, out_dir, plot=True):
    """``evaluation.json``, ``evaluation.txt`` and the plot into ``out_dir``."""
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "evaluation.json"), "w") as f:
        json.dump(ev, f, indent=1)
    with open(os.path.join(out_dir, "evaluation.txt"), "w") as f:
        f.write(text(ev))
    if plot and "window" in ev:
        w = ev["window"]
        train.plot_confusion(np.array(w["confusion_matrix"]), ev["classes"], os.path.join(out_dir, "confusion.png"),
                             "{}: accuracy {:.3f} per window, {:.3f} per recording; balanced {:.3f} (chance {:.3f})"
                             "{}".format(os.path.basename(str(ev["data"])), w["accuracy"],
                                         ev["recording"]["accuracy"], w["balanced_accuracy"], w["chance"]["level"],
                                         ": AT OR BELOW CHANCE" if w["chance"]["warning"] else ""))
    elif plot and "anomaly" in ev:
        plot_scores(ev, os.path.join(out_dir, "scores.png"))


def plot_scores(ev, path):
    """Histogram of the anomaly scores per label with the threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores = np.array(ev["scores"])
    a = ev["anomaly"]
    labels = sorted(a["per_label"])
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    bins = np.linspace(0, max(float(scores.max()), a["threshold"]) * 1.05 + 1, 40)
    names = list(ev.get("labels") or [])
    for lab in labels:
        m = np.array(names) == lab if names else None
        if m is None or not m.any():
            continue
        ax.hist(scores[m], bins=bins, alpha=0.6, label="{} ({})".format(lab, "normal" if a["per_label"][lab]["normal"]
                                                                       else "other"))
    ax.axvline(a["threshold"], color="firebrick", linestyle="--", label="threshold {}".format(a["threshold"]))
    ax.set_xlabel("anomaly score (distance to the k-th nearest normal example)")
    ax.set_ylabel("windows")
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=100, bbox_inches="tight", pad_inches=0.15)
    plt.close(fig)


def text(ev):
    """The evaluation as text for people."""
    lines = ["model {} ({}) on {}: {} windows from {} recordings at {} Hz".format(
        ev["model"], ev["kind"], ev["data"], ev["windows"], ev["recordings"], ev["rate_hz"])]
    if "anomaly" in ev:
        a = ev["anomaly"]
        lines.append("threshold {}: false alarms {} on normal windows, detection {} on the others{}".format(
            a["threshold"], _pct(a["false_alarm_rate"]), _pct(a["detection_rate"]),
            "; balanced accuracy {:.3f}".format(a["balanced_accuracy"]) if "balanced_accuracy" in a else ""))
        w = max(5, max(len(lab) for lab in a["per_label"]))
        lines.append("{:<{w}}  windows  above threshold  median score".format("label", w=w))
        for lab, v in a["per_label"].items():
            lines.append("{:<{w}}  {:7d}  {:>15}  {:12.0f}{}".format(lab, v["windows"], _pct(v["flagged"]),
                                                                      v["median_score"],
                                                                      "  (normal)" if v["normal"] else "", w=w))
    else:
        for level in ("window", "recording"):
            b = ev[level]
            lines.append("per {}: accuracy {:.3f}, balanced accuracy {:.3f} (chance {:.3f}) over {} {}s".format(
                level, b["accuracy"], b["balanced_accuracy"], b["chance"]["level"], b["n"], level))
        lines += ["", class_table(ev["classes"], ev["window"]), "",
                  confusion_text(ev["classes"], ev["window"]["confusion_matrix"], "per window"), "",
                  confusion_text(ev["classes"], ev["recording"]["confusion_matrix"], "per recording (majority vote)")]
    lines += ["WARNING: " + w for w in ev["warnings"]]
    return "\n".join(lines).rstrip("\n") + "\n"


def _pct(v):
    return "-" if v is None else "{:.1%}".format(v)


def class_table(classes, block):
    w = max(6, max(len(c) for c in classes))
    lines = ["{:<{w}}  precision  recall     f1  support".format("class", w=w)]
    for c in classes:
        m = block["per_class"][c]
        lines.append("{:<{w}}  {:9.3f}  {:6.3f}  {:5.3f}  {:7d}".format(c, m["precision"], m["recall"], m["f1"],
                                                                       m["support"], w=w))
    return "\n".join(lines)


def confusion_text(classes, cm, what):
    w = max(6, max(len(c) for c in classes))
    lines = ["confusion matrix {} (rows: true, columns: predicted)".format(what),
             " " * (w + 2) + " ".join("{:>6}".format(c[:6]) for c in classes)]
    for c, row in zip(classes, cm):
        lines.append("{:<{w}}  ".format(c, w=w) + " ".join("{:6d}".format(v) for v in row))
    return "\n".join(lines)


# --- command line -------------------------------------------------------------------------------------------------

EPILOG = """examples:
  sensorbox evaluate models/mine data/test                 held-out data (sensorbox import writes such folders)
  sensorbox evaluate models/mine pulled/ --out /tmp/ev     data pulled from devices and labelled there
  sensorbox evaluate models/anomaly data/machine-b         an anomaly model: share of windows above its threshold

Predictions are made with the shared evaluators (what a device computes). Writes OUT (default
MODEL_DIR/evaluation): evaluation.txt, evaluation.json, confusion.png (anomaly models: scores.png).
"""


def cmd_evaluate(args):
    try:
        ev = evaluate(args.model_dir, args.data if len(args.data) > 1 else args.data[0], out_dir=args.out,
                      quiet=args.quiet, group_by=args.group_by)
    except (datasets.DatasetError, ValueError) as e:  # DataError; ModelError from reading MODEL_DIR
        sys.exit("error: {}".format(e))
    except ModuleNotFoundError as e:
        sys.exit("error: sensorbox evaluate needs {}: pip install -e '.[train]'".format(e.name))
    print(text(ev), end="")
    print("written to {}".format(args.out or os.path.join(args.model_dir, "evaluation")))
    return 0


def add_parser(sub):
    import argparse

    p = sub.add_parser("evaluate", help="score a trained model on held-out data, per window and per recording",
                       description="Score a trained model (sensorbox train) on held-out data as a device computes it.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", metavar="MODEL_DIR", help="a model written by sensorbox train")
    p.add_argument("data", metavar="DATA", nargs="+", help="what sensorbox train takes: a folder from sensorbox import "
                                                           "or pull, a recording .npy with its .json, watch, excerpt")
    p.add_argument("--out", metavar="DIR", help="where to write the results (default MODEL_DIR/evaluation)")
    p.add_argument("--group-by", choices=("session", "day"), default="session",
                   help="pulled data: what a recording is (a label range, default, or a device-day)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_evaluate)
