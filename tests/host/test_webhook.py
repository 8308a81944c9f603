"""End to end: the device app (MicroPython unix port, APP_HEAP) posting through its webhook sink to a real CPython
HTTP receiver in this test. The receiver answers 500 for a while, then hangs past the device's timeout, then
recovers: every stored event and sound level arrives, first arrivals in order, duplicates only as the same
message with the same Idempotency-Key, every signature verifies (CPython's hmac), timestamps present."""

import hashlib
import hmac
import http.server
import json
import threading
import time

import pytest

from test_mqtt_sink import stored_times

SECRET = "s3cr\u00e9t-\u00b5"  # non-ASCII: the device signs with its UTF-8 bytes


class Receiver:
    """A webhook receiver on 127.0.0.1; ``mode`` is ``ok``, ``500`` or ``hang`` (read the request, answer
    nothing for ``hang_s``, close). Records every request that arrived as (mode, headers, body)."""

    def __init__(self, hang_s=3.0, tls=None):
        self.mode = "ok"
        self.hang_s = hang_s
        self.requests = []
        self.lock = threading.Lock()
        rec = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                mode = rec.mode
                with rec.lock:
                    rec.requests.append((mode, {k.lower(): v for k, v in self.headers.items()}, body,
                                         self.path))
                if mode == "hang":
                    time.sleep(rec.hang_s)
                    self.close_connection = True
                    return
                code = 200 if mode == "ok" else 500
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.send_header("Connection", "close")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]
        if tls is not None:  # https with the test certificate (mqtt_broker.Certs)
            import ssl

            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tls.cert, tls.key)
            self.srv.socket = ctx.wrap_socket(self.srv.socket, server_side=True)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def accepted(self):
        """(headers, body dict) of requests answered 2xx, in arrival order."""
        with self.lock:
            return [(h, json.loads(b.decode("utf-8"))) for m, h, b, p in self.requests if m == "ok"]

    def wait(self, cond, timeout=60):
        t0 = time.time()
        while time.time() - t0 < timeout:
            if cond():
                return
            time.sleep(0.1)
        raise AssertionError("receiver: condition not met within {} s ({} requests)".format(
            timeout, len(self.requests)))

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def wait_status(dev, cond, timeout=60):
    t0 = time.time()
    while time.time() - t0 < timeout:
        st = dev.status()["webhook"]
        if cond(st):
            return st
        time.sleep(0.2)
    raise AssertionError("webhook status never matched: {}".format(dev.status()["webhook"]))


