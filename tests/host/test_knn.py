"""k-nearest-neighbour models (host/knn.py): the numpy evaluation equals the shared evaluator (what devices and the
browser run) exactly, also on the MicroPython unix port; the classifier equals emlearn's C ``eml_neighbors`` wherever
no two distances tie at the k-th place; the anomaly threshold comes from held-out normal windows."""

import os
import subprocess

import pytest

import numpy as np

from sensorbox.host import bundle, export, knn
from sensorbox.shared import neighbors, neighbors_csv

HERE = os.path.dirname(os.path.abspath(__file__))


def blobs(n=600, n_features=30, classes=4, seed=0):
    """int16 feature rows: class centres far apart on a few columns, the rest noise of very different scales."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    scales = rng.choice([3, 40, 900, 6000], n_features)
    X = rng.normal(0, 1, (n, n_features)) * scales
    X[:, :4] += (y[:, None] * np.array([2.5, -1.5, 1.0, 3.0])) * scales[:4]
    X[:, 7] = 5  # a constant column: never chosen
    X[:, 8] = X[:, 0] * 1.001  # a near-duplicate of column 0: skipped
    return np.clip(np.round(X), -32768, 32767).astype(np.int16), y


def meta_for(n_inputs, classes):
    return {"feature_version": 1, "features": ["f{}".format(i) for i in range(n_inputs)], "channels": 3,
            "window": 128, "hop": 64, "rate_hz": 50, "classes": classes}


def test_numpy_equals_shared_evaluator_and_emlearn_c(tmp_path):
    X, y = blobs()
    model = knn.fit_knn(X[:400], y[:400], 4, k=3, per_class=20, features=10)
    cols = [s[0] for s in model["scaling"]]
    assert 7 not in cols and not (0 in cols and 8 in cols) and len(cols) == 10
    assert len(model["items"]) == 80 and np.abs(model["items"]).max() <= neighbors.LIMIT
    meta = knn.export(model, str(tmp_path / "m"), meta_for(30, ["a", "b", "c", "d"]))
    assert meta["kind"] == "knn" and meta["items"] == 80 and meta["inputs"] == ["f{}".format(c) for c in cols]
    _, nb = knn.load(str(tmp_path / "m"))
    fast = knn.predict(model, X[400:])
    dev = knn.device_predict(nb, X[400:])
    assert (fast == dev).all()
    assert (fast == y[400:]).mean() > 0.8
    # emlearn's C code on the scaled inputs and the same examples; its quicksort orders equal distances
    # differently, so compare where the k-th and (k+1)-th distances differ
    from sklearn.neighbors import KNeighborsClassifier

    emlearn = export._emlearn()  # (compiling in this process's own directory)
    Q = knn.scale(X[400:], model["scaling"])
    est = KNeighborsClassifier(n_neighbors=3, algorithm="brute").fit(model["items"], model["labels"])
    c_pred = np.asarray(emlearn.convert(est, method="loadable").predict(Q.astype(np.float32)))
    _, d = knn.nearest(Q, model["items"], 4)
    clear = d[:, 2] != d[:, 3]
    assert clear.mean() > 0.8
    assert (c_pred[clear] == fast[clear]).all(), int((c_pred[clear] != fast[clear]).sum())


def test_a_class_with_few_windows_keeps_them_all():
    # few-shot ("teach by example"): a class with at most per_class windows keeps every one of them as an example,
    # exactly (scaled); a class with more is summarised by per_class k-means centres; the examples taught are
    # recognised again
    X, y = blobs(n=900, seed=2)
    few = np.flatnonzero(y == 3)[:5]
    edge = np.flatnonzero(y == 2)[:20]
    keep = np.concatenate([np.flatnonzero(y < 2), edge, few])
    X, y = X[keep], y[keep]
    model = knn.fit_knn(X, y, 4, k=3, per_class=20, features=10)
    labels = model["labels"].tolist()
    assert [labels.count(c) for c in range(4)] == [20, 20, 20, 5]
    Q = knn.scale(X, model["scaling"])
    for c, rows in ((3, Q[y == 3]), (2, Q[y == 2])):  # kept as they are, in order
        assert (model["items"][model["labels"] == c] == rows).all()
    big = model["items"][model["labels"] == 0]
    assert len(big) == 20 < int((y == 0).sum())
    assert not all((Q[y == 0] == r).all(axis=1).any() for r in big)  # centres, not a pick of windows
    idx, dist = knn.nearest(Q[y == 3], model["items"], 1)  # each taught window is its own nearest example
    assert (dist == 0).all() and (model["labels"][idx[:, 0]] == 3).all()
    one = dict(model, k=1)  # and, with k 1, recognised as its class by the shared evaluator (what a device runs)
    nb = neighbors_csv.load(knn.to_csv(one).splitlines())
    assert (knn.device_predict(nb, X[y == 3]) == 3).all() and (knn.predict(one, X[y == 3]) == 3).all()


def test_ties_are_broken_by_example_index():
    items = np.array([[0, 0], [3, 4], [-3, -4], [0, 5], [4, 3]])
    model = {"scaling": [(0, 0, 8192, 13), (1, 0, 8192, 13)], "items": items, "labels": np.array([0, 1, 2, 2, 1]),
             "k": 3, "n_classes": 3, "kind": "knn", "n_inputs": 2}
    idx, dist = knn.nearest(knn.scale(np.array([[0, 0]]), model["scaling"]), items, 4)
    assert idx.tolist() == [[0, 1, 2, 3]] and dist.tolist() == [[0, 5, 5, 5]]
    assert knn.predict(model, np.array([[0, 0]])).tolist() == [0]  # votes 1, 1, 1: the lowest class
    nb = neighbors_csv.load(knn.to_csv(model).splitlines())
    assert knn.device_predict(nb, np.array([[0, 0]], dtype=np.int16)).tolist() == [0]
    assert list(nb.near) == [0, 1, 2]


def test_anomaly_threshold_from_held_out_normal_windows(tmp_path):
    X, y = blobs(n=900, seed=1)
    normal = y < 3
    groups = np.arange(len(X)) % 6
    model = knn.fit_anomaly(X[normal], groups[normal], k=1, items=40, features=12, quantile=0.95)
    held = model["held_out_scores"]
    assert len(held) == normal.sum() and abs((held > model["threshold"]).mean() - 0.05) < 0.02
    meta = knn.export(model, str(tmp_path / "a"), dict(meta_for(30, ["normal"]), normal=["0", "1", "2"]))
    assert meta["kind"] == "anomaly" and meta["threshold"] == model["threshold"]
    _, nb = knn.load(str(tmp_path / "a"))
    assert nb.threshold == model["threshold"]
    s = knn.score(model, X)
    assert (knn.device_score(nb, X) == s).all()
    # windows of the class never seen score higher than normal ones
    assert np.median(s[~normal]) > np.quantile(s[normal], 0.9)


def test_micropython_gives_the_same_answers(tmp_path):
    # the exported file, evaluated by the shared module compiled to .mpy on the unix port
    X, y = blobs(n=300, seed=2)
    model = knn.fit_knn(X, y, 4, k=5, per_class=12, features=16)
    knn.export(model, str(tmp_path / "m"), meta_for(30, list("abcd")))
    Xq = X[:120]
    (tmp_path / "X.csv").write_text("\n".join(",".join(str(int(v)) for v in row) for row in Xq))
    script = tmp_path / "run.py"
    script.write_text(
        "import array, sys\n"
        "from sensorbox.shared import neighbors_csv\n"
        "m = neighbors_csv.load(open(sys.argv[1]))\n"
        "for line in open(sys.argv[2]):\n"
        "    x = array.array('h', [int(v) for v in line.split(',')])\n"
        "    print(m.classify(x), m.score(x))\n")
    # neighbors_csv is host-only (no board gets it yet): the tests' bundle carries it (built at the session's start;
    # built again here only if a source changed since)
    out = bundle.build("unix", out_dir=os.path.join(bundle.BUILD, "unix-tests"), host_only=True)
    res = subprocess.run([bundle.micropython_path(), "-X", "heapsize=96wK", str(script), str(tmp_path / "m" /
                          "model.csv"), str(tmp_path / "X.csv")], env=bundle.micropython_env(out),
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    got = np.array([[int(v) for v in line.split()] for line in res.stdout.splitlines()])
    assert (got[:, 0] == knn.predict(model, Xq)).all()
    assert (got[:, 1] == knn.score(model, Xq)).all()


_STEP_SCRIPT = """
import array, asyncio, sys
from sensorbox.device.analysis import models, pipeline


