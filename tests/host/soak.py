"""The heap soak: the device app at a given heap with every feature busy, for a while, counting what went wrong.

``run(dev, seconds)`` drives a running device (``conftest.Device``) with four live streams held open and a
client looping over the UI's files and the API (as the web UI and a script would: session login, status,
config read and write, resources, exports, events, logs, labels, model), and returns the figures: requests
by status, stream drops, the device's task restarts, dropped samples, heap figures from ``/api/status`` and
the MemoryErrors in its console. ``Soak`` starts the device with MQTT to a real mosquitto and one webhook
receiver when asked (``full=True``), configured in ``config.json`` before it boots, as a device set up that
way starts. Used by tests/host/test_soak.py (short) and bench/bench_heap.py (10 minutes).
"""

import base64
import http.client
import json
import os
import threading
import time

from conftest import ADMIN_PASSWORD, Device

from sensorbox.host import bundle

AUTH = "Basic " + base64.b64encode(("admin:" + ADMIN_PASSWORD).encode()).decode()
STREAMS = 4
#: GET paths of one loop (the UI's files and the API), besides the session, config write and labels
PATHS = ("/", "/static/app.js", "/static/app.css", "/api/session", "/api/status", "/api/config",
         "/api/config/schema", "/api/resources", "/api/events", "/api/logs", "/api/model",
         "/api/resources/soundlevel/data?format=csv&start=-60000",
         "/api/resources/accel/data?format=npy&start=-2000",
         "/api/resources/predictions/data?format=csv&start=-60000", "/api/openapi.json")
#: of them, the files the device stores gzipped: sent as stored (the client accepts gzip, as browsers do), in
#: pieces read from flash (decompressing the 65 KB API document for a client that does not cost CPU and heap)
GZIPPED = ("/", "/static/app.js", "/static/app.css", "/api/openapi.json")


class Hook:
    """A webhook receiver on 127.0.0.1 (a CPython HTTP server in this process) that answers 200 and counts the
    POSTs (``posts``); ``port``, ``close()``."""

    def __init__(self):
        import http.server

        hook = self
        self.posts = 0

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                hook.posts += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.send_header("Connection", "close")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def full_config(mqtt_port, hook_port):
    """The config.json of a device with every feature on: MQTT to 127.0.0.1:mqtt_port, one webhook receiver, audio
    clips of 3 s (``run`` records one)."""
    return {"mqtt.enabled": True, "mqtt.host": "127.0.0.1", "mqtt.port": mqtt_port, "mqtt.prefix": "soak",
            "webhook.enabled": True, "webhook.url": "http://127.0.0.1:{}/hook".format(hook_port),
            "webhook.secret": "s", "webhook.resources": "events,soundlevel,predictions",
            "clip.enabled": True, "clip.length_ms": 3000}


