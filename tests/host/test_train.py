"""`sensorbox train` on the bundled excerpt: dataset from labelled recordings via the shared feature code, grouped
CV, export, and a report whose numbers hang together; errors that say what to do. On folders written by
`sensorbox pull`: windows cut by the labels and by gaps, grouped by label range; and end to end against the real
simulated device (label, pull, train, push, classify)."""

import json
import os
import subprocess
import sys

import pytest

from sensorbox.host import train
from sensorbox.shared import features, model


def test_train_excerpt_writes_model_and_report(tmp_path):
    out = str(tmp_path / "m")
    rep = train.train("excerpt", out, quiet=True, opts={"trees": 5, "max_leaf_nodes": 16})
    for f in ("model.csv", "meta.json", "report.json", "report.txt", "confusion.png"):
        assert os.path.getsize(os.path.join(out, f)) > 0, f
    meta = json.load(open(os.path.join(out, "meta.json")))
    model.check_meta(meta, features.FEATURE_VERSION, list(features.names(3)), 3, 128, 16 * 1024)
    assert meta["classes"] == list(train.WATCH_LABELS) and meta["training"]["subjects"] == 2
    # what the codes mean, for the UI
    assert meta["class_names"][:3] == ["Pendulum", "Abduction", "Forward elevation"]
    assert len(meta["class_descriptions"]) == 7 and all(meta["class_descriptions"])
    assert rep["agreement"]["device_vs_emlearn_c"] == 1.0
    assert rep["agreement"]["device_vs_sklearn_hard_vote"] == 1.0
    cm = rep["confusion_matrix"]
    assert sum(map(sum, cm)) == meta["training"]["windows"] == rep["agreement"]["windows"]
    assert len(rep["fold_accuracy"]) == 2  # 2 subjects: at most 2 grouped folds
    assert abs(sum(cm[i][i] for i in range(7)) / sum(map(sum, cm)) - sum(rep["fold_accuracy"]) / 2) < 0.1
    assert "confusion matrix" in open(os.path.join(out, "report.txt")).read()


def test_cli_errors_say_what_to_do(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "sensorbox.host.cli"] + list(args), capture_output=True,
                              text=True, timeout=120)

    r = run("train", "nowhere.npy", "--out", str(tmp_path))
    assert r.returncode != 0 and "DATA must be" in r.stderr
    r = run("train", "excerpt", "--channels", "6", "--out", str(tmp_path), "--quiet")
    assert r.returncode != 0 and "--cv-only" in r.stderr
    r = run("train", "--help")
    assert "examples:" in r.stdout and "sensorbox train watch" in r.stdout
    r = run("model", "push", "http://127.0.0.1:9", str(tmp_path), "--password", "x")
    assert r.returncode != 0 and r.stderr.startswith("error: cannot read the model")


