"""`sensorbox train` on the bundled excerpt: dataset from labelled recordings via the shared feature code, grouped
CV, export, and a report whose numbers hang together; errors that say what to do."""

import json
import os
import subprocess
import sys

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
