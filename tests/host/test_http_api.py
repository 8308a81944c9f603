"""The device's HTTP API over real sockets, against the app running on the MicroPython unix port (APP_HEAP)."""

import json
import os
import socket
import time

from conftest import ADMIN_PASSWORD


def test_status_is_open_and_complete(device_app):
    st = device_app.status()
    for key in ("device", "firmware", "uptime_s", "heap", "flash", "loop_lag", "task_restarts", "tasks", "sensors"):
        assert key in st, key
    assert st["firmware"]["implementation"] == "micropython"
    assert st["device"]["platform"] == "unix"
    assert st["heap"]["total"] < 330 * 1024  # really the constrained heap (APP_HEAP 160wK = 320 KB here)
    assert set(st["sensors"]) >= {"accel", "mic"}
    assert st["sensors"]["accel"]["columns"] == ["x", "y", "z"]


def test_samples_flow_without_loss(device_app):
    a = device_app.status()["sensors"]
    time.sleep(1.5)
    b = device_app.status()["sensors"]
    for name, rate in (("accel", 50), ("mic", 16000)):
        gained = b[name]["received"] - a[name]["received"]
        # at least half the nominal rate over 1.5 s (the test only reads counters; timing is not asserted tightly)
        assert gained > rate * 0.75, (name, gained)
        assert b[name]["dropped"] == 0, b[name]


def test_config_requires_auth(device_app):
    r = device_app.get("/api/config", auth=False)
    assert r.status == 401
    assert "Basic" in r.headers.get("WWW-Authenticate", "")
    assert device_app.put("/api/config", {"device.name": "x"}, auth=False).status == 401
    assert device_app.post("/api/debug/fault", {"service": "accel"}, auth=False).status == 401
    assert device_app.get("/api/config/schema", auth=False).status == 401


def test_wrong_password_is_refused_then_rate_limited(device_app):
    r = device_app.get("/api/config", password="wrong")
    assert r.status == 401
    r2 = device_app.get("/api/config", password="wrong-again")
    assert r2.status == 429, r2.body
    assert "wait" in r2.json()["error"]
    time.sleep(1.2)  # the lockout after two failures is 1 s
    assert device_app.get("/api/config").status == 200


def test_bad_config_updates_name_the_key_and_change_nothing(device_app):
    before = device_app.get("/api/config").json()["config"]
    on_disk = _read(os.path.join(device_app.data_dir, "config.json"))
    cases = [
        ({"accel.rate_hz": "fast"}, "accel.rate_hz", "not one of"),
        ({"accel.poll_ms": 0}, "accel.poll_ms", "out of range"),
        ({"accel.poll_ms": "10"}, "accel.poll_ms", "expected an integer"),
        ({"no.such.key": 1}, "no.such.key", "unknown key"),
        ({"device.name": "ok", "mic.enabled": "yes"}, "mic.enabled", "true or false"),
    ]
    for body, field, words in cases:
        r = device_app.put("/api/config", body)
        assert r.status == 400, (body, r.status, r.body)
        err = r.json()
        assert err["field"] == field and words in err["error"], err
    assert device_app.get("/api/config").json()["config"] == before
    assert _read(os.path.join(device_app.data_dir, "config.json")) == on_disk


