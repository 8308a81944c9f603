"""Fixtures for host tests that talk to the real device app on the MicroPython unix port over real sockets.

``device_factory(data_dir=None, heap=bundle.APP_HEAP, env=None)`` starts ``main.py`` of the unix bundle exactly as
``sensorbox run`` does, on a free port, and waits until ``/api/status`` answers. ``device_app`` is one such device
shared by a test module. The admin password is ``ADMIN_PASSWORD``. A device's console output is in ``dev.output()``.
"""

import base64
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from sensorbox.host import bundle

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


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
        self.proc = subprocess.Popen([bundle.micropython_path(), "-X", "heapsize=" + heap,
                                      script or os.path.join(out, "main.py")], env=e, cwd=self.data_dir,
                                     stdout=self._out, stderr=subprocess.STDOUT)
        try:
            self.wait_ready()
        except BaseException:  # a device that never answered is not left running (nobody else holds it)
            self.stop(signal.SIGKILL, timeout=5)
            raise

    def wait_ready(self, timeout=20):
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

    def stop(self, sig=signal.SIGINT, timeout=10):
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
