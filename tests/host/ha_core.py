"""Home Assistant core for the tests: ``make test-ha``, and the discovery checks of ``make test``.

``install()`` puts Home Assistant core ``HA_VERSION`` from PyPI into its own venv, ``.venv-ha`` at the repository
root, made with Python 3.13 (``find_python``), together with the requirements of every integration it loads (the
ones it always sets up, the frontend, MQTT): it then runs with ``--skip-pip`` and never installs anything at run
time. The venv is kept; a stamp file says what was installed, so a second run installs nothing. The first install
downloads ~800 MB (it took ~9 minutes on this machine, mostly the download). ``python ha_core.py`` installs it.

``HomeAssistant(tmp)`` starts one on a free 127.0.0.1 port with its configuration in ``tmp`` (~20 s), onboards it
through its REST API (owner user, analytics, integrations) and ``connect_mqtt`` adds the MQTT
integration through its config flow. ``api`` calls the REST API with the owner's token; ``ws`` the websocket API
(registries, device triggers) and ``watch`` records every state change, both through ``ha_ws.py`` run with the
venv's Python (its aiohttp: the test venv has no websocket client).
"""

import fcntl
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
HA_VERSION = "2025.4.4"  # the release the issue was reported against; Python 3.13 only
VENV = os.environ.get("SENSORBOX_HA_VENV") or os.path.join(REPO, ".venv-ha")
PY = os.path.join(VENV, "bin", "python")
STAMP = os.path.join(VENV, ".sensorbox-installed")

# Run in the HA venv: the requirements of the integrations Home Assistant sets up here (its own list of those it
# always loads, plus MQTT, with their dependencies), read from their manifests.
_RESOLVE = r"""
import json, os, homeassistant, homeassistant.bootstrap as b
comp = os.path.join(os.path.dirname(homeassistant.__file__), "components")
todo = set(b.CORE_INTEGRATIONS) | set(b.DEFAULT_INTEGRATIONS) | set(b.FRONTEND_INTEGRATIONS) | {"mqtt", "logger",
       "network", "system_log"}
seen, reqs = set(), set()
while todo:
    d = todo.pop()
    if d not in seen:
        seen.add(d)
        m = json.load(open(os.path.join(comp, d, "manifest.json")))
        reqs.update(m.get("requirements", ()))
        todo.update(m.get("dependencies", ()))
print("\n".join(sorted(reqs)))
"""


class Unavailable(RuntimeError):
    """Home Assistant cannot be installed or started here; the message says what to do."""