class Dev:
    def __init__(self, data):
        self.platform = type("P", (), {"data_dir": data, "www_dir": data + "/www"})()
        self.config = type("C", (), {"get": lambda self, k: {"ml.model_max_kb": 64, "ml.window": 128}[k]})()
        ring = type("R", (), {"channels": 3})()
        self.sensors = {"accel": type("S", (), {"ring": ring})()}
        self.store = type("St", (), {"class_ids": lambda self, c: list(range(len(c)))})()
        self.log = type("L", (), {"info": lambda self, *a: None, "error": lambda self, *a: print("ERROR", a)})()
        self.ml = pipeline.ModelSlot()


async def main():
    d = Dev(sys.argv[1])
    m = await models.boot(d)
    t = m.trees
    print("model", m.info["kind"], getattr(t, "c", None) is not None, m.step is not None)
    hist = array.array("H", bytes(2 * len(m.classes)))
    x = array.array("h", bytes(2 * 86))
    for line in open(sys.argv[2]):
        v = line.split(",")
        for j in range(len(v)):
            x[j] = int(v[j])
        best, conf = pipeline.classify(m, x, hist, 0, 1, 0)  # one window: no smoothing, never unknown
        print(best, conf, t.dist[t.found - 1] if m.info["kind"] == "anomaly" else "")


