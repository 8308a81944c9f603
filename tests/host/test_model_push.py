"""End to end on the real device app (MicroPython unix port, real sockets, the app's heap ``bundle.APP_HEAP``):
predictions from the shipped model flow in /api/status; ``sensorbox model push`` switches the model live (the old
model is released before the new one loads, so both never share the heap); a truncated or wrong-feature model is
refused with a reason and the old model keeps running; rollback returns to the previous model. Model loading
yields to the other tasks, so the sound meter, whose mic ring holds only 64 ms, loses no samples through boot
and model switches."""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from conftest import ADMIN_PASSWORD, REPO, retry_503, wait_for
from sensorbox.host import export

DEFAULT = os.path.join(REPO, "models", "default")


def wait_prediction(dev, after_windows=0, timeout=60):  # (the first comes ~3 s after boot alone)
    t0 = time.time()
    while time.time() - t0 < timeout:
        a = dev.status()["analysis"]
        if a and a["prediction"] and a["windows"] > after_windows:
            return a
        time.sleep(0.3)
    raise AssertionError("no prediction within {} s: {}\n{}".format(timeout, dev.status()["analysis"],
                                                                   dev.output()[-3000:]))


def copy_model(tmp_path, name):
    d = tmp_path / name
    shutil.copytree(DEFAULT, d)
    return d


def test_push_activate_refuse_rollback(device_factory, tmp_path):
    dev = device_factory()  # bundle.APP_HEAP
    a = wait_prediction(dev)  # (that loading yields to the sound meter is tests/device/test_models.py's to check)
    meta = json.load(open(os.path.join(DEFAULT, "meta.json")))
    assert a["prediction"]["class"] in meta["classes"] + ["unknown"]
    assert a["model"] == meta["csv_sha256"][:16]
    info = export.device_call(dev.url, "info", ADMIN_PASSWORD)
    assert info["active"]["origin"] == "default" and info["previous"] is False
    # the classes' display names and meanings come from meta.json on flash (not kept in RAM)
    cl = dev.get("/api/model/classes").json()
    assert cl == {"classes": meta["classes"], "names": meta["class_names"], "descriptions": meta["class_descriptions"]}

    # push with the CLI, password from the environment
    res = subprocess.run([sys.executable, "-m", "sensorbox.host.cli", "model", "push", dev.url, DEFAULT, "--json"],
                         env=dict(os.environ, SENSORBOX_PASSWORD=ADMIN_PASSWORD), capture_output=True, text=True,
                         timeout=60, cwd=REPO)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["active"]["origin"] == "uploaded"
    n = dev.status()["analysis"]["windows"]
    wait_prediction(dev, n)  # still classifying, no restart
    st = dev.status()
    assert st["tasks"]["pipeline"]["restarts"] == 0

    # truncated model.csv (meta.json intact): refused at activation, the uploaded model keeps running
    bad = copy_model(tmp_path, "truncated")
    csv = (bad / "model.csv").read_bytes()
    (bad / "model.csv").write_bytes(csv[:len(csv) // 2])
    m = json.loads((bad / "meta.json").read_text())
    m["csv_bytes"] = len(csv) // 2  # so the client sends it; the device still catches it (hash)
    (bad / "meta.json").write_text(json.dumps(m))
    with pytest.raises(export.PushError) as e:
        export.push(dev.url, str(bad), ADMIN_PASSWORD)
    assert "400" in str(e.value) and "csv" in str(e.value)
    # wrong features: refused at the first request
    bad = copy_model(tmp_path, "wrongfeat")
    m = json.loads((bad / "meta.json").read_text())
    m["features"][3] = "something_else"
    (bad / "meta.json").write_text(json.dumps(m))
    with pytest.raises(export.PushError) as e:
        export.push(dev.url, str(bad), ADMIN_PASSWORD)
    assert "feature 3 is something_else in the model" in str(e.value)
    info = export.device_call(dev.url, "info", ADMIN_PASSWORD)
    assert info["active"]["origin"] == "uploaded" and info["active"]["sha256"] == meta["csv_sha256"][:16]
    assert "upload refused" in (info["last_error"] or "")
    n = dev.status()["analysis"]["windows"]
    wait_prediction(dev, n)

    # roll back to the bundled default, live
    info = export.device_call(dev.url, "rollback", ADMIN_PASSWORD)
    assert info["active"]["origin"] == "default" and info["previous"] is True
    # everything needs the admin password
    r = dev.request("POST", "/api/model/rollback", b"", auth=False)
    assert r.status == 401
    # a model whose meta.json has no class names: the codes only; rolled back, the names are there again
    plain = copy_model(tmp_path, "plain")
    m = json.loads((plain / "meta.json").read_text())
    del m["class_names"], m["class_descriptions"]
    (plain / "meta.json").write_text(json.dumps(m))
    export.push(dev.url, str(plain), ADMIN_PASSWORD)
    assert dev.get("/api/model/classes").json() == {"classes": meta["classes"], "names": None, "descriptions": None}
    export.device_call(dev.url, "rollback", ADMIN_PASSWORD)
    assert dev.get("/api/model/classes").json()["names"] == meta["class_names"]


def _cli(*args, env=None):
    e = {k: v for k, v in os.environ.items() if k not in ("SENSORBOX_PASSWORD", "SENSORBOX_TOKEN")}
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "sensorbox.host.cli"] + list(args), env=e, capture_output=True,
                          text=True, timeout=120, cwd=REPO, stdin=subprocess.DEVNULL)


