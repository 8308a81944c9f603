"""Factory reset on a simulated ESP32 (tests/host/fielddev.py): POST /api/reset (admin, confirmed with the device id)
and the board's button held at power-on delete the credentials, the configuration and the tokens and keep the
stored data unless asked; the next boot is a first boot (the set-up access point)."""

import json
import os

import pytest

from fielddev import FieldDevice, until

from conftest import ADMIN_PASSWORD

pytestmark = pytest.mark.e2e  # the simulated ESP32's whole app (fielddev.py)

HOME = [{"ssid": "home", "key": "correct-horse", "rssi": -55, "ip": "10.0.0.7"}]


def _configured(root, config):
    d = os.path.join(str(root), "data")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "wifi.json"), "w") as f:
        json.dump([{"ssid": "home", "password": "correct-horse"}], f)
    with open(os.path.join(d, "update.key"), "w") as f:
        f.write("11" * 32)
    return dict({"time.ntp_host": "off", "mic.enabled": False, "device.name": "bench-9"}, **config)



def test_reset_over_http_keeps_the_data_unless_asked(tmp_path):
    dev = FieldDevice(tmp_path, aps=HOME, config=_configured(tmp_path, {}))
    try:
        until(lambda: dev.status()["wifi"]["state"] == "up", 20, "wifi", dev)
        tok = dev.post("/api/tokens", {"name": "ci", "scope": "read"})
        assert tok.status == 201
        assert os.path.isdir(os.path.join(dev.data_dir, "store"))
        dev_id = dev.status()["device"]["id"]
        r = dev.post("/api/reset", {"confirm": "yes"})
        assert r.status == 400 and r.json()["field"] == "confirm" and dev_id in r.json()["error"]
        r = dev.post("/api/reset", {"confirm": dev_id}, auth=False)
        assert r.status == 401
        r = dev.post("/api/reset", {"confirm": dev_id})
        assert r.status == 200 and "wifi.json" in r.json()["deleted"] and "config.json" in r.json()["deleted"]
        until(lambda: dev.boots == 2, 30, "restart", dev)
        s = until(lambda: dev.get("/api/status", auth=False).json(), 30, "status", dev)
        assert s["device"]["name"] == "sensorbox"  # the config is the defaults again
        until(lambda: dev.get("/api/status", auth=False).json()["wifi"]["state"] == "setup", 20, "set-up AP", dev)
        for f in ("wifi.json", "update.key", "tokens.json"):
            assert not os.path.exists(os.path.join(dev.data_dir, f)), f
        assert os.path.isdir(os.path.join(dev.data_dir, "store"))  # the stored data is kept
        assert dev.get("/api/wifi", auth=False).json()["first"] is True
        # and with erase_data the store goes too (at the restart, when nothing has it open)
        r = dev.post("/api/reset", {"confirm": dev_id, "erase_data": True}, password=ADMIN_PASSWORD)
        assert r.status == 200 and r.json()["erase_data"] is True
        until(lambda: dev.boots == 3, 30, "restart", dev)
        until(lambda: dev.get("/api/status", auth=False).status == 200, 30, "status", dev)
        st = os.path.join(dev.data_dir, "store")
        assert not os.path.isdir(st) or not any(n.endswith(".seg") for _, _, fs in os.walk(st) for n in fs)
    finally:
        dev.stop()


def test_reset_button_held_at_power_on(tmp_path):
    cfg = _configured(tmp_path, {"board.reset_pin": 0})
    os.makedirs(tmp_path / "board", exist_ok=True)
    (tmp_path / "board" / "pins.json").write_text('{"0": 0}')  # GPIO 0 held low: the button pressed
    dev = FieldDevice(tmp_path, aps=HOME, config=cfg)
    try:
        s = dev.get("/api/status", auth=False).json()
        assert s["device"]["name"] == "sensorbox"
        assert "factory reset by the button" in dev.output()
        assert not os.path.exists(os.path.join(dev.data_dir, "wifi.json"))
        until(lambda: dev.get("/api/status", auth=False).json()["wifi"]["state"] == "setup", 20, "set-up AP", dev)
    finally:
        dev.stop()
    # released before 5 s, or not pressed: nothing happens
    (tmp_path / "board" / "pins.json").write_text('{}')
    root2 = tmp_path / "two"
    cfg = _configured(root2, {"board.reset_pin": 0})
    dev = FieldDevice(root2, aps=HOME, config=cfg)
    try:
        assert dev.get("/api/status", auth=False).json()["device"]["name"] == "bench-9"
        assert os.path.exists(os.path.join(dev.data_dir, "wifi.json"))
    finally:
        dev.stop()


def test_a_reset_pin_on_a_port_without_gpio_is_no_reason_not_to_start(tmp_path):
    # `sensorbox run` (the unix port has no machine.Pin) with the button's pin set, as the config fuzz sets it: the
    # device starts (it exited at boot with an AttributeError before)
    from conftest import Device

    d = tmp_path / "unix"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"board.reset_pin": 0}))
    dev = Device(d)
    try:
        assert dev.get("/api/config").json()["config"]["board.reset_pin"] == 0
    finally:
        dev.stop()
