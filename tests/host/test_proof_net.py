"""Proof suite, network part (issue 11): the device app on the unix port at APP_HEAP, attacked from 127.0.0.1.

- ``test_proof_grammar_fuzz``: malformed requests made by a grammar (every route, with its methods, queries and
  JSON bodies) and mutated at every layer (request line, target, percent-encoding, header fields, lengths,
  credentials, JSON syntax, numbers, strings, nesting, bytes, line ends, truncation): no 5xx, every answer whose
  body is JSON is valid UTF-8 JSON, no service restarts, no samples lost, the server never wedged.
- ``test_proof_connection_bursts``: bursts of sockets that connect at once and send nothing, while an
  authenticated client polls every 2 s: each poll gets through within 10 s (a liveness bound, not a benchmark).
- ``test_proof_slowloris``: 10 sockets trickle a byte every 5 s (reconnecting when cut off) while the same
  client polls: the same bound.

Short size in ``make test``; full size (``make proof``, ``SENSORBOX_PROOF=full``): 10,000 fuzz requests, bursts of
200, 500 and 1,000 sockets, a minute of slowloris. Each prints its figures (``-s`` shows them).
"""

import base64
import json
import os
import random
import resource
import socket
import threading
import time

import pytest

from conftest import ADMIN_PASSWORD, send_raw

FULL = os.environ.get("SENSORBOX_PROOF") == "full"
BASIC = "Basic " + base64.b64encode(("admin:" + ADMIN_PASSWORD).encode()).decode()
POLL_BOUND_S = 10

pytestmark = pytest.mark.proof


# ---------------------------------------------------------------- the grammar of requests, then its mutations

ROUTES = [  # (method, target template, body kind); {i} int, {n} number, {res} resource, {q} export query
    ("GET", "/api/status", None), ("HEAD", "/api/status", None), ("GET", "/api/config", None),
    ("PUT", "/api/config", "config"), ("GET", "/api/config/schema", None), ("GET", "/api/labels", None),
    ("POST", "/api/labels", "label"), ("DELETE", "/api/labels/{i}", None), ("GET", "/api/model", None),
    ("PUT", "/api/model/meta.json", "meta"), ("PUT", "/api/model/model.csv?offset={i}", "csv"),
    ("GET", "/api/resources", None), ("GET", "/api/resources/{res}/data?{q}", None),
    ("GET", "/api/logs?since={i}", None), ("GET", "/api/events?start={n}&end={n}", None),
    ("POST", "/api/login", "login"), ("POST", "/api/logout", None), ("GET", "/api/session", None),
    ("GET", "/api/tokens", None), ("POST", "/api/tokens", "token"), ("DELETE", "/api/tokens/{i}", None),
    ("GET", "/api/routes", None), ("GET", "/", None), ("GET", "/static/{name}", None),
    ("GET", "/api/openapi.json", None), ("OPTIONS", "/api/config", None), ("GET", "/api/live", None),
    ("POST", "/api/restart", "none"), ("POST", "/api/debug/fault", "fault"),  # (never with the admin credential)
]
UNSAFE_WITH_AUTH = ("/api/restart", "/api/debug/fault", "/api/live")
RESOURCES = ["accel", "soundlevel", "predictions", "features", "events", "labels", "nope", "..%2f..", ""]
NAMES = ["index.html.gz", "app.js", "../auth.json", "%2e%2e%2fauth.json", "a" * 60, ".hidden", "x.css"]
CONFIG_KEYS = ["device.name", "http.read_timeout_s", "accel.rate_hz", "accel.poll_ms", "mic.enabled", "no.such.key",
               "log.level", "store.flush_ms", "", "device.name.x"]


def _number(rng):
    return rng.choice(["0", "-1", "1", "50", "1e999", "-1e999", "1e-999", "NaN", "Infinity", "-0", "0x10", "1.5",
                       "99999999999999999999999", "-9007199254740993", str(rng.randint(-2 ** 40, 2 ** 40)), "1e5",
                       "0.0000001", "--1", "+1", "01", "1.", ".5"])


def _string(rng):
    return rng.choice(['"x"', '"walk"', '""', '"' + "y" * rng.randint(1, 300) + '"', '"\\ud800"', '"\\udfff\\ud800"',
                       '"\\ud83d\\ude00"', '"\\u0000"', '"\\x41"', '"caf\u00e9"', '"\\"\\\\"', '"\\uD83D"', '"\\u12"',
                       '"a\nb"', '"\t"', '"\\ud83dx"'])


def _value(rng, depth=0):
    k = rng.random()
    if k < 0.3:
        return _number(rng)
    if k < 0.6:
        return _string(rng)
    if k < 0.7:
        return rng.choice(["true", "false", "null", "nul", "tru"])
    if depth > 3:
        return "[]"
    if k < 0.85:
        return "[" + ",".join(_value(rng, depth + 1) for _ in range(rng.randint(0, 4))) + "]"
    return "{" + ",".join("{}:{}".format(_string(rng), _value(rng, depth + 1)) for _ in range(rng.randint(0, 4))) + "}"