def test_malformed_bodies(device_app):
    r = device_app.request("PUT", "/api/config", body=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status == 400 and "not valid JSON" in r.json()["error"]
    r = device_app.request("PUT", "/api/config", body=b"")
    assert r.status == 400
    r = device_app.put("/api/config", [1, 2])
    assert r.status == 400 and r.json()["field"] == "(body)"
    # An oversized body is refused from its Content-Length, before the device reads any of it.
    with socket.create_connection(("127.0.0.1", device_app.port), timeout=5) as c:
        c.sendall(b"PUT /api/config HTTP/1.0\r\nContent-Length: 20000\r\n\r\n")
        reply = b""
        while True:
            chunk = c.recv(4096)
            if not chunk:
                break
            reply += chunk
    assert reply.startswith(b"HTTP/1.0 413"), reply
    assert b"too large" in reply
    assert device_app.get("/api/nope").status == 404
    assert device_app.request("DELETE", "/api/status").status == 405
    assert device_app.status()["task_restarts"] == 0


def test_config_change_applies_live(device_app):
    r = device_app.put("/api/config", {"accel.rate_hz": 100, "device.name": "bench-7"})
    assert r.status == 200, r.body
    assert sorted(r.json()["changed"]) == ["accel.rate_hz", "device.name"]
    deadline = time.time() + 5
    while time.time() < deadline:
        st = device_app.status()
        if st["sensors"]["accel"]["rate_hz"] == 100:
            break
        time.sleep(0.1)
    assert st["sensors"]["accel"]["rate_hz"] == 100
    assert st["device"]["name"] == "bench-7"
    assert st["tasks"]["accel"]["reloads"] >= 1 and st["tasks"]["accel"]["restarts"] == 0
    saved = json.loads(_read(os.path.join(device_app.data_dir, "config.json")))
    assert saved["accel.rate_hz"] == 100
    r = device_app.put("/api/config", {"http.port": 8123})
    assert r.json()["reboot_pending"] == ["http.port"]
    device_app.put("/api/config", {"accel.rate_hz": 50, "http.port": 80})


def test_schema_lists_every_key_with_help(device_app):
    r = device_app.get("/api/config/schema")
    assert r.status == 200
    schema = r.json()["schema"]
    keys = [d["key"] for d in schema]
    assert "accel.rate_hz" in keys and all(d["help"] for d in schema)
    assert set(keys) == set(device_app.get("/api/config").json()["config"])


def test_injected_fault_is_logged_counted_and_sampling_continues(device_app):
    st0 = device_app.status()
    r = device_app.post("/api/debug/fault", {"service": "accel"})
    assert r.status == 200, r.body
    assert device_app.post("/api/debug/fault", {"service": "nope"}).status == 400
    time.sleep(1.0)
    st = device_app.status()
    assert st["task_restarts"] == st0["task_restarts"] + 1
    assert st["tasks"]["accel"]["restarts"] == 1
    assert st["tasks"]["accel"]["last_error"] == "injected fault"
    assert st["sensors"]["accel"]["received"] > st0["sensors"]["accel"]["received"]
    time.sleep(0.5)
    assert device_app.status()["sensors"]["accel"]["received"] > st["sensors"]["accel"]["received"]
    out = device_app.output()
    assert "accel failed (restart 1): injected fault" in out and "Traceback" in out
    time.sleep(2.2)  # the log reaches flash within ~2 s
    assert "injected fault" in _read(os.path.join(device_app.data_dir, "log.txt"))


def test_password_is_stored_hashed_only(device_app):
    text = _read(os.path.join(device_app.data_dir, "auth.json"))
    assert ADMIN_PASSWORD not in text
    d = json.loads(text)
    assert len(d["salt"]) == 32 and len(d["hash"]) == 64 and d["iterations"] >= 1000
    for path in ("/api/config", "/api/status"):
        assert ADMIN_PASSWORD not in device_app.get(path).body.decode()


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return None


def test_slow_client_is_cut_off_and_sampling_goes_on(device_app):
    assert device_app.put("/api/config", {"http.read_timeout_s": 1}).status == 200
    try:
        before = device_app.status()["sensors"]["accel"]["received"]
        with socket.create_connection(("127.0.0.1", device_app.port), timeout=8) as c:
            c.sendall(b"GET /api/status HTTP/1.0\r\nX-Slow: ")  # ...and then nothing
            reply = b""
            while True:
                chunk = c.recv(4096)
                if not chunk:
                    break
                reply += chunk
        assert reply.startswith(b"HTTP/1.0 400"), reply  # answered and closed, not left hanging
        st = device_app.status()
        assert st["sensors"]["accel"]["received"] > before and st["sensors"]["accel"]["dropped"] == 0
    finally:
        device_app.put("/api/config", {"http.read_timeout_s": 10})
