"""The device in a real Home Assistant core (``ha_core``: from PyPI, its own Python 3.13 venv, onboarded through its
REST API, its MQTT integration added through its config flow) over the test mosquitto, whose accounts and ACL are
what authorise Home Assistant's commands (no token).

Checked in Home Assistant itself: the device (unique default name, configuration URL, serial, board, versions),
its entities (which are enabled, which are diagnostics), their states and units, the label set from a text entity
and a recording started and stopped with its buttons (reaching the device: the label is stored), a class change
as an event after the Reload model button, the device triggers, the controls leaving and coming back with a
command token, availability across a device kill (last will) and no Home Assistant warning about the device; on a
simulated ESP32, its MAC, Wi-Fi signal and the App update entity across an update (``sensorbox deploy --ota``).
Full size (``make test-ha``, ``make proof``: ``SENSORBOX_PROOF=full``) adds: a broker restart (unavailable, then
available again) with a loud sound level during the outage that the device replays as data but Home Assistant
never shows; a model with other classes (the activity's options and the device triggers follow); and the Restart
button. Every state change Home Assistant makes is recorded over its websocket API throughout."""

import json
import os
import signal
import time

import pytest

import sensorbox
from sensorbox.host import ota
from conftest import ADMIN_PASSWORD, REPO
from mqtt_broker import Broker
from test_ha_discovery import push_renamed_model
from test_mqtt_sink import MQTT_HEAP, PREFIX

import ha_core
import segfiles

pytestmark = [pytest.mark.proof, pytest.mark.ha]
FULL = os.environ.get("SENSORBOX_PROOF") == "full"
USERS = {"box": "box-pw", "ha": "ha-pw"}
ACL = """user box
topic readwrite sbtest/#
topic read homeassistant/status
topic write homeassistant/#

user ha
topic read #
topic write homeassistant/status
topic write sbtest/+/cmd/#
"""
LOUD_DB = 105  # above anything the quiet settings give (-40 dBFS: ~80 dB)


@pytest.fixture(scope="module")
def ha_env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ha")
    broker = Broker(tmp / "broker", users=USERS, acl=ACL)
    t0 = time.time()
    ha = ha_core.HomeAssistant(tmp / "config")
    ha.connect_mqtt(broker.port, "ha", "ha-pw")
    print("\nHome Assistant {}: started in {:.1f} s, onboarded and connected to MQTT in {:.1f} s".format(
        ha_core.HA_VERSION, ha.started_s, time.time() - t0))
    watch = ha.watch(tmp / "changes.jsonl")
    yield ha, broker, watch
    watch.stop()
    ha.stop()
    broker.stop()


def wait(what, fn, timeout=45, every=0.3):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = fn()
        if v:
            return v
        time.sleep(every)
    raise AssertionError("timed out after {} s waiting for {}".format(timeout, what))


def ha_device(ha, dev_id):
    devs = ha.ws({"type": "config/device_registry/list"})[0]["result"]
    for d in devs:
        if ["mqtt", "sensorbox_" + dev_id] in d["identifiers"]:
            return d
    return None


def numeric(s):
    try:
        return float(s["state"])
    except (TypeError, ValueError, KeyError):
        return None