def _body(rng, kind):
    if kind == "config":
        keys = rng.sample(CONFIG_KEYS, rng.randint(1, 3))
        text = "{" + ",".join('"{}":{}'.format(k, _value(rng)) for k in keys) + "}"
    elif kind == "label":
        text = '{{"start":{},"end":{},"label":{}}}'.format(_number(rng), _number(rng), _string(rng))
    elif kind == "meta":
        text = '{{"n_features":{},"classes":{},"window":{}}}'.format(_number(rng), _value(rng), _number(rng))
    elif kind == "csv":
        return "\n".join(rng.choice(["f,86", "c,3", "n,1,2,3,4", "l,0", "r,0", "x", "n,-1,a"])
                         for _ in range(rng.randint(1, 20))).encode()
    elif kind == "login":
        text = '{{"password":{}}}'.format(_string(rng))
    elif kind == "token":
        text = '{{"name":{},"scope":{}}}'.format(_string(rng), rng.choice(['"read"', '"admin"', '"root"', "1"]))
    elif kind == "fault":
        text = '{"service":"accel","mode":"hang"}'
    elif kind == "none":
        return b""
    else:
        return b""
    return text.encode("utf-8", "surrogatepass")


def _target(rng, template):
    q = "&".join(rng.choice(["start={}", "end={}", "since={}", "max_points={}", "format={}", "columns={}"]).format(
        rng.choice(["-60000", "0", "x", "1e999", "csv", "npy", "json", "t,x", "%ff", "%ED%A0%80", "", "9" * 30]))
        for _ in range(rng.randint(0, 5)))
    return (template.replace("{i}", rng.choice(["0", "1", "-5", "abc", "99999999999999999999", ""]))
            .replace("{n}", _number(rng)).replace("{res}", rng.choice(RESOURCES)).replace("{q}", q)
            .replace("{name}", rng.choice(NAMES)))


def _mutate_target(rng, t):
    k = rng.randrange(12)
    if k == 0:
        return t + "?" + "a" * rng.randint(900, 2500)
    if k == 1:
        return t + "?" + "&".join("p{}=1".format(i) for i in range(rng.randint(20, 60)))
    if k == 2:
        return t + rng.choice(["%", "%z", "%ED%A0%80", "%C0%AF", "%ff%fe", "%00", "/../../auth.json"])
    if k == 3:
        return rng.choice(["*", "http://evil/", "", "//", "/\x00", "/a b"])
    if k == 4:
        return "/" + "".join(chr(rng.randint(33, 126)) for _ in range(rng.randint(1, 40)))
    if k == 5:
        return t.replace("/api/", "/API/")
    return t


HEADER_POOL = ["Content-Type: application/json", "Content-Type: text/plain", "Content-Length: -1",
               "Content-Length: abc", "Content-Length: 99999999", "Content-Length: 1e3", "Content-Length:",
               "Transfer-Encoding: chunked", "Authorization: Basic !!!", "Authorization: Bearer sb_1_00",
               "Authorization: Bearer sb___", "Authorization: Basic " + base64.b64encode(b"admin:wrong").decode(),
               "Authorization: Basic " + base64.b64encode(b"\xff\xfe:x").decode(), "Cookie: sb_session=" + "0" * 32,
               "Cookie: ;;;=;", "X-CSRF-Token: x", "Origin: http://evil", "Sec-Fetch-Site: cross-site",
               "Host: " + "h" * 100, "NoColonHeader", ": empty-name", " folded continuation", "X-Nul: a\x00b",
               "Accept-Encoding: gzip", "X-Requested-With: x", "Expect: 100-continue"]


