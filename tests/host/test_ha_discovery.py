"""The Home Assistant device as MQTT shows it, checked with Home Assistant core's own discovery code (its schemas
and template engine, in the Home Assistant venv: ``ha_core.validate``) but without a running Home Assistant:
the discovery payload of a device whose broker authenticates clients (controls included) and of one with a command
token (none); every value template rendered on the messages the device really sent, the ``{}`` of a reconnect
included, and the update entity's state checked by its state schema; discovery sent again with the new classes when a model is activated; state topics throttled and never
fed from a replayed backlog. (``test_ha_core.py`` runs the real Home Assistant.)"""

import json
import os
import shutil
import time

import pytest

import sensorbox
from conftest import ADMIN_PASSWORD, REPO
from mqtt_broker import Broker, Collector, Link
from sensorbox.host import export
from test_mqtt_sink import MQTT_HEAP, PREFIX

import ha_core

pytestmark = pytest.mark.ha
USERS = {"box": "box-pw", "ops": "ops-pw"}
FRESH_S = 15  # mqtt_sink._FRESH_MS


def enable(dev, port, **extra):
    cfg = {"mqtt.enabled": True, "mqtt.host": "127.0.0.1", "mqtt.port": port, "mqtt.prefix": PREFIX,
           "mqtt.username": "box", "mqtt.password": "box-pw", "mqtt.commands": True, "mqtt.state_every_s": 1}
    cfg.update(extra)
    r = dev.put("/api/config", cfg)
    assert r.status == 200, r.body


def last(col, topic):
    m = col.on(topic)
    return m[-1][1] if m else None


def push_renamed_model(dev, tmp_path):
    """Activate the default model with its classes renamed (in German); returns its meta.json."""
    mdir = tmp_path / "renamed"
    shutil.copytree(os.path.join(REPO, "models", "default"), mdir)
    meta = json.load(open(mdir / "meta.json"))
    meta["classes"] = ["Pendel", "Abduktion", "Vorheben", "Innen", "Au\u00dfen", "Trapez", "Rudern"]
    json.dump(meta, open(mdir / "meta.json", "w"))
    export.push(dev.url, str(mdir), ADMIN_PASSWORD)
    return meta