def test_home_assistant_shows_and_controls_the_device(ha_env, device_factory, tmp_path):
    ha, broker, watch = ha_env
    data = tmp_path / "dev"
    dev = device_factory(data_dir=data, heap=MQTT_HEAP)
    dev_id = dev.status()["device"]["id"]
    short = "sensorbox_" + dev_id[-4:]  # entity ids follow the default name, sensorbox-XXXX
    cfg = {"mqtt.enabled": True, "mqtt.host": "127.0.0.1", "mqtt.port": broker.port, "mqtt.prefix": PREFIX,
           "mqtt.username": "box", "mqtt.password": "box-pw", "mqtt.commands": True, "mqtt.state_every_s": 2,
           "sim.mic_tone_dbfs": -40, "sim.mic_noise_dbfs": -60}
    r = dev.put("/api/config", cfg)
    assert r.status == 200, r.body
    t0 = time.time()

    # the device
    d = wait("the device in Home Assistant", lambda: ha_device(ha, dev_id))
    assert d["name"] == "sensorbox-" + dev_id[-4:] and d["manufacturer"] == "sensorbox"
    assert d["configuration_url"] == dev.url + "/" and d["serial_number"] == dev_id
    assert d["sw_version"] == sensorbox.__version__ and d["model_id"] == "unix" and "MicroPython" in d["hw_version"]

    # its entities: which exist, which are enabled, which are diagnostics
    leq = "sensor.{}_sound_level_leq".format(short)
    act = "sensor.{}_activity".format(short)

    def entities():
        ents = ha.ws({"type": "config/entity_registry/list"})[0]["result"]
        return {e["unique_id"][len("sb_" + dev_id + "_"):]: e for e in ents if e["device_id"] == d["id"]}

    ents = wait("22 entities", lambda: (lambda e: e if len(e) >= 22 else None)(entities()))
    print("entities in Home Assistant ({}):".format(len(ents)))
    for k, e in sorted(ents.items(), key=lambda x: x[1]["entity_id"]):
        print("  {:48} {:12} {}".format(e["entity_id"], e["entity_category"] or "", e["disabled_by"] or "enabled"))
    off = {k for k, e in ents.items() if e["disabled_by"] == "integration"}
    assert off == {"lmin", "l10", "l50", "l90", "heap_used", "loop_lag", "uptime"}, off
    assert {k for k, e in ents.items() if e["entity_category"] == "diagnostic"} == {
        "ip", "model", "mqtt_errors", "heap_used", "loop_lag", "uptime"}
    assert ents["leq"]["entity_id"] == leq and ents["activity"]["entity_id"] == act
    assert ents["update"]["entity_category"] == "config" and ents["update"]["disabled_by"] is None

    # states and units
    s = wait("a sound level", lambda: (lambda x: x if numeric(x) is not None else None)(ha.state(leq)))
    assert s["attributes"]["unit_of_measurement"] == "dB" and s["attributes"]["device_class"] == "sound_pressure"
    assert s["attributes"]["state_class"] == "measurement" and 60 < numeric(s) < 95
    classes = json.load(open(os.path.join(REPO, "models", "default", "meta.json")))["classes"] + ["unknown"]
    conf = "sensor.{}_activity_confidence".format(short)
    s = wait("a prediction", lambda: (lambda x: x if numeric(x) is not None else None)(ha.state(conf)))
    assert s["attributes"]["unit_of_measurement"] == "%" and 0 <= numeric(s) <= 100
    s = ha.state(act)  # (from the same message: "unknown" is a class too, below the confidence threshold)
    assert s["state"] in classes and s["attributes"]["device_class"] == "enum" and s["attributes"]["options"] == classes
    assert wait("the IP", lambda: ha.state("sensor.{}_ip_address".format(short))["state"] == "127.0.0.1")
    assert ha.state("sensor.{}_model".format(short))["state"].startswith("default ")
    assert ha.state("sensor.{}_mqtt_errors".format(short))["state"] == "0"
    print("in Home Assistant {:.1f} s after MQTT was enabled".format(time.time() - t0))

    # controls: the label from a text entity, a recording from two buttons; both reach the device
    label = "K\u00fcche \U0001F600 \u00b5"
    ha.call("text", "set_value", entity_id="text.{}_label".format(short), value=label)
    wait("the label on the device", lambda: dev.status()["mqtt"]["label"] == label)
    wait("the label in Home Assistant", lambda: ha.state("text.{}_label".format(short))["state"] == label)
    rec = "binary_sensor.{}_recording".format(short)
    assert ha.state(rec)["state"] == "off"
    ha.call("button", "press", entity_id="button.{}_start_recording".format(short))
    wait("a recording on the device", lambda: dev.status()["mqtt"]["recording"])
    wait("the recording in Home Assistant", lambda: ha.state(rec)["state"] == "on")
    assert ha.state(rec)["attributes"]["recording"]["label"] == label
    time.sleep(1.5)
    ha.call("button", "press", entity_id="button.{}_stop_recording".format(short))
    wait("the recording stored", lambda: any(x["label"] == label for x in dev.get("/api/labels").json()["labels"]))
    wait("no recording in Home Assistant", lambda: ha.state(rec)["state"] == "off")
    assert dev.status()["mqtt"]["recording"] is None

    # the Reload model button reaches the device; a class change shows as an event (the replayed recording
    # changes exercise every ~40 s; noise on the accelerometer makes one sooner)
    n = dev.status()["mqtt"]["commands"]
    ha.call("button", "press", entity_id="button.{}_reload_model".format(short))
    wait("the reload on the device", lambda: dev.status()["mqtt"]["commands"] == n + 1)
    evt = "event.{}_activity_change".format(short)
    before = (ha.state(evt) or {}).get("state")
    assert dev.put("/api/config", {"sim.replay_noise": 4096}).status == 200
    s = wait("a class-change event", lambda: (lambda x: x if x and x["state"] not in (before, "unknown",
                                                                                      "unavailable") else None)(
        ha.state(evt)), timeout=120)
    assert dev.put("/api/config", {"sim.replay_noise": 0}).status == 200
    assert s["attributes"]["event_type"] in classes and s["attributes"]["event_types"] == classes
    assert s["attributes"]["from"] in classes
    trig = ha.ws({"type": "device_automation/trigger/list", "device_id": d["id"]})[0]["result"]
    assert sorted(t["subtype"] for t in trig if t.get("type") == "class_change") == sorted(classes)

    # a command token set: the controls leave Home Assistant (it could only send the token by publishing it in
    # their config), and come back when it is cleared
    controls = {"recording", "label", "record_start", "record_stop", "reload_model", "restart"}
    assert dev.put("/api/config", {"mqtt.command_token": "t0ken"}).status == 200
    wait("the controls removed", lambda: not controls & set(entities()), timeout=60)
    assert dev.put("/api/config", {"mqtt.command_token": ""}).status == 200
    wait("the controls back", lambda: controls <= set(entities()), timeout=60)

    # availability: the device killed (its last will), then back
    dev.stop(signal.SIGKILL)
    wait("unavailable after the kill", lambda: ha.state(leq)["state"] == "unavailable", timeout=60)
    assert ha.state("button.{}_restart".format(short))["state"] == "unavailable"
    dev = device_factory(data_dir=data, heap=MQTT_HEAP)
    wait("a sound level again", lambda: numeric(ha.state(leq)) is not None)
    changes = [c["state"] for c in watch.changes(leq)]
    i = len(changes) - 1 - changes[::-1].index("unavailable")
    assert changes[i + 1] == "unknown", changes[i:]  # not the value from before the kill: unknown until live

    if FULL:
        _broker_restart_replays_nothing_stale(ha, broker, watch, dev, leq, short)
        _other_classes_and_restart(ha, d, dev, data, act, device_factory, short, tmp_path)

    # nothing in Home Assistant's log about this device's MQTT config or messages
    bad = [line for line in ha.log().splitlines() if (" WARNING " in line or " ERROR " in line) and (
        "mqtt" in line.lower() or dev_id in line or short in line) and not (
        "[homeassistant.components.mqtt.client]" in line and "connection" in line.lower())]  # (the broker restart)
    assert bad == [], "\n".join(bad)
    print("state changes Home Assistant recorded: {}".format(len(watch.changes())))


