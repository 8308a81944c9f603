"""API routes: status (open as a health probe; in full with a credential), config (read: authenticated; write:
admin). (Fault injection, ``POST /api/debug/fault``, is answered by ``web_admin``, loaded per request.)"""

from microdot import send_file

from sensorbox.device import lazy

from sensorbox.device.http.server import error, json_response, read_json


_AUTHZ = "sensorbox.device.http.authz"
_EDIT = "sensorbox.device.config_edit"


def add_routes(http, device):
    require = http.require

    @http.get("/api/status")
    async def status(req):
        # Open, as a health probe; what the device measures and its integrations only with a valid credential
        # (any scope). A wrong one gets the probe's answer, and counts as a failed login like anywhere else.
        return json_response(device.health.status(await _credential_ok(req)))

    async def _credential_ok(req):
        h = req.headers
        a = h.get("Authorization")
        if a is None and "Cookie" not in h:
            return False
        if a and a.startswith("Basic "):
            return await device.auth.check_basic(a, req.client_addr) == "admin"
        m = lazy.load(_AUTHZ)
        lazy.unload(_AUTHZ)
        return await m.check(device.auth, req, False) is None

    @http.get("/api/config")
    @require
    async def get_config(req):
        m = lazy.load(_EDIT)  # (with the schema; see config_edit.view)
        try:
            return json_response(m.view(device.config, getattr(device.http, "port", None)))
        finally:
            m = None
            lazy.unload(_EDIT)

    @http.get("/api/config/schema")
    @require
    async def get_schema(req):
        # Built from config_docs.describe() by the bundle; served from flash so its help texts cost no RAM.
        return send_file(device.platform.www_dir + "/config-schema.json", content_type="application/json")

    @http.put("/api/config")
    @require
    async def put_config(req):
        update = read_json(req)
        try:
            changed = device.config.update(update)
        except OSError as e:
            return error(507, "cannot save the config on flash ({}); nothing changed".format(e))
        except ValueError as e:  # ConfigError: names the key
            return error(400, getattr(e, "reason", str(e)), getattr(e, "key", None))
        return json_response({"changed": changed, "reboot_pending": device.config.reboot_pending})
