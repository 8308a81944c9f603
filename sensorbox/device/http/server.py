"""Creating the Microdot app: request limits, JSON errors and the ``require`` authentication decorator.

Every error is JSON: ``{"error": "<message>", "field": "<offending key or parameter>"}``.
"""

import json

import asyncio
from microdot import Microdot, Request, Response

from sensorbox.device import lazy

_AUTHZ = "sensorbox.device.http.authz"
_WEB = "sensorbox.device.http.web_lazy"
_STATIC = "sensorbox.device.http.static"

# Limits: the device has tens of KB of heap; bodies past these are refused before they are read.
Request.max_content_length = 16 * 1024
Request.max_body_length = 16 * 1024
Request.max_readline = 2 * 1024
Response.send_file_buffer_size = 512  # files (UI assets, schema) go out in 512-byte reads: smaller blocks to find


def _pieces(obj):
    # JSON text of obj in small pieces: containers are walked, leaves encoded one by one.
    if isinstance(obj, dict):
        yield "{"
        first = True
        for k in obj:
            if not first:
                yield ","
            first = False
            yield json.dumps(k) + ":"
            yield from _pieces(obj[k])
        yield "}"
    elif isinstance(obj, (list, tuple)):
        yield "["
        for i, v in enumerate(obj):
            if i:
                yield ","
            yield from _pieces(v)
        yield "]"
    else:
        yield json.dumps(obj)


def _chunks(obj, size):
    buf = []
    n = 0
    for p in _pieces(obj):
        buf.append(p)
        n += len(p)
        if n >= size:
            yield "".join(buf)
            buf = []
            n = 0
    if buf:
        yield "".join(buf)


def json_response(obj, status=200, chunk=256):
    """A JSON response streamed in small chunks: no single large string, so it works in a fragmented heap
    where a 1 KB block may not exist even with 20 KB free."""
    return Response(_chunks(obj, chunk), status, {"Content-Type": "application/json"})


def error(status, message, field=None):
    body = {"error": message}
    if field is not None:
        body["field"] = field
    return json_response(body, status)


def read_json(req):
    """The request body as JSON; raises BadRequest with a reason when it is not."""
    body = req.body
    if not body:
        raise BadRequest("request body is empty; expected JSON")
    try:
        return json.loads(body.decode())
    except (ValueError, UnicodeError) as e:
        raise BadRequest("request body is not valid JSON ({})".format(e))


class BadRequest(Exception):
    def __init__(self, message, field=None):
        super().__init__(message)
        self.message = message
        self.field = field


class _TimedReader:
    """The client's stream with a deadline on every read: a slow or silent client is cut off (Microdot has no
    read timeout of its own) and its connection answered with 400 and closed, instead of holding a task and its
    buffers for ever."""

    def __init__(self, stream, ms):
        self._s = stream
        self._ms = ms

    async def readline(self):
        return await asyncio.wait_for_ms(self._s.readline(), self._ms)

    async def readexactly(self, n):
        return await asyncio.wait_for_ms(self._s.readexactly(n), self._ms)

    async def read(self, n=-1):
        return await asyncio.wait_for_ms(self._s.read(n), self._ms)

    def __getattr__(self, name):
        return getattr(self._s, name)


def make_app(auth, log):
    app = Microdot()

    @app.errorhandler(400)
    async def bad_request(req):
        return error(400, "bad request")

    @app.errorhandler(404)
    async def not_found(req):
        # The UI, its files and the rarely used API routes (http/web_lazy.py) are answered from here: no route
        # of theirs stays registered in RAM. ``app.device`` is set by the app once it is built.
        if req is not None and app.device is not None:
            name = _STATIC if req.path == "/" or req.path.startswith("/static/") else _WEB  # UI files: tiny module
            m = lazy.load(name)
            lazy.unload(name)
            return await m.handle(app.device, app, req)
        return error(404, "no such endpoint: {}".format(req.path if req else "?"))

    @app.errorhandler(405)
    async def not_allowed(req):
        return error(405, "method {} not allowed here".format(req.method if req else "?"))

    @app.errorhandler(413)
    async def too_large(req):
        return error(413, "request body too large (limit {} bytes)".format(Request.max_content_length))

    @app.errorhandler(500)
    async def internal(req):
        return error(500, "internal error; see the device log")

    @app.errorhandler(MemoryError)
    async def out_of_memory(req, exc):
        log.error("http", "out of memory on {} {}".format(req.method, req.path))
        return error(503, "device is short of memory; retry")

    @app.errorhandler(Exception)
    async def crashed(req, exc):
        log.exception("http", "{} {} failed".format(req.method, req.path), exc)
        return error(500, "internal error; see the device log")

    @app.errorhandler(BadRequest)
    async def on_bad_request(req, exc):
        return error(400, exc.message, exc.field)

    def require(handler):
        """Route decorator: any credential may read (GET, HEAD); changing state needs admin. Plain HTTP Basic
        from a non-browser client (no ``Origin``/``Sec-Fetch-Site`` header) is checked here; everything else
        (API tokens, the UI's session and CSRF token, cross-site requests) by ``authz``, loaded per request."""

        async def guarded(req, *args, **kwargs):
            h = req.headers
            a = h.get("Authorization")
            if "Origin" in h or "Sec-Fetch-Site" in h or "Cookie" in h or (a and not a.startswith("Basic ")):
                m = lazy.load(_AUTHZ)
                lazy.unload(_AUTHZ)
                a = m.check(auth, req, False)  # the refusal (a Response), or None
                m = None  # let authz's code go before the handler needs the RAM
                return a or await handler(req, *args, **kwargs)
            who = auth.check_basic(a)
            if who == "wait":
                return error(429, "too many failed logins; wait and retry")
            if who != "admin":
                res = error(401, "authentication required")
                res.headers["WWW-Authenticate"] = 'Basic realm="sensorbox"'
                return res
            return await handler(req, *args, **kwargs)

        return guarded

    handle = app.handle_request

    async def handle_request(reader, writer):
        # Microdot leaves the connection open when writing a response fails with anything but a socket error
        # (a MemoryError while streaming a file, say): the client would wait for ever. Close it.
        try:
            cfg = app.device.config if app.device is not None else None
            await handle(_TimedReader(reader, 1000 * cfg.get("http.read_timeout_s") if cfg else 10000), writer)
        except Exception as e:
            log.warning("http", "connection dropped: {!r}".format(e))
            try:
                await writer.aclose()
            except Exception:
                pass

    app.handle_request = handle_request
    app.require = require
    app.device = None
    return app
