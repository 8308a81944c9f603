"""k-nearest-neighbour models on the host: training, fast evaluation with numpy, and export for devices.

Two kinds, both evaluated on a device by ``sensorbox.shared.neighbors`` (model file format there):

- ``knn``: a classifier. Few-shot friendly: a class with few windows keeps them all as examples ("teach by
  example"); a class with more than ``per_class`` is summarised by that many k-means centres. It uses the
  ``features`` most informative inputs (ANOVA F, near-duplicates skipped), each scaled to ~128 units per standard
  deviation.
- ``anomaly``: trained on normal windows only; the score is the distance to the k-th nearest of ``items`` stored
  normal examples (k-means centres when there are more windows). The threshold is the ``quantile`` of the scores
  of normal windows held out from the examples (grouped folds): about 1 - quantile of new normal windows score
  above it.

The numpy functions compute exactly what the shared evaluator computes (integer scaling, floor square root,
(distance, index) order, lowest class on a tied vote); ``tests/host/test_knn.py`` checks that, and checks the
classifier against emlearn's C ``eml_neighbors`` (where no two distances tie at the k-th place).
"""

import hashlib
import json
import math
import os

import numpy as np

from sensorbox.shared import model as model_fmt
from sensorbox.shared import neighbors, neighbors_csv

SD_UNITS = 128  # scaled units per standard deviation of the training data
KNN_DEFAULTS = {"k": 3, "per_class": 32, "features": 24}
ANOMALY_DEFAULTS = {"k": 1, "items": 64, "features": 32, "quantile": 0.99}


# --- scaling and distances (identical to sensorbox.shared.neighbors) ----------------------------------------------

def fit_scaling(X, cols):
    """(input, offset, mul, shift) per column of ``X`` in ``cols``: ~SD_UNITS per standard deviation."""
    out = []
    for c in cols:
        v = X[:, c].astype(np.float64)
        mean, sd = float(v.mean()), float(v.std())
        off = int(np.clip(round(mean), -32768, 32767))
        if sd <= 0:
            out.append((int(c), off, 0, 0))
            continue
        factor = SD_UNITS / sd
        sh = max(0, math.ceil(math.log2(8192 / factor)))
        if sh > 30:
            sh = 30
        mul = min(16383, int(round(factor * 2 ** sh)))
        out.append((int(c), off, mul, sh))
    return out


def scale(X, scaling):
    """int64 matrix of the scaled inputs of int16 feature rows ``X``."""
    X = np.asarray(X, dtype=np.int64)
    src = np.array([s[0] for s in scaling])
    off = np.array([s[1] for s in scaling], dtype=np.int64)
    mul = np.array([s[2] for s in scaling], dtype=np.int64)
    sh = np.array([s[3] for s in scaling], dtype=np.int64)
    q = ((X[:, src] - off) * mul) >> sh  # numpy's >> on int64 floors, as Python's does
    return np.clip(q, -neighbors.LIMIT, neighbors.LIMIT)


def isqrt(s):
    """Exact floor(sqrt(s)) of non-negative int64 values below 2**52."""
    r = np.floor(np.sqrt(s.astype(np.float64))).astype(np.int64)
    r -= (r * r > s)
    r += ((r + 1) * (r + 1) <= s)
    return r


def nearest(Q, items, k, chunk=256):
    """(indices, distances) of the k nearest ``items`` to each row of ``Q`` (both scaled), ordered by (distance,
    index), as arrays (rows x k)."""
    m = len(items)
    k = min(k, m)
    it = items.astype(np.int64)
    idx = np.empty((len(Q), k), dtype=np.int64)
    dist = np.empty((len(Q), k), dtype=np.int64)
    for a in range(0, len(Q), chunk):
        q = Q[a:a + chunk].astype(np.int64)
        d = isqrt(((q[:, None, :] - it[None, :, :]) ** 2).sum(axis=2))
        order = np.argsort(d * m + np.arange(m), axis=1)[:, :k]
        idx[a:a + chunk] = order
        dist[a:a + chunk] = np.take_along_axis(d, order, axis=1)
    return idx, dist