class Soak:
    """A device at ``heap`` with everything on (``full``: MQTT to a mosquitto of its own and a webhook too)."""

    def __init__(self, data_dir, heap, full, romfs=None, config=None, model=None):
        """``romfs``: the bundle's ROMFS image (bundle.build_romfs): the code is imported from it, as on a board
        with a romfs partition; the heap is ``heap`` plus the image's size (the image takes one block at its
        start, as flash would take none). ``config``: more config keys; ``model``: a model directory the device
        boots with (its active model)."""
        self.broker = self.hook = self.collector = None
        self.image = 0
        cfg = {}
        if full:
            from mqtt_broker import Broker, Collector

            self.broker = Broker(os.path.join(str(data_dir), "broker"))
            self.collector = Collector(self.broker.port, ("soak/#",))
            self.hook = Hook()
            cfg = full_config(self.broker.port, self.hook.port)
        cfg.update(config or {})
        os.makedirs(str(data_dir), exist_ok=True)
        with open(os.path.join(str(data_dir), "config.json"), "w") as f:
            json.dump(cfg, f)
        if model is not None:
            import shutil

            shutil.copytree(str(model), os.path.join(str(data_dir), "models", "active"))
        try:
            self._launch(data_dir, heap, romfs)
        except BaseException:  # the device did not come up: nothing of the soak is left running
            self.dev = None
            self.stop()
            raise

    def _launch(self, data_dir, heap, romfs):
        if romfs is None:
            self.dev = Device(data_dir, heap=heap)
        else:
            from sensorbox.host import bundle

            self.image = os.path.getsize(romfs) + 64  # (and its bytearray's header, rounded up to blocks)
            n = int(heap.rstrip("wWkK")) * (1024 if heap[-1] in "kK" else 1) * (2 if "w" in heap.lower() else 1)
            self.dev = Device(data_dir, heap=str(n + self.image), env={"SENSORBOX_ROMFS": romfs},
                              script=os.path.join(bundle.REPO, "tests", "host", "romfs_main.py"))

    def stop(self):
        if self.dev is not None:
            self.dev.stop()
        if self.collector is not None:
            self.collector.c.loop_stop()
            self.collector.c.disconnect()
        if self.hook is not None:
            self.hook.close()
        if self.broker is not None:
            self.broker.stop()


class _Client:
    """One keep-nothing HTTP client: a new connection per request (the device speaks HTTP/1.0), which accepts
    gzip as a browser does."""

    def __init__(self, dev):
        self.dev = dev
        self.cookie = None
        self.csrf = None
        self.last = None  # the last response's headers

    def request(self, method, path, body=None, headers=None):
        h = dict(headers or {})
        h.setdefault("Accept-Encoding", "gzip, deflate")
        if self.cookie:
            h["Cookie"] = self.cookie
            h["X-Requested-With"] = "fetch"
            if method != "GET":
                h["X-CSRF-Token"] = self.csrf
        else:
            h["Authorization"] = AUTH
        if body is not None:
            body = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        c = http.client.HTTPConnection("127.0.0.1", self.dev.port, timeout=30)
        try:
            c.request(method, path, body, h)
            r = c.getresponse()
            data = r.read()
            self.last = r.getheaders()  # (what a failure's message shows)
            return r.status, r.getheader("Set-Cookie"), data
        finally:
            c.close()


def _stream(dev, stop, out):
    # one live stream, reopened if the device ends it (counted as a drop)
    while not stop.is_set():
        c = http.client.HTTPConnection("127.0.0.1", dev.port, timeout=30)
        try:
            c.request("GET", "/api/live", headers={"Authorization": AUTH})
            r = c.getresponse()
            if r.status != 200:
                out["status"][r.status] = out["status"].get(r.status, 0) + 1
                body = r.read()
                if len(out["why"]) < 4:
                    out["why"].append("{} GET /api/live: {}".format(r.status, body[:160].decode("utf-8", "replace")))
                time.sleep(0.5)
                continue
            out["opened"] += 1
            while not stop.is_set():
                line = r.fp.readline()
                if not line:
                    out["drops"] += 1
                    break
                if line.startswith(b"event:"):
                    out["events"] += 1
        except OSError as e:
            out["errors"].append(repr(e))
            time.sleep(0.5)
        finally:
            c.close()


def _files_of(dev):
    # what the device process has open and the size of the UI's page on disk (a gzipped file once came back as a 200
    # with Content-Length 0 and no body: CI, fresh25)
    pid = dev.proc.pid
    fds = {}
    try:
        for fd in os.listdir("/proc/{}/fd".format(pid)):
            try:
                fds[int(fd)] = os.readlink("/proc/{}/fd/{}".format(pid, fd))
            except OSError:
                pass
    except OSError as e:
        fds = repr(e)
    page = os.path.join(bundle.build("unix"), "www", "index.html.gz")
    return "index.html.gz {} bytes on disk, the device's files {}".format(
        os.path.getsize(page) if os.path.exists(page) else None, fds)


