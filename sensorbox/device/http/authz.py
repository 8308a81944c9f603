"""Checking a request's credentials beyond plain HTTP Basic: API tokens, the UI's session, CSRF, cross-site; and
the CORS headers of a response (``cors``).

Loaded per request (``lazy``) by ``server.make_app``'s guard whenever a request is not plain HTTP Basic (or no
credential) from a non-browser client (no ``Origin``, ``Sec-Fetch-Site`` or ``Cookie`` header): only browsers
and token holders pay the import; scripts (``sensorbox pull``, curl) and the idle device pay nothing. The state (sessions, tokens) lives in the ``Auth`` object (``sensorbox/device/auth.py``).

Rules, in order:

1. State-changing requests (anything but GET/HEAD) whose ``Origin`` is not this host, or whose
   ``Sec-Fetch-Site`` says ``cross-site``/``same-site``, are refused (403): browsers resend cookies and cached
   Basic credentials, so another site must never get to change anything. The one exception is the exact origin
   configured in ``http.cors_origin`` (not ``*``), with an ``Authorization`` header and no cookie.
2. ``Authorization: Bearer sb_<id>_<secret>``: an API token; its scope is ``read`` or ``admin``.
   ``Authorization: Basic``: the admin password. Otherwise the ``sb_session`` cookie: admin, and a
   state-changing request must carry the session's CSRF token in ``X-CSRF-Token``.
3. No valid credential: 401 (with ``WWW-Authenticate: Basic`` unless the UI asked, ``X-Requested-With``, so the
   browser does not pop up its own dialog). A ``read`` credential on an admin route or a state-changing request: 403.
"""

import binascii
import hashlib
import json
import os
import time

from micropython import const

from sensorbox.device.http.server import error

COOKIE = "sb_session"
MAX_SESSIONS = const(4)
SESSION_IDLE_MS = const(12 * 3600 * 1000)
RESTART_S = const(120)  # saved sessions count only if the device is back this soon (a restart takes seconds)


def tokens_path(auth):
    return auth.path.rpartition("/")[0] + "/tokens.json" if "/" in auth.path else "tokens.json"


def tokens(auth):
    """The API tokens, ``[{"id", "name", "scope", "hash"}]`` (read from flash once). Entries that are not valid
    tokens are left out; the file as it was is kept as ``tokens.json.bad`` (``device/files.py``)."""
    if getattr(auth, "tokens", None) is None:
        from sensorbox.device import lazy

        auth.tokens = lazy.call("sensorbox.device.files", "tokens", tokens_path(auth), auth.log)
    return auth.tokens


def bearer_scope(auth, header):
    """The scope ("read" or "admin") of an ``Authorization: Bearer sb_<id>_<secret>`` header, else None."""
    parts = header[7:].split("_")
    if len(parts) != 3 or parts[0] != "sb":
        return None
    h = binascii.hexlify(hashlib.sha256(parts[2].encode()).digest()).decode()
    for t in tokens(auth):
        if str(t["id"]) == parts[1] and t["hash"] == h:
            return t["scope"]
    return None


def sessions(auth, save=False, boot=False):
    """``[[sha256(session id), last use ticks_ms]]``, newest last. ``POST /api/restart`` saves them (``save``) in
    ``sessions.json``: each hash with the idle time it has left, and the clock. The next start reads the file at
    boot (``Device.run``) and removes it; the sessions carry on, each with the idle time it had left less the
    time between, only when the clock says that start came within ``RESTART_S`` of the save. A clock that reads
    earlier than at the save cannot tell how long the device was off (a board without NTP after a power cut
    starts at 2000 again; a reset keeps its clock): the file is dropped."""
    path = tokens_path(auth)[:-11] + "sessions.json"
    if save:
        now = time.ticks_ms()
        s = []
        for x in sessions(auth):
            left = SESSION_IDLE_MS - time.ticks_diff(now, x[1])
            if left > 0:
                s.append([binascii.hexlify(x[0]).decode(), left])
        with open(path, "w") as f:
            json.dump({"t": time.time(), "s": s}, f)
    if boot or not hasattr(auth, "sessions"):  # (at boot: also after a first start set the password)
        auth.sessions = []
        try:
            with open(path) as f:
                d = json.load(f)
            gone = int((time.time() - d["t"]) * 1000)
            if 0 <= gone <= RESTART_S * 1000:
                now = time.ticks_ms()
                for h, left in d["s"][:MAX_SESSIONS]:
                    left -= gone
                    if 0 < left <= SESSION_IDLE_MS:
                        auth.sessions.append([binascii.unhexlify(h), time.ticks_add(now, left - SESSION_IDLE_MS)])
        except Exception:  # none saved, or unreadable: no sessions, as after any other start
            auth.sessions = []
        try:
            os.remove(path)  # used once
        except OSError:
            pass
    return auth.sessions


