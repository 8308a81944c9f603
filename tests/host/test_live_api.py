"""Live stream (SSE), logs, events and restart of the running device app (unix port, APP_HEAP, real sockets)."""

import base64
import http.client
import json
import struct
import threading
import time

from conftest import ADMIN_PASSWORD, wait_for

AUTH = {"Authorization": "Basic " + base64.b64encode(("admin:" + ADMIN_PASSWORD).encode()).decode()}


def _retry(fn, *args, **kw):
    for _ in range(5):
        r = fn(*args, **kw)
        if r.status != 503:  # the device is short of memory and says "retry"
            return r
        time.sleep(0.3)
    return r


def read_sse(dev, seconds, headers=AUTH, out=None, until=None, opened=None):
    """Events [(name, data)] of /api/live read for ``seconds``, or until ``until(events)`` is true (then
    ``seconds`` is only a generous bound); or (status, body) when it is refused. ``opened``: a threading.Event set
    once the stream's first event (hello) is in."""
    c = http.client.HTTPConnection("127.0.0.1", dev.port, timeout=5)
    c.request("GET", "/api/live", headers=headers)
    r = c.getresponse()
    if r.status != 200:
        body = r.read()
        c.close()
        return r.status, body
    assert r.getheader("Content-Type") == "text/event-stream"
    buf = b""
    events = []
    t0 = time.time()
    while time.time() - t0 < seconds and not (until and until(events)):
        chunk = r.read1(4096)
        if not chunk:
            break
        buf += chunk
        *blocks, buf = buf.split(b"\n\n")
        for block in blocks:
            name, data = None, None
            for line in block.split(b"\n"):
                if line.startswith(b"event: "):
                    name = line[7:].decode()
                elif line.startswith(b"data: "):
                    data = json.loads(line[6:])
            if name and data is not None:
                events.append((name, data))
        if events and opened is not None:
            opened.set()
    c.close()
    if out is not None:
        out.append(events)
    return events


def _frames(events):
    """(t, (x, y, z)) of every frame in the stream's accel events."""
    frames = []
    for d in (d for n, d in events if n == "accel"):
        v = struct.unpack("<{}h".format(d["n"] * 3), base64.b64decode(d["b64"]))
        frames += [(d["t"] + i * d["dt"], v[3 * i:3 * i + 3]) for i in range(d["n"])]
    return frames


def test_live_stream_matches_stored_data(device_app):
    # read until 40 frames, a sound level and a prediction (one per analysis window, 128 frames at 50 Hz) are in
    events = read_sse(device_app, 60, until=lambda ev: len(_frames(ev)) >= 40 and {"soundlevel", "prediction"} <= {
        n for n, _ in ev})
    names = [e[0] for e in events]
    assert names[0] == "hello" and events[0][1]["rate_hz"] == 50
    accel = [d for n, d in events if n == "accel"]
    for d in accel:
        assert d["dt"] == 40  # 50 Hz decimated to 25 Hz
        assert len(base64.b64decode(d["b64"])) == d["n"] * 6
    frames = _frames(events)
    assert len(frames) >= 40 and all(b[0] - a[0] == 40 for a, b in zip(frames, frames[1:])), \
        [b[0] - a[0] for a, b in zip(frames, frames[1:])]  # every second frame, none missing
    assert all(d["lost"] == 0 for d in accel[1:])
    assert "soundlevel" in names and "prediction" in names
    snd = [d for n, d in events if n == "soundlevel"][0]
    assert 9000 < snd["leq"] < 11000  # the simulated microphone plays ~100 dB SPL
    pred = [d for n, d in events if n == "prediction"][0]
    assert 0 <= pred["confidence"] <= 1 and isinstance(pred["class"], str)
    # The streamed frames are the stored frames (every second one), once the store has written them (in batches)
    t0, t1 = frames[0][0], frames[-1][0] + 1
    device_app.wait_stored("accel", after=t1)
    r = _retry(device_app.get, "/api/resources/accel/data?format=csv&start={}&end={}".format(t0, t1))
    assert r.status == 200, r.body
    stored = {}
    for line in r.body.decode().strip().split("\n")[1:]:
        p = [int(x) for x in line.split(",")]
        stored[p[0]] = tuple(p[1:])
    matched = sum(1 for t, v in frames if stored.get(t) == v)
    assert matched >= len(frames) * 0.9, (matched, len(frames))


