"""End to end: the device app (MicroPython unix port, APP_HEAP) publishing through its MQTT sink to a real
mosquitto, checked by a paho subscriber against the device's own store export. Outages: the broker is killed
and restarted mid-stream; the device is SIGKILLed mid-backlog and restarted. Plus Home Assistant discovery
(validated), commands (authorised only), non-ASCII, and the clean-stop ``offline``."""

import json
import signal
import time

import pytest

from sensorbox.host import bundle

import segfiles
from mqtt_broker import Broker, Collector

PREFIX = "sbtest"
#: The app's own heap (bundle.APP_HEAP): with MQTT on the client, outbox and sink stay resident (~28 KB here).
MQTT_HEAP = bundle.APP_HEAP


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path / "broker")
    yield b
    b.stop()


def enable(dev, port, **extra):
    cfg = {"mqtt.enabled": True, "mqtt.host": "127.0.0.1", "mqtt.port": port, "mqtt.prefix": PREFIX,
}
    cfg.update(extra)
    r = dev.put("/api/config", cfg)
    assert r.status == 200, r.body


def received(col, base, resource):
    """(key, t, payload dict) of each data message of ``resource``, in arrival order."""
    out = []
    for topic, payload, retain in col.on(base + "/" + resource):
        d = json.loads(payload.decode("utf-8"))
        out.append((d["key"], d["t"], d))
    return out


def stored_times(dev, resource, since):
    """Times of the rows the device stored, read from its segment files on disk by an independent reader
    (``segfiles``), not through the device (its export needs heap the running sink competes for; see MQTT_HEAP)."""
    return segfiles.stored_times(dev.data_dir, resource, since)


def check_complete(dev, col, base, resource, t_from, t_to):
    """Every row the device stored in (t_from, t_to] arrived; duplicates only with the same key and payload;
    first arrivals in time order."""
    msgs = received(col, base, resource)
    first = {}
    order = []
    for key, t, d in msgs:
        assert key == "{}-{}-{}".format(base.split("/")[1], resource, t)
        if key in first:
            assert first[key] == d  # a resend is the same message
        else:
            first[key] = d
            order.append(t)
    assert order == sorted(order), "out of order"
    want = [t for t in stored_times(dev, resource, t_from) if t <= t_to]
    got = set(order)
    missing = [t for t in want if t not in got]
    assert not missing, "{} {} rows never arrived: {}".format(len(missing), resource, missing[:5])
    return len(want), len(msgs) - len(first)


def wait_caught_up(dev, col, base, resource, t_to, timeout=60):
    col.wait(lambda m: any(json.loads(x[1])["t"] >= t_to for x in m if x[0] == base + "/" + resource),
             timeout=timeout)


@pytest.mark.slow
@pytest.mark.light
def test_broker_killed_and_restarted_mid_stream(tmp_path, device_factory):
    # The device may reconnect to the restarted broker and drain its backlog before a subscriber is back: the
    # broker acknowledges every message and, with no subscriber, drops it (this test's flake under load: the
    # device had delivered everything; its subscriber came back 0.3 s after the backlog). So the subscriber
    # keeps a session the broker saved before the kill, and the test makes that order certain: the subscriber
    # stays away until the device has drained its backlog to the restarted broker.
    broker = Broker(tmp_path / "broker", persist=True)
    dev = device_factory(data_dir=tmp_path / "dev", heap=MQTT_HEAP)
    base = "{}/{}".format(PREFIX, dev.status()["device"]["id"])
    col = Collector(broker.port, persistent=True)
    try:
        enable(dev, broker.port, **{"mqtt.replay_ms": 5})
        col.wait(lambda m: len([x for x in m if x[0] == base + "/soundlevel"]) >= 3)
        t_from = min(x[1] for x in received(col, base, "soundlevel") + received(col, base, "predictions")) - 1
        broker.save()  # the subscriber's session and subscription
        col.pause()
        broker.stop()  # SIGKILL: no goodbye to anyone
        time.sleep(6)
        st = dev.status()["mqtt"]
        assert st["connected"] is False and st["last_error"]
        assert st["outbox"]["soundlevel"]["pending"]
        broker.start()
        time.sleep(3)
        t_to = dev.status()["time_ms"] - 2500  # durable on the device by now (flush every 1 s)
        t0 = time.time()
        while any(dev.status()["mqtt"]["outbox"][r]["cursor"] < t_to for r in ("soundlevel", "predictions")):
            assert time.time() - t0 < 60, dev.status()["mqtt"]
            time.sleep(0.2)
        col.resume()  # only now: the backlog reached the broker while no subscriber was connected
        for res in ("soundlevel", "predictions"):
            wait_caught_up(dev, col, base, res, t_to)
        n_sl, dup_sl = check_complete(dev, col, base, "soundlevel", t_from, t_to)
        n_pr, dup_pr = check_complete(dev, col, base, "predictions", t_from, t_to)
        assert n_sl >= 8 and n_pr >= 5  # the outage's backlog is in there
        sl = received(col, base, "soundlevel")[-1][2]
        assert set(sl) == {"t", "key", "leq", "lmin", "lmax", "l10", "l50", "l90"} and 0 < sl["leq"] < 140
        pr = received(col, base, "predictions")[-1][2]
        assert isinstance(pr["label"], str) and 0 <= pr["confidence"] <= 1
        st = dev.status()["mqtt"]
        assert st["connects"] >= 2 and st["outbox"]["soundlevel"]["lost_segments"] == 0
        assert [x[1] for x in col.on(base + "/status")][-1] == b"online"
        health = json.loads(col.on(base + "/health")[-1][1])  # sent at each connect
        assert health["lost_segments"] == 0 and health["uptime_s"] >= 0 and health["heap_free"] > 0
    finally:
        col.close()
        broker.stop()


