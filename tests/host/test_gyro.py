"""Issue 17's last gap, end to end on the real device app (MicroPython unix port, ``bundle.APP_HEAP``): with
``accel.gyro`` on the device samples the gyroscope (the simulator replays the watch recording's gyroscope columns),
stores and exports x y z gx gy gz, computes the 6 channels' 169 features, runs a 3-channel model on its part of them
(the accelerometer's) and a 6-channel model, and every prediction of either is what the host's evaluation of the same
model gives on the same window: the window's frames taken from the device's own export, their features computed on
the host (identical to the ones the device stored) and classified by the host's evaluator of the exported model
(``sensorbox evaluate``'s).
Without ``accel.gyro`` the same model is refused with a 400 that names the key."""

import array
import csv
import io
import json
import os
import time

import numpy as np
import pytest

from conftest import ADMIN_PASSWORD, REPO, retry_503, wait_for
from sensorbox.host import bundle, export, train
from sensorbox.shared import features as feat

# the gyroscope's axes and magnitude, gravity: 103 features (all 169 pass the tree format's 127)
SPEC = "am,gx,gy,gz,gm,grav"


@pytest.fixture(scope="module")
def model6(tmp_path_factory):
    out = tmp_path_factory.mktemp("model6")
    train.train("excerpt", str(out), channels=6, features=SPEC, folds=2, opts={"trees": 8}, quiet=True, plot=False)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["channels"] == 6 and len(meta["features"]) == 103
    return out, meta


def _csv(dev, path):
    r = retry_503(dev.get, path)
    assert r.status == 200, r.body
    return list(csv.DictReader(io.StringIO(r.body.decode())))


def _active(dev, sha, windows):
    a = dev.status()["analysis"]
    return a if a and a["model"] == sha and a["prediction"] and a["windows"] >= windows else None


def test_a_six_channel_model_needs_accel_gyro(device_factory, model6):
    out, meta = model6
    dev = device_factory()
    with pytest.raises(export.PushError) as e:
        export.push(dev.url, str(out), ADMIN_PASSWORD)
    msg = str(e.value)
    assert "400" in msg and "model needs 6 channels, the sensor delivers 3: the gyroscope is off (turn on " \
           "accel.gyro; it applies at the next restart)" in msg and "restart the device" in msg, msg
    # turned on, it applies at the next restart: until then the same
    r = dev.put("/api/config", {"accel.gyro": True})
    assert r.status == 200, r.body
    r = dev.put("/api/model/meta.json", meta)
    assert r.status == 400 and r.json()["field"] == "channels" and "accel.gyro" in r.json()["error"], r.body
    assert dev.status()["sensors"]["accel"]["columns"] == ["x", "y", "z"]


