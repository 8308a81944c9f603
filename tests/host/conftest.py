"""Fixtures for host tests that talk to the real device app on the MicroPython unix port over real sockets.

``device_factory(data_dir=None, heap=bundle.APP_HEAP, env=None)`` starts ``main.py`` of the unix bundle exactly as
``sensorbox run`` does, on a free port, and waits until ``/api/status`` answers. ``device_app`` is one such device
shared by a test module. The admin password is ``ADMIN_PASSWORD``. A device's console output is in ``dev.output()``.
``wait_for`` and ``dev.wait_stored`` wait for what a device does in its own time (never a fixed sleep);
``start_run`` starts ``sensorbox run`` as a user would.
"""

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from sensorbox.host import bundle, cli

ADMIN_PASSWORD = "test-admin-pw"
REPO = bundle.REPO


def retry_503(fn, *args, **kw):
    """``fn(*args, **kw)`` (a request), again while the device answers 503 "short of memory; retry" (5 tries)."""
    for _ in range(5):
        r = fn(*args, **kw)
        if r.status != 503:
            return r
        time.sleep(0.3)
    return r


def send_raw(port, data, src="127.0.0.1", timeout=8, pieces=1, pause=0.0, shut=False, limit=None):
    """Send ``data`` on a fresh connection from address ``src`` (any of 127/8 routes to lo: another client),
    in ``pieces`` parts ``pause`` s apart, optionally closing the sending side; the whole reply (up to ``limit``
    bytes; what came before a reset when the device reset the connection)."""
    s = socket.socket()
    s.settimeout(timeout)
    reply = b""
    try:
        s.bind((src, 0))
        s.connect(("127.0.0.1", port))
        step = -(-len(data) // pieces) or 1
        try:
            for i in range(0, len(data), step):
                s.sendall(data[i:i + step])
                time.sleep(pause)
            if shut:
                s.shutdown(socket.SHUT_WR)
        except OSError:  # the device may answer and close before it read everything (431, 413)
            pass
        while limit is None or len(reply) < limit:
            chunk = s.recv(16384)
            if not chunk:
                break
            reply += chunk
    except (ConnectionResetError, BrokenPipeError):
        pass
    finally:
        s.close()
    return reply


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(get, what, ok=bool, timeout=60, every=0.2):
    """The first value of ``get()`` that is ``ok``, asked every ``every`` s: for what a device does in its own time
    (rows stored, a stream open, a counter moving). The bound is generous: a loaded machine makes a test slower,
    never failing; ``what`` says what did not happen if it is reached (with the last value)."""
    t0 = time.time()
    while True:
        v = get()
        if ok(v):
            return v
        if time.time() - t0 > timeout:
            raise AssertionError("not within {} s: {} (last: {!r})".format(timeout, what, v)[:4000])
        time.sleep(every)


def start_run(data, out, env=None):
    """``sensorbox run --data DATA`` on a free port (another one if another process on this machine took it
    first), in a session of its own, its output to the open file ``out``: (process, port, first /api/status)."""
    def status(port):
        with urllib.request.urlopen("http://127.0.0.1:{}/api/status".format(port), timeout=5) as r:
            return json.loads(r.read())

    for tries in range(3):
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "sensorbox.host.cli", "run", "--port", str(port), "--data",
                                 str(data)], stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)

        def answers():
            if proc.poll() is not None:
                return "exited"
            try:
                return status(port)
            except OSError:
                return None

        try:  # start-up (build check, device boot) takes a second or two alone, many on a loaded machine
            st = wait_for(answers, "an answer on port {}".format(port), timeout=120)
        except BaseException:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        if st != "exited":
            return proc, port, st
        out.flush()
        with open(out.name) as f:
            text = f.read()
        assert "port {} is in use".format(port) in text and tries < 2, "sensorbox run exited with {}:\n{}".format(
            proc.returncode, text)


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)


