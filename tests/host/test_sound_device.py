"""Sound classification end to end on the real device app (MicroPython unix port, the app's heap): a model trained
with `sensorbox train --sensor sound` on the real recordings Debian ships is pushed with `sensorbox model push`
(to the sound model's place: ?sensor=sound), the simulated microphone replays a WAV folder (sim.mic_wav), and the
device classifies its stream continuously: classes in /api/status, stored as the `soundclass` resource, change
events; its tree evaluator (viper, MicroPython) gives emlearn's C code's classes on every window of the real
recordings. The resident heap the classifier adds is measured."""

import os
import subprocess
import time

import pytest

import numpy as np

from conftest import ADMIN_PASSWORD, wait_for
from sensorbox.host import bundle, export, train
from sensorbox.shared import soundfeatures as sf

CARDS = "/usr/share/pocketsphinx/test/data/cards"
HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.slow
def test_device_model_equals_emlearn_c_on_every_real_window(sounds_model, tmp_path):
    model_dir, rep = sounds_model
    assert rep["agreement"]["device_vs_emlearn_c"] == 1.0  # the shared evaluator (CPython) vs emlearn's C code
    table = train.window_table(train.recordings("sounds"), 1, sf.WINDOW, sf.WINDOW_HOP, sensor="sound")
    X = table["X"]
    np.save(tmp_path / "X.npy", X)
    _, t = export.load_trees(model_dir)
    host = export.device_predict(t, X)
    res = subprocess.run([bundle.micropython_path(), "-X", "heapsize=1024wK", os.path.join(HERE, "mp_predict.py"),
                          model_dir, str(tmp_path / "X.npy")], env=bundle.micropython_env(bundle.build("unix")),
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr + res.stdout
    got = {line.split()[0]: [int(v) for v in line.split()[1:]] for line in res.stdout.splitlines()
           if line.split() and line.split()[0] in ("plain", "viper")}
    assert got["viper"] == host.tolist() and got["plain"] == host.tolist()  # 423 of 423 windows
    assert len(host) == 423


def _heap(dev):
    # live bytes after a collection: housekeeping collects every 5 s; the lowest of a few readings
    vals = []
    for _ in range(4):
        time.sleep(5.5)
        vals.append(dev.status()["heap"]["used"])
    return min(vals)


def test_device_classifies_the_microphone_stream(sounds_model, device_factory):
    model_dir, rep = sounds_model
    dev = device_factory()
    r = dev.put("/api/config", {"sim.mic_wav": "/no/such/folder"})
    assert r.status == 400 and r.json()["field"] == "sim.mic_wav"
    assert dev.put("/api/config", {"sim.mic_wav": CARDS}).status == 200
    r = dev.put("/api/config", {"mic.rate_hz": 8000})  # the recordings are 16 kHz: nothing left to replay
    assert r.status == 400 and r.json()["field"] == "mic.rate_hz" and "8000 Hz" in r.json()["error"], r.json()
    r = dev.get("/api/model?sensor=bogus")  # (refused before the sound classifier's module is loaded for it)
    assert r.status == 400 and r.json()["field"] == "sensor" and "'bogus'" in r.json()["error"], r.json()
    assert dev.get("/api/model?sensor=accel").json() == dev.get("/api/model").json()  # (the activity model)
    # the soundclass resource is made when the classifier first starts: until then, no RAM for it, not listed
    assert "soundclass" not in [x["name"] for x in dev.get("/api/resources").json()["resources"]]
    off = _heap(dev)
    # the sound model goes to its own place; the activity model is untouched
    info = export.push(dev.url, model_dir, ADMIN_PASSWORD)
    assert info["active"]["classes"] == ["press", "release", "speech"] and info["active"]["origin"] == "uploaded"
    assert dev.get("/api/model").json()["active"]["origin"] == "default"
    i2 = dev.get("/api/model?sensor=sound").json()  # (classification off: checked, stored, not held in RAM)
    assert i2["active"] is None and "sound.classify is off" in i2["last_error"], i2
    assert dev.put("/api/config", {"sound.classify": True}).status == 200  # loads it from flash
    wait_for(lambda: dev.get("/api/model?sensor=sound").json()["active"], "the sound model loaded",
             lambda a: a and a["sha256"] == info["active"]["sha256"])
    meta = dev.get("/api/model/file?sensor=sound&which=active&name=meta.json").json()  # (the Analysis page's)
    assert meta["sensor"] == "sound" and meta["csv_sha256"][:16] == info["active"]["sha256"], meta
    st = wait_for(lambda: dev.status()["soundlevel"], "sound classes", lambda s: s and s.get("classes") and
                  s["classes"]["prediction"] and s["classes"]["windows"] > 20, timeout=90)
    c = st["classes"]
    assert c["model"] == info["active"]["sha256"] and c["reason"] is None
    assert c["prediction"]["class"] in ("press", "release", "speech", "unknown")
    dev.wait_stored("soundclass", 5)
    assert "soundclass" in [x["name"] for x in dev.get("/api/resources").json()["resources"]]
    rows = dev.get("/api/resources/soundclass/data?format=csv").body.decode().splitlines()
    assert rows[0] == "t,class,confidence,label" and len(rows) > 5, rows[:3]
    ev = dev.get("/api/events?start=0").json()
    kinds = [e.get("type") for e in (ev.get("events", ev) if isinstance(ev, dict) else ev)]
    assert "sound_change" in kinds, kinds[:20]
    # the live stream carries each window's class (the dashboard shows it next to the sound level)
    from test_live_api import read_sse

    live = read_sse(dev, 30, until=lambda evs: sum(1 for n, _ in evs if n == "soundclass") >= 3)
    sc = [d for n, d in live if n == "soundclass"]
    assert len(sc) >= 3 and all(d["class"] in ("press", "release", "speech", "unknown") and 0 <= d["confidence"] <= 1
                                for d in sc), sc
    assert [d["t"] for d in sc] == sorted({d["t"] for d in sc})  # one event per window, in time order
    on = _heap(dev)
    print("\nresident heap (heap.used, x64 bytes): classifier off {}, on {}: +{} bytes".format(off, on, on - off))
    # speech is heard: most stored windows of the replayed speech are classed speech
    counts = {}
    for line in rows[1:]:
        label = line.split(",")[3]
        counts[label] = counts.get(label, 0) + 1
    print("stored sound classes (class: windows):", counts)
    assert counts.get("speech", 0) * 2 > len(rows) - 1, counts
    # off again: the classifier, its buffers and model go (what stays: the soundclass resource, made on first use,
    # and the names the classifier's modules interned), the meter goes on
    assert dev.put("/api/config", {"sound.classify": False}).status == 200
    wait_for(lambda: dev.status()["soundlevel"], "classifier off", lambda s: s and s.get("classes") is None)
    back = _heap(dev)
    print("after turning it off again: {} (+{} bytes)".format(back, back - off))
    assert back - off < 4096, (off, on, back)