@pytest.mark.slow
@pytest.mark.light
def test_device_sigkilled_mid_backlog_resumes(tmp_path, broker, device_factory):
    data = tmp_path / "dev"
    dev = device_factory(data_dir=data, heap=MQTT_HEAP)
    base = "{}/{}".format(PREFIX, dev.status()["device"]["id"])
    broker.stop()
    enable(dev, broker.port, **{"mqtt.replay_ms": 400})  # slow replay: the kill lands mid-backlog
    t_from = dev.status()["time_ms"]
    time.sleep(14)
    broker.start()
    col = Collector(broker.port)
    try:
        col.wait(lambda m: len([x for x in m if x[0] == base + "/soundlevel"]) >= 4)
        pending = dev.status()["mqtt"]["outbox"]
        assert pending["soundlevel"]["pending"] or pending["predictions"]["pending"]
        dev.stop(signal.SIGKILL)
        n_before = len(received(col, base, "soundlevel"))
        # the broker publishes the last will
        col.wait(lambda m: [x[1] for x in m if x[0] == base + "/status"][-1:] == [b"offline"])
        dev = device_factory(data_dir=data, heap=MQTT_HEAP)
        time.sleep(2)
        t_to = dev.status()["time_ms"] - 2500
        for res in ("soundlevel", "predictions"):
            wait_caught_up(dev, col, base, res, t_to, timeout=90)
        assert len(received(col, base, "soundlevel")) > n_before
        # rows written before the kill that were flushed are all delivered; the store loses at most the last
        # flush interval at a SIGKILL, which then cannot be in the export either
        check_complete(dev, col, base, "soundlevel", t_from, t_to)
        check_complete(dev, col, base, "predictions", t_from, t_to)
    finally:
        col.close()


@pytest.mark.light
def test_discovery_commands_non_ascii_and_clean_offline(tmp_path, broker, device_factory):
    dev = device_factory(data_dir=tmp_path / "dev", heap=MQTT_HEAP)
    dev_id = dev.status()["device"]["id"]
    base = "{}/{}".format(PREFIX, dev_id)
    col = Collector(broker.port)
    try:
        name = "K\u00fcche 25 \u00b0C \u00b5"
        enable(dev, broker.port, **{"device.name": name, "mqtt.commands": True, "mqtt.command_token": "tok\u00e9n"})
        topic = "homeassistant/device/{}/config".format(dev_id)
        col.wait(lambda m: any(x[0] == topic for x in m))
        t, payload, retain = col.on(topic)[-1]
        validate_discovery(json.loads(payload.decode("utf-8")), base, dev_id, name, payload)
        # a command token is set: Home Assistant (which could only send it by publishing it) gets no controls
        assert controls_removed(json.loads(payload)["cmps"])
        late = Collector(broker.port, topics=(topic,))  # retained: a late subscriber gets it too
        late.wait(lambda m: any(x[2] for x in m))
        late.close()
        n = len(col.on(topic))
        col.publish("homeassistant/status", b"online")  # Home Assistant restarted: announce again
        col.wait(lambda m: len([x for x in m if x[0] == topic]) > n)
        assert dev.status()["mqtt"]["discovery_sent"] >= 2
        # commands: wrong token refused, right token accepted (label with non-ASCII name), retained refused
        now = dev.status()["time_ms"]
        lab = {"start": now - 5000, "end": now, "label": "\u00b5-Test \u00b0"}
        col.publish(base + "/cmd/label", json.dumps(dict(lab, token="wrong")).encode())
        col.wait(lambda m: len(col.on(base + "/cmd_result")) >= 1)
        r = json.loads(col.on(base + "/cmd_result")[0][1])
        assert r == {"cmd": "label", "ok": False, "error": "not authorised"}
        col.publish(base + "/cmd/label", json.dumps(dict(lab, token="tok\u00e9n"), ensure_ascii=False).encode())
        col.wait(lambda m: len(col.on(base + "/cmd_result")) >= 2)
        r = json.loads(col.on(base + "/cmd_result")[1][1].decode("utf-8"))
        assert r["ok"] is True and r["label"]["label"] == "\u00b5-Test \u00b0"
        labels = dev.get("/api/labels").json()
        labels = labels.get("labels", labels) if isinstance(labels, dict) else labels
        assert any(x["label"] == "\u00b5-Test \u00b0" for x in labels)
        # a live command runs once; the same message retained at the broker is refused when it is replayed
        # to the device's new subscription (a stale command never runs again after a reconnect or reboot)
        col.publish(base + "/cmd/reload_model", '{"token":"tok\u00e9n"}'.encode(), retain=True)
        col.wait(lambda m: len(col.on(base + "/cmd_result")) >= 3)
        assert json.loads(col.on(base + "/cmd_result")[2][1]) == {"cmd": "reload_model", "ok": True}
        refused = dev.status()["mqtt"]["commands_refused"]
        assert dev.put("/api/config", {"mqtt.replay_ms": 21}).status == 200  # the sink reconnects
        t0 = time.time()
        while dev.status()["mqtt"]["commands_refused"] == refused and time.time() - t0 < 10:
            time.sleep(0.2)
        assert dev.status()["mqtt"]["commands_refused"] == refused + 1
        assert len(col.on(base + "/cmd_result")) == 3
        col.c.publish(base + "/cmd/reload_model", b"", 1, True)  # clear the retained command
        # the password and token are write-only
        cfg = dev.get("/api/config").json()["config"]
        assert cfg["mqtt.command_token"] == {"set": True} and cfg["mqtt.password"] == {"set": False}
        dev.stop(signal.SIGINT)
        col.wait(lambda m: [x[1] for x in m if x[0] == base + "/status"][-1:] == [b"offline"])
    finally:
        col.close()