def test_the_device_samples_the_gyroscope_and_classifies_as_the_host_does(device_factory, model6, tmp_path):
    out, meta = model6
    data = tmp_path / "dev"
    data.mkdir()
    # no smoothing, no "unknown": each window's prediction is its model's answer alone
    (data / "config.json").write_text(json.dumps({"accel.gyro": True, "ml.smooth": 1, "ml.unknown_permille": 0}))
    dev = device_factory(data)
    st = dev.status()
    assert st["sensors"]["accel"]["columns"] == ["x", "y", "z", "gx", "gy", "gz"], st["sensors"]["accel"]
    # the shipped 3-channel model runs, on its part of the 6 channels' features
    a = wait_for(lambda: _active(dev, dev.status()["analysis"]["model"], 8), "predictions of the default model",
                 timeout=90)
    assert a["reason"] is None and a["model"] != meta["csv_sha256"][:16], a
    # the 6-channel model, pushed as `sensorbox model push` does, then runs
    act = export.push(dev.url, str(out), ADMIN_PASSWORD)["active"]
    sha = meta["csv_sha256"][:16]
    assert act["sha256"] == sha
    switched = dev.status()["analysis"]["prediction"]["t_ms"]  # (windows up to here: the default model's)
    n0 = dev.status()["analysis"]["windows"]
    a = wait_for(lambda: _active(dev, sha, n0 + 8), "8 windows of the 6-channel model", timeout=120)
    assert a["reason"] is None, a
    # turning the gyroscope off under it is refused (it would not run after the restart)
    r = dev.put("/api/config", {"accel.gyro": False})
    assert r.status == 400 and r.json()["field"] == "accel.gyro", r.body
    time.sleep(2.5)  # two flush points (store.flush_ms 1 s): the rows of those windows are on flash

    frames = _csv(dev, "/api/resources/accel/data?format=csv&start=0")
    assert list(frames[0]) == ["t", "x", "y", "z", "gx", "gy", "gz"], list(frames[0])
    t_of = {int(r["t"]): i for i, r in enumerate(frames)}
    fr = np.array([[int(r[c]) for c in ("x", "y", "z", "gx", "gy", "gz")] for r in frames], dtype=np.int16)
    # the replay: the recording's rows, gyroscope columns included, in order (50 Hz, ±8 g: as recorded)
    rec = np.load(REPO + "/data/watch_excerpt.npy")
    hits = np.flatnonzero((rec == fr[0]).all(axis=1))
    assert len(hits) >= 1, fr[0]
    k = hits[0]
    n = min(len(fr), len(rec) - k)
    assert (rec[k:k + n] == fr[:n]).all()

    # every window: the features the device stored are the host's of the exported frames (169: with the gyroscope
    # the device computes them all, whatever its model takes), and its prediction is the host evaluator's of the
    # model that ran, on its part of them (the default model's 86 are the accelerometer's)
    stored = {int(r["t"]): r for r in _csv(dev, "/api/resources/features/data?format=csv&start=0")}
    preds = _csv(dev, "/api/resources/predictions/data?format=csv&start=0")
    names = feat.names(6)
    models = []
    for d in (os.path.join(REPO, "models", "default"), str(out)):
        m, trees = export.load_trees(d)
        models.append((m, trees, [names.index(f) for f in m["features"]]))
    assert models[0][0]["channels"] == 3 and len(models[0][2]) == 86
    ex = feat.Extractor(6, meta["window"], meta["rate_hz"])
    w = meta["window"]
    buf = array.array("h", bytes(2 * w * 6))
    outv = array.array("h", bytes(2 * ex.n_features))
    checked = [0, 0]
    agree = [0, 0]
    for p in preds:
        t = int(p["t"])
        i = t_of.get(t)
        f = stored.get(t)
        if i is None or i < w - 1 or f is None or abs(t - switched) < 3000:
            continue  # frames not all exported, or around the switch (which model ran is not known there)
        if int(frames[i]["t"]) - int(frames[i - w + 1]["t"]) != (w - 1) * 1000 // meta["rate_hz"]:
            continue  # (a gap inside: the device would not have cut this window)
        for j, v in enumerate(fr[i - w + 1:i + 1].reshape(-1).tolist()):
            buf[j] = v
        ex.extract(buf, outv)
        dev_feats = [int(f[nm]) for nm in names]
        assert list(outv) == dev_feats, (t, [(nm, a, b) for nm, a, b in zip(names, outv, dev_feats) if a != b][:5])
        which = 1 if t > switched else 0
        m, trees, cols = models[which]
        host = export.device_predict(trees, np.array([[outv[c] for c in cols]]))[0]
        checked[which] += 1
        agree[which] += m["classes"][host] == p["label"]
    assert checked[0] >= 1 and checked[1] >= 6, (checked, len(preds))
    assert agree == checked, (agree, checked)
    st = dev.status()
    assert st["task_restarts"] == 0 and st["sensors"]["accel"]["dropped"] == 0, st
    print("gyro: {} windows of the default model, {} of the 6-channel one checked; heap used {} peak {}".format(
        checked[0], checked[1], st["heap"]["used"], st["heap"]["peak_used"]))


@pytest.mark.alone
def test_soak_every_feature_with_the_gyroscope_and_a_six_channel_model(model6, tmp_path):
    # the 6-channel ring (6,000 bytes), extractor and model inside bundle.APP_HEAP with every feature on under load
    # (test_soak's soak, 30 s): no MemoryError, 503, restart, lost stream or lost frame
    from test_soak import _run

    fig = _run(tmp_path, bundle.APP_HEAP, True, seconds=30, config={"accel.gyro": True}, model=model6[0])
    a = fig["analysis"]
    assert fig["columns"] == ["x", "y", "z", "gx", "gy", "gz"] and a["reason"] is None, fig
    assert a["model"] == model6[1]["csv_sha256"][:16] and a["windows"] > 20, a
    assert fig["mqtt_messages"] > 0 and fig["webhook_posts"] > 0, fig
    print("gyro soak: {} requests, heap {}, live heap samples {}".format(fig["requests"], fig["heap"],
                                                                        fig["used_samples"]))
