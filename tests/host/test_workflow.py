"""The data scientist's workflow: a public dataset a PyPI package ships (BasicMotions in sktime's wheel) through
`sensorbox import` -> `train --test` -> `evaluate` -> `model push` (to the real device app) with the documented
commands; honest evaluation (groups named per fold, what was dropped counted, model kinds on the same folds,
per-recording majority vote, chance warnings); the features table."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ADMIN_PASSWORD
from sensorbox.host import datasets, evaluate, train


def _cli(*args, timeout=300, env=None):
    return subprocess.run([sys.executable, "-m", "sensorbox.host.cli"] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)


def _slice_ts(src, dst, per_class):
    """The first ``per_class`` cases of each class of a .ts file (the header kept)."""
    seen = {}
    out = []
    for line in open(src):
        s = line.strip()
        if not s or s.startswith(("#", "@")):
            out.append(line)
            continue
        label = s.rsplit(":", 1)[1]
        seen[label] = seen.get(label, 0) + 1
        if seen[label] <= per_class:
            out.append(line)
    with open(dst, "w") as f:
        f.writelines(out)


@pytest.mark.slow
def test_basic_motions_import_train_evaluate_push_with_the_documented_commands(tmp_path, device_factory):
    # BasicMotions (sktime's wheel, BSD-3-Clause): watch accelerometer + gyroscope at 10 Hz, m/s² and rad/s,
    # 4 classes; a slice of 4 training and 3 test recordings per class, through the commands docs/datasets.md gives
    parts = {}
    for part, n in (("TRAIN", 4), ("TEST", 3)):
        src = datasets.package_data("sktime", "datasets/data/BasicMotions/BasicMotions_{}.ts".format(part))
        parts[part] = tmp_path / "BasicMotions_{}.ts".format(part)
        _slice_ts(src, parts[part], n)
        r = _cli("import", parts[part], "--out", tmp_path / part.lower(), "--rate", "10", "--units", "m/s2",
                 "--gyro-units", "rad/s")
        assert r.returncode == 0, r.stderr
        assert "{} recordings".format(4 * n) in r.stdout and "gravity seems removed" in r.stderr
    r = _cli("train", tmp_path / "train", "--test", tmp_path / "test", "--compare", "knn", "--trees", "10",
             "--out", tmp_path / "model", "--quiet")
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "model" / "report.json").read_text())
    assert rep["classes"] == ["Badminton", "Running", "Standing", "Walking"]
    assert set(rep["kinds"]) == {"forest", "knn"}
    assert all(len(v["fold_accuracy"]) == 5 for v in rep["kinds"].values())
    # every group is tested in exactly one fold, and the report names them
    tested = [g for f in rep["folds"] for g in f["test_groups"]]
    assert sorted(tested) == sorted("BasicMotions_TRAIN#{}".format(i) for i in range(16))
    assert "BasicMotions_TRAIN#0" in r.stdout and "model kinds on the same folds" in r.stdout
    t = rep["test"]
    assert t["windows"] == 12 * 6 and t["recordings"] == 12 and set(t["kinds"]) == {"forest", "knn"}
    assert t["window"]["accuracy"] > 0.8 and t["recording"]["accuracy"] > 0.8  # 4 classes: chance 0.25
    assert "held-out test data" in (tmp_path / "model" / "report.txt").read_text()
    r = _cli("evaluate", tmp_path / "model", tmp_path / "test", "--quiet")
    assert r.returncode == 0, r.stderr
    ev = json.loads((tmp_path / "model" / "evaluation" / "evaluation.json").read_text())
    assert ev["window"]["accuracy"] == t["window"]["accuracy"] and ev["recording"]["n"] == 12
    assert os.path.getsize(tmp_path / "model" / "evaluation" / "confusion.png") > 0
    assert "per recording: accuracy" in r.stdout
    # ... and the last documented step: push it to a device (the real app on the unix port), which then classifies
    # with it; a 6-channel model of the same data is refused, saying to turn on accel.gyro (tests/host/test_gyro.py: with it on, one runs)
    dev = device_factory()
    env = dict(os.environ, SENSORBOX_PASSWORD=ADMIN_PASSWORD)
    r = _cli("model", "push", dev.url, tmp_path / "model", env=env)
    assert r.returncode == 0, r.stderr + dev.output()[-3000:]
    meta = json.loads((tmp_path / "model" / "meta.json").read_text())
    assert "it runs now" in r.stdout and "active model: uploaded " + meta["csv_sha256"][:16] in r.stdout
    a = _classifying_with(dev, meta["csv_sha256"][:16])
    assert a["reason"] is None and a["prediction"]["class"] in rep["classes"] + ["unknown"], a
    r = _cli("train", tmp_path / "train", "--channels", "6", "--features", "accel,gm", "--trees", "5",
             "--out", tmp_path / "model6", "--quiet")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "model6" / "meta.json").read_text())["channels"] == 6
    r = _cli("model", "push", dev.url, tmp_path / "model6", env=env)
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    assert "HTTP 400 model needs 6 channels, the sensor delivers 3: the gyroscope is off (turn on " \
           "accel.gyro" in r.stderr, r.stderr
    assert "restart the device" in r.stderr and "--channels 3" in r.stderr, r.stderr
    a = _classifying_with(dev, meta["csv_sha256"][:16])  # the pushed model keeps running
    assert dev.status()["task_restarts"] == 0


def _classifying_with(dev, model, timeout=60):
    """The device's analysis status once it has classified two windows more with ``model`` (a sha256 prefix)."""
    t0 = time.time()
    seen = None
    while time.time() - t0 < timeout:
        a = dev.status()["analysis"]
        if a and a["model"] == model and a["prediction"]:
            if seen is None:
                seen = a["windows"]
            elif a["windows"] >= seen + 2:
                return a
        time.sleep(0.3)
    raise AssertionError("not classifying with {} within {} s: {}\n{}".format(model, timeout, dev.status()["analysis"],
                                                                            dev.output()[-3000:]))