class Device:
    def __init__(self, data_dir, heap=bundle.APP_HEAP, env=None, port=None, script=None):
        self.data_dir = str(data_dir)
        self.port = port or free_port()
        self.url = "http://127.0.0.1:{}".format(self.port)
        out = bundle.build("unix")
        self._out_path = os.path.join(self.data_dir, "console.txt")
        os.makedirs(self.data_dir, exist_ok=True)
        self._out = open(self._out_path, "ab")
        e = bundle.micropython_env(out, {
            "SENSORBOX_DATA": self.data_dir, "SENSORBOX_PORT": str(self.port), "SENSORBOX_HOST": "127.0.0.1",
            "SENSORBOX_REPLAY": os.path.join(REPO, "data", "watch_excerpt.npy"),
            "SENSORBOX_ADMIN_PASSWORD": ADMIN_PASSWORD})
        e.update(env or {})
        for tries in range(3):
            self.proc = subprocess.Popen([bundle.micropython_path(), "-X", "heapsize=" + heap,
                                          script or os.path.join(out, "main.py")], env=e, cwd=self.data_dir,
                                         stdout=self._out, stderr=subprocess.STDOUT)
            try:
                self.wait_ready()
                return
            except RuntimeError:
                # another process (other tests on this machine) took the free port before the device bound it
                if port or tries == 2 or self.proc.returncode != cli.PORT_IN_USE_EXIT_CODE:
                    self.stop(signal.SIGKILL, timeout=5)  # a device that never answered is not left running
                    raise
            except BaseException:
                self.stop(signal.SIGKILL, timeout=5)
                raise
            self.port = free_port()
            self.url = "http://127.0.0.1:{}".format(self.port)
            e["SENSORBOX_PORT"] = str(self.port)

    def wait_ready(self, timeout=120):  # start-up takes ~1 s alone, many on a loaded machine
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError("device exited with {}:\n{}".format(self.proc.returncode, self.output()))
            try:
                if self.request("GET", "/api/status", auth=False).status == 200:
                    return time.time() - t0
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("device did not answer within {} s:\n{}".format(timeout, self.output()))

    def output(self):
        self._out.flush()
        with open(self._out_path, "rb") as f:
            return f.read().decode(errors="replace")

    def request(self, method, path, body=None, auth=True, headers=None, timeout=10, password=ADMIN_PASSWORD):
        h = dict(headers or {})
        if auth:
            h["Authorization"] = "Basic " + base64.b64encode(("admin:" + password).encode()).decode()
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return Response(r.status, dict(r.headers), r.read())
        except urllib.error.HTTPError as e:
            return Response(e.code, dict(e.headers), e.read())

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def put(self, path, body, **kw):
        return self.request("PUT", path, body, **kw)

    def post(self, path, body, **kw):
        return self.request("POST", path, body, **kw)

    def status(self):
        r = self.get("/api/status")  # with the admin credential: in full (the open probe leaves out data)
        assert r.status == 200, r.body
        return r.json()

    def resource(self, name):
        """The store's figures for resource ``name`` (from ``/api/resources``)."""
        r = retry_503(self.get, "/api/resources")
        assert r.status == 200, r.body
        return next(x for x in r.json()["resources"] if x["name"] == name)

    def wait_stored(self, name, rows=1, after=None, timeout=60):
        """Wait until the store holds ``rows`` rows of ``name`` written since boot and, with ``after`` (epoch ms),
        one newer than that: the store writes in batches (``store.flush_ms``), so what the device sampled or
        streamed is readable only a while later. Returns the resource's figures."""
        return wait_for(lambda: self.resource(name), "{} rows of {} stored{}".format(
            rows, name, "" if after is None else ", one newer than {}".format(after)),
            lambda r: r["rows_since_boot"] >= rows and (after is None or (r["end"] or 0) > after), timeout)

    def stop(self, sig=signal.SIGINT, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()
        return self.proc.returncode


@pytest.fixture
def device_factory(tmp_path):
    started = []

    def make(data_dir=None, **kw):
        d = Device(data_dir or tmp_path / "dev{}".format(len(started)), **kw)
        started.append(d)
        return d

    yield make
    for d in started:
        d.stop()


@pytest.fixture(scope="module")
def device_app(tmp_path_factory):
    d = Device(tmp_path_factory.mktemp("device"))
    yield d
    d.stop()


@pytest.fixture(scope="session")
def sounds_model(tmp_path_factory):
    """`sensorbox train sounds --sensor sound --compare knn,baseline` on the real recordings Debian ships, once per
    session (test_sound_train checks its report, test_sound_device runs the model): (model dir, report)."""
    from sensorbox.host import train

    out = tmp_path_factory.mktemp("soundmodel")
    rep = train.train("sounds", str(out), quiet=True, plot=False, sensor="sound", compare=["knn", "baseline"])
    return str(out), rep