asyncio.run(main())
"""


@pytest.mark.slow
def test_the_devices_step_equals_the_host_on_real_windows(tmp_path):
    # issue 17: the pipeline's classification step on MicroPython (models.boot loading the files as a device does,
    # pipeline.classify: knn voting as trees do, anomaly through its step, knn and a tree model on a part of the
    # features numbered in the whole vector; emlearn_neighbors' C code when SENSORBOX_NATMODS has it) against
    # CPython (sensorbox evaluate
    # and the shared evaluators) on every window of the excerpt: the same class, confidence and anomaly score
    import shutil

    from sensorbox.host import evaluate, train

    dirs = {"knn": tmp_path / "knn", "anomaly": tmp_path / "anomaly", "part": tmp_path / "part"}
    train.train("excerpt", str(dirs["knn"]), kind="knn", features="time,grav", quiet=True, plot=False)
    train.train("excerpt", str(dirs["anomaly"]), kind="anomaly", normal=["ROW"], quiet=True, plot=False)
    train.train("excerpt", str(dirs["part"]), features="freq,grav", quiet=True, plot=False, opts={"trees": 5})
    recs, _, _ = train.dataset("excerpt")
    X = train.window_table(recs, 3, 128, 64)["X"]
    assert X.shape[1] == 86 and len(X) > 300
    (tmp_path / "X.csv").write_text("\n".join(",".join(str(int(v)) for v in row) for row in X))
    (tmp_path / "step.py").write_text(_STEP_SCRIPT)
    out = bundle.build("unix", out_dir=os.path.join(bundle.BUILD, "unix-tests"), host_only=True)
    for name, d in dirs.items():
        meta, _ = export.read(str(d))
        cols = train.feature_columns(meta)
        assert cols is not None or name == "anomaly"
        data = tmp_path / ("data-" + name)
        shutil.copytree(d, data / "models" / "active", ignore=shutil.ignore_patterns("*.png", "report*", "test"))
        res = subprocess.run([bundle.micropython_path(), "-X", "heapsize=96wK", str(tmp_path / "step.py"),
                              str(data), str(tmp_path / "X.csv")], env=bundle.micropython_env(out),
                             capture_output=True, text=True, timeout=300)
        assert res.returncode == 0 and "ERROR" not in res.stdout, res.stdout[-2000:] + res.stderr
        lines = res.stdout.splitlines()
        head = lines[0].split()
        assert head[1] == meta["kind"] and head[3] == str(name == "anomaly"), head
        if name != "part" and bundle.natmods_dir() and len(meta["classes"]) <= 10:
            assert head[2] == "True", head  # the examples in emlearn_neighbors
        got = [ln.split(" ") for ln in lines[1:]]
        assert len(got) == len(X)
        best = [int(g[0]) for g in got]
        conf = [int(g[1]) for g in got]
        Xm = X if cols is None else X[:, cols]
        ev = evaluate.evaluate(str(d), "excerpt", out_dir="", quiet=True)
        if name == "anomaly":
            _, nb = knn.load(str(d))
            score = [int(g[2]) for g in got]
            assert score == ev["scores"] == knn.device_score(nb, Xm).tolist()
            h = nb.threshold
            assert best == [int(s > h) for s in score]
            assert conf == [min(s * 1000 // h, 32767) if h > 0 else (32767 if s > 0 else 0) for s in score]
            assert 0 < sum(best) < len(best)  # windows of both kinds
            continue
        assert best == ev["predictions"]
        if name == "knn":
            _, nb = knn.load(str(d))
            want = []
            for row in Xm:
                c = nb.classify(np.asarray(row, dtype=np.int16).tolist())
                want.append(nb.votes()[c] * 1000 // nb.k)
        else:
            _, t = export.load_trees(str(d))
            want = []
            for row in Xm:
                c = t.classify(np.asarray(row, dtype=np.int16).tolist())
                want.append(t.votes()[c] * 1000 // t.n_trees)
        assert conf == want
        assert len(set(best)) >= 4  # several classes among the answers
