"""docs/notebook.py (a jupytext "percent" notebook) runs from top to bottom and gets sensible results: the example
the documentation shows works with the Python API as it is."""

import os
import runpy

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
NOTEBOOK = os.path.join(HERE, "..", "..", "docs", "notebook.py")


@pytest.mark.slow
def test_example_notebook_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SENSORBOX_NOTEBOOK_DIR", str(tmp_path))
    monkeypatch.delenv("SENSORBOX_URL", raising=False)
    ns = runpy.run_path(NOTEBOOK, run_name="__main__")
    out = capsys.readouterr().out
    assert "gravity seems removed" in out and "model kinds on the same folds" in out
    assert set(ns["results"]) == {"forest", "knn", "baseline"}
    assert min(ns["results"].values()) > 0.9  # BasicMotions' official test split: easy, chance is 0.25
    assert ns["ev"]["recording"]["n"] == 40 and ns["df"].shape[0] == 240
    for f in ("train/BasicMotions_TRAIN.npy", "model/model.csv", "model/report.txt", "model/evaluation/confusion.png"):
        assert os.path.getsize(tmp_path / f) > 0, f
    # the figures docs/datasets.md (and, test_docs checks, the README) state are the ones these steps give
    from test_docs import model_rows

    rep = ns["report"]
    got = {k: ("{:.3f} ± {:.3f}".format(v["accuracy_mean"], v["accuracy_std"]),
               "{:.3f}".format(rep["test"]["kinds"][k]["window_accuracy"]),
               "{:.3f}".format(rep["test"]["kinds"][k]["recording_accuracy"])) for k, v in rep["kinds"].items()}
    assert got == model_rows("docs/datasets.md"), got
