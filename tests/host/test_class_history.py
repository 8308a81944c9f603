"""Stored predictions keep the class names of the model that made them (issue 10.3): the device runs the shipped
model, MQTT is on but cannot reach its broker (a backlog builds up: ``mqtt.port`` points at a closed port, so the
subscriber stays connected to the broker throughout), a model with other class names is pushed, then the device
reaches the broker again. The MQTT backlog, the export (CSV with labels) and what the History page reads (the
decimated predictions and the class names in ``/api/resources``) all name old rows with the old model's classes
and new rows with the new one's."""

import json
import os
import shutil
import time

import pytest
from conftest import ADMIN_PASSWORD, REPO
from mqtt_broker import Broker, Collector, free_port
from sensorbox.host import bundle, export

DEFAULT = os.path.join(REPO, "models", "default")
OLD = json.load(open(os.path.join(DEFAULT, "meta.json")))["classes"]
NEW = ["class-{}".format(c.lower()) for c in OLD]  # the same trees, other names


def _renamed(tmp_path):
    d = tmp_path / "renamed"
    shutil.copytree(DEFAULT, d)
    meta = json.loads((d / "meta.json").read_text())
    meta["classes"] = NEW
    (d / "meta.json").write_text(json.dumps(meta))
    return str(d)


def _windows(dev):
    return dev.status()["analysis"]["windows"]


def _wait(cond, timeout=30, what="condition"):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = cond()
        if v:
            return v
        time.sleep(0.3)
    raise AssertionError("no {} within {} s".format(what, timeout))


def _csv(dev, query):
    r = dev.get("/api/resources/predictions/data?format=csv&" + query)
    assert r.status == 200, r.body
    lines = r.body.decode().strip().split("\n")
    return lines[0].split(","), [ln.split(",") for ln in lines[1:]]


@pytest.mark.slow
@pytest.mark.light
def test_old_predictions_keep_their_class_names_after_a_model_change(tmp_path, device_factory):
    broker = Broker(tmp_path / "broker")
    col = Collector(broker.port)
    dev = device_factory(data_dir=tmp_path / "dev", heap=bundle.APP_HEAP)
    try:
        base = "sbtest/{}".format(dev.status()["device"]["id"])
        r = dev.put("/api/config", {"mqtt.enabled": True, "mqtt.host": "127.0.0.1", "mqtt.port": broker.port,
                                    "mqtt.prefix": "sbtest", "mqtt.replay_ms": 0})
        assert r.status == 200, r.body
        _wait(lambda: col.on(base + "/predictions"), what="first prediction over MQTT")
        assert dev.put("/api/config", {"mqtt.port": free_port()}).status == 200  # an outage: rows wait on flash
        n = _windows(dev)
        _wait(lambda: _windows(dev) >= n + 4, what="predictions during the outage")
        t_switch0 = dev.status()["time_ms"]
        export.push(dev.url, _renamed(tmp_path), ADMIN_PASSWORD)
        t_switch1 = dev.status()["time_ms"]
        n = _windows(dev)
        _wait(lambda: _windows(dev) >= n + 7, what="predictions of the new model")
        t_end = dev.status()["time_ms"] - 2500  # durable by now

        # The export names each row with its own model's classes.
        cols, rows = _csv(dev, "start=0")
        assert cols == ["t", "class", "confidence", "label"], cols
        old = [x for x in rows if int(x[0]) < t_switch0]
        new = [x for x in rows if t_switch1 < int(x[0]) <= t_end]
        assert len(old) >= 4 and len(new) >= 3, (len(old), len(new))
        assert {x[3] for x in old} <= set(OLD + ["unknown"]) and {x[3] for x in old} & set(OLD), old
        assert {x[3] for x in new} <= set(NEW + ["unknown"]) and {x[3] for x in new} & set(NEW), new

        # What the History page reads: class ids (raw rows, or min/max per bucket when decimated), named by the
        # class table in /api/resources.
        res = dev.get("/api/resources").json()
        names = [x for x in res["resources"] if x["name"] == "predictions"][0]["classes"]
        assert names[:len(OLD)] == OLD and set(NEW) <= set(names), names
        for query in ("start=0&max_points=400", "start=0&max_points=12"):
            cols, rows = _csv(dev, query)
            seen_old = seen_new = 0
            for x in rows:
                if "n" in cols:  # decimated: t (bucket start), n, class_min, class_max, ...
                    t, w = int(x[0]), int(rows[1][0]) - int(rows[0][0])
                    if int(x[1]) == 0 or x[2] != x[3]:
                        continue
                else:
                    t, w = int(x[0]), 0
                k = int(x[2] if "n" in cols else x[1])
                name = names[k] if k >= 0 else "unknown"
                if t + w < t_switch0:
                    assert name in OLD + ["unknown"], (query, x, name)
                    seen_old += name in OLD
                elif t > t_switch1:
                    assert name in NEW + ["unknown"], (query, x, name)
                    seen_new += name in NEW
            assert seen_old and seen_new, (query, seen_old, seen_new, cols, rows)

        # The MQTT backlog, sent after the switch, names the old rows with the old classes.
        assert dev.put("/api/config", {"mqtt.port": broker.port}).status == 200
        col.wait(lambda m: any(json.loads(p)["t"] >= t_end for tp, p, r in m if tp == base + "/predictions"),
                 timeout=60)
        got = [json.loads(p) for tp, p, r in col.on(base + "/predictions")]
        old_msgs = [m for m in got if m["t"] < t_switch0]
        new_msgs = [m for m in got if t_switch1 < m["t"] <= t_end]
        assert old_msgs and new_msgs
        assert all(m["label"] in OLD + ["unknown"] for m in old_msgs), [m["label"] for m in old_msgs]
        assert all(m["label"] in NEW + ["unknown"] for m in new_msgs), [m["label"] for m in new_msgs]
        assert any(m["label"] in OLD for m in old_msgs if m["t"] > t_switch0 - 10000)  # the outage's backlog
    finally:
        col.close()
        broker.stop()