def _imported(folder, lengths, labels, groups):
    """A dataset folder like `sensorbox import` writes, cut from the excerpt's frames."""
    src = np.load(os.path.join(train.REPO, "data", "watch_excerpt.npy"))[:, :3]
    os.makedirs(folder, exist_ok=True)
    segs, start = [], 0
    for n, lab, g in zip(lengths, labels, groups):
        segs.append({"start": start, "frames": n, "label": lab, "group": g})
        start += n
    np.save(os.path.join(folder, "rec.npy"), np.ascontiguousarray(src[:start]))
    with open(os.path.join(folder, "rec.json"), "w") as f:
        json.dump({"format": 1, "rate_hz": 50, "columns": ["ax", "ay", "az"], "segments": segs}, f)


def test_report_counts_what_was_dropped_and_names_the_folds(tmp_path):
    # six 400-frame recordings of two classes in three groups, plus two too short for a window (one of them the
    # only "jump" recording): counted, and the class that lost everything is named
    lengths = [400] * 6 + [100, 120]
    labels = ["walk", "rest"] * 3 + ["walk", "jump"]
    groups = ["g1", "g1", "g2", "g2", "g3", "g3", "g3", "g1"]
    _imported(str(tmp_path / "d"), lengths, labels, groups)
    warned = []
    rep = train.train(str(tmp_path / "d"), str(tmp_path / "m"), opts={"trees": 5}, quiet=True, plot=False,
                      compare=["knn"], warn=warned.append)
    d = rep["data"]["dropped"]
    assert d["recordings"] == 2 and d["frames"] == 220 and d["per_class"] == {"walk": 1, "jump": 1}
    assert d["classes_lost"] == ["jump"] and rep["classes"] == ["rest", "walk"]
    assert any("2 recordings (220 frames) are shorter than one 128-frame window" in w and "no window left: jump" in w
               for w in warned)
    assert [f["test_groups"] for f in rep["folds"]] == [["g1"], ["g2"], ["g3"]] or \
        sorted(g for f in rep["folds"] for g in f["test_groups"]) == ["g1", "g2", "g3"]
    assert all(set(f["accuracy"]) == {"forest", "knn"} for f in rep["folds"])
    assert "shorter than a window left out" in (tmp_path / "m" / "report.txt").read_text()


def test_evaluate_votes_per_recording_and_says_what_it_left_out(tmp_path):
    assert evaluate.majority(np.array([1, 0, 0, 1, 2]), np.array([0, 0, 0, 0, 1]), 3) == {0: 0, 1: 2}  # tie: 0
    m = evaluate.metrics(np.array([0, 0, 0, 1, 1, 1]), np.array([0, 1, 0, 1, 1, 0]), ["a", "b"],
                         np.array([0, 0, 0, 1, 1, 1]))
    assert m["window"]["accuracy"] == 4 / 6 and m["recording"]["accuracy"] == 1.0 and m["recording"]["n"] == 2
    # a model trained on walk/rest, evaluated on data holding a label it does not know
    _imported(str(tmp_path / "tr"), [400] * 4, ["walk", "rest"] * 2, ["g1", "g1", "g2", "g2"])
    train.train(str(tmp_path / "tr"), str(tmp_path / "m"), opts={"trees": 5}, quiet=True, plot=False,
                warn=lambda w: None)
    _imported(str(tmp_path / "te"), [400, 400, 300], ["walk", "rest", "swim"], ["x", "y", "z"])
    warned = []
    ev = evaluate.evaluate(str(tmp_path / "m"), str(tmp_path / "te"), warn=warned.append)
    assert ev["window"]["n"] == 10 and ev["recording"]["n"] == 2
    assert any("labels the model does not know (swim)" in w for w in warned)
    # another rate: the error says how to import at the model's rate
    side = json.loads((tmp_path / "te" / "rec.json").read_text())
    side["rate_hz"] = 100
    (tmp_path / "te" / "rec.json").write_text(json.dumps(side))
    with pytest.raises(train.DataError, match="trained at 50 Hz.*--to-rate 50"):
        evaluate.evaluate(str(tmp_path / "m"), str(tmp_path / "te"))