def test_api_tokens_for_pull_model_and_train_push_with_readable_summaries(device_factory, tmp_path):
    from conftest import retry_503

    dev = device_factory()
    read = retry_503(dev.post, "/api/tokens", {"name": "notebook", "scope": "read"}).json()["token"]
    admin = retry_503(dev.post, "/api/tokens", {"name": "ci", "scope": "admin"}).json()["token"]

    # a read token pulls (from --token) and shows the model (from $SENSORBOX_TOKEN), as text people read
    r = _cli("pull", dev.url, "--out", str(tmp_path / "pulled"), "--token", read, "--no-progress",
             "--resources", "labels")
    assert r.returncode == 0, r.stderr
    r = _cli("model", "info", dev.url, env={"SENSORBOX_TOKEN": read})
    assert r.returncode == 0, r.stderr
    meta = json.load(open(os.path.join(DEFAULT, "meta.json")))
    assert "active model: default " + meta["csv_sha256"][:16] in r.stdout
    assert "classes      " + ", ".join(meta["classes"]) in r.stdout and "previous model: none" in r.stdout
    assert not r.stdout.lstrip().startswith("{")
    r = _cli("model", "info", dev.url, "--token", read, "--json")
    assert json.loads(r.stdout)["active"]["origin"] == "default"

    # ... but may not push: the error says the token is read-only and what to use instead
    r = _cli("model", "push", dev.url, DEFAULT, "--token", read)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "403" in r.stderr and "read-only" in r.stderr and "admin token" in r.stderr and "--password" in r.stderr
    with pytest.raises(export.PushError, match=r"sb_<id>_<secret>.*Settings > API tokens"):
        export.push(dev.url, DEFAULT, token="secret123")
    with pytest.raises(export.PushError, match="401.*invalid or was revoked"):
        export.device_call(dev.url, "info", token="sb_99_" + "0" * 32)

    # an admin token pushes; the summary names the model that now runs
    r = _cli("model", "push", dev.url, DEFAULT, env={"SENSORBOX_TOKEN": admin})
    assert r.returncode == 0, r.stderr
    assert "it runs now" in r.stdout and "active model: uploaded " + meta["csv_sha256"][:16] in r.stdout
    assert "previous model: kept (sensorbox model rollback" in r.stdout

    # train --push with an admin token: trained, exported, pushed, running
    out = tmp_path / "mine"
    r = _cli("train", "excerpt", "--out", str(out), "--trees", "3", "--quiet", "--push", dev.url, "--token", admin)
    assert r.returncode == 0, r.stderr
    mine = json.loads((out / "meta.json").read_text())
    assert "active model: uploaded " + mine["csv_sha256"][:16] in r.stdout
    assert retry_503(dev.get, "/api/model").json()["active"]["sha256"] == mine["csv_sha256"][:16]


def _fewer_classes_other_window(tmp_path, window, hop):
    """The shipped model with its 7 classes merged into 2 ("kept" = PEN, "other") and meta.json saying it was
    trained on ``window``-frame windows (its features are the same names at any window)."""
    import hashlib

    d = copy_model(tmp_path, "two-{}".format(window))
    meta = json.loads((d / "meta.json").read_text())
    keep = meta["classes"].index("PEN")
    out = []
    for ln in (d / "model.csv").read_text().splitlines():
        if ln.startswith("c,"):
            ln = "c,2"
        elif ln.startswith("l,"):
            ln = "l,0" if int(ln[2:]) == keep else "l,1"
        out.append(ln)
    csv = ("\n".join(out) + "\n").encode()
    (d / "model.csv").write_bytes(csv)
    meta.update(classes=["kept", "other"], window=window, hop=hop, csv_bytes=len(csv),
                csv_sha256=hashlib.sha256(csv).hexdigest(), class_names=["kept", "other"],
                class_descriptions=["PEN (pendulum)", "every other exercise"])
    (d / "meta.json").write_text(json.dumps(meta))
    return d


