"""k-nearest-neighbour models (host/knn.py): the numpy evaluation equals the shared evaluator (what devices and the
browser run) exactly, also on the MicroPython unix port; the classifier equals emlearn's C ``eml_neighbors`` wherever
no two distances tie at the k-th place; the anomaly threshold comes from held-out normal windows."""

import os
import subprocess

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
