"""MQTT commands to the device app (unix port) over a real mosquitto, sent with paho: set the current label,
start and stop a recording (closed into a stored label, as POST /api/labels makes), refusals with reasons, the
command token and broker credentials, and an open recording surviving a device restart."""

import json
import time

import pytest

from mqtt_broker import Broker, Collector
from test_mqtt_sink import MQTT_HEAP, PREFIX

USERS = {"box": "box-pw", "ops": "ops-pw"}
TOKEN = "t\u00f6ken"


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path / "broker", users=USERS)
    yield b
    b.stop()


class Commander:
    """Sends commands as a paho client and waits for each result on ``<base>/cmd_result``."""

    def __init__(self, col, base):
        self.col = col
        self.base = base

    def __call__(self, name, body=None, token=TOKEN):
        body = dict(body or {})
        if token is not None:
            body["token"] = token
        n = len(self.col.on(self.base + "/cmd_result"))
        self.col.publish(self.base + "/cmd/" + name, json.dumps(body, ensure_ascii=False).encode())
        self.col.wait(lambda m: len([x for x in m if x[0] == self.base + "/cmd_result"]) > n)
        return json.loads(self.col.on(self.base + "/cmd_result")[n][1].decode("utf-8"))


def labels(dev):
    r = dev.get("/api/labels")
    assert r.status == 200
    return r.json()["labels"]


def test_label_set_record_start_stop_refusals_and_restart(tmp_path, broker, device_factory):
    data = tmp_path / "dev"
    dev = device_factory(data_dir=data, heap=MQTT_HEAP)
    dev_id = dev.status()["device"]["id"]
    base = "{}/{}".format(PREFIX, dev_id)
    col = Collector(broker.port, user="ops", password="ops-pw")
    cmd = Commander(col, base)
    try:
        r = dev.put("/api/config", {"mqtt.enabled": True, "mqtt.host": "127.0.0.1", "mqtt.port": broker.port,
                                    "mqtt.prefix": PREFIX, "mqtt.username": "box", "mqtt.password": "box-pw",
                                    "mqtt.commands": True, "mqtt.command_token": TOKEN})
        assert r.status == 200, r.body
        # "online" comes after the device's subscriptions (to cmd/+) were acknowledged
        col.wait(lambda m: [x[1] for x in m if x[0] == base + "/status"][-1:] == [b"online"])
        # refusals, each with its reason, before anything is set
        assert cmd("record_start") == {"cmd": "record_start", "ok": False,
                                       "error": "no label: set one with label_set or give \"label\""}
        assert cmd("record_stop") == {"cmd": "record_stop", "ok": False, "error": "no recording is open"}
        assert cmd("label_set", {"label": "x" * 41}) == {
            "cmd": "label_set", "ok": False, "error": "label must be a name of 1 to 40 printable characters"}
        assert cmd("label_set", {"label": "walking"}, token="nope") == {
            "cmd": "label_set", "ok": False, "error": "not authorised"}
        assert cmd("label_set", {"label": "walking"}, token=None)["error"] == "not authorised"
        assert cmd("no_such") == {"cmd": "no_such", "ok": False, "error": "unknown command"}
        assert dev.status()["mqtt"]["label"] is None
        # set the current label, start, refuse a second start, stop: a stored label over the recording's time
        assert cmd("label_set", {"label": "K\u00fcche \u00b5"}) == {"cmd": "label_set", "ok": True,
                                                                      "label": "K\u00fcche \u00b5"}
        t_before = dev.status()["time_ms"]
        r = cmd("record_start")
        assert r["ok"] is True and r["recording"]["label"] == "K\u00fcche \u00b5"
        start = r["recording"]["start"]
        assert t_before <= start <= dev.status()["time_ms"]
        st = dev.status()["mqtt"]
        assert st["recording"] == {"start": start, "label": "K\u00fcche \u00b5"} and st["label"] == "K\u00fcche \u00b5"
        r = cmd("record_start", {"label": "running"})
        assert r["ok"] is False and r["error"].startswith("a recording is already open (label K\u00fcche \u00b5")
        time.sleep(1.5)
        r = cmd("record_stop")
        assert r["ok"] is True
        lab = r["label"]
        assert lab["label"] == "K\u00fcche \u00b5" and lab["start"] == start and lab["end"] - start >= 1400
        assert {"id": lab["id"], "start": start, "end": lab["end"], "label": "K\u00fcche \u00b5"} in labels(dev)
        assert dev.status()["mqtt"]["recording"] is None
        # a label given with record_start overrides the current one; the open recording survives a restart
        r = cmd("record_start", {"label": "running"})
        assert r["ok"] is True
        start2 = r["recording"]["start"]
        n = len(col.on(base + "/status"))
        dev.stop()
        dev = device_factory(data_dir=data, heap=MQTT_HEAP)
        # the restarted device's "online" (after the stopped one's "offline", which may still be on its way)
        col.wait(lambda m: [x[1] for x in m if x[0] == base + "/status"][n:][-1:] == [b"online"])
        st = dev.status()["mqtt"]
        assert st["recording"] == {"start": start2, "label": "running"} and st["label"] == "K\u00fcche \u00b5"
        try:
            r = cmd("record_stop")
        except AssertionError:
            time.sleep(2)
            raise AssertionError(json.dumps(dev.status()["mqtt"]))
        assert r["ok"] is True and r["label"]["start"] == start2 and r["label"]["label"] == "running"
        assert [x["label"] for x in labels(dev)] == ["K\u00fcche \u00b5", "running"]
        # clearing the current label
        assert cmd("label_set", {"label": None}) == {"cmd": "label_set", "ok": True, "label": None}
        assert cmd("record_start")["ok"] is False
        st = dev.status()["mqtt"]
        assert st["commands"] >= 2 and st["commands_refused"] >= 1  # counted since the restart
        assert "MemoryError" not in dev.output()
    finally:
        col.close()