def predict(model, X):
    """Class indices of int16 feature rows ``X``: majority of the k nearest, ties to the lowest class."""
    idx, _ = nearest(scale(X, model["scaling"]), model["items"], model["k"])
    lab = model["labels"][idx]
    votes = np.zeros((len(X), model["n_classes"]), dtype=np.int64)
    for j in range(lab.shape[1]):
        np.add.at(votes, (np.arange(len(X)), lab[:, j]), 1)
    return np.argmax(votes, axis=1)  # the first maximum


def score(model, X):
    """Anomaly scores (distance to the k-th nearest stored example) of int16 feature rows ``X``."""
    _, dist = nearest(scale(X, model["scaling"]), model["items"], model["k"])
    return dist[:, -1]


# --- training ------------------------------------------------------------------------------------------------------

def select_features(X, y, n, max_corr=0.95):
    """Up to ``n`` input columns: ranked by ANOVA F against ``y`` (None: in order), skipping constant ones and
    those correlated above ``max_corr`` with one already chosen."""
    Xf = X.astype(np.float64)
    sd = Xf.std(axis=0)
    cols = [c for c in range(X.shape[1]) if sd[c] > 0]
    if y is not None and len(set(y.tolist())) > 1:
        import warnings

        from sklearn.feature_selection import f_classif

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            f, _ = f_classif(Xf[:, cols], y)
        f = np.nan_to_num(f, nan=-1.0)
        cols = [cols[i] for i in np.argsort(-f, kind="stable")]
    Z = (Xf - Xf.mean(axis=0)) / np.where(sd > 0, sd, 1)
    chosen = []
    for c in cols:
        if len(chosen) >= n:
            break
        if chosen and np.max(np.abs(Z[:, chosen].T @ Z[:, c]) / len(Z)) > max_corr:
            continue
        chosen.append(c)
    if not chosen:
        raise ValueError("every feature is constant in the training data")
    return chosen


def _summarise(Q, n, seed):
    """``Q`` itself if it has at most ``n`` rows, else ``n`` k-means centres, as int16-range ints."""
    if len(Q) <= n:
        return Q.astype(np.int64)
    from sklearn.cluster import KMeans

    c = KMeans(n_clusters=n, n_init=3, random_state=seed).fit(Q.astype(np.float64)).cluster_centers_
    return np.clip(np.round(c), -neighbors.LIMIT, neighbors.LIMIT).astype(np.int64)


def fit_knn(X, y, n_classes, k=3, per_class=32, features=24, seed=0):
    """A ``knn`` model (a dict) from int16 feature rows ``X`` and class indices ``y``."""
    scaling = fit_scaling(X, select_features(X, y, features))
    Q = scale(X, scaling)
    items, labels = [], []
    for c in range(n_classes):
        if (y == c).any():
            proto = _summarise(Q[y == c], per_class, seed)
            items.append(proto)
            labels += [c] * len(proto)
    items = np.concatenate(items)
    return {"kind": "knn", "k": int(min(k, len(items))), "scaling": scaling, "items": items,
            "labels": np.array(labels, dtype=np.int64), "n_classes": int(n_classes), "n_inputs": int(X.shape[1])}


def fit_anomaly(X, groups=None, k=1, items=64, features=32, quantile=0.99, seed=0):
    """An ``anomaly`` model from normal windows ``X`` (int16 rows), with its threshold from held-out scores.
    ``groups`` (one per row) keeps windows of one group out of the examples that score them."""
    scaling = fit_scaling(X, select_features(X, None, features))
    Q = scale(X, scaling)
    k = int(max(1, min(k, len(Q) - 1)))
    held = _held_out_scores(Q, groups, k, items, seed)
    threshold = int(math.ceil(float(np.quantile(held, quantile)))) if len(held) else 0
    ex = _summarise(Q, items, seed)
    return {"kind": "anomaly", "k": int(min(k, len(ex))), "scaling": scaling, "items": ex,
            "labels": np.zeros(len(ex), dtype=np.int64), "n_classes": 1, "n_inputs": int(X.shape[1]),
            "threshold": threshold, "quantile": quantile, "held_out_scores": held}


