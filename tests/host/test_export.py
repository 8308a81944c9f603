"""Model export and agreement: the exported model, run by the device's code on the MicroPython unix port (plain and
viper kernels) and by the shared code on CPython, predicts exactly what emlearn's real C code predicts
(``emlearn.convert(est, method='loadable')``), and what scikit-learn's trees say under hard voting."""

import copy
import json
import os
import subprocess

import numpy as np
import pytest
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

from sensorbox.host import bundle, export
from sensorbox.shared import model as model_fmt

HERE = os.path.dirname(os.path.abspath(__file__))


def synthetic(n=1500, seed=0):
    """int16 features: some low-cardinality integers (where threshold truncation bites), some wide-range."""
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.integers(0, 4, n), rng.integers(-3, 3, n), rng.integers(-2000, 2000, n),
                         rng.normal(0, 3000, n).clip(-32768, 32767), rng.integers(-32768, 32767, n)]).astype(np.int16)
    y = (X[:, 0] * 2 + (X[:, 1] > 0) + (X[:, 2] > 300) + (X[:, 3] > X[:, 2])) % 5
    return X, y


def meta_for(n_features, n_classes):
    return {"feature_version": 1, "features": ["f{}".format(i) for i in range(n_features)], "channels": 3,
            "window": 128, "hop": 64, "rate_hz": 50, "classes": ["c{}".format(i) for i in range(n_classes)],
            "scaling": None, "training": {}, "metrics": {}}


