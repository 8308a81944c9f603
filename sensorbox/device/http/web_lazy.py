"""The web UI's files and the API routes that are not registered with Microdot (answered from the 404 handler).

    GET    /                     the single-page UI; GET /static/<name> its assets, pre-gzipped on flash
    GET    /api/openapi.json     the API description (written into www/ by the bundle builder)
    POST   /api/login            {"password": ...} -> session cookie (HttpOnly, SameSite=Strict) + {"csrf": ...}
    POST   /api/logout
    GET    /api/session          who is asking: {"scope", "via", "csrf"} (the UI's start-up check)
    GET    /api/tokens           API tokens (never their secrets)                                      admin
    POST   /api/tokens           {"name": ..., "scope": "read"|"admin"} -> 201 with the token, shown once   admin
    DELETE /api/tokens/<id>                                                                            admin
    GET    /api/routes           every route of this app (tests check them against the OpenAPI)          admin
    GET    /api/logs?since=N     entries of the log ring from byte offset N (each has its "id"); "next": pass it
                                 as since to get only what is new
    GET    /api/events?start=&end=   the stored events (what /api/resources/events/data answers; JSON)
    GET    /api/live             Server-Sent Events (see ``live``)
    POST   /api/restart          restart the device (platform.reset; ``sensorbox run`` restarts it)      admin
    POST   /api/debug/fault      {"service": name, "mode": ...}: make a service fail (see web_admin.fault)  admin
    POST   /api/pulled           {"<resource>": t, ...}: the rows up to t were pulled (``sensorbox pull``): the
                                 labelled data they cover is no longer pinned (``store.meta.pulled``)       admin
    POST   /api/labels/<id>/unpin   release a label's data to retention before it is pulled                 admin

Loaded for one request and unloaded at once (``lazy``), as are ``authz`` and ``web_admin`` (login, tokens,
restart): none of this stays in the device's heap; only ``live`` stays imported once a stream has run.
The UI's files (``/``, ``/static/<name>``) are served by ``static.py``, loaded by the 404 handler.
"""

from sensorbox.device.http import authz
from sensorbox.device.http.server import BadRequest, error, json_response
from sensorbox.device.http.static import static_file

_ADMIN = "sensorbox.device.http.web_admin"
# action -> (methods, admin needed); absent actions are 404. None: no authentication (login, logout, openapi).
_ROUTES = {
    "login": (("POST",), None),
    "logout": (("POST",), None),
    "openapi.json": (("GET",), None),
    "live": (("GET",), False),
    "session": (("GET",), False),
    "logs": (("GET",), False),
    "events": (("GET",), False),
    "tokens": (("GET", "POST", "DELETE"), True),  # DELETE only as /api/tokens/<id>
    "routes": (("GET",), True),
    "restart": (("POST",), True),
    "debug/fault": (("POST",), True),
    "pulled": (("POST",), True),
    "labels/unpin": (("POST",), True),  # /api/labels/<id>/unpin
}


async def handle(device, http, req):
    """The answer to a request no registered route matched (server.make_app's 404 handler)."""
    res = await _handle(device, http, req, req.path.strip("/"))
    if isinstance(res, dict):
        return json_response(res)
    return res


async def _handle(device, http, req, p):
    if req.method not in ("GET", "HEAD", "POST", "PUT", "DELETE"):
        return error(405, "method {} not allowed".format(req.method))
    parts = p.split("/")
    action = parts[1] if len(parts) in (2, 3) and parts[0] == "api" else None
    ident = None
    if len(parts) == 3 and action == "tokens" and req.method == "DELETE":
        try:
            ident = int(parts[2])
        except ValueError:
            action = None
    elif p == "api/debug/fault":
        action = p[4:]
    elif len(parts) == 4 and parts[1] == "labels" and parts[3] == "unpin" and parts[2].isdigit():
        action = "labels/unpin"
        ident = int(parts[2])
    elif len(parts) == 3 or req.method == "DELETE":
        action = None
    r = _ROUTES.get(action)
    if r is None:
        return error(404, "no such endpoint: {}".format(req.path))
    if req.method not in r[0]:
        return error(405, "method {} not allowed here".format(req.method))
    auth = device.auth
    if r[1] is not None:
        refused = await authz.check(auth, req, r[1])
        if refused is not None:
            return refused
    if action == "live":
        from sensorbox.device.http import live  # stays imported while streams may run

        return live.response(device, req)
    if action == "openapi.json":
        return static_file(device.platform.www_dir, "openapi.json", req)
    if action == "session":
        a = req.headers.get("Authorization") or ""
        sid = req.cookies.get(authz.COOKIE)
        if a.startswith("Bearer "):
            return {"scope": authz.bearer_scope(auth, a), "via": "token"}
        if a:
            return {"scope": "admin", "via": "basic"}
        return {"scope": "admin", "via": "session", "csrf": authz.csrf_token(sid)}
    if action == "logs":
        s = req.args.get("since", "0")
        if not s.isdigit():
            raise BadRequest("since must be an entry id (an integer >= 0, as \"next\" gave it)", "since")
        # "next": where the following call should start (the end of what was logged so far). A since this boot
        # did not give (one from before a restart, say) answers the entries the ring holds and a new "next".
        return json_response({"entries": device.log.entries(int(s)), "next": device.log.end()})
    if action == "events":
        for _, pattern, handler, _, _ in http.url_map:  # the data route, for the events resource
            if pattern.url_pattern == "/api/resources/<name>/data":
                return await handler(req, name="events")
    if action in ("pulled", "labels/unpin"):  # (store/meta.py, loaded for the request)
        from sensorbox.device import lazy
        from sensorbox.device.http.server import read_json
        from sensorbox.device.store.core import QueryError

        body = read_json(req) if action == "pulled" else None
        mod = "sensorbox.device.store." + ("retain" if action == "pulled" else "meta")
        m = lazy.load(mod)
        lazy.unload(mod)
        try:
            if action == "pulled":
                return m.pulled(device.store, body)
            if not m.label_unpin(device.store, ident):
                return error(404, "no label {}".format(ident), "id")
            return {"unpinned": ident}
        except QueryError as e:
            return error(400, e.reason, e.field)
        except OSError as e:
            return error(507, "flash full or failing ({}); nothing changed".format(e))
    if action == "routes":
        out = [[m, p.url_pattern] for m, p, _, _, _ in http.url_map]
        for k in _ROUTES:
            if k != "labels/unpin":  # (listed below with its id)
                out.append([[m for m in _ROUTES[k][0] if m != "DELETE"] or ["GET"], "/api/" + k])
        out += [[["GET"], "/"], [["GET"], "/static/<name>"], [["DELETE"], "/api/tokens/<int:ident>"],
                [["POST"], "/api/labels/<int:ident>/unpin"]]
        return json_response(out)
    # login, logout, tokens, restart, debug/fault: in web_admin, loaded for the request
    from sensorbox.device import lazy

    m = lazy.load(_ADMIN)
    lazy.unload(_ADMIN)
    return await m.handle(device, req, action, ident)