@pytest.mark.slow
@pytest.mark.light
def test_receiver_errors_and_hangs_then_everything_arrives_signed_in_order(tmp_path, receiver, device_factory):
    dev = device_factory(data_dir=tmp_path / "dev")
    dev_id = dev.status()["device"]["id"]
    assert dev.status()["webhook"] == {"enabled": False}
    r = dev.put("/api/config", {"webhook.enabled": True, "webhook.url": "http://127.0.0.1:{}/hook".format(
        receiver.port), "webhook.secret": SECRET, "webhook.resources": "events, soundlevel,predictions",
        "webhook.timeout_s": 1, "webhook.retry_max_s": 2, "ml.unknown_permille": 800})
    assert r.status == 200, r.body
    receiver.wait(lambda: len([b for h, b in receiver.accepted() if b["resource"] == "soundlevel"]) >= 3)
    t_from = min(b["t"] for h, b in receiver.accepted()) - 1  # a new cursor starts at the newest data
    receiver.mode = "500"
    st = wait_status(dev, lambda s: s["hooks"][0]["last_error"] == "HTTP 500"
                     and s["hooks"][0]["state"] == "retrying")["hooks"][0]
    assert 0 < st["retry_ms"] <= 2000 and st["outbox"]["soundlevel"]["pending"] is not None
    time.sleep(4)
    receiver.mode = "hang"
    wait_status(dev, lambda s: s["hooks"][0]["last_error"] == "timeout")
    time.sleep(4)
    st = dev.status()["webhook"]["hooks"][0]
    assert st["outbox"]["soundlevel"]["backlog_ms"] > 3000  # the outage's backlog is waiting on flash
    receiver.mode = "ok"
    time.sleep(3)
    t_to = dev.status()["time_ms"] - 2500  # durable on the device by now (flush every 1 s)
    receiver.wait(lambda: any(b["t"] >= t_to and b["resource"] == "soundlevel" for h, b in receiver.accepted()))

    now = time.time()
    first = {}
    order = {"events": [], "soundlevel": [], "predictions": []}
    for mode, h, raw, path in receiver.requests:
        assert path == "/hook" and h["content-type"] == "application/json"
        ts = h["x-sensorbox-timestamp"]
        assert abs(int(ts) - now) < 120
        want = hmac.new(SECRET.encode(), ts.encode() + b"." + raw, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(h["x-sensorbox-signature"], "sha256=" + want)
        b = json.loads(raw.decode("utf-8"))
        key = h["idempotency-key"]
        assert key == b["key"] == "{}-{}-{}".format(dev_id, b["resource"], b["t"]) and b["device"] == dev_id
        if key in first:
            assert first[key] == raw  # a resend is the same message
        elif mode == "ok":
            first[key] = raw
            order[b["resource"]].append(b["t"])
    n_dup = len([1 for m, h, raw, p in receiver.requests]) - len(first)
    assert n_dup >= 2  # 500s and hangs were resent
    modes = {m for m, h, raw, p in receiver.requests}
    assert modes == {"ok", "500", "hang"}
    for res in ("soundlevel", "events", "predictions"):
        assert order[res] == sorted(order[res]), res + " out of order"
        want = [t for t in stored_times(dev, res, t_from) if t <= t_to]
        missing = [t for t in want if t not in set(order[res])]
        assert not missing, "{} {} rows never arrived: {}".format(len(missing), res, missing[:5])
    assert len(order["soundlevel"]) >= 10
    sl = [b for h, b in receiver.accepted() if b["resource"] == "soundlevel"][-1]
    assert set(sl) == {"device", "resource", "t", "key", "leq", "lmin", "lmax", "l10", "l50", "l90"}
    assert 0 < sl["leq"] < 140
    pr = [b for h, b in receiver.accepted() if b["resource"] == "predictions"]
    assert pr and all(isinstance(b["label"], str) and 0 <= b["confidence"] <= 1 for b in pr)
    ev = [b for h, b in receiver.accepted() if b["resource"] == "events"]
    for b in ev:
        assert b["type"] == "class_change" and "to" in b
    st = dev.status()["webhook"]["hooks"][0]
    assert st["failures"] >= 2 and st["attempts"] >= len(first) + st["failures"] - 1
    assert st["last_ok_ms"] >= t_to - 5000 and st["url"].endswith(":{}/...".format(receiver.port))  # no path: it can hold a token
    assert st["outbox"]["soundlevel"]["lost_segments"] == 0
    cfg = dev.get("/api/config").json()["config"]
    assert cfg["webhook.secret"] == {"set": True}  # write-only
    assert "MemoryError" not in dev.output()
    print("webhook: {} delivered ({} events), {} requests, {} resends".format(
        len(first), len(ev), len(receiver.requests), n_dup))


@pytest.mark.light
def test_two_receivers_with_their_own_filters_cursors_and_status(tmp_path, device_factory):
    """Webhook 1 takes sound levels and class_change events; webhook 2 takes predictions and only outbox_loss
    events (so every class_change is passed over for it). Receiver 2 fails for a while: only its own status and
    cursor stall, receiver 1 keeps getting everything; then 2 catches up on its own backlog."""
    a, b = Receiver(), Receiver()
    try:
        dev = device_factory(data_dir=tmp_path / "dev")
        r = dev.put("/api/config", {
            "webhook.enabled": True, "webhook.url": "http://127.0.0.1:{}/a".format(a.port),
            "webhook.resources": "events,soundlevel", "webhook.events": "class_change",
            "webhook.2.url": "http://127.0.0.1:{}/b".format(b.port), "webhook.2.secret": "two",
            "webhook.2.resources": "predictions,events", "webhook.2.events": "outbox_loss",
            "webhook.timeout_s": 1, "webhook.retry_max_s": 1, "ml.unknown_permille": 800})
        assert r.status == 200, r.body
        a.wait(lambda: len([1 for h, x in a.accepted() if x["resource"] == "soundlevel"]) >= 2)
        b.wait(lambda: len(b.accepted()) >= 2)
        b.mode = "500"
        st = wait_status(dev, lambda s: s["hooks"][1]["state"] == "retrying")
        assert [h["slot"] for h in st["hooks"]] == [1, 2]
        assert st["hooks"][1]["last_error"] == "HTTP 500" and st["hooks"][0]["state"] == "running"
        n_a = len(a.accepted())
        st = wait_status(dev, lambda s: s["hooks"][1]["outbox"]["predictions"]["backlog_ms"] > 2000)  # 2's cursor
        a.wait(lambda: len(a.accepted()) > n_a + 2)  # waits ... 1 goes on
        assert st["hooks"][0]["failures"] == 0 and dev.status()["webhook"]["hooks"][0]["failures"] == 0
        b.mode = "ok"
        t_to = dev.status()["time_ms"] - 2500
        b.wait(lambda: any(x["t"] >= t_to and x["resource"] == "predictions" for h, x in b.accepted()))
        a.wait(lambda: any(x["t"] >= t_to and x["resource"] == "soundlevel" for h, x in a.accepted()))
        got_a = [x for h, x in a.accepted()]
        got_b = [x for h, x in b.accepted()]
        assert {x["resource"] for x in got_a} <= {"events", "soundlevel"}
        assert {x["resource"] for x in got_b} == {"predictions"}  # no class_change passes its filter
        assert all(x["type"] == "class_change" for x in got_a if x["resource"] == "events")
        ev_a = [x["t"] for x in got_a if x["resource"] == "events"]
        t_from = min(x["t"] for x in got_b) - 1
        pr_b = {x["t"] for x in got_b}
        missing = [t for t in stored_times(dev, "predictions", t_from) if t <= t_to and t not in pr_b]
        assert not missing, "receiver 2 lost predictions: {}".format(missing[:5])
        for m, h, raw, p in b.requests:
            want = hmac.new(b"two", h["x-sensorbox-timestamp"].encode() + b"." + raw, hashlib.sha256).hexdigest()
            assert h["x-sensorbox-signature"] == "sha256=" + want
        assert all("x-sensorbox-signature" not in h for m, h, raw, p in a.requests)  # webhook 1: no secret
        st = dev.status()["webhook"]
        h1, h2 = st["hooks"]
        assert h1["url"].endswith(":{}/...".format(a.port)) and h1["events"] == ["class_change"] and h1["resources"] == ["soundlevel",
                                                                                                     "events"]
        assert h2["url"].endswith(":{}/...".format(b.port)) and h2["events"] == ["outbox_loss"] and h2["failures"] >= 1
        stored_ev = [t for t in stored_times(dev, "events", t_from) if t <= t_to]
        assert set(stored_ev) <= set(ev_a)  # 1 got every class_change ...
        n_ev = len(stored_times(dev, "events", t_from))
        assert h2["skipped"] >= n_ev >= 1  # every class_change passed over by 2 (delivered to 1)
        assert h2["outbox"]["events"]["delivered"] == 0 and "events" in h2["outbox"]
        cfg = dev.get("/api/config").json()["config"]
        assert cfg["webhook.2.secret"] == {"set": True} and cfg["webhook.3.url"] == ""
        # a bad URL is refused when it is set, by key, and both receivers go on
        r = dev.put("/api/config", {"webhook.2.url": "ftp://x/"})
        assert r.status == 400 and r.json()["field"] == "webhook.2.url", r.body
        st = dev.status()["webhook"]
        assert len(st["hooks"]) == 2 and st["hooks"][0]["state"] in ("running", "retrying")
        assert "MemoryError" not in dev.output()
    finally:
        a.close()
        b.close()


@pytest.mark.light
def test_https_receiver_verified_with_the_configured_ca_refused_with_another(tmp_path, device_factory):
    from mqtt_broker import Certs

    certs = Certs(tmp_path / "certs")
    rec = Receiver(tls=certs)
    try:
        dev = device_factory(data_dir=tmp_path / "dev")
        r = dev.put("/api/config", {"webhook.enabled": True, "webhook.url": "https://127.0.0.1:{}/s".format(rec.port),
                                    "webhook.resources": "soundlevel", "webhook.tls_ca": Certs.one_line(certs.ca),
                                    "webhook.timeout_s": 2, "webhook.retry_max_s": 1})
        assert r.status == 200, r.body
        rec.wait(lambda: len(rec.accepted()) >= 2)
        st = dev.status()["webhook"]
        assert st["verified"] is True and st["hooks"][0]["failures"] == 0
        assert dev.put("/api/config", {"webhook.tls_ca": Certs.one_line(certs.other_ca)}).status == 200
        st = wait_status(dev, lambda s: s["hooks"] and "trusted CA" in (s["hooks"][0]["last_error"] or ""))
        assert st["hooks"][0]["last_error"] == "ValueError: The certificate is not correctly signed by the trusted CA"
        assert st["hooks"][0]["state"] == "retrying"
        n = len(rec.accepted())
        time.sleep(2)
        assert len(rec.accepted()) == n  # nothing is sent to a server the CA does not vouch for
        assert "MemoryError" not in dev.output()
    finally:
        rec.close()
