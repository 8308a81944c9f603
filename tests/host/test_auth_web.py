"""Authentication of the running device app (unix port, APP_HEAP) over real sockets: every route, sessions with
CSRF, scoped API tokens, cross-site refusal, static files without path traversal."""

import http.client
import json
import os
import re
import time

import pytest
from conftest import ADMIN_PASSWORD, retry_503 as _retry

# Routes that answer without credentials: the health probe, the UI's files, the API description, login/logout.
OPEN = {("GET", "/api/status"), ("GET", "/"), ("GET", "/static/{name}"), ("GET", "/api/openapi.json"),
        ("POST", "/api/login"), ("POST", "/api/logout"), ("GET", "/setup")}
ADMIN_GET = {"/api/tokens", "/api/routes"}  # admin only even to read
SAMPLE_ARGS = {"name": "accel", "ident": "1"}


def _concrete(pattern, method):
    return re.sub(r"\{(\w+)\}", lambda m: SAMPLE_ARGS[m.group(1)], pattern)


def _status_only(dev, method, path, headers, body=None):
    """Status of a request, reading at most a little of the body (``/api/live`` streams forever). A 503 (the
    device short of memory says "retry") is retried: these tests are about who gets in, not about heap."""
    for _ in range(5):
        c = http.client.HTTPConnection("127.0.0.1", dev.port, timeout=10)
        try:
            h = dict(headers)
            if body is not None:
                h["Content-Type"] = "application/json"
            c.request(method, path + ("?start=-2000" if path.endswith("/data") else ""), body=body, headers=h)
            r = c.getresponse()
            data = r.read(512)
        finally:
            c.close()
        if r.status != 503:
            break
        time.sleep(0.3)
    return r.status, data


@pytest.fixture(scope="module")
def walker(tmp_path_factory):
    """A device of its own for the tests that walk every route: each route's code, loaded once, leaves its
    interned names in the heap for good, and the other tests should not inherit that fragmentation."""
    from conftest import Device

    d = Device(tmp_path_factory.mktemp("walker"))
    yield d
    d.stop()


@pytest.fixture(scope="module")
def routes(walker):
    r = _retry(walker.get, "/api/routes")
    assert r.status == 200, r.body
    out = []
    for methods, pattern in r.json():
        for m in methods:
            out.append((m, pattern))
    return out


@pytest.fixture(scope="module")
def read_token(walker):
    r = _retry(walker.post, "/api/tokens", {"name": "grafana", "scope": "read"})
    assert r.status == 201, r.body
    return r.json()["token"]


def test_routes_list_is_complete_and_documented(walker, routes):
    device_app = walker
    have = set(routes)
    for expected in [("GET", "/api/status"), ("PUT", "/api/config"), ("GET", "/api/live"), ("POST", "/api/login"),
                     ("POST", "/api/restart"), ("DELETE", "/api/tokens/{ident}"), ("GET", "/api/logs"),
                     ("GET", "/api/events"), ("POST", "/api/labels"), ("GET", "/api/resources/{name}/data")]:
        assert expected in have, expected
    r = _retry(device_app.get, "/api/openapi.json", auth=False, headers={"Accept-Encoding": "gzip"})
    assert r.status == 200 and r.headers.get("Content-Encoding") == "gzip"
    import gzip

    spec = json.loads(gzip.decompress(r.body))
    for method, path in routes:
        assert method.lower() in spec["paths"][path], (method, path)


def test_every_route_refuses_without_credentials(walker, routes):
    device_app = walker
    checked = 0
    for method, pattern in routes:
        if (method, pattern) in OPEN:
            continue
        path = _concrete(pattern, method)
        status, body = _status_only(device_app, method, path, {}, b"{}" if method in ("PUT", "POST") else None)
        assert status == 401, (method, path, status, body)
        assert json.loads(body)["error"]
        checked += 1
    assert checked >= 20
    # the UI's own requests get no Basic challenge (no browser dialog)
    status, _ = _status_only(device_app, "GET", "/api/config", {"X-Requested-With": "fetch"})
    assert status == 401


def test_read_token_reads_but_never_changes_anything(walker, routes, read_token):
    device_app = walker
    h = {"Authorization": "Bearer " + read_token}
    r = _retry(device_app.get, "/api/config")
    assert r.status == 200, r.body
    before = r.json()["config"]
    for method, pattern in routes:
        if (method, pattern) in OPEN:
            continue
        path = _concrete(pattern, method)
        status, body = _status_only(device_app, method, path, h, b"{}" if method in ("PUT", "POST") else None)
        if method in ("GET", "HEAD") and pattern not in ADMIN_GET:
            assert status not in (401, 403), (method, path, status, body)
        else:
            assert status == 403, (method, path, status, body)
            assert "admin" in json.loads(body)["error"]
    r = _retry(device_app.get, "/api/config")
    assert r.status == 200, r.body
    assert r.json()["config"] == before
    assert device_app.status()["task_restarts"] == 0  # /api/debug/fault and /api/restart were refused