def make_request(rng):
    """One request: a well-formed one from the grammar, with 1-3 mutations. Returns (bytes, authenticated)."""
    method, template, kind = rng.choice(ROUTES)
    target = _target(rng, template)
    body = _body(rng, kind) if kind else b""
    safe = template.split("?")[0] not in UNSAFE_WITH_AUTH
    authed = rng.random() < 0.35 and safe
    version = "HTTP/1.0"
    headers = []
    if authed:
        headers.append("Authorization: " + BASIC)
    if kind:
        headers.append("Content-Type: application/json")
    length = True
    eol = "\r\n"
    for _ in range(rng.randint(1, 3)):
        m = rng.randrange(14)
        if m == 0:
            method = rng.choice(["get", "BREW", "", "G\x00T", "GET GET", "P\u00d6ST", "DELETE" * 20])
        elif m == 1:
            target = _mutate_target(rng, target)
        elif m == 2:
            version = rng.choice(["HTTP/1.1", "HTTP/9.9", "HTTP/1", "", "HTTPS/1.0", "HTTP/1.0 extra"])
        elif m == 3:
            headers += rng.sample(HEADER_POOL, rng.randint(1, 4))
        elif m == 4:
            headers += ["X-H{}: {}".format(i, "v" * rng.randint(0, 200)) for i in range(rng.randint(20, 40))]
        elif m == 5:
            headers.append("X-Long: " + "x" * rng.randint(1500, 3000))
        elif m == 6:
            headers.append("Content-Length: {}".format(len(body) + rng.choice([-1, 1, 7, 100])))
            length = rng.random() < 0.5  # (and sometimes a second, right one: two lengths)
        elif m == 7:
            body = b"[" * rng.randint(33, 9000) + b"]" * rng.randint(0, 9000)
        elif m == 8:
            body = body[:rng.randint(0, len(body))] if body else b"{"
        elif m == 9:
            body = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 400)))
        elif m == 10:
            body = rng.choice([b'{"device.name": "\xed\xa0\x80"}', b'{"device.name": "\xff"}',
                               b'{"device.name": "' + b"z" * 17000 + b'"}', b"\x00" * 64])
        elif m == 11:
            eol = rng.choice(["\n", "\r", "\r\r\n"])
        elif m == 12:
            headers.append(rng.choice([b"X-Bad: caf\xe9", b"X-Surr: \xed\xa0\x80", b"X-Ctl: \x1b[31m",
                                       b"X-Overlong: \xc0\xaf", b"X-Cut: \xe2\x82"]))
        else:
            headers.append("Authorization: " + rng.choice([BASIC if safe else "Basic !", "Basic " + base64.b64encode(
                b"admin:").decode()]))
    if body and length:
        headers.append("Content-Length: {}".format(len(body)))
    e = eol.encode()
    lines = ["{} {} {}".format(method, target, version).strip()] + headers
    raw = e.join(x if isinstance(x, bytes) else x.encode("utf-8", "surrogatepass") for x in lines) + e + e + body
    if rng.random() < 0.08:
        raw = raw[:rng.randint(0, len(raw))]  # cut off
    return raw, authed


def send(port, raw):
    """Send ``raw``, close the sending side, read the reply (up to 64 KB)."""
    return send_raw(port, raw, timeout=10, shut=True, limit=65536)


def _check_reply(reply, problems):
    if not reply.startswith(b"HTTP/1.0 "):
        return "none"
    code = reply[9:12].decode(errors="replace")
    head, _, body = reply.partition(b"\r\n\r\n")
    if b"application/json" in head and b"Content-Encoding" not in head and body and \
            len(reply) < 65536 and not head.startswith(b"HTTP/1.0 200"):  # (whole error answers)
        try:
            json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            problems.append((code, repr(e), body[:200]))
    if head.startswith(b"HTTP/1.0 200") and b"application/json" in head and b"Content-Encoding" not in head and \
            len(reply) < 65536:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as e:
            problems.append((code, repr(e), body[:200]))
    return code


def test_proof_grammar_fuzz(device_factory):
    dev = device_factory()
    n = 10000 if FULL else 1500
    seed = int(os.environ.get("SENSORBOX_FUZZ_SEED", "11"))
    rng = random.Random(seed)
    assert dev.get("/api/config").status == 200  # (the admin credential verified once: the fuzz's own guesses
    before = dev.status()  # lock its address out, the verified credential still passes)
    statuses, problems, wedged = {}, [], 0
    t0 = time.time()
    for i in range(n):
        raw, _ = make_request(rng)
        code = _check_reply(send(dev.port, raw), problems)
        statuses[code] = statuses.get(code, 0) + 1
        if i % 250 == 249:  # the server answers between rounds (a wedged one would not)
            if dev.get("/api/status", auth=False, timeout=10).status != 200:
                wedged += 1
    took = time.time() - t0
    after = dev.status()
    five = {k: v for k, v in statuses.items() if k.startswith("5")}
    print("\ngrammar fuzz: {} requests (seed {}) in {:.0f} s, {:.0f}/s; replies by status: {}; 5xx: {}; "
          "invalid JSON or UTF-8: {}; wedged checks: {}; http: {}".format(
              n, seed, took, n / took, dict(sorted(statuses.items())), sum(five.values()), len(problems), wedged,
              after["http"]))
    assert dev.proc.poll() is None, dev.output()[-3000:]
    assert not five, (five, dev.output()[-4000:])
    assert not problems, problems[:5]
    assert wedged == 0
    assert after["task_restarts"] == before["task_restarts"], after["tasks"]
    assert after["sensors"]["accel"]["dropped"] == 0, after["sensors"]
    assert after["sensors"]["accel"]["received"] > before["sensors"]["accel"]["received"]
    assert sum(v for k, v in statuses.items() if k.startswith("4")) > n * 0.5, statuses  # really malformed


