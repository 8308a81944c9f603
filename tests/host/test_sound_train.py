"""Sound on the host: `sensorbox import --sensor sound` (WAV folders of any depth, rate and channel count into
16 kHz mono int16), `sensorbox train --sensor sound` (the shared sound features, grouped CV, the same report and
emlearn export) on generated signals with exact answers and on the real recordings Debian packages ship."""

import json
import subprocess
import sys
import wave

import numpy as np
import pytest

from sensorbox.host import datasets, evaluate, export, importer, sounds, train
from sensorbox.shared import soundfeatures as sf


def _wav(path, x, rate, width=2, channels=1):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(x.tobytes())


def _signal(kind, n, rate, rng):
    t = np.arange(n) / rate
    if kind == "tone":  # a hum: 300 Hz with harmonics
        return 0.2 * np.sin(2 * np.pi * 300 * t) + 0.05 * np.sin(2 * np.pi * 900 * t) + 0.002 * rng.normal(size=n)
    if kind == "hiss":  # noise above 3 kHz
        x = rng.normal(size=n)
        return 0.1 * (x - np.convolve(x, np.ones(8) / 8, "same"))
    x = 0.002 * rng.normal(size=n)  # clicks: 3 ms bursts every 120 ms
    for a in range(0, n, int(0.12 * rate)):
        k = min(n - a, int(0.003 * rate))
        x[a:a + k] += 0.6 * rng.normal(size=k)
    return x


def _folder(root, rates=(16000, 44100, 8000), seconds=1.5):
    rng = np.random.default_rng(1)
    for kind in ("tone", "hiss", "clicks"):
        d = root / kind
        d.mkdir(parents=True)
        for i, rate in enumerate(rates * 2):
            x = _signal(kind, int(seconds * rate), rate, rng)
            _wav(d / "{}{}.wav".format(kind, i), np.clip(np.round(x * 32767), -32768, 32767).astype("<i2"), rate)
    return root


def test_import_sound_keeps_pcm_resamples_and_mixes(tmp_path):
    rate = 44100
    n = rate // 2
    t = np.arange(n) / rate
    left = np.round(8000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int32)
    src = tmp_path / "src" / "beep"
    src.mkdir(parents=True)
    stereo = np.stack([left, left], axis=1).astype("<i2")
    _wav(src / "stereo16.wav", stereo, rate, 2, 2)
    b24 = (left.astype("<i4") << 8).view("<u1").reshape(-1, 4)[:, :3].copy()  # 24-bit: same level
    _wav(src / "mono24.wav", b24, rate, 3)
    _wav(src / "short8k.wav", np.zeros(1000, "<i2"), 8000)
    out = tmp_path / "ds"
    s = datasets.import_recordings([str(tmp_path / "src")], str(out), sensor="sound", label_from="folder")
    assert s["sensor"] == "sound" and s["rate_hz"] == 16000 and s["recordings"] == 3
    for name in ("beep__stereo16", "beep__mono24"):
        side = json.loads((out / (name + ".json")).read_text())
        x = np.load(out / (name + ".npy"))
        assert side["sensor"] == "sound" and side["columns"] == ["pcm"] and x.dtype == np.int16 and x.shape[1] == 1
        assert side["source_rate_hz"] == rate and abs(len(x) - 8000) <= 1
        rms = np.sqrt((x[800:-800, 0].astype(float) ** 2).mean())
        assert abs(rms - 8000 / np.sqrt(2)) < 60, rms  # level kept through the resampling
    assert any("shorter than one analysis window" in w for w in s["warnings"]), s["warnings"]
    assert any("silent" in w for w in s["warnings"])
    assert any("2 channels mixed" in n for n in s["notes"])
    # 8 kHz sound, and refusals
    s8 = datasets.import_recordings([str(src / "stereo16.wav")], str(tmp_path / "d8"), sensor="sound", label="b",
                                    to_rate=8000)
    assert s8["rate_hz"] == 8000
    with pytest.raises(importer.ImportProblem, match="16000"):
        datasets.import_recordings([str(src)], str(tmp_path / "x"), sensor="sound", label="b", to_rate=22050)
    csv = tmp_path / "c.csv"
    csv.write_text("t,x\n0,1\n")
    with pytest.raises(importer.ImportProblem, match="WAV"):
        datasets.import_recordings([str(csv)], str(tmp_path / "y"), sensor="sound", label="b")


@pytest.mark.slow
def test_train_sound_on_generated_signals_and_evaluate(tmp_path):
    _folder(tmp_path / "src")
    data = tmp_path / "ds"
    r = subprocess.run([sys.executable, "-m", "sensorbox.host.cli", "import", str(tmp_path / "src"), "--sensor",
                        "sound", "--out", str(data), "--label-from", "folder", "--quiet"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "--sensor sound" in r.stdout  # the next step it prints
    # an accelerometer model cannot be trained on sound, and says how
    with pytest.raises(train.DataError, match="--sensor sound"):
        train.train(str(data), str(tmp_path / "m0"), quiet=True, plot=False)
    rep = train.train(str(data), str(tmp_path / "m"), quiet=True, plot=False, sensor="sound", compare=["knn"])
    assert rep["accuracy_mean"] == 1.0 and rep["kinds"]["knn"]["accuracy_mean"] == 1.0, rep["kinds"]
    assert rep["agreement"]["device_vs_emlearn_c"] == 1.0
    meta, _ = export.read(str(tmp_path / "m"))
    assert meta["sensor"] == "sound" and meta["features"] == list(sf.names()) and meta["channels"] == 1
    assert meta["window"] == sf.WINDOW and meta["hop"] == sf.WINDOW_HOP and meta["frame"] == 512
    assert meta["feature_version"] == sf.FEATURE_VERSION and meta["classes"] == ["clicks", "hiss", "tone"]
    ev = evaluate.evaluate(str(tmp_path / "m"), str(data), out_dir="")
    assert ev["window"]["accuracy"] == 1.0 and ev["recording"]["accuracy"] == 1.0
    # the features table for pandas (train.window_table's windows): 1.5 s each at 16 kHz -> (24000 - 4352) // 2048
    # + 1 = 10 per recording, one every 2048 samples
    df = datasets.features_frame(str(data), sensor="sound")
    assert list(df.columns[5:]) == list(sf.names()) and len(df) == 18 * 10 and df.attrs["sensor"] == "sound"
    assert sorted(set((df["start_s"] * 16000).round().astype(int).tolist()))[:3] == [0, 2048, 4096]


@pytest.mark.slow
def test_train_on_the_real_recordings_debian_ships(sounds_model):
    assert sounds.missing() is None, sounds.missing()  # make test installs them
    _, rep = sounds_model  # (conftest: trained once, test_sound_device runs the model)
    assert rep["classes"] == ["press", "release", "speech"]
    assert rep["training"]["recordings"] == 181 and rep["training"]["windows"] == 423
    assert rep["accuracy_mean"] > 0.8 and rep["chance"]["warning"] is None, rep["accuracy_mean"]
    assert rep["kinds"]["baseline"]["accuracy_mean"] > 0.8
    assert rep["agreement"]["device_vs_emlearn_c"] == 1.0 and rep["agreement"]["windows"] == 423
    # speech is never tested on a voice it trained on: the two collections are groups of their own
    groups = [f["test_groups"] for f in rep["folds"]]
    assert ["librivox"] in groups and ["cards"] in groups