def test_tokens_hashed_scoped_and_revocable(device_app):
    r = _retry(device_app.post, "/api/tokens", {"name": "ci", "scope": "admin"})
    assert r.status == 201
    tok = r.json()
    secret = tok["token"].split("_")[2]
    with open(os.path.join(device_app.data_dir, "tokens.json")) as f:
        stored = f.read()
    assert secret not in stored and tok["token"] not in stored
    listed = _retry(device_app.get, "/api/tokens").json()["tokens"]
    assert {"id": tok["id"], "name": "ci", "scope": "admin"} in listed
    assert all(set(t) == {"id", "name", "scope"} for t in listed)
    h = {"Authorization": "Bearer " + tok["token"]}
    assert _retry(device_app.put, "/api/config", {"device.name": "tok-set"}, auth=False, headers=h).status == 200
    assert _retry(device_app.get, "/api/config").json()["config"]["device.name"] == "tok-set"
    bad = _retry(device_app.post, "/api/tokens", {"name": "x", "scope": "root"})
    assert bad.status == 400 and bad.json()["field"] == "scope"
    assert _retry(device_app.request, "DELETE", "/api/tokens/{}".format(tok["id"])).status == 200
    r = _retry(device_app.get, "/api/config", auth=False, headers=h)
    assert r.status == 401 and "revoked" in r.json()["error"]
    assert _retry(device_app.request, "DELETE", "/api/tokens/{}".format(tok["id"])).status == 404
    wrong = "Bearer sb_{}_{}".format(tok["id"], "0" * 32)
    assert _retry(device_app.get, "/api/config", auth=False, headers={"Authorization": wrong}).status == 401


def _login(dev, password=ADMIN_PASSWORD):
    r = dev.post("/api/login", {"password": password}, auth=False)
    return r


def test_session_cookie_and_csrf(device_app):
    r = _login(device_app, "not-it")
    assert r.status in (401, 429) and r.json().get("field") in ("password", None)
    time.sleep(0.6)  # the failed login's lockout
    r = _login(device_app)
    assert r.status == 200, r.body
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    c = {"Cookie": cookie.split(";")[0]}
    csrf = r.json()["csrf"]
    assert _retry(device_app.get, "/api/config", auth=False, headers=c).status == 200
    s = _retry(device_app.get, "/api/session", auth=False, headers=c).json()
    assert s["scope"] == "admin" and s["csrf"] == csrf
    r = _retry(device_app.put, "/api/config", {"device.name": "ui-1"}, auth=False, headers=c)
    assert r.status == 403 and r.json()["field"] == "X-CSRF-Token"
    r = _retry(device_app.put, "/api/config", {"device.name": "ui-1"}, auth=False, headers=dict(c, **{"X-CSRF-Token": "0" * 32}))
    assert r.status == 403
    ok = dict(c, **{"X-CSRF-Token": csrf})
    assert _retry(device_app.put, "/api/config", {"device.name": "ui-1"}, auth=False, headers=ok).status == 200
    # cross-site, even with the token (a page elsewhere cannot know it, but refuse anyway)
    evil = dict(ok, Origin="http://evil.example")
    assert _retry(device_app.put, "/api/config", {"device.name": "evil"}, auth=False, headers=evil).status == 403
    assert _retry(device_app.put, "/api/config", {"device.name": "evil"}, auth=False,
                          headers=dict(ok, **{"Sec-Fetch-Site": "cross-site"})).status == 403
    # Basic credentials cached by a browser are refused cross-site too
    assert _retry(device_app.put, "/api/config", {"device.name": "evil"}, headers={"Origin": "http://evil.example"}).status == 403
    assert _retry(device_app.get, "/api/config").json()["config"]["device.name"] == "ui-1"
    # a login needs JSON (an HTML form cannot post it cross-site)
    r = _retry(device_app.request, "POST", "/api/login", body=json.dumps({"password": ADMIN_PASSWORD}).encode(),
                           auth=False, headers={"Content-Type": "text/plain"})
    assert r.status == 415 and r.json()["field"] == "Content-Type"
    assert _retry(device_app.post, "/api/logout", None, auth=False, headers=ok).status == 200
    assert _retry(device_app.get, "/api/config", auth=False, headers=c).status == 401


def test_static_files_and_no_traversal(device_app):
    r = _retry(device_app.get, "/", auth=False, headers={"Accept-Encoding": "gzip"})
    assert r.status == 200 and r.headers["Content-Encoding"] == "gzip"
    import gzip

    assert b"<title>sensorbox</title>" in gzip.decompress(r.body)
    r = _retry(device_app.get, "/static/app.js", auth=False)
    assert r.status == 200 and "javascript" in r.headers["Content-Type"]
    for p in ("/static/../auth.json", "/static/..%2fauth.json", "/static/%2e%2e/auth.json", "/static/.auth.json",
              "/static/auth.json", "/static/app.js/../../auth.json", "/../auth.json", "/static/x%00.js",
              "/static/" + "a" * 300):
        r = _retry(device_app.get, p, auth=False)
        assert r.status == 404, (p, r.status)
        assert b"salt" not in r.body


def test_saved_sessions_are_taken_at_boot_or_never(device_factory, tmp_path):
    import hashlib

    def boot_with(t_saved, left_ms):
        d = tmp_path / "dev-{}".format(len(os.listdir(tmp_path)))
        d.mkdir()
        sid = os.urandom(16).hex()
        (d / "sessions.json").write_text(json.dumps(
            {"t": t_saved, "s": [[hashlib.sha256(sid.encode()).hexdigest(), left_ms]]}))
        dev = device_factory(data_dir=d)
        # read and removed at boot, before any browser request (the open health probe does not load sessions)
        assert not (d / "sessions.json").exists()
        r = _retry(dev.get, "/api/config", auth=False, headers={"Cookie": "sb_session=" + sid})
        dev.stop()
        return r.status

    assert boot_with(time.time() - 2, 3600 * 1000) == 200  # a restart a moment ago: logged in still
    assert boot_with(time.time() - 3 * 3600, 11 * 3600 * 1000) == 401  # saved hours ago: gone
    assert boot_with(time.time() + 3600, 3600 * 1000) == 401  # a clock that went back: cannot tell, gone