CONTROLS = {"recording": "binary_sensor", "label": "text", "record_start": "button", "record_stop": "button",
            "reload_model": "button", "restart": "button"}


def controls_removed(cmps):
    """The controls are listed as removed (only their platform: Home Assistant keeps a component left out)."""
    return all(cmps[k] == {"p": p} for k, p in CONTROLS.items())


HA_PLATFORMS = {"sensor", "binary_sensor", "button", "switch", "select", "number", "text", "event", "update",
                "device_automation"}


def validate_discovery(p, base, dev_id, name, raw=None):
    """Device-based discovery as Home Assistant documents it: ``dev`` with identifiers, ``o`` with a name,
    ``cmps`` each with ``p`` and a unique ``uniq_id`` (but device triggers); topics are the device's; and, given the
    ``raw`` payload, Home Assistant's own discovery code accepts every component without dropping an option
    (``ha_core.validate``: the schemas of Home Assistant core in its venv)."""
    assert set(p) <= {"dev", "o", "cmps", "avty_t", "qos", "avty", "stat_t", "cmd_t"}
    dev = p["dev"]
    assert isinstance(dev["ids"], list) and dev["ids"] and all(isinstance(i, str) and dev_id in i for i in dev["ids"])
    assert dev["name"] == name
    assert isinstance(p["o"]["name"], str) and p["o"]["name"]
    assert p["avty_t"] == base + "/status"
    assert p["qos"] in (0, 1, 2)
    cmps = p["cmps"]
    assert cmps and isinstance(cmps, dict)
    ids = set()
    for key, c in cmps.items():
        assert c["p"] in HA_PLATFORMS, key
        if set(c) == {"p"}:
            continue  # removed
        if c["p"] != "device_automation":
            assert c["uniq_id"] not in ids
            ids.add(c["uniq_id"])
        for t in ("stat_t", "cmd_t", "t"):
            if t in c:
                assert c[t].startswith(base + "/")
        if c["p"] == "sensor":
            assert "stat_t" in c and "{{" in c["val_tpl"]
            assert not c["stat_t"].endswith(("/predictions", "/soundlevel", "/events")) or "/state/" in c["stat_t"]
        if c["p"] == "button":
            assert c["cmd_t"].startswith(base + "/cmd/")
        if c.get("dev_cla") == "sound_pressure":
            assert c["unit_of_meas"] == "dB"
    assert any(c.get("stat_t") == base + "/state/predictions" for c in cmps.values())
    assert any(c.get("stat_t") == base + "/state/soundlevel" for c in cmps.values())
    if raw is not None:
        import ha_core

        report = ha_core.validate(raw.decode("utf-8"))
        assert report["errors"] == [], report["errors"]
        assert set(report["components"]) == set(cmps)
        for key, r in report["components"].items():
            assert r["dropped"] == [], (key, r["dropped"])