def test_update_entity_follows_an_app_update(ha_env, tmp_path, monkeypatch):
    """The App update entity on a simulated ESP32 (``fielddev``: Wi-Fi, MAC, app slots): the version it runs, up
    to date (the device knows no newer one), no install button (an update is signed on the host), a link to the
    web UI's App update; an update sent with ``sensorbox deploy --ota`` shows as installed, on trial or confirmed,
    and as the device's software version."""
    from test_field_ota import _app_bundle, _device

    ha, broker, watch = ha_env
    monkeypatch.setenv("SENSORBOX_KEYS", str(tmp_path / "keys"))
    dev = _device(tmp_path / "field")
    try:
        dev_id = dev.status()["device"]["id"]
        short = "sensorbox_" + dev_id[-4:]
        r = dev.put("/api/config", {"mqtt.enabled": True, "mqtt.host": "127.0.0.1", "mqtt.port": broker.port,
                                    "mqtt.prefix": PREFIX, "mqtt.username": "box", "mqtt.password": "box-pw",
                                    "mqtt.commands": True})
        assert r.status == 200, r.body
        d = wait("the device in Home Assistant", lambda: ha_device(ha, dev_id))
        assert d["sw_version"] == sensorbox.__version__ and d["model_id"] == "esp32"
        assert d["connections"] and d["connections"][0][0] == "mac"  # a board with Wi-Fi: its MAC
        upd = "update.{}_app".format(short)
        s = wait("the update entity", lambda: (lambda x: x if x and x["state"] == "off" else None)(ha.state(upd)))
        a = s["attributes"]
        assert a["installed_version"] == a["latest_version"] == sensorbox.__version__, a
        assert a["supported_features"] & 1 == 0, a  # UpdateEntityFeature.INSTALL: none
        assert a["release_summary"] == "the app deployed over USB" and a["release_url"].endswith(
            ":{}/#health".format(dev.port)), a
        assert a["title"] == "sensorbox app" and a["device_class"] == "firmware" and a["in_progress"] is False
        rssi = wait("the Wi-Fi signal entity", lambda: [e for e in ha.ws({"type": "config/entity_registry/list"})[0][
            "result"] if e["unique_id"] == "sb_{}_rssi".format(dev_id)])
        assert rssi[0]["disabled_by"] == "integration" and rssi[0]["entity_category"] == "diagnostic", rssi
        ota.deploy_ota(dev.url, _app_bundle(), password=ADMIN_PASSWORD, version="9.9.9-ha", log=print)
        s = wait("the update installed in Home Assistant",
                 lambda: (lambda x: x if x and x["attributes"]["installed_version"] == "9.9.9-ha" else None)(
                     ha.state(upd)), timeout=90)
        a = s["attributes"]
        assert s["state"] == "off" and a["latest_version"] == "9.9.9-ha", s
        assert a["release_summary"].startswith("on trial") or "confirmed healthy" in a["release_summary"], a
        assert wait("the new software version", lambda: ha_device(ha, dev_id)["sw_version"] == "9.9.9-ha")
        if FULL:  # confirmed after a minute's health: shown with the next health message (once a minute)
            s = wait("the update confirmed in Home Assistant", lambda: (lambda x: x if "confirmed healthy" in (
                x["attributes"]["release_summary"] or "") else None)(ha.state(upd)), timeout=150)
            assert s["state"] == "off" and s["attributes"]["installed_version"] == "9.9.9-ha", s
        print("update entity after the update: {}".format(a))
    finally:
        dev.stop()


