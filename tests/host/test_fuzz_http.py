"""Thousands of malformed requests at the running device (unix port, APP_HEAP): it must not crash, never answer
500, keep sampling without loss, and change no state (config, labels, tokens, model)."""

import random
import socket
import time

from conftest import ADMIN_PASSWORD

METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "BREW", "", "G\x00T", "GET GET"]
PATHS = ["/", "/api/status", "/api/config", "/api/config/schema", "/api/labels", "/api/labels/1",
         "/api/labels/-5", "/api/labels/abc", "/api/model", "/api/model/activate", "/api/model/../../auth.json",
         "/api/resources/accel/data?start=x&max_points=-1", "/api/resources/../../auth.json/data",
         "/api/resources/accel/data?format=%ff", "/api/tokens", "/api/tokens/99", "/api/logs?since=-1",
         "/api/logs?since=99999999999999999999", "/api/events?start=1e99", "/api/login", "/api/restart",
         "/static/../auth.json", "/static/%2e%2e%2fauth.json", "/static/" + "A" * 3000, "//", "/%", "/%zz",
         "/api/live?x=" + "%" * 10, "*", "http://evil/", "/api/debug/fault", "/\xff\xfe"]
BODIES = [b"", b"{", b"[]", b"null", b'{"password": 5}', b'{"device.name": "\xff\xfe"}', b'{"a":' * 200,
          b"\x00" * 64, b'{"start": "x", "end": 1, "label": 5}', b'{"name": "x", "scope": "admin"}',
          "{\"device.name\": \"caf\u00e9\"}".encode(), bytes(range(256)), b'{"service": "accel"}']
HEADERS = ["Content-Type: application/json", "Content-Length: 5", "Content-Length: -1", "Content-Length: abc",
           "Content-Length: 99999999", "Authorization: Basic !!!", "Authorization: Bearer sb_1_00",
           "Authorization: Bearer sb___", "Cookie: sb_session=" + "0" * 32, "Cookie: ;;;=;", "X-CSRF-Token: x",
           "Origin: http://evil", "Sec-Fetch-Site: cross-site", "Host: " + "h" * 100, "NoColonHeader",
           "X-Long: " + "x" * 2500, "Transfer-Encoding: chunked", ": empty-name"]


def one(port, rng):
    m = rng.choice(METHODS)
    p = rng.choice(PATHS)
    lines = ["{} {} HTTP/1.{}".format(m, p, rng.choice("01"))] if rng.random() > 0.05 else [rng.choice(PATHS)]
    for _ in range(rng.randint(0, 4)):
        lines.append(rng.choice(HEADERS))
    body = rng.choice(BODIES)
    if rng.random() < 0.5:
        lines.append("Content-Length: {}".format(len(body)))
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + body
    if rng.random() < 0.15:
        raw = raw[:rng.randint(0, len(raw))]  # truncated
    if rng.random() < 0.05:
        raw = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300)))  # noise
    s = socket.create_connection(("127.0.0.1", port), timeout=3)
    try:
        s.sendall(raw)
        s.shutdown(socket.SHUT_WR)
        reply = b""
        while len(reply) < 64:
            chunk = s.recv(64)
            if not chunk:
                break
            reply += chunk
    except OSError:  # the device may close on a bad request before reading it all
        reply = b""
    finally:
        s.close()
    return reply


def test_fuzz_malformed_requests(device_factory):
    dev = device_factory()
    rng = random.Random(4)
    time.sleep(1)
    cfg = dev.get("/api/config").json()["config"]
    labels = dev.get("/api/labels").json()
    model = dev.get("/api/model").json()
    before = dev.status()["sensors"]
    statuses = {}
    n = 2000
    for _ in range(n):
        reply = one(dev.port, rng)
        code = reply[9:12].decode(errors="replace") if reply.startswith(b"HTTP/1.") else "none"
        statuses[code] = statuses.get(code, 0) + 1
    assert dev.proc.poll() is None, dev.output()[-3000:]
    assert "500" not in statuses, (statuses, dev.output()[-3000:])
    # short of memory for a moment (503 "retry") must stay rare
    assert statuses.get("503", 0) < n * 0.05, statuses
    assert statuses.get("401", 0) > 30 and statuses.get("404", 0) > 100, statuses
    print("fuzz replies by status:", statuses)
    after = dev.status()
    assert after["task_restarts"] == 0, after["tasks"]
    # sampling went on... (the accelerometer's FIFO is read once a second, accel.poll_ms: a fuzz that ends within
    # a second of the first status saw no read of it, so wait for the next one, as a read that never comes fails)
    deadline = time.time() + 10
    while time.time() < deadline and any(after["sensors"][k]["received"] <= before[k]["received"]
                                         for k in ("accel", "mic")):
        time.sleep(0.5)
        after = dev.status()
    for name in ("accel", "mic"):
        assert after["sensors"][name]["received"] > before[name]["received"], (name, before, after["sensors"])
    # ...and lost nothing where the sensor's FIFO holds seconds (the accelerometer's 256 frames, 5 s at 50 Hz): a
    # loss there means the loop stalled for seconds. (The microphone's 64 ms ring is for the benchmarks.)
    assert after["sensors"]["accel"]["dropped"] == 0, after["sensors"]
    assert dev.get("/api/config").json()["config"] == cfg
    assert dev.get("/api/labels").json() == labels
    assert dev.get("/api/model").json() == model
    assert dev.get("/api/tokens").json()["tokens"] == []
    assert dev.get("/api/config", password=ADMIN_PASSWORD).status == 200
