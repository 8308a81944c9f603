"""The API routes that the other route modules do not answer (``server._route`` sends them here).

    GET    /                     the single-page UI; GET /static/<name> its assets, pre-gzipped on flash
    GET    /api/openapi.json     the API description (written into www/ by the bundle builder)
    GET    /api/session          who is asking: {"scope", "via", "csrf"} (the UI's start-up check)
    GET    /api/tokens           API tokens (never their secrets)                                      admin
    POST   /api/tokens           {"name": ..., "scope": "read"|"admin"} -> 201 with the token, shown once   admin
    DELETE /api/tokens/<id>                                                                            admin
    GET    /api/routes           every path with its methods (the route list of ``refuse``, from the OpenAPI doc) admin
    GET    /api/logs?since=N     entries of the log ring from byte offset N (each has its "id"); "next": pass it
                                 as since to get only what is new
    GET    /api/live             Server-Sent Events (see ``live``)
    POST   /api/restart          restart the device (platform.reset; ``sensorbox run`` restarts it)      admin
    POST   /api/reset            {"confirm": <device id>, "erase_data": false}: factory reset, restart    admin
    POST   /api/debug/fault      {"service": name, "mode": ...}: make a service fail (see admin.fault)  admin
    /api/ota...                  updates (``ota.py``, loaded for the request)
    /setup, /api/wifi...         a board's Wi-Fi set-up and its captive portal (``net/setup_http.py``); here too
                                 any path nothing else answers (a phone's connectivity probe) where there is a
                                 station; without one, /api/wifi answers 404 after the credential check
    POST   /api/pulled           {"<resource>": t, ...}: the rows up to t were pulled (``sensorbox pull``): the
                                 labelled data they cover is no longer pinned (``store.retain.pulled``)     admin

Loaded for one request and unloaded at once (``lazy``), as are ``authz`` and ``admin`` (tokens, restart):
none of this stays in the device's heap; only ``live`` stays imported while a stream runs. The UI's files
(``/``, ``/static/<name>``) are served by ``static.py``, the login and logout by ``session.py``.
"""

import binascii
import hashlib
import json

from micropython import const

from sensorbox.device import lazy
from sensorbox.device.http import authz
from sensorbox.device.http.server import BadRequest, error, json_response, not_allowed, not_found

_ADMIN = const("sensorbox.device.http.admin")
_REFUSE = const("sensorbox.device.http.refuse")
_RETAIN = const("sensorbox.device.store.retain")
_META = const("sensorbox.device.store.meta")  # retain.pulled imports it while it runs: unloaded with _RETAIN
_STATIC = const("sensorbox.device.http.static")
_LOGS = const("sensorbox.device.log_read")
# action -> (methods, admin needed); absent actions are 404. None: no authentication (login, logout, openapi).
_ROUTES = {
    "openapi.json": (("GET",), None),
    "live": (("GET",), False),
    "session": (("GET",), False),
    "logs": (("GET",), False),
    "tokens": (("GET", "POST", "DELETE"), True),  # DELETE only as /api/tokens/<id>
    "routes": (("GET",), True),
    "restart": (("POST",), True),
    "reset": (("POST",), True),
    "debug/fault": (("POST",), True),
    "pulled": (("POST",), True),
}


async def handle(device, http, req):
    """The answer to a request for an /api/ path of this module (or any path no other module answers)."""
    res = await _handle(device, http, req, req.path.strip("/"))
    if isinstance(res, dict):
        return json_response(res)
    return res


