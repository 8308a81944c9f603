"""API routes: status (open as a health probe; in full with a credential), config (read: authenticated; write:
admin). Loaded for the request by ``server`` (``handle``) and unloaded at once. (Fault injection,
``POST /api/debug/fault``, is answered by ``admin``, loaded per request.)"""

import json
import os

from micropython import const

from sensorbox.device import lazy
from sensorbox.device.http.server import Response, error, guard, not_allowed, not_found

_AUTHZ = const("sensorbox.device.http.authz")
_STATIC = const("sensorbox.device.http.static")
_JSON = const("sensorbox.device.http.json_body")


async def handle(device, app, req):
    p = req.path
    m = req.method
    if p == "/api/status":
        if m != "GET":
            return not_allowed(req)
        # Open, as a health probe; what the device measures and its integrations only with a valid credential
        # (any scope). A wrong one gets the probe's answer, and counts as a failed login like anywhere else.
        return Response(device.health.status(await _credential_ok(device, req)), 200,
                        {"Content-Type": "application/json"})
    if p not in ("/api/config", "/api/config/schema"):
        return not_found(req)
    if (m != "GET" and p == "/api/config/schema") or m not in ("GET", "PUT"):
        return not_allowed(req)
    refused = await guard(req)
    if refused is not None:
        _drop(req)
        return refused
    if p == "/api/config/schema":
        # Built from config_docs.describe() by the bundle; served from flash so its help texts cost no RAM
        # (gzipped as the UI's files are: decompressed on the fly for a client that does not accept gzip)
        return lazy.call(_STATIC, "static_file", device.platform.www_dir, "config-schema.json", req)
    cfg = device.config
    if m == "GET":
        return Response(config_json(cfg, getattr(app, "port", None)), 200, {"Content-Type": "application/json"})
    m = lazy.load(_JSON)  # (server.read_json, with the members whose value is the one in force left out)
    lazy.unload(_JSON)
    try:
        update = m.read_json(req, _same(cfg))
    except ValueError:  # BadRequest: 400 or 415, answered by the server
        _drop(req)
        raise
    finally:
        m = None  # (json_body's code collectable before the update loads config_file and the schema: its peak)
    try:
        changed = cfg.update(update)
    except OSError as e:
        return error(507, "cannot save the config on flash ({}); nothing changed".format(e))
    except ValueError as e:  # ConfigError: names the key
        return error(400, getattr(e, "reason", str(e)), getattr(e, "field", None))
    finally:
        _drop(req)
    return {"changed": changed, "reboot_pending": cfg.reboot_pending}


def _drop(req):
    # the files CA certificates were streamed into (http/body.py) that no update took (config_file renames those)
    if isinstance(req.body, list):
        for b in req.body:
            if isinstance(b, tuple) and isinstance(b[1], tuple):
                try:
                    os.remove(b[1][0])
                except OSError:
                    pass


def _same(cfg):
    # a key whose value is the one in force, of the same type (1 is not true, nor 2 2.0: those are checked)
    def skip(k, v):
        c = cfg.get(k, skip)
        return c is not skip and type(c) is type(v) and c == v

    return skip


def config_json(cfg, port):
    """GET /api/config, a key at a time (no dict of ~70 keys, a 1.5 KB table in one block, and no schema): the
    values (secrets only as set or not), the keys pending a restart, ``in_effect``: the value still running for
    each of them (a secret's too only as set or not) and the port served (``port``) when it is not
    ``http.port``, and any error at boot."""
    yield '{"config":{'
    sep = ""
    for k, v in cfg.public():
        yield sep + json.dumps(k) + ":"
        sep = ","
        if isinstance(v, str) and v.find("/" + k + ".") > 0:  # a CA certificate the
            try:  # device keeps in a file of its own (config_file._ca_files): its text, as it was given
                f = open(v)
            except OSError:
                f = None
            if f is not None:
                yield '"'
                with f:
                    while True:
                        t = f.read(256)
                        if not t:
                            break
                        yield json.dumps(t)[1:-1]
                yield '"'
                continue
        yield json.dumps(v)
    yield '},"reboot_pending":' + json.dumps(cfg.reboot_pending) + ',"in_effect":{'
    sep = ""
    eff = getattr(cfg, "booted", None) or {}
    served = port is not None and port != cfg.get("http.port")
    for k in eff:
        if not (served and k == "http.port"):
            v = eff[k]
            yield sep + json.dumps(k) + ":" + json.dumps({"set": bool(v)} if cfg.secret(k) else v)
            sep = ","
    if served:
        yield sep + '"http.port":' + json.dumps(port)
    yield '},"boot_error":' + json.dumps(cfg.boot_error) + "}"


async def _credential_ok(device, req):
    h = req.headers
    a = h.get("Authorization")
    if a is None and "Cookie" not in h:
        return False
    if a and a.startswith("Basic "):
        return await device.auth.check_basic(a, req.client_addr) == "admin"
    return await lazy.call(_AUTHZ, "check", device.auth, req, False) is None