@pytest.mark.slow
def test_train_features_takes_a_part_and_evaluate_uses_it(tmp_path):
    # issue 17 item 4: `train --features GROUPS` (a model on a part of the features, in the extractor's order);
    # `sensorbox evaluate` hands the model that part; a 6-channel tree model within emlearn's 127 features; a term
    # that selects nothing is refused naming the groups
    from sensorbox.host import evaluate, export

    def run(*args):
        return subprocess.run([sys.executable, "-m", "sensorbox.host.cli"] + [str(a) for a in args],
                              capture_output=True, text=True, timeout=300)

    out = tmp_path / "m"
    r = run("train", "excerpt", "--features", "time,grav", "--trees", "5", "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    meta = json.load(open(out / "meta.json"))
    names = list(features.names(3))
    want = [n for n in names if n.startswith("grav_") or (n[:2] in ("ax", "ay", "az", "am") and n[3:] in
                                                          train.FEATURE_GROUPS["time"])]
    assert meta["features"] == want and len(want) == 4 * 14 + 3
    cols = model.check_meta(meta, features.FEATURE_VERSION, names, 3)
    assert list(cols[0]) == [names.index(n) for n in want] and cols[1] == 86
    cols = cols[0]
    assert "features: 59 of the 86 (--features time,grav)" in r.stdout
    # evaluate: the model's part of each window's features (a tree model given all 86 would read other columns)
    ev = evaluate.evaluate(str(out), "excerpt", out_dir="", quiet=True)
    recs, _, _ = train.dataset("excerpt")
    X = train.window_table(recs, 3, 128, 64)["X"]
    _, t = export.load_trees(str(out))
    assert ev["predictions"] == export.device_predict(t, X[:, list(cols)]).tolist()
    assert ev["predictions"] != export.device_predict(t, X[:, :len(want)]).tolist()
    r = run("evaluate", out, "excerpt", "--out", tmp_path / "ev")
    assert r.returncode == 0, r.stderr
    # 6 channels: 169 features, over the tree format's 127; the accelerometer's and the gyroscope magnitude's fit
    r = run("train", "excerpt", "--channels", "6", "--out", tmp_path / "m6", "--quiet")
    assert r.returncode != 0 and "--features accel" in r.stderr
    r = run("train", "excerpt", "--channels", "6", "--features", "accel,gm", "--trees", "3", "--out",
            tmp_path / "m6", "--quiet")
    assert r.returncode == 0, r.stderr
    m6 = json.load(open(tmp_path / "m6" / "meta.json"))
    assert m6["channels"] == 6 and len(m6["features"]) == 86 + 20 and m6["features"][-1] == "grav_z"
    model.check_meta(m6, features.FEATURE_VERSION, features.names(6), 6)
    r = run("train", "excerpt", "--features", "time,bogus", "--out", tmp_path / "x", "--quiet")
    assert r.returncode != 0 and "'bogus' selects none of the 86 features" in r.stderr and "percentiles" in r.stderr
    assert not (tmp_path / "x").exists()  # (refused before the data was read)


# --- data pulled from devices -----------------------------------------------------------------------------------

def _write_pulled(folder, dev, t, frames, labels, rate=50):
    """A device folder as ``sensorbox pull`` writes it: manifest.json, accel.npy (t, x, y, z), labels.csv."""
    import numpy as np

    d = os.path.join(folder, dev)
    os.makedirs(d, exist_ok=True)
    arr = np.zeros(len(t), dtype=[("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("z", "<i2")])
    arr["t"] = t
    arr["x"], arr["y"], arr["z"] = frames[:, 0], frames[:, 1], frames[:, 2]
    np.save(os.path.join(d, "accel.npy"), arr)
    with open(os.path.join(d, "labels.csv"), "w") as f:
        f.write("start,end,label\n" + "".join("{},{},{}\n".format(*x) for x in labels))
    with open(os.path.join(d, "manifest.json"), "w") as f:
        json.dump({"device": dev, "resources": {"accel": {"schema": {"columns": ["t", "x", "y", "z"],
                                                                     "rate_hz": rate}}}}, f)


def test_pulled_folder_windows_follow_labels_gaps_and_sessions(tmp_path):
    # Excerpt frames stand in for what a device stored: 2,000 frames at 50 Hz with a 1-second gap before frame
    # 1,000. Recordings (and so windows) must lie inside one label and one gap-free stretch, with exactly the
    # frames stored at those times; frames two different labels claim are dropped; a label range is a group.
    import numpy as np

    src = np.load(os.path.join(train.REPO, "data", "watch_excerpt.npy"))[:2000, :3]
    t0 = 1_700_000_000_000
    t = t0 + 20 * np.arange(2000, dtype=np.int64)
    t[1000:] += 1000  # frame i >= 1000 is at t0 + 20 i + 1000
    labels = [(t0, t0 + 8000, "walk"),            # frames 0..399
              (t0 + 8000, t0 + 24000, "rest"),    # 400..999, then past the gap 1000..1149
              (t0 + 26000, t0 + 36000, "walk"),   # 1250..1749 ...
              (t0 + 34000, t0 + 40000, "rest"),   # 1650..1949: 1650..1749 are claimed twice, dropped
              (t0 + 60000, t0 + 70000, "walk")]   # after the data: nothing
    _write_pulled(str(tmp_path), "dev-a", t, src, labels)
    recs, rate, kind = train.dataset(str(tmp_path))
    assert rate == 50 and kind == "labelled session"
    expect = [(0, 400, "walk", t0), (400, 600, "rest", t0 + 8000), (1000, 150, "rest", t0 + 8000),
              (1250, 400, "walk", t0 + 26000), (1750, 200, "rest", t0 + 34000)]
    assert len(recs) == len(expect)
    for (x, label, group), (i, n, name, start) in zip(recs, expect):
        assert (label, group) == (name, "dev-a/{}".format(start))
        assert np.array_equal(x, src[i:i + n]), (i, n)
    X, y, groups = train.windows(recs, 3, 128, 64)
    assert len(X) == sum((n - 128) // 64 + 1 for _, n, _, _ in expect if n >= 128)
    assert len(set(groups.tolist())) == 4 and set(y.tolist()) == {"walk", "rest"}
    # the same windows' features as the shared extractor computes them from those frames
    from sensorbox.shared import features
    import array

    ex = features.Extractor(3, 128)
    out = array.array("h", bytes(2 * len(features.names(3))))
    ex.extract(array.array("h", src[1250 + 64:1250 + 192].tobytes()), out)
    assert list(X[(400 - 128) // 64 + 1 + (600 - 128) // 64 + 1 + (150 - 128) // 64 + 1 + 1]) == list(out)
    day_recs = train.dataset(str(tmp_path), group_by="day")[0]
    assert {g for _, _, g in day_recs} == {"dev-a/2023-11-14"}


def test_pulled_folder_errors_say_what_to_do(tmp_path):
    import numpy as np
    import pytest

    t = 1_700_000_000_000 + 20 * np.arange(600, dtype=np.int64)
    frames = np.zeros((600, 3), np.int16)
    _write_pulled(str(tmp_path / "a"), "dev-a", t, frames, [])
    with pytest.raises(train.DataError, match=r"no labels .*POST /api/labels.*sensorbox pull"):
        train.train(str(tmp_path / "a"), str(tmp_path / "m"), quiet=True)
    _write_pulled(str(tmp_path / "b"), "dev-b", t, frames, [(1, 2, "walk")])
    with pytest.raises(train.DataError, match="no label covers pulled accel rows"):
        train.train(str(tmp_path / "b"), str(tmp_path / "m"), quiet=True)
    _write_pulled(str(tmp_path / "c"), "dev-c", t, frames, [(int(t[0]), int(t[-1]), "walk")])
    with pytest.raises(train.DataError, match="all of one class .walk.*at least 2"):
        train.train(str(tmp_path / "c"), str(tmp_path / "m"), quiet=True)
    _write_pulled(str(tmp_path / "d"), "dev-d", t, frames,
                  [(int(t[0]), int(t[100]), "walk"), (int(t[100]), int(t[200]), "rest")])
    with pytest.raises(train.DataError, match="shorter than a window"):
        train.train(str(tmp_path / "d"), str(tmp_path / "m"), quiet=True)


def test_label_pull_train_push_end_to_end(device_factory, tmp_path):
    # The real simulated device records (its accelerometer replays the excerpt, here at 100 Hz); four label
    # ranges go on through the API; `sensorbox pull` fetches data and labels; `sensorbox train` builds the
    # dataset from the pulled folder, cross-validates grouped by label range, exports; and the device itself
    # loads the model (`sensorbox model push`) and classifies with it.
    import numpy as np

    from conftest import ADMIN_PASSWORD, wait_for
    from sensorbox.host import cli

    dev = device_factory()
    assert dev.put("/api/config", {"accel.rate_hz": 100}).status == 200
    # from when the sampler runs at 100 Hz (every earlier frame is older)
    t0 = wait_for(dev.status, "the sampler at 100 Hz", lambda st: st["sensors"]["accel"]["rate_hz"] == 100)["time_ms"]
    span = 2400  # ms per label: 240 frames, 4 windows of 128 at hop 32
    dev.wait_stored("accel", after=t0 + 4 * span)  # on flash (the store writes in batches)
    for k in range(4):
        r = dev.post("/api/labels", {"start": t0 + k * span, "end": t0 + (k + 1) * span,
                                     "label": ("walk", "rest")[k % 2]})
        assert r.status == 201, r.body
    pulled = tmp_path / "pulled"
    assert cli.main(["pull", dev.url, "--out", str(pulled), "--password", ADMIN_PASSWORD, "--no-progress"]) == 0
    out = tmp_path / "model"
    assert cli.main(["train", str(pulled), "--out", str(out), "--trees", "3", "--folds", "4", "--hop", "32",
                     "--quiet"]) == 0
    rep = json.loads((out / "report.json").read_text())
    meta = json.loads((out / "meta.json").read_text())
    assert rep["classes"] == ["rest", "walk"] and meta["rate_hz"] == 100
    assert meta["training"]["subjects"] == 4 and meta["training"]["grouped_by"] == "labelled session"
    assert len(rep["fold_accuracy"]) == 4
    # every window comes from the labelled rows as pulled: 4 labels x 240 frames -> 16 windows, fewer only if
    # the device dropped samples (a gap splits a label's frames)
    acc = np.load(next(pulled.iterdir()) / "accel.npy")
    inside = [(acc["t"] >= t0 + k * span) & (acc["t"] < t0 + (k + 1) * span) for k in range(4)]
    assert all(m.sum() == 240 for m in inside), [int(m.sum()) for m in inside]
    assert rep["training"]["windows"] == sum(rep["per_class"][c]["support"] for c in rep["classes"]) == 16
    assert rep["agreement"]["device_vs_emlearn_c"] == 1.0
    model.check_meta(meta, features.FEATURE_VERSION, list(features.names(3)), 3, 128, 16 * 1024)
    assert "grouped by labelled session" in (out / "report.txt").read_text()
    # the device loads it and runs it
    assert cli.main(["model", "push", dev.url, str(out), "--password", ADMIN_PASSWORD]) == 0
    info = dev.get("/api/model").json()
    assert info["active"]["sha256"] == meta["csv_sha256"][:16] and info["active"]["classes"] == ["rest", "walk"]
    t_push = dev.get("/api/resources").json()["time_ms"]
    a = wait_for(lambda: dev.status()["analysis"], "a prediction after the push",  # a window classified after it
                 lambda a: a["prediction"] and a["prediction"]["t_ms"] > t_push)
    assert a["model"] == meta["csv_sha256"][:16] and a["reason"] is None
    assert a["prediction"]["index"] in (-1, 0, 1) and a["prediction"]["class"] in ("rest", "walk", "unknown")


# --- sample rates, chance, the confusion-matrix image ------------------------------------------------------------

def _mixed_rate_folder(folder):
    """A device that recorded walk/run at 100 Hz (4 labelled sessions, 3,200 frames), then sit/walk at 50 Hz
    (2 sessions, 1,000 frames): what a pull gives after the device's accel.rate_hz changed."""
    import numpy as np

    src = np.load(os.path.join(train.REPO, "data", "watch_excerpt.npy"))[:, :3]
    t0 = 1_700_000_000_000
    t_fast = t0 + 10 * np.arange(3200, dtype=np.int64)
    t_slow = t0 + 40_000 + 20 * np.arange(1000, dtype=np.int64)
    t = np.concatenate([t_fast, t_slow])
    labels = [(t0 + 8000 * k, t0 + 8000 * (k + 1), ("walk", "run")[k % 2]) for k in range(4)]
    labels += [(t0 + 40_000, t0 + 50_000, "sit"), (t0 + 50_000, t0 + 60_000, "walk")]
    _write_pulled(folder, "dev-a", t, src[:len(t)], labels, rate=50)
    return t0


@pytest.mark.slow
def test_mixed_sample_rates_are_named_and_one_rate_is_used(tmp_path):
    folder = str(tmp_path / "pulled")
    _mixed_rate_folder(folder)
    notes = {}
    recs, rate, _ = train.dataset(folder, notes=notes)
    assert rate == 100 and sorted({label for _, label, _ in recs}) == ["run", "walk"]
    assert sum(len(x) for x, _, _ in recs) == 3200  # every 100 Hz frame, none of the 50 Hz ones
    assert notes["rates"] == {"100": {"recordings": 4, "frames": 3200, "classes": ["run", "walk"]},
                              "50": {"recordings": 2, "frames": 1000, "classes": ["sit", "walk"]}}
    (w,) = notes["warnings"]
    assert "50 Hz" in w and "100 Hz" in w and "training on the 100 Hz data only" in w
    assert "classes lost: sit" in w and "--rate 50" in w
    recs, rate, _ = train.dataset(folder, rate=50)
    assert rate == 50 and sum(len(x) for x, _, _ in recs) == 1000
    import pytest

    with pytest.raises(train.DataError, match="no data sampled at 25 Hz; found 50 Hz .*100 Hz"):
        train.dataset(folder, rate=25)

    # the command says it too (stderr and the report), and the model says which rate it was trained at
    r = subprocess.run([sys.executable, "-m", "sensorbox.host.cli", "train", folder, "--out", str(tmp_path / "m"),
                        "--trees", "3", "--quiet"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "WARNING: the data was sampled at 2 rates" in r.stderr and "classes lost: sit" in r.stderr
    rep = json.loads((tmp_path / "m" / "report.json").read_text())
    assert rep["data"]["rate_hz"] == 100 and set(rep["data"]["rates_found"]) == {"50", "100"}
    assert "at 100 Hz" in (tmp_path / "m" / "report.txt").read_text()
    assert json.loads((tmp_path / "m" / "meta.json").read_text())["rate_hz"] == 100


def test_rates_without_two_classes_and_sidecar_rates(tmp_path):
    import numpy as np
    import pytest

    src = np.load(os.path.join(train.REPO, "data", "watch_excerpt.npy"))[:, :3]
    t0 = 1_700_000_000_000
    t = np.concatenate([t0 + 10 * np.arange(1000), t0 + 20_000 + 20 * np.arange(1000)]).astype(np.int64)
    _write_pulled(str(tmp_path / "p"), "dev-a", t, src[:2000],
                  [(t0, t0 + 10_000, "walk"), (t0 + 20_000, t0 + 40_000, "rest")])
    with pytest.raises(train.DataError, match=r"2 rates and none has two classes: 50 Hz .*rest.*100 Hz .*walk"):
        train.dataset(str(tmp_path / "p"))
    # recordings with .json sidecars carry their rate ("rate_hz", default 50), per file or per segment
    d = tmp_path / "recs"
    d.mkdir()
    for name, rate, labels in (("a", 50, ("walk", "rest")), ("b", 100, ("walk", "rest")), ("c", None, ("run",))):
        np.save(d / (name + ".npy"), src[:600])
        side = {"segments": [{"start": 300 * k, "frames": 300, "label": lab, "subject": name}
                             for k, lab in enumerate(labels)]}
        if rate:
            side["rate_hz"] = rate
        (d / (name + ".json")).write_text(json.dumps(side))
    notes = {}
    recs, rate, _ = train.dataset(str(d), notes=notes)
    assert set(notes["rates"]) == {"50", "100"} and notes["rates"]["50"]["classes"] == ["rest", "run", "walk"]
    assert rate == 50 and len(recs) == 3


@pytest.mark.slow
def test_below_chance_is_said_loudly_and_not_pushed(tmp_path):
    # Two sessions, one class each: grouped CV trains on one class and tests on the other, so every prediction
    # is wrong. The report, meta.json and stderr say so; --push refuses; `model push` warns.
    import numpy as np

    src = np.load(os.path.join(train.REPO, "data", "watch_excerpt.npy"))[:, :3]
    t0 = 1_700_000_000_000
    t = t0 + 20 * np.arange(1200, dtype=np.int64)
    _write_pulled(str(tmp_path / "p"), "dev-a", t, src[:1200], [(t0, t0 + 12_000, "walk"),
                                                                 (t0 + 12_000, t0 + 24_000, "rest")])
    out = tmp_path / "m"
    r = subprocess.run([sys.executable, "-m", "sensorbox.host.cli", "train", str(tmp_path / "p"), "--out", str(out),
                        "--trees", "3", "--quiet", "--push", "http://127.0.0.1:9", "--password", "x"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "not pushed" in r.stderr and "sensorbox model push" in r.stderr
    assert "WARNING: cross-validated balanced accuracy 0.000" in r.stderr and "at or below chance (0.500" in r.stderr
    rep = json.loads((out / "report.json").read_text())
    assert rep["chance"]["level"] == 0.5 and rep["chance"]["balanced_accuracy"] == 0.0
    assert "at or below chance" in (out / "report.txt").read_text()
    assert "at or below chance" in json.loads((out / "meta.json").read_text())["metrics"]["warning"]
    r = subprocess.run([sys.executable, "-m", "sensorbox.host.cli", "model", "push", "http://127.0.0.1:9", str(out),
                        "--password", "x"], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and r.stderr.startswith("warning: cross-validated balanced accuracy 0.000")
    # a good model says nothing of the kind
    rep = train.train("excerpt", str(tmp_path / "ok"), quiet=True, plot=False, opts={"trees": 3},
                      warn=lambda w: (_ for _ in ()).throw(AssertionError(w)))
    assert rep["chance"]["warning"] is None and rep["chance"]["balanced_accuracy"] > 0.5


def test_confusion_image_fits_its_title_and_classes(tmp_path):
    # Nothing drawn may touch the image's edges (a clipped title or label would), and the matrix grows with
    # the number of classes.
    import matplotlib.image
    import numpy as np

    title = "accuracy 0.308 ± 0.314, balanced 0.206 (chance 0.333): AT OR BELOW CHANCE\n4-fold CV grouped by " \
            "labelled session"
    sizes = {}
    for classes in (["a", "b"], ["walking_upstairs", "sitting", "lying_down_on_the_back"],
                    ["c{}".format(i) for i in range(12)]):
        path = str(tmp_path / "cm{}.png".format(len(classes)))
        cm = np.arange(len(classes) ** 2).reshape(len(classes), -1)
        train.plot_confusion(cm, classes, path, title)
        img = matplotlib.image.imread(path)[:, :, :3]
        edges = np.concatenate([img[:3].reshape(-1, 3), img[-3:].reshape(-1, 3), img[:, :3].reshape(-1, 3),
                                img[:, -3:].reshape(-1, 3)])
        assert edges.min() > 0.95, "something is clipped at the edge of {}".format(path)
        sizes[len(classes)] = img.shape
    assert sizes[12][0] > sizes[2][0]