def test_discovery_passes_home_assistants_schemas_and_its_templates_render_the_device_messages(tmp_path,
                                                                                                  device_factory):
    broker = Broker(tmp_path / "broker", users=USERS)
    dev = device_factory(data_dir=tmp_path / "dev", heap=MQTT_HEAP)
    dev_id = dev.status()["device"]["id"]
    base = "{}/{}".format(PREFIX, dev_id)
    topic = "homeassistant/device/{}/config".format(dev_id)
    col = Collector(broker.port, user="ops", password="ops-pw")
    try:
        enable(dev, broker.port)
        col.wait(lambda m: any(x[0] == topic for x in m))
        # a class change, live: the replayed recording changes exercise every ~40 s; noise on the accelerometer
        # makes one sooner
        assert dev.put("/api/config", {"sim.replay_noise": 4096}).status == 200
        want = ("state/predictions", "state/soundlevel", "state/events", "state/control", "state/update", "health")
        col.wait(lambda m: all(any(x[0] == base + "/" + w and x[1] != b"{}" for x in m) for w in want), timeout=120)
        assert dev.put("/api/config", {"sim.replay_noise": 0}).status == 200
        raw = last(col, topic)
        p = json.loads(raw)
        samples = {}
        for t, payload, retain in col.messages:
            if t.startswith(base + "/state/") or t == base + "/health":
                samples.setdefault(t, []).append(payload.decode("utf-8"))
        for w in ("predictions", "soundlevel"):
            assert samples[base + "/state/" + w][0] == "{}"  # at connect, before "online": unknown until live
        report = ha_core.validate(raw.decode("utf-8"), samples)
        assert report["errors"] == [], report["errors"]
        comps = report["components"]
        for key, c in comps.items():
            assert c["dropped"] == [], (key, c["dropped"])  # Home Assistant would ignore those keys silently
        classes = json.load(open(os.path.join(REPO, "models", "default", "meta.json")))["classes"] + ["unknown"]
        # the device: unique default name, board, versions, serial, where its UI is
        dev_info = p["dev"]
        assert dev_info["name"] == "sensorbox-" + dev_id[-4:]
        assert dev_info["sn"] == dev_id and dev_info["sw"] == sensorbox.__version__ and dev_info["mdl_id"] == "unix"
        assert "MicroPython" in dev_info["hw"] and dev_info["cu"] == dev.url + "/"
        assert "cns" not in dev_info  # no MAC on the unix port
        # the entities, what they read and what they render
        assert set(comps) >= {"activity", "confidence", "leq", "lmax", "lmin", "l10", "l50", "l90", "activity_change",
                              "ip", "model", "mqtt_errors", "heap_used", "loop_lag", "uptime", "recording", "label",
                              "record_start", "record_stop", "reload_model", "restart", "update"}
        assert "rssi" not in comps  # the unix port has no Wi-Fi
        cfg = {k: c["config"] for k, c in comps.items()}
        assert cfg["activity"]["device_class"] == "enum" and cfg["activity"]["options"] == classes
        assert cfg["activity_change"]["event_types"] == classes
        assert sorted(c["subtype"] for c in cfg.values() if c.get("automation_type") == "trigger") == sorted(classes)
        for k in ("lmin", "l10", "l50", "l90", "heap_used", "loop_lag", "uptime"):
            assert cfg[k]["enabled_by_default"] is False, k  # extra levels and noisy diagnostics: off by default
        for k in ("activity", "leq", "lmax", "ip", "model", "mqtt_errors"):
            assert cfg[k]["enabled_by_default"] is True, k
        for k in ("ip", "model", "mqtt_errors", "heap_used", "loop_lag", "uptime"):
            assert cfg[k]["entity_category"] == "diagnostic", k
        for k in ("leq", "lmax", "lmin", "l10", "l50", "l90"):
            assert cfg[k]["unit_of_measurement"] == "dB" and cfg[k]["device_class"] == "sound_pressure"
            assert cfg[k]["state_topic"] == base + "/state/soundlevel"
        assert cfg["label"]["command_topic"] == base + "/cmd/label_set" and cfg["label"]["max"] == 40
        # the app's update entity: the version that runs, no install command (an update is signed on the host)
        assert cfg["update"]["state_topic"] == base + "/state/update" and "command_topic" not in cfg["update"]
        assert cfg["update"]["device_class"] == "firmware" and cfg["update"]["entity_category"] == "config"
        assert cfg["update"]["title"] == "sensorbox app" and cfg["update"]["release_url"] == dev.url + "/#health"
        assert cfg["update"]["release_summary"] == "the app deployed over USB"
        upd = [json.loads(r) for r in comps["update"]["rendered"]]  # (as Home Assistant's state schema takes it)
        assert upd and upd[-1] == {"installed_version": sensorbox.__version__, "latest_version": sensorbox.__version__,
                                   "release_summary": "the app deployed over USB",
                                   "release_url": dev.url + "/#health"}, comps["update"]["rendered"]
        sl = [json.loads(x) for x in samples[base + "/state/soundlevel"]]
        assert comps["leq"]["rendered"][0] == "None"  # {}: unknown
        for m, r in zip(sl[1:], comps["leq"]["rendered"][1:]):
            assert float(r) == m["leq"]
        pr = [json.loads(x) for x in samples[base + "/state/predictions"]]
        assert comps["activity"]["rendered"] == ["None"] + [m["label"] for m in pr[1:]]
        assert all(r in classes for r in comps["activity"]["rendered"][1:])
        ev = [json.loads(x) for x in samples[base + "/state/events"]]
        fired = [json.loads(r) for r in comps["activity_change"]["rendered"] if r]
        assert fired and fired == [{"event_type": m["to"], "from": m["from"], "confidence": m["confidence"] / 1000}
                                   for m in ev if m["type"] == "class_change"]
        assert comps["label"]["rendered"][-1] == "" and comps["recording"]["rendered"][-1] == "OFF"
        h = json.loads(samples[base + "/health"][-1])
        assert comps["ip"]["rendered"][-1] == "127.0.0.1" == h["ip"]
        assert comps["model"]["rendered"][-1].startswith("default ")
        # Home Assistant's birth message (it has connected, maybe after an outage of its own, and shows the values
        # from before as current): discovery again, "unknown" on both state topics, then live rows
        k = len(col.messages)
        col.publish("homeassistant/status", b"online")
        col.wait(lambda m: any(x[0] == topic for x in m[k:]))
        for w in ("soundlevel", "predictions"):
            col.wait(lambda m: b"{}" in [x[1] for x in m[k:] if x[0] == base + "/state/" + w])
            col.wait(lambda m: [x[1] for x in m[k:] if x[0] == base + "/state/" + w][-1] != b"{}", timeout=30)
        # a model with other classes: discovery again, with them
        n = len(col.on(topic))
        meta = push_renamed_model(dev, tmp_path)
        col.wait(lambda m: len([x for x in m if x[0] == topic]) > n, timeout=30)
        p2 = json.loads(last(col, topic).decode("utf-8"))
        new = meta["classes"] + ["unknown"]
        assert p2["cmps"]["activity"]["ops"] == new and p2["cmps"]["activity_change"]["evt_typ"] == new
        triggers = [c for c in p2["cmps"].values() if c["p"] == "device_automation"]
        assert {c["stype"] for c in triggers if "stype" in c} == set(new)
        # the old classes' triggers removed: Home Assistant keeps a component that is only left out
        removed = [k for k, c in p2["cmps"].items() if c == {"p": "device_automation"}]
        assert sorted(removed) == sorted(k for k, c in p["cmps"].items() if c.get("stype") in set(classes) - set(new))
        assert len(removed) == len(classes) - 1
        assert ha_core.validate(last(col, topic).decode("utf-8"))["errors"] == []
        # from the new discovery on, the state topics name only its classes (Home Assistant refuses another
        # class with a warning): the old model's last rows, sent after it, go to the data topics only
        state = base + "/state/predictions"
        col.wait(lambda m: any(x[0] == state and x[1] != b"{}" and json.loads(x[1])["label"] in meta["classes"]
                               for x in m), timeout=60)
        with col.lock:
            msgs = list(col.messages)
        after = msgs[max(i for i, x in enumerate(msgs) if x[0] == topic) + 1:]
        shown = [json.loads(x[1]) for x in after if x[0] == state and x[1] != b"{}"]
        assert shown and all(x["label"] in new for x in shown), shown
        changes = [json.loads(x[1]) for x in after if x[0] == base + "/state/events"]
        assert all(x["to"] in new for x in changes if x["type"] == "class_change"), changes
    finally:
        col.close()
        broker.stop()