def test_features_table_has_time_label_group_and_recording(tmp_path):
    _imported(str(tmp_path / "d"), [400, 300], ["walk", "rest"], ["g1", "g2"])
    side = json.loads((tmp_path / "d" / "rec.json").read_text())
    side["segments"][0]["t0_ms"] = 1_700_000_000_000
    (tmp_path / "d" / "rec.json").write_text(json.dumps(side))
    df = datasets.features_frame(str(tmp_path / "d"))
    from sensorbox.shared import features

    assert list(df.columns[:5]) == ["recording", "group", "label", "start_s", "time"]
    assert list(df.columns[5:]) == list(features.names(3)) and df.shape[0] == 5 + 3
    assert (df.dtypes[5:] == np.int16).all() and df["start_s"].tolist()[:2] == [0, 64 / 50]
    assert df["time"].iloc[1].value == (1_700_000_000_000 + 1280) * 1_000_000 and df["time"].iloc[-1] is pd_nat()
    assert df["recording"].tolist() == ["rec#0"] * 5 + ["rec#1"] * 3 and df["group"].tolist()[-1] == "g2"
    X, y, g = train.windows(train.dataset(str(tmp_path / "d"))[0], 3, 128, 64)
    assert (df.iloc[:, 5:].to_numpy() == X).all() and (df["label"].to_numpy() == y).all()
    r = _cli("features", tmp_path / "d", "--out", tmp_path / "f.parquet", "--quiet")
    assert r.returncode == 0, r.stderr
    import pandas as pd

    back = pd.read_parquet(tmp_path / "f.parquet")
    assert back.shape == df.shape and (back["ax_mean"].to_numpy() == df["ax_mean"].to_numpy()).all()
    r = _cli("features", "--help")
    assert "examples:" in r.stdout and "docs/datasets.md" in r.stdout


def pd_nat():
    import pandas as pd

    return pd.NaT


def test_anomaly_model_from_normal_labels_only(tmp_path):
    # a machine's vibration: "normal" runs (1.5 Hz, 0.3 g, 6 sessions) and a "fault" (4 Hz, 1 g, 2 sessions);
    # trained on normal windows only: held-out normal windows mostly pass, the fault is flagged, on the same
    # folds; evaluate says the same of the model as exported
    rng = np.random.default_rng(5)
    parts, segs = [], []
    for i in range(8):
        f, amp, lab = (1.5, 0.3, "normal") if i < 6 else (4.0, 1.0, "fault")
        t = np.arange(640) / 50
        x = np.stack([amp * np.sin(2 * np.pi * f * t + i), 0.05 * rng.normal(size=640),
                      1 + 0.05 * rng.normal(size=640)], axis=1)
        segs.append({"start": 640 * i, "frames": 640, "label": lab, "group": "run{}".format(i)})
        parts.append(np.round(x * 4096).astype(np.int16))
    os.makedirs(tmp_path / "d")
    np.save(tmp_path / "d" / "rec.npy", np.concatenate(parts))
    (tmp_path / "d" / "rec.json").write_text(json.dumps({"rate_hz": 50, "segments": segs}))
    rep = train.train(str(tmp_path / "d"), str(tmp_path / "m"), kind="anomaly", normal=["normal"], folds=4,
                      quiet=True, plot=False, warn=lambda w: None, knn_opts={"items": 16, "features": 12})
    an = rep["anomaly"]
    assert rep["kind"] == "anomaly" and rep["normal"] == ["normal"] and len(rep["folds"]) == 4
    assert an["false_alarm_rate"] < 0.2 and an["detection"]["fault"] > 0.9 and an["balanced_accuracy"] > 0.85
    m = json.loads((tmp_path / "m" / "meta.json").read_text())
    assert m["kind"] == "anomaly" and m["classes"] == ["normal"] and m["normal"] == ["normal"] and m["items"] == 16
    assert rep["agreement"]["device_vs_numpy"] == 1.0
    ev = evaluate.evaluate(str(tmp_path / "m"), str(tmp_path / "d"), warn=lambda w: None)
    assert ev["anomaly"]["per_label"]["normal"]["normal"] and ev["anomaly"]["threshold"] == m["threshold"]
    assert ev["anomaly"]["per_label"]["fault"]["flagged"] > 0.9
    assert os.path.getsize(tmp_path / "m" / "evaluation" / "scores.png") > 0
