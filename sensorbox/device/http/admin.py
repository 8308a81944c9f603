"""API tokens, restart and fault injection (``/api/tokens``, ``/api/restart``: saves the UI's sessions for the
next start, see ``authz.sessions``; ``/api/debug/fault``). The UI's login and logout: ``session.py``.

Loaded for one request by ``device_api`` (which has checked the method and the credentials) and unloaded at once.
Tokens: ``tokens.json`` next to ``auth.json`` holds ``[{"id", "name", "scope", "hash"}]`` where hash is the
SHA-256 of the token's 128-bit random secret; the token itself is returned once, on creation, never stored.
"""

import binascii
import hashlib
import json
import os

from micropython import const

from sensorbox.device.http import authz
from sensorbox.device.http.server import BadRequest, error, json_response, read_json

MAX_TOKENS = const(8)
SCOPES = ("read", "admin")


async def handle(device, req, action, ident):
    if action == "restart":
        return restart(device)
    if action == "debug/fault":
        return fault(device, req)
    return tokens(device, device.auth, req, ident)


def restart(device):
    import asyncio

    device.log.warning("app", "restart requested over HTTP")
    try:  # the UI's sessions outlive a restart it asked for: the page comes back logged in
        authz.sessions(device.auth, True)
    except OSError as e:
        device.log.warning("auth", "sessions not kept across the restart: {}".format(e))
    device.log.flush()
    if device.supervisor.safe_mode:  # the owner fixed what was wrong: the next boot is a normal one
        from sensorbox.device import bootstate

        bootstate.healthy(device.platform.data_dir)

    async def later():
        await asyncio.sleep_ms(300)  # let the answer go out first
        device.platform.reset()

    asyncio.create_task(later())
    return {"restarting": True}


def fault(device, req):
    """Make a service fail as if it had raised: exercises logging, restart counting and backoff. ``mode``: "raise"
    (the default); for "http" also "dead" / "stuck" (its accept loop ends / stops accepting: the server's
    self-check restarts it); "hang" blocks the event loop until the platform watchdog resets the device."""
    body = read_json(req)
    name = body.get("service") if isinstance(body, dict) else None
    mode = body.get("mode", "raise") if isinstance(body, dict) else None
    sup = device.supervisor
    if not isinstance(name, str) or sup.get(name) is None:
        raise BadRequest("unknown service; one of: {}".format(", ".join(s.name for s in sup.services)), "service")
    if mode not in ("raise", "hang") and not (name == "http" and mode in ("dead", "stuck")):
        raise BadRequest("mode must be raise or hang (for http also dead or stuck)", "mode")
    if mode == "hang":
        device.log.warning("app", "fault injected: the event loop hangs until the watchdog resets the device")
        device.log.flush()
        while True:
            pass
    if mode == "raise":
        svc = sup.get(name)  # as if it had raised: the supervisor's failure path, restart and backoff
        svc._fault = "injected fault"
        svc.task.cancel()
    else:
        device.http.fault = mode
    return {"injected": name, "mode": mode}


def _public(t):
    return {"id": t["id"], "name": t["name"], "scope": t["scope"]}


def _save(auth, toks):
    path = authz.tokens_path(auth)
    with open(path + ".tmp", "w") as f:
        json.dump(toks, f)
    os.rename(path + ".tmp", path)
    auth.tokens = toks


def tokens(device, auth, req, ident):
    authz.tokens(auth)
    if req.method == "GET":
        return json_response({"tokens": [_public(t) for t in auth.tokens]})
    try:
        if req.method == "DELETE":
            left = [t for t in auth.tokens if t["id"] != ident]
            if len(left) == len(auth.tokens):
                return error(404, "no token {}".format(ident), "id")
            _save(auth, left)
            device.log.info("auth", "API token {} revoked".format(ident))
            return {"revoked": ident}
        body = read_json(req)
        if not isinstance(body, dict):
            raise BadRequest("expected a JSON object", "(body)")
        for k in body:
            if k not in ("name", "scope"):
                raise BadRequest("unknown field", k)
        name = body.get("name")
        scope = body.get("scope")
        if scope not in SCOPES:
            raise BadRequest("scope must be one of: read, admin", "scope")
        if not isinstance(name, str) or not 0 < len(name) <= 32:
            raise BadRequest("name must be a string of 1 to 32 characters", "name")
        if len(auth.tokens) >= MAX_TOKENS:  # (valid, but not now: 409)
            return error(409, "at most {} tokens; revoke one first".format(MAX_TOKENS), "name")
        ident = max([t["id"] for t in auth.tokens] + [0]) + 1
        secret = binascii.hexlify(os.urandom(16)).decode()
        t = {"id": ident, "name": name, "scope": scope,
             "hash": binascii.hexlify(hashlib.sha256(secret.encode()).digest()).decode()}
        _save(auth, auth.tokens + [t])
    except OSError as e:
        return error(507, "cannot save tokens on flash ({})".format(e))
    device.log.info("auth", "API token {} ({}) created".format(ident, scope))
    pub = _public(t)
    pub["token"] = "sb_{}_{}".format(ident, secret)
    return json_response(pub, 201)
