"""MQTT commands to the device app (unix port) over a real mosquitto, sent with paho: set the current label,
start and stop a recording (closed into a stored label, as POST /api/labels makes), refusals with reasons, the
command token and broker credentials, and an open recording surviving a device restart."""

import json
import time

import pytest

from mqtt_broker import Broker, Collector
from test_mqtt_sink import MQTT_HEAP, PREFIX, controls_removed

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


def commands_on(dev, col, base, port, token=None):
    """MQTT with commands, with ``token`` as the command token or none (the device logs in to the broker as
    "box"); returns once it is online."""
    cfg = {"mqtt.enabled": True, "mqtt.host": "127.0.0.1", "mqtt.port": port, "mqtt.prefix": PREFIX,
           "mqtt.username": "box", "mqtt.password": "box-pw", "mqtt.commands": True}
    if token:
        cfg["mqtt.command_token"] = token
    r = dev.put("/api/config", cfg)
    assert r.status == 200, r.body  # (no token needed with broker credentials)
    col.wait(lambda m: [x[1] for x in m if x[0] == base + "/status"][-1:] == [b"online"])
    time.sleep(0.5)  # the device's subscription to cmd/+ follows its "online"


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
        commands_on(dev, col, base, broker.port, TOKEN)
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
        # (pinned: the recording's raw data is kept until pulled, issue 16)
        assert {"id": lab["id"], "start": start, "end": lab["end"], "label": "K\u00fcche \u00b5",
                "pinned": True} in labels(dev)
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
        commands_on(dev, col, base, broker.port, TOKEN)
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


ACL = """user box
topic readwrite sbtest/#
topic read homeassistant/status
topic write homeassistant/#

user ops
topic readwrite #

user guest
topic read sbtest/#
"""


def test_without_a_token_commands_come_through_a_broker_with_accounts_and_its_acl(tmp_path, device_factory):
    """Home Assistant sends no token: on a broker that authenticates clients, the device's own command topics are
    trusted and the ACL decides who may write to them; a guest the ACL lets read only cannot command."""
    broker = Broker(tmp_path / "broker", users=dict(USERS, guest="guest-pw"), acl=ACL)
    dev = device_factory(data_dir=tmp_path / "dev", heap=MQTT_HEAP)
    base = "{}/{}".format(PREFIX, dev.status()["device"]["id"])
    col = Collector(broker.port, user="ops", password="ops-pw")
    guest = Collector(broker.port, topics=(base + "/cmd_result",), user="guest", password="guest-pw")
    cmd = Commander(col, base)
    try:
        commands_on(dev, col, base, broker.port)
        assert dev.status()["mqtt"]["broker_auth"] is True  # a client without credentials was refused
        assert cmd("label_set", {"label": "walking"}, token=None) == {"cmd": "label_set", "ok": True,
                                                                      "label": "walking"}
        guest.publish(base + "/cmd/label_set", b'{"label":"hijacked"}')  # the ACL drops it at the broker
        assert cmd("label_set", {"label": "running"}, token=None)["ok"] is True
        time.sleep(0.5)
        st = dev.status()["mqtt"]
        assert st["label"] == "running" and st["commands"] == 2 and st["commands_refused"] == 0
        assert len(col.on(base + "/cmd_result")) == 2  # nothing ever came of the guest's command
        assert json.loads(col.on(base + "/state/control")[-1][1]) == {"label": "running", "recording": None}
    finally:
        guest.close()
        col.close()
        broker.stop()


def test_a_broker_that_lets_anyone_in_gets_no_tokenless_commands(tmp_path, device_factory):
    broker = Broker(tmp_path / "broker", users=USERS, anonymous=True)
    dev = device_factory(data_dir=tmp_path / "dev", heap=MQTT_HEAP)
    dev_id = dev.status()["device"]["id"]
    base = "{}/{}".format(PREFIX, dev_id)
    col = Collector(broker.port)
    cmd = Commander(col, base)
    try:
        commands_on(dev, col, base, broker.port)
        assert dev.status()["mqtt"]["broker_auth"] is False
        r = cmd("label_set", {"label": "walking"}, token=None)
        assert r["ok"] is False and r["error"].startswith("not authorised: the broker lets clients in without")
        topic = "homeassistant/device/{}/config".format(dev_id)
        col.wait(lambda m: any(x[0] == topic for x in m))
        cmps = json.loads(col.on(topic)[-1][1])["cmps"]
        assert controls_removed(cmps)  # no controls that would fail
        # with a token, commands work on such a broker too
        assert dev.put("/api/config", {"mqtt.command_token": TOKEN}).status == 200
        time.sleep(1.5)
        col.wait(lambda m: [x[1] for x in m if x[0] == base + "/status"][-1:] == [b"online"])
        time.sleep(0.5)
        assert cmd("label_set", {"label": "walking"})["ok"] is True
    finally:
        col.close()
        broker.stop()