def _loop(dev, stop, out):
    cl = _Client(dev)
    n = 0

    def count(status, what="", body=b""):
        out["status"][status] = out["status"].get(status, 0) + 1
        out["requests"] += 1
        if not 200 <= status < 300 and len(out["why"]) < 8:  # what the device said, for the failure's message
            out["why"].append("{} {}: {}".format(status, what, body[:160].decode("utf-8", "replace")))

    while not stop.is_set():
        try:
            if cl.cookie is None or n % 20 == 0:  # the UI logs in now and then (a fresh session)
                cl.cookie = None
                st, ck, body = cl.request("POST", "/api/login", {"password": ADMIN_PASSWORD})
                count(st, "POST /api/login", body)
                if st == 200:
                    cl.cookie = ck.split(";")[0]
                    cl.csrf = json.loads(body)["csrf"]
            for p in PATHS:
                if stop.is_set():
                    break
                st, _, body = cl.request("GET", p)
                count(st, "GET " + p, body)
                if st == 200 and p in GZIPPED and body[:2] != b"\x1f\x8b":
                    out["identity"].append("{} ({} bytes {!r}, headers {}; {})".format(
                        p, len(body), body[:48], cl.last, _files_of(dev)))
            st, _, body = cl.request("PUT", "/api/config", {"log.level": "info"})
            count(st, "PUT /api/config", body)
            now = int(time.time() * 1000)
            st, _, body = cl.request("POST", "/api/labels", {"start": now - 3000, "end": now - 2000,
                                                             "label": "soak"})
            count(st, "POST /api/labels", body)
            if st == 201:
                st, _, body = cl.request("DELETE", "/api/labels/{}".format(json.loads(body)["id"]))
                count(st, "DELETE /api/labels", body)
        except (OSError, http.client.HTTPException) as e:  # (IncompleteRead: a body shorter than its length)
            out["errors"].append(repr(e))
            time.sleep(0.2)
        n += 1


def _status(dev, tries=5):
    # /api/status, or None: at a heap too small for the app even the probe may fail (a 503, or an answer cut
    # short by a MemoryError while it streamed); the soak counts that rather than stopping
    for _ in range(tries):
        try:
            r = dev.get("/api/status")
            if r.status == 200:
                return r.json()
        except (OSError, ValueError):
            pass
        time.sleep(0.3)
    return None


def run(soak, seconds):
    """Drive ``soak.dev`` for ``seconds``; returns the figures (a dict)."""
    dev = soak.dev
    # analysis and the sound meter under way first
    for _ in range(150):
        st = _status(dev) or {"analysis": None, "soundlevel": None}
        if (st["analysis"] or {}).get("windows", 0) >= 2 and (st["soundlevel"] or {}).get("interval"):
            break
        time.sleep(0.2)
    clip = None
    if soak.hook is not None:  # every feature: an audio clip recorded while the load runs (issue 18.1)
        r = dev.post("/api/clips", {})
        clip = r.status if r.status != 202 else None
    stop = threading.Event()
    streams = [{"opened": 0, "drops": 0, "events": 0, "status": {}, "errors": [], "why": []} for _ in range(STREAMS)]
    loop = {"requests": 0, "status": {}, "errors": [], "why": [], "identity": []}
    threads = [threading.Thread(target=_stream, args=(dev, stop, s)) for s in streams]
    threads.append(threading.Thread(target=_loop, args=(dev, stop, loop)))
    for t in threads:
        t.start()
    t0 = time.time()
    used = []
    try:
        while time.time() - t0 < seconds:
            time.sleep(min(5, max(0.1, seconds - (time.time() - t0))))
            st = _status(dev, 1)
            used.append(st["heap"]["used"] if st else None)
    finally:
        stop.set()
        for t in threads:
            t.join(40)
    st = _status(dev, 20)
    if st is None:
        raise RuntimeError("the device no longer answers /api/status:\n" + dev.output()[-2000:])
    console = dev.output()
    out = {
        "seconds": seconds,
        "requests": loop["requests"],
        "status": loop["status"],
        "errors": loop["errors"] + [e for s in streams for e in s["errors"]],
        "stream_opened": sum(s["opened"] for s in streams),
        "stream_drops": sum(s["drops"] for s in streams),
        "stream_events": sum(s["events"] for s in streams),
        "stream_status": [s["status"] for s in streams],
        "why": loop["why"] + [w for s in streams for w in s["why"]],
        "identity": loop["identity"],
        "task_restarts": st["task_restarts"],
        "tasks": {k: v for k, v in st["tasks"].items() if v["restarts"]},
        "dropped": {k: v["dropped"] for k, v in st["sensors"].items()},
        "loop_lag": st["loop_lag"],
        "memory_errors": console.count("MemoryError") + console.count("short of memory"),
        "memory_error_lines": _lines_with(console, ("MemoryError", "short of memory")),
        "heap": st["heap"],
        "used_samples": used,
        "mqtt": st.get("mqtt"),
        "analysis": st.get("analysis"),
        "columns": st["sensors"]["accel"]["columns"],
        "webhook_posts": soak.hook.posts if soak.hook else None,
        "clips": (st.get("store") or {}).get("clips"),
        "clip_refused": clip,
        "mqtt_messages": len(soak.collector.messages) if soak.collector else None,
    }
    out["non_2xx"] = sum(v for k, v in out["status"].items() if not 200 <= k < 300)
    return out