def _held_out_scores(Q, groups, k, items, seed):
    from sklearn.model_selection import GroupKFold, KFold

    if groups is not None and len(set(np.asarray(groups).tolist())) >= 2:
        n = min(5, len(set(np.asarray(groups).tolist())))
        splits = GroupKFold(n_splits=n).split(Q, groups=groups)
    else:  # one group: contiguous blocks (windows of one stretch overlap, so this is optimistic)
        splits = KFold(n_splits=min(5, len(Q))).split(Q)
    out = np.zeros(len(Q), dtype=np.int64)
    for tr, te in splits:
        ex = _summarise(Q[tr], items, seed)
        _, d = nearest(Q[te], ex, k)
        out[te] = d[:, -1]
    return out


# --- files ---------------------------------------------------------------------------------------------------------

def to_csv(model):
    """The model file's text (format in sensorbox.shared.neighbors)."""
    items = model["items"]
    lines = ["k,{}".format(model["k"]), "x,{}".format(model["n_inputs"]), "f,{}".format(items.shape[1]),
             "c,{}".format(model["n_classes"]), "m,{}".format(len(items))]
    if model["kind"] == "anomaly":
        lines.append("t,{}".format(model["threshold"]))
    lines += ["s,{},{},{},{}".format(*s) for s in model["scaling"]]
    lines += ["i,{},".format(int(c)) + ",".join(str(int(v)) for v in row) for c, row in zip(model["labels"], items)]
    return "\n".join(lines) + "\n"


def ram_bytes(model):
    """RAM the shared evaluator needs for ``model`` on a device (arrays plus overhead; as trees, a 64-bit bound)."""
    m, f, k = len(model["items"]), model["items"].shape[1], model["k"]
    return 2 * m * f + m + 9 * f + 4 * k + 2 * model["n_classes"] + model_fmt.OVERHEAD_BYTES


def export(model, out_dir, meta):
    """Write ``out_dir/model.csv`` and ``meta.json`` (descriptive fields from ``meta``; kind, counts, size, hash
    added here, and checked by loading the file with the shared evaluator). Returns the complete meta."""
    os.makedirs(out_dir, exist_ok=True)
    data = to_csv(model).encode()
    with open(os.path.join(out_dir, "model.csv"), "wb") as f:
        f.write(data)
    out = dict(meta)
    out.update({"format": model_fmt.FORMAT, "kind": model["kind"], "k": model["k"], "items": len(model["items"]),
                "inputs": [meta["features"][s[0]] for s in model["scaling"]], "csv_bytes": len(data),
                "csv_sha256": hashlib.sha256(data).hexdigest(), "ram_bytes": ram_bytes(model)})
    if model["kind"] == "anomaly":
        out["threshold"] = model["threshold"]
        out["quantile"] = model["quantile"]
    neighbors_csv.load(data.decode().splitlines(), (out["items"], len(out["inputs"]), out["k"]))
    with open(os.path.join(out_dir, "meta.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    return out


def load(model_dir):
    """(meta, shared ``Neighbors``) of an exported model: what a device runs."""
    from sensorbox.host import export as trees_export

    meta, data = trees_export.read(model_dir)
    try:
        nb = neighbors_csv.load(data.decode().splitlines(), (meta["items"], len(meta["inputs"]), meta["k"]))
    except (neighbors.NeighborsError, KeyError) as e:
        raise model_fmt.ModelError("{}: model.csv: {}".format(model_dir, e))
    return meta, nb


def device_predict(nb, X, progress=None):
    """Class indices (knn) from the shared evaluator, row by row, for int16 feature rows ``X``."""
    return _rows(nb.classify, X, progress)


def device_score(nb, X, progress=None):
    """Anomaly scores from the shared evaluator for int16 feature rows ``X``."""
    return _rows(nb.score, X, progress)


def _rows(fn, X, progress):
    import array

    x = array.array("h", bytes(2 * X.shape[1]))
    out = np.empty(len(X), dtype=np.int64)
    for i, row in enumerate(np.asarray(X, dtype=np.int16)):
        for j, v in enumerate(row.tolist()):
            x[j] = v
        out[i] = fn(x)
        if progress and (i + 1) % 200 == 0:
            progress(i + 1, len(X))
    if progress:
        progress(len(X), len(X))
    return out
