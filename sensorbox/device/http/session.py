"""The UI's session: ``POST /api/login`` ``{"password": ...}`` -> the session cookie (``sb_session``, HttpOnly,
SameSite=Strict) and ``{"scope", "csrf"}``; ``POST /api/logout`` ends it (the sessions themselves: ``authz``).

Loaded for the request by ``server`` (``handle``) and unloaded at once: a login loaded ``device_api`` and all of
``admin`` (tokens, restart, faults) before, ~16 KB at its peak from the file system.
"""

import binascii
import hashlib
import os
import time

from sensorbox.device.http import authz
from sensorbox.device.http.server import BadRequest, error, json_response, not_allowed, read_json


async def handle(device, app, req):
    p = req.path  # /api/login or /api/logout (server._route), or a path below them
    if req.method != "POST" or p.count("/") != 2:
        return not_allowed(req)  # (405 with Allow for these paths; 404 for one below them)
    auth = device.auth
    if p[5:] == "login":  # (not the whole path: a string of up to 10 characters is interned for good)
        return await login(auth, req)
    sid = req.cookies.get(authz.COOKIE) or ""
    key = hashlib.sha256(sid.encode()).digest()
    auth.sessions = [s for s in authz.sessions(auth) if s[0] != key]
    res = json_response({"logged_out": True})
    _cookie(res, "x; Max-Age=0")
    return res


def _cookie(res, value):
    # the session cookie (value and its further attributes), HttpOnly, for the whole site
    res.headers["Set-Cookie"] = "{}={}; Path=/; HttpOnly".format(authz.COOKIE, value)


async def login(auth, req):
    # JSON only: a cross-site HTML form cannot send it without a CORS preflight, which the device never grants
    # (nor a body without a Content-Type, which fetch can send cross-site as a Blob).
    if (req.content_type or "").split(";")[0].strip().lower() != "application/json":
        raise BadRequest("login needs a JSON body (Content-Type: application/json)", "Content-Type", 415)
    body = read_json(req)
    for k in body if isinstance(body, dict) else ():
        if k != "password":
            raise BadRequest("unknown field", k)
    pw = body.get("password") if isinstance(body, dict) else None
    if not isinstance(pw, str):
        raise BadRequest("password missing", "password")
    # Checked as Basic credentials: the same hash, remembered credentials and failed-login lockout.
    ok = await auth.check_basic("Basic " + binascii.b2a_base64(("admin:" + pw).encode()).decode().strip(),
                               req.client_addr)
    if ok == "wait":
        return error(429, "too many failed logins; wait and retry")
    if ok != "admin":
        return error(401, "wrong password", "password")
    sid = binascii.hexlify(os.urandom(16)).decode()
    ss = authz.sessions(auth)
    ss.append([hashlib.sha256(sid.encode()).digest(), time.ticks_ms()])
    if len(ss) > authz.MAX_SESSIONS:
        ss.pop(0)
    auth.log.info("auth", "UI session opened")
    res = json_response({"scope": "admin", "csrf": authz.csrf_token(sid)})
    _cookie(res, sid + "; SameSite=Strict")
    return res