def test_state_topics_are_live_and_throttled_while_a_backlog_goes_to_the_data_topics(tmp_path, device_factory):
    """An outage leaves a backlog: replayed, it reaches the data topics only; a state topic gets only rows that
    were at most FRESH_S old when sent, on change and at most one per mqtt.state_every_s; ``{}`` first at the
    reconnect. The device reaches the broker through a ``Link`` that the test cuts, so the subscriber stays
    connected and sees every message the device sends after it (with a broker restart, the device could reconnect
    and send its QoS 0 ``{}`` before the subscriber was back: it was lost, and the test failed under load)."""
    broker = Broker(tmp_path / "broker", users=USERS)
    link = Link(broker.port)
    dev = device_factory(data_dir=tmp_path / "dev", heap=MQTT_HEAP)
    base = "{}/{}".format(PREFIX, dev.status()["device"]["id"])
    col = Collector(broker.port, user="ops", password="ops-pw")
    try:
        enable(dev, link.port, **{"mqtt.state_every_s": 3, "mqtt.replay_ms": 0})
        col.wait(lambda m: len([x for x in m if x[0] == base + "/soundlevel"]) >= 3)
        time.sleep(2)
        link.cut()  # 25 s without the broker: a backlog of ~25 sound levels and some predictions
        t_down = time.time()
        time.sleep(25)
        t_up = time.time()  # (before the link is back: the device sends nothing before this)
        link.mend()
        col.wait(lambda m: len([x for x, at in zip(m, col.arrived) if at > t_up + 5 and x[1] != b"{}" and
                                x[0] == base + "/state/soundlevel"]) >= 4, timeout=90)
        with col.lock:
            msgs = list(zip(col.messages, col.arrived))
        data = [(json.loads(m[1])["t"], at) for m, at in msgs if m[0] == base + "/soundlevel"]
        state = [(json.loads(m[1]).get("t"), at) for m, at in msgs if m[0] == base + "/state/soundlevel"]
        assert not [m for m, at in msgs if m[0].startswith(base + "/state/s") and m[2]]  # never retained
        backlog = [t for t, at in data if t_down < t / 1000 < t_up]
        assert len(backlog) >= 20 and len([t for t in backlog if t / 1000 < t_up - FRESH_S - 2]) >= 5
        # ...the outage's rows arrived as data, some of them history by the bound...
        # ...and none reached a state topic: the device sends nothing before the link is back (t_up), so a row
        # from before t_up - FRESH_S was older than the bound when sent
        stale = [t for t, at in state if t is not None and t_down + 1 < t / 1000 < t_up - FRESH_S - 1]
        assert stale == [], (stale, t_down, t_up)
        # throttled: at most one state per 3 s (counted over the span they arrived in, +1 for jitter), while every
        # data row is sent
        live = [at for t, at in state if t is not None and at > t_up + 5]
        span = live[-1] - live[0]
        assert 3 <= len(live) <= span / 3 + 2, (len(live), span)
        assert len([at for t, at in data if at > t_up + 5 and t / 1000 > t_up]) > len(live)
        # {} at the reconnect: Home Assistant shows "unknown" until a live row, not the value from before
        assert [m[0][1] for m in msgs if m[0][0] == base + "/state/soundlevel" and m[1] > t_up][0] == b"{}"
    finally:
        col.close()
        link.close()
        broker.stop()