def problems(fig, mic=False):
    """What the soak's figures show went wrong (empty: a clean run). Samples the microphone dropped count only
    with ``mic``: its ring holds 64 ms, so on a shared machine the OS descheduling the process for longer
    loses some (a timing property: the benchmark reports them); the accelerometer's FIFO holds 5 s, and a loss
    there is a stalled event loop."""
    bad = []
    if fig["status"].get(503) or any(s.get(503) for s in fig["stream_status"]):
        bad.append("503 answers: {}".format(fig["why"]))
    if fig["non_2xx"]:
        bad.append("non-2xx answers: {}".format(fig["status"]))
    if fig["errors"]:
        bad.append("client errors: {}".format(fig["errors"][:5]))
    if fig["identity"]:
        bad.append("gzipped files sent decompressed to a client accepting gzip: {}".format(fig["identity"][:5]))
    if fig["stream_drops"] or fig["stream_opened"] != STREAMS:
        bad.append("live streams dropped: {} (opened {})".format(fig["stream_drops"], fig["stream_opened"]))
    if fig["task_restarts"]:
        bad.append("service restarts: {}".format(fig["tasks"]))
    lost = {k: v for k, v in fig["dropped"].items() if v and (mic or k != "mic")}
    if lost:
        bad.append("dropped samples: {} (loop lag {})".format(lost, fig["loop_lag"]))
    c = fig.get("clips")
    # a clip ends at a gap in the microphone's frames, the rest of its length counted lost (fresh24: 22,016 frames,
    # the mic's ring overrun while the machine was busy): a loss of the clip's own only when the mic dropped none
    own = c is not None and c.get("lost_frames") and (mic or not fig["dropped"].get("mic"))
    if fig.get("clip_refused") or (c is not None and (own or c.get("ring_error"))):
        bad.append("audio clip: POST /api/clips {}, {}".format(fig.get("clip_refused"), c))
    if fig["memory_errors"]:
        bad.append("MemoryErrors in the console: {}:\n{}".format(fig["memory_errors"],
                                                                 "\n".join(fig["memory_error_lines"])))
    return bad


def _lines_with(console, words, around=3, most=5):
    """The console's lines naming any of words, each with the lines before it (a traceback's frames), at most most."""
    lines = console.splitlines()
    out = []
    for i, line in enumerate(lines):
        if any(w in line for w in words) and len(out) < most:
            out.append("\n".join(lines[max(0, i - around):i + 1]))
    return out