async def _handle(device, http, req, p):
    name = None
    if p.startswith("api/ota"):
        name = "sensorbox.device.ota"  # updates (ota.py)
    elif getattr(device.platform, "station", None) and (p[:4] != "api/" or p.startswith("api/wifi")):
        name = "sensorbox.device.net.setup_http"  # a board's Wi-Fi set-up page, routes, captive portal's answers
    if name is not None:
        return await lazy.call(name, "handle", device, http, req)
    parts = p.split("/")
    action = parts[1] if len(parts) in (2, 3) and parts[0] == "api" else None
    ident = None
    if len(parts) == 3 and action == "tokens" and req.method == "DELETE":
        try:
            ident = int(parts[2])
        except ValueError:
            return not_found(req)
    elif p == "api/debug/fault":
        action = p[4:]
    elif len(parts) == 3 or req.method == "DELETE":
        action = None
    r = _ROUTES.get(action)
    if r is None or req.method not in r[0]:
        res = not_allowed(req)  # 405 with Allow for a path the API has, else 404
        if res.status_code == 405 and (p == "setup" or parts[1:2] == ["wifi"]) and req.method in res.headers["Allow"]:
            # the ESP32's Wi-Fi set-up (net/setup_http.py) on a platform without Wi-Fi
            res = (p != "setup" and await authz.check(device.auth, req, False)) or error(
                404, "no Wi-Fi to set up on {}".format(device.platform.name))
        return res
    if r[1] is not None:
        refused = await authz.check(device.auth, req, r[1])
        if refused is not None:
            return refused
    return await _action(device, req, action, ident)


def _live(device, req):
    # GET /api/live: the stream's credential (a token's id and hash of its secret, the session's sha256 or the
    # password generation: checked again every turn, live._Client.valid) and its hello, made here (loaded for the
    # request) rather than in live.py (kept while streams run)
    from sensorbox.device.http import live  # stays imported while streams may run

    a = req.headers.get("Authorization") or ""
    if a.startswith("Bearer "):
        p = a[7:].split("_")
        cred = (int(p[1]), binascii.hexlify(hashlib.sha256(p[2].encode()).digest()).decode())
    elif a:
        cred = device.auth.generation
    else:
        cred = hashlib.sha256((req.cookies.get("sb_session") or "").encode()).digest()
    p = device.pipeline
    f = p.feats if p is not None else None
    return live.response(device, cred, live.msg("hello", json.dumps({
        "rate_hz": device.sensors["accel"].ring.rate_hz, "columns": ["x", "y", "z"], "out_hz": live.OUT_HZ,
        "features": len(f) if f is not None else 0, "feature_version": live.features.FEATURE_VERSION})))


async def _action(device, req, action, ident):
    # (apart from _handle: a function's bytecode is one block, which a cut-up heap lacks at ~1 KB)
    if action == "live":
        return _live(device, req)
    if action == "openapi.json":
        # (only here: the other routes of this module send no file)
        return lazy.call(_STATIC, "static_file", device.platform.www_dir, "openapi.json", req)
    if action == "session":
        a = req.headers.get("Authorization") or ""
        sid = req.cookies.get(authz.COOKIE)
        if a.startswith("Bearer "):
            return {"scope": authz.bearer_scope(device.auth, a), "via": "token"}
        if a:
            return {"scope": "admin", "via": "basic"}
        return {"scope": "admin", "via": "session", "csrf": authz.csrf_token(sid)}
    if action == "logs":
        s = req.args.get("since", "0")
        if not s.isdigit():
            raise BadRequest("since must be an entry id (an integer >= 0, as \"next\" gave it)", "since")
        # "next": where the following call should start (the end of what was logged so far). A since this boot
        # did not give (one from before a restart, say) answers the entries the ring holds and a new "next".
        # The entries stream one at a time from the ring (log_read.entries), not as one list of ~30 dicts.
        return json_response({"entries": lazy.call(_LOGS, "entries", device.log, int(s)), "next": device.log.end()})
    if action == "pulled":  # (store/retain.py, loaded for the request)
        from sensorbox.device.http.server import read_json
        from sensorbox.device.store.core import QueryError

        body = read_json(req)
        m = lazy.load(_RETAIN)
        try:
            return m.pulled(device.store, body)
        except QueryError as e:
            return error(400, e.reason, e.field)
        except OSError as e:
            return error(507, "flash full or failing ({}); nothing changed".format(e))
        finally:
            m = None
            lazy.unload(_RETAIN)
            lazy.unload(_META)
    if action == "routes":
        return json_response([p[1:], p[0]] for p in lazy.call(_REFUSE, "routes"))
    if action == "reset":  # factory reset (factory.py: loaded only for it)
        return lazy.call("sensorbox.device.factory", "handle", device, req)
    # tokens, restart, debug/fault: in admin, loaded for the request
    return await lazy.call(_ADMIN, "handle", device, req, action, ident)

