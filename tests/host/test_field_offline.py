"""Sampling and storing go on while Wi-Fi is down, on a simulated ESP32 (tests/host/fielddev.py, its
accelerometer replaying a recording): the access point goes away, the station backs off and retries, and
meanwhile the accelerometer's frames, the stored raw rows and the analysis' rows keep arriving and are read back
from the store (the reconnection itself: tests/device/test_station.py)."""

import csv
import io
import json
import os

import pytest
from fielddev import FieldDevice, until

from sensorbox.host import bundle

pytestmark = pytest.mark.e2e  # the simulated ESP32's whole app (fielddev.py)

HOME = [{"ssid": "home", "key": "correct-horse", "rssi": -55, "ip": "10.0.0.7"}]
CONFIG = {"time.ntp_host": "off", "mic.enabled": False}
REPLAY = {"SENSORBOX_REPLAY": os.path.join(bundle.REPO, "data", "watch_excerpt.npy")}


def _figures(dev):
    """(frames the accelerometer's sampler received, rows stored since boot by resource, the station's status)"""
    s = dev.status()
    rows = {r["name"]: r.get("rows_since_boot") for r in dev.get("/api/resources").json()["resources"]}
    return s["sensors"]["accel"]["received"], rows, s["wifi"]


def test_sampling_and_storing_go_on_while_wifi_is_down(tmp_path):
    os.makedirs(os.path.join(str(tmp_path), "data"), exist_ok=True)
    with open(os.path.join(str(tmp_path), "data", "wifi.json"), "w") as f:
        json.dump([{"ssid": "home", "password": "correct-horse"}], f)
    dev = FieldDevice(tmp_path, aps=HOME, config=CONFIG, env=REPLAY)
    try:
        until(lambda: dev.status()["wifi"]["state"] == "up", 30, "wifi up", dev)
        dev.air([])  # the access point goes away

        def down():
            w = dev.status()["wifi"]
            return w if w["state"] != "up" and w["failures"] >= 1 else None

        until(down, 30, "the station retrying", dev)
        t_lost = dev.status()["time_ms"]
        frames, rows, w = _figures(dev)
        for _ in range(2):  # twice over: frames and rows keep coming while the station fails and waits
            def more():
                f, r, w2 = _figures(dev)
                new = f > frames and r["accel"] > rows["accel"] and r["features"] > rows["features"] and \
                    r["predictions"] > rows["predictions"] and w2["failures"] > w["failures"]
                return (f, r, w2) if new else None

            frames, rows, w = until(more, 30, "frames, rows and retries while Wi-Fi is down", dev)
            assert w["state"] != "up" and w["ip"] is None and "no access point found" in w["last_error"], w
        # what was stored while offline reads back: raw rows sampled after the link went down, in order
        r = dev.get("/api/resources/accel/data?format=csv&start={}".format(t_lost))
        assert r.status == 200, r.body
        ts = [int(row[0]) for row in list(csv.reader(io.StringIO(r.body.decode())))[1:]]
        assert len(ts) >= 50 and ts == sorted(ts) and ts[0] >= t_lost, (len(ts), ts[:3])
        assert dev.status()["sensors"]["accel"]["dropped"] == 0  # (the FIFO never overflowed: no wait blocked)
    finally:
        dev.stop()