def session_ok(auth, sid):
    """True when ``sid`` is a live session (and marks it used)."""
    if not sid or len(sid) != 32:
        return False
    key = hashlib.sha256(sid.encode()).digest()
    now = time.ticks_ms()
    for s in sessions(auth):
        if s[0] == key:
            if time.ticks_diff(now, s[1]) > SESSION_IDLE_MS:
                auth.sessions.remove(s)
                return False
            s[1] = now
            return True
    return False


def csrf_token(sid):
    return binascii.hexlify(hashlib.sha256(("csrf:" + sid).encode()).digest()[:16]).decode()


def _trusted(req, h):
    # The one origin the owner named in http.cors_origin may change state, with an Authorization header of its
    # own and no cookie ("*" only reads: a browser may attach cached Basic credentials to any site's request).
    dev = getattr(req.app, "device", None)
    o = dev.config.get("http.cors_origin") if dev is not None else ""
    return o and o != "*" and h.get("Origin") == o and "Authorization" in h and "Cookie" not in h


def _same(a, b):
    # Compared in time that does not depend on where they differ; as UTF-8 bytes (indexing a str interns the
    # character as a name, for good: each one a client sent)
    a = a.encode()
    b = b.encode()
    if len(a) != len(b):
        return False
    d = 0
    for i in range(len(a)):
        d |= a[i] ^ b[i]
    return d == 0


async def check(auth, req, admin):
    """None when ``req`` may go on, else the refusal (a Response)."""
    h = req.headers
    unsafe = req.method not in ("GET", "HEAD")
    if unsafe and (h.get("Sec-Fetch-Site") in ("cross-site", "same-site") or
                   ("Origin" in h and h["Origin"].partition("//")[2] != h.get("Host"))) and not _trusted(req, h):
        return error(403, "cross-site request refused", "Origin")
    a = h.get("Authorization")
    if a and a.startswith("Bearer "):
        scope = bearer_scope(auth, a)
        if scope is None:
            return error(401, "invalid or revoked API token", "Authorization")
    elif a:
        scope = await auth.check_basic(a, req.client_addr)
        if scope == "wait":
            return error(429, "too many failed logins; wait and retry")
    else:
        sid = req.cookies.get(COOKIE)
        scope = "admin" if session_ok(auth, sid) else None
        if scope and unsafe and not _same(h.get("X-CSRF-Token") or "", csrf_token(sid)):
            return error(403, "missing or wrong X-CSRF-Token", "X-CSRF-Token")
    if scope is None:
        res = error(401, "authentication required")
        if "X-Requested-With" not in h:
            res.headers["WWW-Authenticate"] = 'Basic realm="sensorbox"'
        return res
    if scope != "admin" and (admin or unsafe):
        return error(403, "this needs an admin credential; the token's scope is {}".format(scope), "Authorization")
    return None


def cors(req, res, o):
    """Add the CORS headers for origin setting ``o`` (``http.cors_origin``: off by default) to ``res`` (a
    Response) when ``req`` comes from it (``server`` calls this for a response to a request with an ``Origin``
    header while the setting is on). ``""`` = off (no CORS headers at all: browsers keep cross-origin pages out,
    which the login's JSON-only rule relies on); ``"*"`` = any origin may read (GET, HEAD); otherwise one exact
    origin such as ``https://dash.example:8443``, which may also change state (``check`` lets it past the
    cross-site rule when it sends ``Authorization``). Credentials mode is never granted (no
    ``Access-Control-Allow-Credentials``), so the browser does not send the session cookie cross-origin: a page
    from another origin authenticates with a Basic or token ``Authorization`` header of its own. The setting is
    read on every response, so a change applies at once; preflights (``OPTIONS``) are answered by the server
    without authentication, as browsers require. (Here rather than in a module of its own: every module interns
    three names for good.)"""
    origin = req.headers.get("Origin")
    if not origin or (o != "*" and origin != o):
        return
    h = res.headers
    h["Access-Control-Allow-Origin"] = o
    if o != "*":
        h["Vary"] = "Origin"
    if req.method == "OPTIONS":
        h["Access-Control-Allow-Methods"] = "GET, HEAD" if o == "*" else "GET, HEAD, POST, PUT, DELETE"
        h["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
        h["Access-Control-Max-Age"] = "600"
    else:
        h["Access-Control-Expose-Headers"] = "X-Sensorbox-Next"