def test_long_and_non_ascii_command_inputs_get_a_clean_error(tmp_path, broker, device_factory):
    """Issue 19.2 over MQTT: a command too large for the client, labels past 40 characters, lone surrogates
    (escaped or encoded), bytes that are not UTF-8: each gets its reason on cmd_result, which is always valid
    UTF-8 JSON, and the connection stays up; astral characters sent as JSON surrogate pairs are kept whole."""
    dev = device_factory(data_dir=tmp_path / "dev", heap=MQTT_HEAP)
    base = "{}/{}".format(PREFIX, dev.status()["device"]["id"])
    col = Collector(broker.port, user="ops", password="ops-pw")
    try:
        commands_on(dev, col, base, broker.port)

        def send(name, raw):
            n = len(col.on(base + "/cmd_result"))
            col.publish(base + "/cmd/" + name, raw)
            col.wait(lambda m: len([x for x in m if x[0] == base + "/cmd_result"]) > n)
            res = col.on(base + "/cmd_result")[n][1]
            return json.loads(res.decode("utf-8"))  # strict UTF-8: never CESU-8 or lone surrogates

        big = json.dumps({"label": "x" * 5000}).encode()
        assert send("label_set", big) == {"cmd": "label_set", "ok": False,
                                          "error": "command too large: at most 2048 bytes"}
        long_label = "\u00e4\u00f6\u00fc\u00df\U0001F600" * 9  # 45 characters, 117 bytes of UTF-8
        why = "label must be a name of 1 to 40 printable characters"
        assert send("label_set", json.dumps({"label": long_label}, ensure_ascii=False).encode())["error"] == why
        assert send("label_set", json.dumps({"label": long_label}).encode())["error"] == why  # as \\u escapes
        # checked as the HTTP API checks a JSON body (http/json_body.py)
        assert send("label_set", b'{"label": "ab\\ud800cd"}')["error"] == (
            "command holds a lone surrogate escape (\\ud800), which is not text")
        assert send("label_set", b'{"label": "\\udc00"}')["ok"] is False
        assert send("label_set", b'{"label": "a\xed\xa0\x80b"}')["error"] == (
            "command is not valid UTF-8 (an encoded UTF-16 surrogate)")
        assert send("label_set", b'{"label": "a\xff"}')["error"].startswith("command is not valid JSON")
        assert send("label_set", b'{"label": 1e999}')["error"] == (
            "command holds a number that is not finite or beyond +-2**53")
        assert send("label", b"[" * 40 + b"]" * 40)["error"] == "command is nested deeper than 32 levels"
        now = dev.status()["time_ms"]
        r = send("label", json.dumps({"start": now - 4000, "end": now - 2000, "label": "\ud83d\ude00" + "b" * 38 +
                                      "\u00e9"}).encode())  # 40 characters once the pair is joined
        assert r["ok"] is True and r["label"]["label"] == "\U0001F600" + "b" * 38 + "\u00e9"
        ok = "\u00c4\U0001F600" * 20  # 40 characters, from JSON surrogate pairs
        assert send("label_set", json.dumps({"label": ok}).encode()) == {"cmd": "label_set", "ok": True, "label": ok}
        assert dev.status()["mqtt"]["label"] == ok
        r = dev.get("/api/labels")
        assert r.status == 200 and r.body.decode("utf-8")  # the stored label reads back as valid UTF-8
        assert any(x["label"] == "\U0001F600" + "b" * 38 + "\u00e9" for x in r.json()["labels"])
        st = dev.status()["mqtt"]
        assert st["connects"] == 1 and st["connected"]  # none of it cost the connection
        assert "MemoryError" not in dev.output()
    finally:
        col.close()


def test_clip_command_records_an_audio_clip_announced_on_the_events_topic(tmp_path, broker, device_factory):
    """The command ``clip`` (issue 18.1) records a clip as POST /api/clips does, authorised like the recording
    commands (the token); the clip kept is an event on ``<base>/events``; with clips off it is refused, saying why."""
    data = tmp_path / "dev"
    data.mkdir()
    (data / "config.json").write_text(json.dumps({"clip.enabled": True, "clip.length_ms": 1000,
                                                  "sim.mic_wav": "/usr/share/pocketsphinx/test/data/cards"}))
    dev = device_factory(data_dir=data, heap=MQTT_HEAP)
    base = "{}/{}".format(PREFIX, dev.status()["device"]["id"])
    col = Collector(broker.port, user="ops", password="ops-pw")
    cmd = Commander(col, base)
    try:
        commands_on(dev, col, base, broker.port, TOKEN)
        assert cmd("clip", token="nope") == {"cmd": "clip", "ok": False, "error": "not authorised"}
        r = cmd("clip")
        assert r == {"cmd": "clip", "ok": True, "clip": {"length_ms": 1000, "pre_ms": 0, "rate_hz": 16000}}, r
        kept = lambda m: [json.loads(x[1]) for x in m if x[0] == base + "/events" and  # noqa: E731
                          json.loads(x[1]).get("type") == "clip"]
        col.wait(kept)
        ev = kept(list(col.messages))
        clips = dev.get("/api/clips").json()["clips"]
        assert len(clips) == 1 and clips[0]["trigger"] == "demand" and clips[0]["frames"] == 16000
        assert ev[0]["start"] == clips[0]["start"] and ev[0]["end"] == clips[0]["end"] and ev[0]["trigger"] == "demand"
        assert dev.put("/api/config", {"clip.enabled": False}).status == 200
        r = cmd("clip")
        assert r == {"cmd": "clip", "ok": False, "error": "clips are off: set clip.enabled first"}, r
    finally:
        col.close()