@pytest.mark.light
def test_models_of_fewer_classes_and_other_windows_switch_live(device_factory, tmp_path):
    # Issue 10: a model with fewer classes crashed the pipeline (IndexError in _classify, class-change event);
    # ml.window 64 was accepted and stopped analysis; a model of another window could not be activated at all.
    dev = device_factory()
    wait_prediction(dev)
    export.push(dev.url, str(_fewer_classes_other_window(tmp_path, 128, 64)), ADMIN_PASSWORD)
    n = dev.status()["analysis"]["windows"]
    a = wait_prediction(dev, n + 1)  # (tests/device/test_pipeline.py makes the old class's index certain)
    assert a["reason"] is None and a["prediction"]["class"] in ("kept", "other", "unknown"), a
    assert dev.status()["tasks"]["pipeline"]["restarts"] == 0
    export.device_call(dev.url, "rollback", ADMIN_PASSWORD)
    r = dev.put("/api/config", {"ml.window": 64})
    assert r.status == 400 and r.json()["field"] == "ml.window" and "128-frame" in r.json()["error"], r.body
    assert dev.put("/api/config", {"ml.hop": 100}).status == 200
    export.push(dev.url, str(_fewer_classes_other_window(tmp_path, 64, 32)), ADMIN_PASSWORD)
    cfg = dev.get("/api/config").json()["config"]
    assert cfg["ml.window"] == 64 and cfg["ml.hop"] == 32  # the model's window, and its hop (100 > 64)
    n = dev.status()["analysis"]["windows"]
    a = wait_prediction(dev, n + 1)
    assert a["reason"] is None and a["prediction"]["class"] in ("kept", "other", "unknown"), a
    r = dev.put("/api/config", {"ml.window": 128})
    assert r.status == 400 and "64-frame" in r.json()["error"]
    export.device_call(dev.url, "rollback", ADMIN_PASSWORD)  # 7 classes and 128 frames again
    assert dev.get("/api/config").json()["config"]["ml.window"] == 128
    n = dev.status()["analysis"]["windows"]
    a = wait_prediction(dev, n + 1)
    assert a["reason"] is None, a
    st = dev.status()
    assert st["tasks"]["pipeline"]["restarts"] == 0 and st["task_restarts"] == 0, st["tasks"]
    ev = json.loads(dev.get("/api/events?start=0").body)
    ev = ev.get("events", ev) if isinstance(ev, dict) else ev
    changes = [e for e in ev if e.get("type") == "class_change"]
    assert any(e["to"] in ("kept", "other") for e in changes), changes