def test_commands_need_the_broker_credentials_and_the_prefix(tmp_path, broker, device_factory):
    """Anyone without broker credentials cannot send a command; the device listens only under its prefix."""
    import paho.mqtt.client as paho

    dev = device_factory(data_dir=tmp_path / "dev", heap=MQTT_HEAP)
    base = "{}/{}".format(PREFIX, dev.status()["device"]["id"])
    col = Collector(broker.port, user="ops", password="ops-pw")
    try:
        r = dev.put("/api/config", {"mqtt.enabled": True, "mqtt.host": "127.0.0.1", "mqtt.port": broker.port,
                                    "mqtt.prefix": PREFIX, "mqtt.username": "box", "mqtt.password": "box-pw",
                                    "mqtt.commands": True, "mqtt.command_token": TOKEN})
        assert r.status == 200, r.body
        col.wait(lambda m: [x[1] for x in m if x[0] == base + "/status"][-1:] == [b"online"])
        anon = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="anon-cmd")
        res = []
        anon.on_connect = lambda c, u, f, rc, p: res.append(rc)
        anon.connect("127.0.0.1", broker.port, 10)
        anon.loop_start()
        t0 = time.time()
        while not res and time.time() - t0 < 60:
            time.sleep(0.05)
        anon.loop_stop()
        assert res and res[0].is_failure  # the broker refuses a client without credentials
        # another prefix is not the device's: nothing happens there
        col.publish("other/{}/cmd/label_set".format(base.split("/")[1]), b'{"label":"x"}')
        Commander(col, base)("label_set", {"label": "walking"}, token=TOKEN)  # the device's prefix, with the token
        time.sleep(0.5)
        st = dev.status()["mqtt"]
        assert st["label"] == "walking" and st["commands"] == 1 and st["commands_refused"] == 0
    finally:
        col.close()