def run_micropython(model_dir, X, tmp_path):
    from sensorbox.shared import npy

    x_path = str(tmp_path / "X.npy")
    with open(x_path, "wb") as f:
        f.write(npy.header("<i2", X.shape))
        f.write(np.ascontiguousarray(X, dtype="<i2").tobytes())
    out = bundle.build("unix")
    res = subprocess.run([bundle.micropython_path(), "-X", "heapsize=1024wK", os.path.join(HERE, "mp_predict.py"),
                          str(model_dir), x_path], env=bundle.micropython_env(out), capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    got = {}
    for line in res.stdout.splitlines():
        name, _, rest = line.partition(" ")
        got[name] = np.array([int(v) for v in rest.split()])
    return got


@pytest.mark.parametrize("kind", [RandomForestClassifier, ExtraTreesClassifier])
def test_micropython_agrees_with_emlearn_c_exactly(kind, tmp_path):
    X, y = synthetic()
    est = kind(n_estimators=8, max_depth=7, random_state=1).fit(X[:1000], y[:1000])
    meta = export.export(est, str(tmp_path / "m"), meta_for(X.shape[1], 5))
    X_test = X[1000:]
    c_pred = np.asarray(export.convert(est).predict(X_test.astype(np.float32)))
    got = run_micropython(tmp_path / "m", X_test, tmp_path)
    assert set(got) >= {"plain", "viper"}
    for name in ("plain", "viper"):
        assert (got[name] == c_pred).all(), (name, (got[name] != c_pred).sum())
    # the same on CPython with the shared evaluator, and scikit-learn's trees under hard voting
    _, t = export.load_trees(str(tmp_path / "m"))
    assert (export.device_predict(t, X_test) == c_pred).all()
    assert (export.hard_vote_predict(est, X_test) == c_pred).all()
    # RAM estimate in meta covers what MicroPython really allocated (64-bit port: an upper bound for an ESP32)
    assert got["heap"][0] <= meta["ram_bytes"], (got["heap"], meta["ram_bytes"])
    assert len(c_pred) == 500 and len(set(c_pred)) == 5


def test_emlearn_c_code_compiles_in_a_directory_of_the_process_own(tmp_path, monkeypatch):
    # emlearn compiles into ./tmp/<fixed name>: processes working in one directory (trainings, parallel tests)
    # overwrote each other's program and predicted with another's model
    monkeypatch.chdir(tmp_path)
    X, y = synthetic()
    est = RandomForestClassifier(n_estimators=2, max_depth=3, random_state=0).fit(X[:300], y[:300])
    c_pred = export.convert(est).predict(X[300:320].astype(np.float32))
    assert list(c_pred) == list(export.hard_vote_predict(est, X[300:320]))
    assert os.listdir(tmp_path) == []


def test_threshold_fix_is_what_makes_integer_features_agree():
    X, y = synthetic(seed=3)
    est = RandomForestClassifier(n_estimators=8, max_depth=6, random_state=2).fit(X[:1000], y[:1000])
    want = export.hard_vote_predict(est, X[1000:])  # scikit-learn's own splits (x <= t), voted like the device
    emlearn = export._emlearn()  # (compiling in this process's own directory)
    naive_c = np.asarray(emlearn.convert(copy.deepcopy(est), method="loadable").predict(X[1000:].astype(np.float32)))
    fixed_c = np.asarray(export.convert(est).predict(X[1000:].astype(np.float32)))
    assert (fixed_c == want).all()
    assert (naive_c != want).mean() > 0.02  # truncation alone gets low-cardinality splits wrong
    # hard vs soft voting can differ; the device is the hard vote
    assert (est.predict(X[1000:]) == want).mean() > 0.9


def test_meta_and_csv_agree_and_validate(tmp_path):
    X, y = synthetic()
    est = RandomForestClassifier(n_estimators=4, max_depth=5, random_state=0).fit(X, y)
    meta = export.export(est, str(tmp_path), meta_for(5, 5))
    on_disk = json.load(open(tmp_path / "meta.json"))
    assert on_disk == meta
    assert meta["csv_bytes"] == os.path.getsize(tmp_path / "model.csv")
    assert meta["nodes"] == sum(e.tree_.node_count - e.tree_.n_leaves for e in est.estimators_)
    names = meta["features"]
    model_fmt.check_meta(meta, 1, names, channels=3, window=128, max_bytes=64 * 1024)

    def reason(m, **kw):
        with pytest.raises(model_fmt.ModelError) as e:
            args = dict(feature_version=1, feature_names=names)
            args.update(kw)
            model_fmt.check_meta(m, **args)
        return e.value.reason

    assert "feature version 1" in reason(meta, feature_version=2)
    # a model may take a part of the device's features, in their order: then their positions
    assert model_fmt.check_meta(meta, 1, names) is None
    cols, n = model_fmt.check_meta(meta, 1, ["x"] + names[:2] + ["g"] + names[2:])
    assert list(cols) == [1, 2, 4, 5, 6] and n == 7
    assert "feature 2 is f2 in the model: not one of the 5 features" in reason(
        meta, feature_names=names[:2] + ["g"] + names[3:])
    assert "feature 2 is f2" in reason(meta, feature_names=[names[0]] + names[2:] + [names[1]])  # order
    assert "needs 3 channels, the sensor delivers 1" in reason(meta, channels=1)
    # a 3-channel model on a sensor with the gyroscope (accel.gyro): its part of the 6 channels' features
    assert model_fmt.check_meta(meta, 1, names, channels=6) is None
    assert "bytes of RAM" in reason(meta, max_bytes=100)
    assert "format" in reason(dict(meta, format=9))
    assert "nodes missing" in reason({k: v for k, v in meta.items() if k != "nodes"})
    # as many classes as emlearn's trees take (n_classes is an int8), and not one more
    model_fmt.check_meta(dict(meta, classes=["c{}".format(i) for i in range(127)]), 1, names)
    assert "2..127" in reason(dict(meta, classes=["c{}".format(i) for i in range(128)]))
    # display names and descriptions of the classes are optional, one short text per class
    n = len(meta["classes"])
    model_fmt.check_meta(dict(meta, class_names=["c"] * n, class_descriptions=["d" * 200] * n), 1, names)
    assert "class_names must list one text of at most 40" in reason(dict(meta, class_names=["c"] * (n + 1)))
    assert "class_names" in reason(dict(meta, class_names=["c" * 41] * n))
    assert "class_descriptions" in reason(dict(meta, class_descriptions=[1] * n))
    # a CSV cut short is refused with a reason
    from sensorbox.shared import trees

    lines = open(tmp_path / "model.csv").read().splitlines()
    for cut in (len(lines) // 2, len(lines) - 1):
        with pytest.raises(model_fmt.ModelError) as e:
            model_fmt.load(lines[:cut], meta, trees.Trees(meta["trees"], meta["nodes"], meta["leaves"]))
        assert "model.csv" in e.value.reason