def _hop_frames(dev, since, n=12):
    """Frames between consecutive analysis windows after epoch ms ``since``: from the stored features, a row per
    window at its last frame's time (the median of ``n`` steps, in frames at the sensor's rate)."""
    rate = dev.get("/api/config").json()["config"]["accel.rate_hz"]

    def steps():
        r = retry_503(dev.get, "/api/resources/features/data?format=csv&columns=t&start={}".format(since))
        t = [int(x) for x in r.body.split()[1:]]
        return [b - a for a, b in zip(t, t[1:])] if len(t) > n else None

    d = sorted(wait_for(steps, "{} analysis windows stored".format(n + 1), timeout=120, every=1))
    return round(d[len(d) // 2] * rate / 1000)


@pytest.mark.light
def test_the_device_cuts_windows_at_the_hop_the_model_was_trained_with(device_factory, tmp_path):
    # issue 17: the model's pipeline spec names its hop; the device cut windows every ml.hop frames whatever the
    # model said (it only lowered a hop longer than the model's window)
    dev = device_factory()
    wait_prediction(dev)
    assert dev.status()["analysis"]["hop"] == 64  # the shipped model's
    export.push(dev.url, str(_fewer_classes_other_window(tmp_path, 128, 32)), ADMIN_PASSWORD)
    assert retry_503(dev.get, "/api/model").json()["active"]["hop"] == 32
    assert dev.get("/api/config").json()["config"]["ml.hop"] == 32  # the config says which hop runs
    wait_for(lambda: dev.status()["analysis"]["hop"] == 32, "the pipeline at hop 32")
    a = dev.status()["analysis"]
    assert (a["window"], a["hop"]) == (128, 32)
    assert any("set to the model's" in e["msg"] and "'ml.hop': 32" in e["msg"]  # and why
               for e in dev.get("/api/logs?since=0").json()["entries"])
    assert _hop_frames(dev, dev.status()["time_ms"]) == 32  # a window every 32 frames
    # set by the user after: that hop runs until the next model
    assert dev.put("/api/config", {"ml.hop": 128}).status == 200
    wait_for(lambda: dev.status()["analysis"]["hop"] == 128, "the pipeline at hop 128")
    assert _hop_frames(dev, dev.status()["time_ms"]) == 128
    export.device_call(dev.url, "rollback", ADMIN_PASSWORD)  # the shipped model again: its hop
    assert dev.get("/api/config").json()["config"]["ml.hop"] == 64
    wait_for(lambda: dev.status()["analysis"]["hop"] == 64, "the pipeline at hop 64")
    assert _hop_frames(dev, dev.status()["time_ms"]) == 64
    assert dev.status()["tasks"]["pipeline"]["restarts"] == 0


def _retag(d, **changes):
    """Rewrite meta.json of model dir ``d`` with ``changes``; ``t`` (anomaly threshold) goes into model.csv too."""
    import hashlib

    meta = json.loads((d / "meta.json").read_text())
    if "t" in changes:
        t = changes.pop("t")
        lines = [("t,{}".format(t) if ln.startswith("t,") else ln) for ln in (d / "model.csv").read_text().splitlines()]
        csv = ("\n".join(lines) + "\n").encode()
        (d / "model.csv").write_bytes(csv)
        changes.update(threshold=t, csv_bytes=len(csv), csv_sha256=hashlib.sha256(csv).hexdigest())
    meta.update(changes)
    (d / "meta.json").write_text(json.dumps(meta))
    return d


def _stored_predictions(dev):
    r = retry_503(dev.get, "/api/resources/predictions/data?format=csv&start=0")
    assert r.status == 200, r.body
    lines = r.body.decode().strip().splitlines()
    head = lines[0].split(",")
    return [dict(zip(head, ln.split(","))) for ln in lines[1:]]


def test_knn_and_anomaly_models_run_on_the_device_and_the_spec_configures_it(device_factory, tmp_path):
    # issue 17: train --kind knn / anomaly, push over HTTP, predictions (and anomaly scores) in the status, the store,
    # its export and the events; the model's rate configures the device, a spec it cannot run is refused (400)
    from sensorbox.host import train

    knn_dir = tmp_path / "knn"
    train.train("excerpt", str(knn_dir), kind="knn", quiet=True, plot=False)
    an_dir = tmp_path / "anomaly"
    train.train("excerpt", str(an_dir), kind="anomaly", normal=["ROW"], quiet=True, plot=False)
    dev = device_factory()
    wait_prediction(dev)
    # knn, pushed with the CLI
    res = subprocess.run([sys.executable, "-m", "sensorbox.host.cli", "model", "push", dev.url, str(knn_dir),
                          "--json"], env=dict(os.environ, SENSORBOX_PASSWORD=ADMIN_PASSWORD), capture_output=True,
                         text=True, timeout=120, cwd=REPO)
    assert res.returncode == 0, res.stderr + dev.output()[-3000:]
    act = json.loads(res.stdout)["active"]
    km = json.loads((knn_dir / "meta.json").read_text())
    assert act["kind"] == "knn" and act["k"] == km["k"] and act["items"] == km["items"], act
    n = dev.status()["analysis"]["windows"]
    a = wait_prediction(dev, n + 2)
    assert a["reason"] is None and a["prediction"]["class"] in km["classes"] + ["unknown"], a
    assert a["model"] == km["csv_sha256"][:16]
    # the same knn model given only the features it uses (a part of the device's, in their order): it runs on them
    import hashlib

    part = tmp_path / "knn-part"
    shutil.copytree(knn_dir, part)
    used = [f for f in km["features"] if f in km["inputs"]]
    lines = []
    for ln in (part / "model.csv").read_text().splitlines():
        f = ln.split(",")
        if f[0] == "x":
            ln = "x,{}".format(len(used))
        elif f[0] == "s":
            f[1] = str(used.index(km["features"][int(f[1])]))
            ln = ",".join(f)
        lines.append(ln)
    csv = ("\n".join(lines) + "\n").encode()
    (part / "model.csv").write_bytes(csv)
    _retag(part, features=used, csv_bytes=len(csv), csv_sha256=hashlib.sha256(csv).hexdigest())
    assert export.push(dev.url, str(part), ADMIN_PASSWORD)["active"]["features"] == len(used) < len(km["features"])
    a = wait_prediction(dev, dev.status()["analysis"]["windows"] + 2)
    assert a["reason"] is None and a["prediction"]["class"] in km["classes"] + ["unknown"], a
    # anomaly of ROW windows, threshold 0: every other window is an anomaly (the replay starts with PEN): a class
    # change to "anomaly" with its score
    _retag(an_dir, t=0)
    am = export.push(dev.url, str(an_dir), ADMIN_PASSWORD)["active"]
    assert am["kind"] == "anomaly" and am["classes"] == ["normal", "anomaly"] and am["threshold"] == 0, am
    n = dev.status()["analysis"]["windows"]
    a = wait_prediction(dev, n + 2)
    assert a["prediction"]["class"] == "anomaly" and a["prediction"]["confidence"] == 32767, a
    t0 = time.time()
    while time.time() - t0 < 30:
        ev = json.loads(retry_503(dev.get, "/api/events?start=0").body)
        ev = ev.get("events", ev) if isinstance(ev, dict) else ev
        up = [e for e in ev if e.get("type") == "class_change" and e.get("to") == "anomaly"]
        rows = [r for r in _stored_predictions(dev) if r.get("label") == "anomaly"]
        if up and rows:
            break
        time.sleep(0.5)
    assert up and up[-1]["threshold"] == 0 and up[-1]["score"] > 0, ev
    assert rows and int(rows[-1]["confidence"]) == 32767, rows[-3:]
    # a threshold no window reaches: back to normal, with the event that says so
    _retag(an_dir, t=30000)
    export.push(dev.url, str(an_dir), ADMIN_PASSWORD)
    n = dev.status()["analysis"]["windows"]
    a = wait_prediction(dev, n + 2)
    assert a["prediction"]["class"] == "normal" and 0 <= a["prediction"]["confidence"] < 1000, a
    t0 = time.time()
    while time.time() - t0 < 30:
        ev = json.loads(retry_503(dev.get, "/api/events?start=0").body)
        ev = ev.get("events", ev) if isinstance(ev, dict) else ev
        down = [e for e in ev if e.get("type") == "class_change" and e.get("from") == "anomaly"]
        if down:
            break
        time.sleep(0.5)
    assert down and down[-1]["to"] == "normal" and down[-1]["threshold"] == 30000, ev
    # the rate: a model trained at 100 Hz sets accel.rate_hz; one at 10 Hz is refused at upload, with the reason
    d = _retag(copy_model(tmp_path, "at100"), rate_hz=100)
    export.push(dev.url, str(d), ADMIN_PASSWORD)
    assert retry_503(dev.get, "/api/config").json()["config"]["accel.rate_hz"] == 100
    a = wait_prediction(dev, dev.status()["analysis"]["windows"] + 1)
    assert a["reason"] is None, a
    r = dev.put("/api/model/meta.json", json.loads((_retag(copy_model(tmp_path, "at10"), rate_hz=10) /
                                                     "meta.json").read_text()))
    assert r.status == 400 and r.json()["field"] == "rate_hz" and "10 Hz" in r.json()["error"], r.body
    # a model taking a part of the features the device computes runs; one naming a feature it lacks is refused
    meta = json.load(open(os.path.join(DEFAULT, "meta.json")))
    bad = dict(meta, features=meta["features"][:5] + ["nope"] + meta["features"][6:])
    r = dev.put("/api/model/meta.json", bad)
    assert r.status == 400 and r.json()["field"] == "features" and "feature 5 is nope" in r.json()["error"], r.body
    st = dev.status()
    assert st["task_restarts"] == 0, st["tasks"]


def test_model_push_refuses_a_model_devices_cannot_run_before_uploading(tmp_path):
    d = copy_model(tmp_path, "sound-baseline")
    meta = json.loads((d / "meta.json").read_text())
    meta["kind"] = "baseline"
    (d / "meta.json").write_text(json.dumps(meta))
    closed = "http://127.0.0.1:1"  # nothing listens: a refusal that came from there would say "cannot reach"
    r = subprocess.run([sys.executable, "-m", "sensorbox.host.cli", "model", "push", closed, str(d), "--password",
                        "x"], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    assert "a baseline model is evaluated on the host" in r.stderr, r.stderr
    assert "cannot reach" not in r.stderr
    with pytest.raises(export.PushError) as e:  # the Python API too
        export.push(closed, str(d), password="x")
    assert "evaluated on the host" in str(e.value)
