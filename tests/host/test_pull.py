"""``sensorbox pull`` against the device app on the MicroPython unix port: files numpy reads, a manifest, and a
second pull that fetches only what is new (no row twice, none skipped)."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ADMIN_PASSWORD
from sensorbox.host import cli, pull


def test_pull_incremental_into_numpy_files(device_factory, tmp_path, capsys):
    dev = device_factory()
    dev.wait_stored("accel", rows=60)
    r = dev.post("/api/labels", {"start": 1, "end": 2, "label": "rest"})
    assert r.status == 201
    label = r.json()["id"]
    assert dev.get("/api/labels").json()["labels"][0]["pinned"]  # kept from retention until pulled
    out = tmp_path / "pulled"
    code = cli.main(["pull", dev.url, "--out", str(out), "--password", ADMIN_PASSWORD, "--no-progress"])
    assert code == 0
    dev_id = dev.status()["device"]["id"]
    folder = out / dev_id
    man = json.loads((folder / "manifest.json").read_text())
    assert man["device"] == dev_id
    acc = man["resources"]["accel"]
    assert acc["schema"]["columns"] == ["t", "x", "y", "z"] and acc["rows"] > 50
    a1 = np.load(folder / "accel.npy")
    assert a1.dtype.names == ("t", "x", "y", "z") and len(a1) == acc["rows"] and acc["next"] == int(a1["t"][-1])
    assert (folder / "labels.csv").read_text() == "start,end,label\n1,2,rest\n"
    said = capsys.readouterr().out
    assert "accel:" in said and "labels {} released on the device".format(label) in said
    # the device was told how far each resource was pulled: the label's data is no longer pinned there
    assert man["pins"]["released"] == [label] and man["pins"]["pinned"] == []
    assert man["pins"]["pulled_until"]["accel"] == acc["next"] and "soundlevel_1m" not in man["pins"]["pulled_until"]
    assert dev.get("/api/labels").json()["labels"][0]["pinned"] is False
    dev.wait_stored("accel", after=int(a1["t"][-1]))  # more rows stored since the first pull
    pull.pull(dev.url, str(out), password=ADMIN_PASSWORD, log=lambda *a: None)
    a2 = np.load(folder / "accel.npy")
    assert len(a2) > len(a1) and np.array_equal(a2[:len(a1)], a1)
    assert np.all(np.diff(a2["t"]) == 20), "the second pull must continue exactly where the first stopped"
    full = np.load(__import__("io").BytesIO(dev.get("/api/resources/accel/data?end={}".format(
        int(a2["t"][-1]) + 1)).body))
    assert np.array_equal(full, a2)
    man2 = json.loads((folder / "manifest.json").read_text())
    assert man2["resources"]["accel"]["rows"] == len(a2)
    if os.path.exists(folder / "predictions.npy"):
        p = np.load(folder / "predictions.npy")
        assert p.dtype.names == ("t", "class", "confidence")


def test_pull_errors_and_since_parsing(device_factory, tmp_path):
    now = 1_700_000_000_000
    assert pull.parse_since("2h", now) == now - 7_200_000
    assert pull.parse_since("-1000", now) == now - 1000
    assert pull.parse_since("1700000000000", now) == now
    assert pull.parse_since("2023-11-14T22:13:20", now) == now
    with pytest.raises(pull.PullError):
        pull.parse_since("yesterday-ish", now)
    with pytest.raises(pull.PullError, match="cannot reach"):
        pull.pull("http://127.0.0.1:9", str(tmp_path), password="x")
    dev = device_factory()
    with pytest.raises(pull.PullError, match="401.*--password or set .SENSORBOX_PASSWORD.*--token"):
        pull.pull(dev.url, str(tmp_path), password=None)  # no credential sent: not a failed login
    with pytest.raises(pull.PullError, match="no resource nope on this device; it has: accel"):
        pull.pull(dev.url, str(tmp_path), password=ADMIN_PASSWORD, resources=["nope"])
    with pytest.raises(pull.PullError, match="401.*password is wrong"):
        pull.pull(dev.url, str(tmp_path), password="wrong")
    # the CLI without a terminal and without a password says what to give
    env = dict(os.environ)
    env.pop("SENSORBOX_PASSWORD", None)
    r = subprocess.run([sys.executable, "-m", "sensorbox.host.cli", "model", "info", dev.url], env=env,
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "--password or set $SENSORBOX_PASSWORD" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    time.sleep(1.1)  # the wrong password above locks logins for 500 ms
    # --since 3s: rows of the last 3 s by the device's clock, older ones left out. The store writes in batches
    # (store.flush_ms), so its newest rows trail that clock by a second or so, more on a loaded machine: with
    # older rows stored, pull until a window holds rows (every pull checked, none may bring an older row).
    dev.wait_stored("accel", rows=300)  # 6 s
    for attempt in range(30):
        out = tmp_path / "since{}".format(attempt)
        m = pull.pull(dev.url, str(out), password=ADMIN_PASSWORD, since="3s", resources=["accel"],
                      log=lambda *a: None)
        assert set(m["resources"]) == {"accel"}
        if (out / m["device"] / "accel.npy").exists():
            break
        assert "file" not in m["resources"]["accel"]
        time.sleep(0.5)
    a = np.load(out / m["device"] / "accel.npy")
    assert len(a) and a["t"][0] >= m["device_time_ms"] - 3000
    assert m["resources"]["accel"]["device_range"][0] < m["device_time_ms"] - 3000  # ...and older rows there were


def test_progress_bar_ends_at_what_really_came():
    # The size a pull expects is an estimate (rate x time span); the bar must end at the bytes downloaded,
    # at 100 %, whether fewer or more came.
    import io

    for expect, got in ((100_000, 30_720), (10_240, 40_960), (None, 5_120)):
        s = io.StringIO()
        bar = pull.Progress("accel", expect, stream=s, force=True)
        for _ in range(got // 1024):
            bar.add(1024)
        bar.close()
        last = s.getvalue().rstrip("\n").split("\r")[-1]
        assert "100.0%" in last and "[" + "#" * 30 + "]" in last, (expect, last)
        assert "{:.1f} KB ".format(got / 1024) in last, (expect, last)
    s = io.StringIO()
    bar = pull.Progress("upload", 8, stream=s, force=True, unit="chunks")
    bar.add(1)
    assert "1/8 chunks" in s.getvalue() and " 12.5%" in s.getvalue()
