"""The replay excerpt shipped in data/ is exactly the seglearn recordings converted to int16 counts."""

import json

import numpy as np

from sensorbox.host import datasets


def test_excerpt_matches_the_source_dataset():
    d = datasets.watch_dataset()
    excerpt = np.load(datasets.EXCERPT)
    meta = json.load(open(datasets.EXCERPT[:-4] + ".json"))
    assert excerpt.dtype == np.int16 and excerpt.shape[1] == 6 and excerpt.flags.c_contiguous
    assert len(meta["segments"]) == 14 and sorted({s["label"] for s in meta["segments"]}) == sorted(d["y_labels"])
    for s in meta["segments"]:
        src = datasets.to_counts(d["X"][s["source_index"]])
        assert d["y_labels"][d["y"][s["source_index"]]] == s["label"]
        assert int(d["subject"][s["source_index"]]) == s["subject"]
        np.testing.assert_array_equal(excerpt[s["start"]:s["start"] + s["frames"]], src)
    # 1 g at rest is 4096 counts: the median magnitude of the accelerometer is near it.
    mag = np.sqrt((excerpt[:, :3].astype(float) ** 2).sum(1))
    assert 3500 < np.median(mag) < 4700


def test_a_failed_download_says_what_to_do(tmp_path, monkeypatch, capsys):
    import pytest

    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # as if offline: pip finds nothing
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    with pytest.raises(datasets.DatasetError, match="could not download seglearn==1.2.5 .*put the wheel into"):
        datasets.watch_dataset(cache_dir=str(tmp_path))
    assert "downloading seglearn==1.2.5's wheel" in capsys.readouterr().err