def test_live_stream_sends_features_as_stored(device_app):
    from sensorbox.shared import features

    # read until two analysis windows' features are in (one per window: 64 frames at 50 Hz = 1.28 s)
    events = read_sse(device_app, 60, until=lambda ev: sum(n == "features" for n, _ in ev) >= 2)
    hello = events[0][1]
    assert hello["features"] == len(features.names(3)) and hello["feature_version"] == features.FEATURE_VERSION
    feats = [d for n, d in events if n == "features"]
    assert len(feats) >= 2, [n for n, _ in events]
    assert [d["window"] for d in feats] == sorted(set(d["window"] for d in feats))
    assert "all" in feats[0] and "all" not in feats[1]  # the whole vector only now and then
    names = features.names(3)
    vec = struct.unpack("<{}h".format(hello["features"]), base64.b64decode(feats[0]["all"]))
    summary = ("am_mean", "am_std", "am_jerk", "am_domf", "grav_x", "grav_y", "grav_z")
    assert {k: feats[0][k] for k in summary} == {k: vec[names.index(k)] for k in summary}
    assert any(vec) and feats[0]["am_mean"] > 3000  # ~1 g of gravity in the magnitude (4096 = 1 g)
    # the streamed vector is the stored one, once the store has written it
    t = feats[0]["t"]
    device_app.wait_stored("features", after=t - 1)
    r = _retry(device_app.get, "/api/resources/features/data?format=csv&start={}&end={}".format(t - 5, t + 5))
    assert r.status == 200, r.body
    rows = [[int(x) for x in line.split(",")] for line in r.body.decode().strip().split("\n")[1:]]
    assert len(rows) == 1 and tuple(rows[0][1:]) == vec, rows


def test_four_live_streams_without_sample_loss(device_factory):
    device_app = device_factory()
    before = device_app.status()["sensors"]
    outs, opened, fifth_asked = [], [threading.Event() for _ in range(4)], threading.Event()
    # each stream reads until it has 30 frames and the fifth was asked for (bounded: 60 s)
    threads = [threading.Thread(target=read_sse, args=(device_app, 60), kwargs={
        "out": outs, "opened": o, "until": lambda ev: fifth_asked.is_set() and len(_frames(ev)) >= 30})
        for o in opened]
    for t in threads:
        t.start()
    try:
        for o in opened:
            assert o.wait(60), "four live streams open"
        # A fifth is refused while four run: 503 (at most 4, or short of memory); at APP_HEAP the device
        # sometimes cannot even parse the fifth request then (400) -- refused either way, and nothing breaks.
        status, body = read_sse(device_app, 1)
        assert status in (400, 503), body
    finally:
        fifth_asked.set()
        for t in threads:
            t.join()
    assert len(outs) == 4
    for events in outs:
        assert len(_frames(events)) >= 30
    after = device_app.status()["sensors"]
    # the accelerometer's FIFO holds 5 s: a loss there is a stalled event loop. The microphone's ring holds 64 ms,
    # which a busy machine's scheduler can take from the whole process (fresh23: 96 samples, 6 ms, at load 6):
    # a timing property, counted by `make bench` as the soaks count it (soak.problems), not asserted here
    assert after["accel"]["dropped"] == before["accel"]["dropped"] == 0
    for name in ("accel", "mic"):
        assert after[name]["received"] > before[name]["received"]
    # once the streams have noticed their clients left, a new one gets a slot
    def new_stream():
        ev = read_sse(device_app, 5, until=len)  # refused meanwhile: (503, body)
        return isinstance(ev, list) and ev and ev[0][0] == "hello"

    wait_for(new_stream, "a live stream after the four closed")


def test_stalled_live_client_does_not_block_sampling(device_factory):
    device_app = device_factory()
    # A client that connects and never reads: the device keeps sampling and answering others.
    import socket

    s = socket.create_connection(("127.0.0.1", device_app.port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    s.sendall(b"GET /api/live HTTP/1.0\r\nAuthorization: " + AUTH["Authorization"].encode() + b"\r\n\r\n")
    a = device_app.status()["sensors"]["accel"]
    b = wait_for(lambda: device_app.status()["sensors"]["accel"], "75 more accel frames while the client stalls",
                 lambda b: b["received"] - a["received"] >= 75)
    assert b["dropped"] == 0
    s.close()


def test_logs_since(device_app):
    r = _retry(device_app.get, "/api/logs")
    assert r.status == 200
    d = r.json()
    assert d["entries"] and all(set(e) == {"id", "t", "level", "source", "msg"} for e in d["entries"])
    nxt = d["next"]
    assert _retry(device_app.post, "/api/tokens", {"name": "logme", "scope": "read"}).status == 201
    new = _retry(device_app.get, "/api/logs?since={}".format(nxt)).json()["entries"]
    assert [e["msg"] for e in new if e["source"] == "auth"] == ["API token {} (read) created".format(
        max(t["id"] for t in device_app.get("/api/tokens").json()["tokens"]))]
    r = device_app.get("/api/logs?since=abc")
    assert r.status == 400 and r.json()["field"] == "since"


def test_events_list(device_app):
    def events():
        r = _retry(device_app.get, "/api/events")
        assert r.status == 200, r.body
        return r.json()

    # the first class change is stored a while after the device starts (a loaded machine: later)
    ev = wait_for(events, "an event stored")
    assert ev[0]["type"] == "class_change" and "to" in ev[0]
    r = _retry(device_app.get, "/api/events?start=abc")
    assert r.status == 400 and r.json()["field"] == "start"


def test_restart_exits_for_the_runner(device_factory):
    dev = device_factory()
    r = dev.post("/api/restart", None)
    assert r.status == 200 and r.json() == {"restarting": True}
    dev.proc.wait(timeout=60)  # (a second or two alone)
    assert dev.proc.returncode == 75  # `sensorbox run` restarts the device on 75
    assert "restart requested over HTTP" in dev.output()