def _broker_restart_replays_nothing_stale(ha, broker, watch, dev, leq, short):
    # The broker goes away for ~40 s. Meanwhile the device hears a loud tone for ~12 s, then quiet again for
    # longer than the freshness bound before the broker is back: the loud rows are replayed to the data topic,
    # Home Assistant never shows them.
    n0 = len(watch.changes(leq))
    broker.stop()
    t_down = time.time()
    wait("unavailable without a broker", lambda: ha.state(leq)["state"] == "unavailable", timeout=60)
    assert dev.put("/api/config", {"sim.mic_tone_dbfs": -5}).status == 200
    time.sleep(12)
    assert dev.put("/api/config", {"sim.mic_tone_dbfs": -40}).status == 200
    t_quiet = dev.status()["time_ms"]
    time.sleep(22)
    loud = [t for t in _stored_levels(dev, t_down) if t[1] > LOUD_DB]
    assert len(loud) >= 8, "the outage made no loud rows to replay"
    broker.start()
    t_up = time.time()
    wait("available after the broker restart", lambda: numeric(ha.state(leq)) is not None, timeout=90)
    wait("the backlog delivered", lambda: dev.status()["mqtt"]["outbox"]["soundlevel"]["cursor"] >= t_quiet)
    time.sleep(6)
    seen = [c["state"] for c in watch.changes(leq)[n0:]]
    levels = [float(x) for x in seen if x not in ("unknown", "unavailable")]
    assert "unavailable" in seen and levels and max(levels) < LOUD_DB, seen
    # Home Assistant, reconnected, shows the value it had before the outage until told otherwise: the device's
    # "{}" (at its own reconnect, or at Home Assistant's birth message, whichever comes later) makes it unknown
    assert "unknown" in seen[seen.index("unavailable"):], seen
    print("broker outage {:.0f} s: {} loud rows replayed as data; Home Assistant's Leq states after it: {}".format(
        t_up - t_down, len(loud), seen[:12]))


def _stored_levels(dev, since_s):
    # (t, Leq in dB) of the sound levels the device stored since then, read from its segment files
    return [(t, v[0] / 100) for t, v in segfiles.rows(dev.data_dir, "soundlevel") if t >= since_s * 1000]


def _other_classes_and_restart(ha, d, dev, data, act, device_factory, short, tmp_path):
    meta = push_renamed_model(dev, tmp_path)
    wait("the new classes in Home Assistant",
         lambda: ha.state(act)["attributes"].get("options") == meta["classes"] + ["unknown"], timeout=60)
    wait("a new class", lambda: ha.state(act)["state"] in meta["classes"] + ["unknown"], timeout=60)
    trig = ha.ws({"type": "device_automation/trigger/list", "device_id": d["id"]})[0]["result"]
    assert sorted(t["subtype"] for t in trig if t.get("type") == "class_change") == sorted(
        meta["classes"] + ["unknown"])  # the old ones removed
    ha.call("button", "press", entity_id="button.{}_restart".format(short))
    dev.proc.wait(timeout=30)
    assert dev.proc.returncode == 75  # sensorbox run starts it again on 75; here the test does
    wait("unavailable while it restarts", lambda: ha.state(act)["state"] == "unavailable", timeout=60)
    dev = device_factory(data_dir=data, heap=MQTT_HEAP)
    wait("back after the restart", lambda: ha.state(act)["state"] in meta["classes"] + ["unknown"], timeout=60)
    assert "restart requested over MQTT" in open(os.path.join(str(data), "log.txt"), errors="replace").read()