def find_python():
    """A Python 3.13 with venv and ensurepip: ``$SENSORBOX_HA_PYTHON``, ``python3.13`` on PATH (a pyenv shim
    included), pyenv's versions, the usual system paths."""
    cands = []
    if os.environ.get("SENSORBOX_HA_PYTHON"):
        cands.append(os.environ["SENSORBOX_HA_PYTHON"])
    if shutil.which("python3.13"):
        cands.append(shutil.which("python3.13"))
    roots = [os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")]
    try:
        roots.insert(0, subprocess.run(["pyenv", "root"], capture_output=True, text=True, timeout=20).stdout.strip())
    except (OSError, subprocess.TimeoutExpired):
        pass
    for r in roots:
        if r:
            cands += sorted(glob.glob(os.path.join(r, "versions", "3.13*", "bin", "python3.13")), reverse=True)
    cands += ["/usr/local/bin/python3.13", "/usr/bin/python3.13"]
    tried = []
    for c in cands:
        if c in tried:
            continue
        tried.append(c)
        try:
            r = subprocess.run([c, "-c", "import sys, venv, ensurepip; print('%d.%d' % sys.version_info[:2])"],
                               capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if r.returncode == 0 and r.stdout.strip() == "3.13":
            return c
    raise Unavailable(
        "Home Assistant {} needs Python 3.13, and none was found (tried: {}). Install one (pyenv install 3.13, "
        "uv python install 3.13, or your distribution's python3.13 with its venv module) or set "
        "SENSORBOX_HA_PYTHON=/path/to/python3.13.".format(HA_VERSION, ", ".join(tried) or "nothing on PATH"))


def installed():
    try:
        with open(STAMP) as f:
            return f.readline().strip() == "homeassistant==" + HA_VERSION and os.path.exists(PY)
    except OSError:
        return False


def install(say=print):
    """Install Home Assistant into ``VENV`` unless it is there already; returns the venv's Python."""
    if installed():
        return PY
    os.makedirs(os.path.dirname(VENV), exist_ok=True)
    with open(VENV + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one installer at a time (two test runs, or make and a test)
        if installed():
            return PY
        t0 = time.time()
        py = find_python()
        say("Installing Home Assistant {} from PyPI into {} with {} (the first time: ~800 MB, several "
            "minutes)".format(HA_VERSION, VENV, py))
        if not os.path.exists(PY):
            _run([py, "-m", "venv", VENV])
        _run([PY, "-m", "pip", "install", "--quiet", "homeassistant==" + HA_VERSION])
        reqs = subprocess.run([PY, "-c", _RESOLVE], capture_output=True, text=True, check=True).stdout.split()
        constraints = subprocess.run([PY, "-c", "import homeassistant, os; print(os.path.join(os.path.dirname("
                                      "homeassistant.__file__), 'package_constraints.txt'))"],
                                     capture_output=True, text=True, check=True).stdout.strip()
        _run([PY, "-m", "pip", "install", "--quiet", "-c", constraints] + reqs)
        with open(STAMP, "w") as f:
            f.write("homeassistant=={}\n{}\n".format(HA_VERSION, "\n".join(reqs)))
        say("Home Assistant {} installed in {:.0f} s".format(HA_VERSION, time.time() - t0))
    return PY


def _run(cmd):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode:
        raise Unavailable("installing Home Assistant failed: {}\n{}".format(" ".join(cmd), r.stdout[-3000:]))


def validate(payload, samples=None):
    """Home Assistant's verdict on a discovery payload (text), as ``ha_validate.py`` reports it."""
    inp = json.dumps({"payload": payload, "samples": samples or {}})
    r = subprocess.run([install(), os.path.join(HERE, "ha_validate.py")], input=inp, capture_output=True,
                       text=True, timeout=120)
    if r.returncode:
        raise AssertionError("ha_validate.py failed:\n" + r.stderr[-4000:])
    return json.loads(r.stdout)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HomeAssistant:
    """A running Home Assistant core, onboarded. ``log()`` is its log file."""

    def __init__(self, tmp, start_timeout=300):
        install()
        self.dir = str(tmp)
        os.makedirs(self.dir, exist_ok=True)
        self.port = _free_port()
        self.url = "http://127.0.0.1:{}".format(self.port)
        with open(os.path.join(self.dir, "configuration.yaml"), "w") as f:
            f.write("homeassistant:\n  name: sensorbox test\n  unit_system: metric\n  time_zone: UTC\n"
                    "  country: DE\n  currency: EUR\n  latitude: 52.5\n  longitude: 13.4\n  elevation: 30\n"
                    "http:\n  server_host: 127.0.0.1\n  server_port: {}\n"
                    "logger:\n  default: warning\n".format(self.port))
        self.proc = None
        self.token = self._refresh = None
        self._token_at = 0
        self.start(start_timeout)
        self.onboard()

    def start(self, timeout=300):
        self._out = open(os.path.join(self.dir, "console.txt"), "ab")
        t0 = time.time()
        self.proc = subprocess.Popen([PY, "-m", "homeassistant", "-c", self.dir, "--skip-pip", "--log-no-color",
                                      "--log-file", os.path.join(self.dir, "ha.log")],
                                     stdout=self._out, stderr=subprocess.STDOUT, cwd=self.dir)
        while time.time() - t0 < timeout:
            if self.proc.poll() is not None:
                raise Unavailable("Home Assistant exited with {}:\n{}".format(self.proc.returncode, self.log()[-4000:]))
            try:
                with urllib.request.urlopen(self.url + "/api/onboarding", timeout=5) as r:
                    if r.status == 200:
                        self.started_s = time.time() - t0
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.3)
        raise Unavailable("Home Assistant did not answer within {} s:\n{}".format(timeout, self.log()[-4000:]))

    def log(self):
        try:
            with open(os.path.join(self.dir, "ha.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()

    # ---- REST ----

    def _http(self, method, path, body=None, token=None, form=False):
        h = {}
        data = None
        if body is not None:
            if form:
                data = urllib.parse.urlencode(body).encode()
                h["Content-Type"] = "application/x-www-form-urlencoded"
            else:
                data = json.dumps(body).encode()
                h["Content-Type"] = "application/json"
        if token:
            h["Authorization"] = "Bearer " + token
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                raw = r.read()
                return r.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")

    def _auth(self):
        if time.time() - self._token_at > 1200:  # access tokens live 30 minutes
            st, t = self._http("POST", "/auth/token", {"grant_type": "refresh_token", "refresh_token": self._refresh,
                                                       "client_id": self.url + "/"}, form=True)
            assert st == 200, t
            self.token = t["access_token"]
            self._token_at = time.time()
        return self.token

    def api(self, method, path, body=None):
        """(status, JSON) of a REST call as the owner."""
        return self._http(method, path, body, self._auth())

    def onboard(self):
        cid = self.url + "/"
        st, r = self._http("POST", "/api/onboarding/users", {"client_id": cid, "name": "Test", "username": "test",
                                                             "password": "test-pw-1", "language": "en"})
        assert st == 200, (st, r)
        st, t = self._http("POST", "/auth/token", {"grant_type": "authorization_code", "code": r["auth_code"],
                                                   "client_id": cid}, form=True)
        assert st == 200, (st, t)
        self.token, self._refresh, self._token_at = t["access_token"], t["refresh_token"], time.time()
        # (not the core_config step: it adds Met.no weather, Radio Browser and Google Translate, which need the
        # internet and packages of their own; configuration.yaml has set the core config)
        steps = (("analytics", {}), ("integration", {"client_id": cid, "redirect_uri": cid + "?auth_callback=1"}))
        for step, body in steps:
            st, r = self.api("POST", "/api/onboarding/" + step, body)
            assert st == 200, (step, st, r)

    def connect_mqtt(self, port, user=None, password=None, timeout=60):
        """Add the MQTT integration (its config flow, as the UI does) for the broker on 127.0.0.1:port."""
        st, f = self.api("POST", "/api/config/config_entries/flow", {"handler": "mqtt", "show_advanced_options": False})
        assert st == 200 and f.get("step_id") == "broker", (st, f)
        body = {"broker": "127.0.0.1", "port": port}
        if user:
            body.update(username=user, password=password)
        st, r = self.api("POST", "/api/config/config_entries/flow/" + f["flow_id"], body)
        assert st == 200 and r.get("type") == "create_entry", (st, r)
        t0 = time.time()
        while time.time() - t0 < timeout:
            st, entries = self.api("GET", "/api/config/config_entries/entry?domain=mqtt")
            if st == 200 and entries and entries[0]["state"] == "loaded":
                return entries[0]
            time.sleep(0.3)
        raise AssertionError("MQTT integration not loaded: {}\n{}".format(entries, self.log()[-3000:]))

    def states(self):
        st, r = self.api("GET", "/api/states")
        assert st == 200, r
        return {s["entity_id"]: s for s in r}

    def state(self, entity_id):
        st, r = self.api("GET", "/api/states/" + entity_id)
        return r if st == 200 else None

    def call(self, domain, service, **data):
        st, r = self.api("POST", "/api/services/{}/{}".format(domain, service), data)
        assert st == 200, (st, r)
        return r

    # ---- websocket ----

    def ws(self, *messages):
        """Results of websocket commands (dicts without ``id``), in order."""
        r = subprocess.run([PY, os.path.join(HERE, "ha_ws.py"), self.url, self._auth(), "call", json.dumps(messages)],
                           capture_output=True, text=True, timeout=120)
        if r.returncode:
            raise AssertionError("ha_ws.py: " + r.stderr[-3000:])
        return json.loads(r.stdout)

    def watch(self, path):
        """Start recording every state change into ``path`` (a JSON line each); returns a Watch to stop."""
        return Watch(self, path)


class Watch:
    def __init__(self, ha, path):
        self.path = str(path)
        self._log_file = open(self.path, "wb")
        self.proc = subprocess.Popen([PY, os.path.join(HERE, "ha_ws.py"), ha.url, ha._auth(), "watch"],
                                     stdout=self._log_file, stderr=subprocess.PIPE)
        t0 = time.time()
        while not self.changes(marker=True) and time.time() - t0 < 60:
            if self.proc.poll() is not None:
                raise AssertionError("ha_ws.py watch: " + self.proc.stderr.read().decode()[-3000:])
            time.sleep(0.1)

    def changes(self, entity_id=None, marker=False):
        """The state changes recorded so far: dicts ``{"entity_id", "state", "attributes", "last_updated"}``."""
        out = []
        with open(self.path, "rb") as f:
            for line in f:
                if line.endswith(b"\n"):
                    d = json.loads(line)
                    if marker or d.get("entity_id") and (entity_id is None or d["entity_id"] == entity_id):
                        out.append(d)
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self._log_file.close()


if __name__ == "__main__":
    try:
        install()
    except Unavailable as e:
        sys.exit(str(e))
    print("Home Assistant {} is installed in {}".format(HA_VERSION, VENV))