# ---------------------------------------------------------------- bursts and slowloris, with a client polling


class Poller(threading.Thread):
    """An authenticated client polling /api/status every 2 s, alternately from 127.0.0.1 (the attacker's address)
    and 127.0.0.2; each poll retries until it gets a 200 and records how long that took."""

    def __init__(self, port):
        super().__init__()
        self.port = port
        self.waits = []
        self.stop = threading.Event()

    def once(self, src):
        t0 = time.time()
        while time.time() - t0 < POLL_BOUND_S + 5:
            try:
                reply = send_raw(self.port, "GET /api/status HTTP/1.0\r\nAuthorization: {}\r\n\r\n".format(
                    BASIC).encode(), src, timeout=3)
                if reply.startswith(b"HTTP/1.0 200"):
                    return time.time() - t0
            except OSError:  # refused, timed out
                pass
            time.sleep(0.2)
        return None

    def run(self):
        k = 0
        while not self.stop.is_set():
            t = time.time()
            self.waits.append(self.once("127.0.0.1" if k % 2 == 0 else "127.0.0.2"))
            k += 1
            self.stop.wait(max(0, 2 - (time.time() - t)))


def _check_polls(p, what):
    assert p.waits and all(w is not None and w <= POLL_BOUND_S for w in p.waits), (what, p.waits)


def _fds(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 200), hard))


@pytest.mark.light
def test_proof_connection_bursts(device_factory):
    dev = device_factory()
    assert dev.get("/api/config").status == 200
    sizes, hold = ((200, 500, 1000), 8) if FULL else ((200,), 4)
    _fds(max(sizes))
    before = dev.status()
    for n in sizes:
        p = Poller(dev.port)
        socks = []
        p.start()
        time.sleep(0.5)
        t0 = time.time()
        for _ in range(n):  # all at once: connect and send nothing
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", dev.port))
            except BlockingIOError:
                pass
            socks.append(s)
        time.sleep(hold)
        p.stop.set()
        p.join()
        for s in socks:
            s.close()
        st = dev.status()
        print("\nburst of {} sockets held {} s: {} polls every 2 s, waits {} s (max {:.2f}); http {}".format(
            n, hold, len(p.waits), [round(w, 2) if w is not None else None for w in p.waits],
            max(w or 99 for w in p.waits), st["http"]))
        _check_polls(p, "burst of {}".format(n))
        assert time.time() - t0 < hold + POLL_BOUND_S + 10
    after = dev.status()
    assert after["tasks"]["http"]["restarts"] == before["tasks"]["http"]["restarts"], after["tasks"]["http"]
    assert after["task_restarts"] == before["task_restarts"] and after["watchdog"]["unlogged"] == 0
    assert after["sensors"]["accel"]["dropped"] == 0, after["sensors"]
    assert dev.get("/api/status", auth=False).status == 200


@pytest.mark.slow
@pytest.mark.light
def test_proof_slowloris(device_factory):
    dev = device_factory()
    assert dev.get("/api/config").status == 200
    duration = 60 if FULL else 15
    before = dev.status()
    stop = threading.Event()
    figures = {"bytes": 0, "connects": 0}
    head = b"GET /api/status HTTP/1.0\r\nX-Slow: " + b"a" * 10000

    def loris(k):
        s, pos = None, 0
        while not stop.is_set():
            try:
                if s is None:
                    s = socket.create_connection(("127.0.0.1", dev.port), timeout=3)
                    figures["connects"] += 1
                    pos = 0
                s.sendall(head[pos:pos + 1])
                figures["bytes"] += 1
                pos += 1
            except OSError:
                if s is not None:
                    s.close()
                s = None
                continue
            stop.wait(5)
        if s is not None:
            s.close()

    lorises = [threading.Thread(target=loris, args=(k,)) for k in range(10)]
    for t in lorises:
        t.start()
    time.sleep(2)  # all ten slots taken...
    p = Poller(dev.port)
    p.start()
    time.sleep(duration)
    p.stop.set()
    p.join()
    stop.set()
    for t in lorises:
        t.join()
    st = dev.status()
    print("\nslowloris, 10 sockets, a byte every 5 s for {} s: {} bytes over {} connections; {} polls every 2 s, "
          "waits {} s (max {:.2f}); http {}".format(duration, figures["bytes"], figures["connects"], len(p.waits),
                                                    [round(w, 2) if w is not None else None for w in p.waits],
                                                    max(w or 99 for w in p.waits), st["http"]))
    _check_polls(p, "slowloris")
    assert st["tasks"]["http"]["restarts"] == before["tasks"]["http"]["restarts"]
    assert st["sensors"]["accel"]["dropped"] == 0, st["sensors"]
