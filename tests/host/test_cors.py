"""CORS on the running device app (unix port, APP_HEAP): off by default; with ``http.cors_origin`` set, the one
origin (or any, with ``*``) gets the headers on answers, errors and unauthenticated preflights; no credentials
mode; other origins get nothing; the change applies without a restart."""

ORIGIN = "http://dash.example:8000"


def cors(r):
    return {k.lower(): v for k, v in r.headers.items() if k.lower().startswith("access-control-")}


def test_cors_off_by_default_then_one_origin_then_any(tmp_path, device_factory):
    dev = device_factory(data_dir=tmp_path / "dev")
    h = {"Origin": ORIGIN}
    pre = dict(h, **{"Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "authorization"})
    assert cors(dev.get("/api/status", auth=False, headers=h)) == {}
    assert cors(dev.request("OPTIONS", "/api/config", auth=False, headers=pre)) == {}
    assert dev.get("/api/config").json()["config"]["http.cors_origin"] == ""

    assert dev.put("/api/config", {"http.cors_origin": ORIGIN}).status == 200
    r = dev.get("/api/status", auth=False, headers=h)
    assert r.status == 200
    c = cors(r)
    assert c["access-control-allow-origin"] == ORIGIN and "access-control-allow-credentials" not in c
    assert "Origin" in r.headers.get("Vary", "")
    # a preflight needs no credentials and names what the API accepts
    r = dev.request("OPTIONS", "/api/config", auth=False, headers=pre)
    assert r.status == 204 and r.headers["Allow"] == "GET, HEAD, PUT, OPTIONS"
    c = cors(r)
    assert c["access-control-allow-origin"] == ORIGIN
    assert "PUT" in c["access-control-allow-methods"] and "Authorization" in c["access-control-allow-headers"]
    # errors carry it too (the page can read why), and authentication still applies
    r = dev.get("/api/config", auth=False, headers=h)
    assert r.status == 401 and cors(r)["access-control-allow-origin"] == ORIGIN
    r = dev.get("/api/config", headers=h)
    assert r.status == 200 and cors(r)["access-control-allow-origin"] == ORIGIN
    # the configured origin may change state with its own Authorization header (no cookie)...
    r = dev.put("/api/config", {"device.name": "dash-set"}, headers=h)
    assert r.status == 200 and cors(r)["access-control-allow-origin"] == ORIGIN, r.body
    # ...another origin may not, credential or not
    r = dev.put("/api/config", {"device.name": "evil"}, headers={"Origin": "http://evil.example"})
    assert r.status == 403 and b"cross-site" in r.body
    # another origin, or no Origin header: nothing
    assert cors(dev.get("/api/status", auth=False, headers={"Origin": "http://evil.example"})) == {}
    assert cors(dev.get("/api/status", auth=False)) == {}

    assert dev.put("/api/config", {"http.cors_origin": "*"}).status == 200
    c = cors(dev.get("/api/status", auth=False, headers={"Origin": "http://other.example"}))
    assert c["access-control-allow-origin"] == "*" and "access-control-allow-credentials" not in c
    # any origin reads; none changes state (a browser may attach cached Basic credentials to any site's request)
    c = cors(dev.request("OPTIONS", "/api/config", auth=False, headers=pre))
    assert c["access-control-allow-methods"] == "GET, HEAD"
    assert dev.put("/api/config", {"device.name": "x"}, headers={"Origin": "http://other.example"}).status == 403
    assert dev.get("/api/config").json()["config"]["device.name"] == "dash-set"

    assert dev.put("/api/config", {"http.cors_origin": ""}).status == 200
    assert cors(dev.get("/api/status", auth=False, headers=h)) == {}
    assert "MemoryError" not in dev.output()
