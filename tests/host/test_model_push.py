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

from conftest import ADMIN_PASSWORD, REPO
from sensorbox.host import export

DEFAULT = os.path.join(REPO, "models", "default")


def wait_prediction(dev, after_windows=0, timeout=15):
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
    res = subprocess.run([sys.executable, "-m", "sensorbox.host.cli", "model", "push", dev.url, DEFAULT],
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
