"""Creating the Microdot app: request limits, JSON errors and the ``require`` authentication decorator.

Every error is JSON: ``{"error": "<message>", "field": "<offending key or parameter>"}``.
"""

import json

import asyncio
from micropython import const
from microdot import Microdot, Request, Response

from sensorbox.device import lazy

_AUTHZ = "sensorbox.device.http.authz"
_WEB = "sensorbox.device.http.web_lazy"
_STATIC = "sensorbox.device.http.static"
_REFUSE = "sensorbox.device.http.refuse"

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


def _json(res):
    # A handler's dict or list (or (dict, status)) goes out through json_response: Microdot would encode it as one
    # string, a block of several KB that a fragmented heap may not have (a 2.6 KB /api/resources failed so).
    if isinstance(res, (dict, list)):
        return json_response(res)
    if isinstance(res, tuple) and len(res) == 2 and isinstance(res[0], (dict, list)) and isinstance(res[1], int):
        return json_response(res[0], res[1])
    return res


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


class _Refuse(BaseException):
    """A request refused while it is read: ``args[0]`` says why (see ``http/refuse.py``, which answers it with
    431 or 408; 503 when the heap had no room to parse it, answered here). A BaseException, not an Exception:
    it passes through Microdot's request parser and handlers (which turn any Exception into a 400 or 500) to
    ``handle_request`` in ``make_app``."""


_HEADERS = const(32)  # header fields per request at most (431 beyond)
MAX_CONNECTIONS = const(10)  # open connections at most (a browser opens up to 6, a live stream holds one)
# Answers that must work when nothing else can be allocated: written as they are, then the connection is closed.
_BUSY = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n\r\n"
         b'{"error":"too many connections; retry"}')
_SHORT = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n\r\n"
          b'{"error":"device is short of memory; retry"}')
_HEAD = const(4096)  # bytes of request line + header fields at most (431 beyond)
_CHUNK = const(256)  # bytes read per socket read while the head is read


class _TimedReader:
    """The client's stream with a deadline on every read and bounded header lines.

    Microdot has no read timeout of its own, and MicroPython's ``Stream.readline`` has no length limit (a
    client could send one endless line into the heap; Microdot only measures it afterwards, and answers 400).
    So lines are read here in ``_CHUNK`` pieces and cut off past ``Request.max_readline``: an over-long line,
    more than ``_HEADERS`` header fields or a head over ``_HEAD`` bytes is refused with 431; a client that sends
    nothing for the deadline (``http.read_timeout_s``) with 408; either way the connection is then closed, so
    a slow or hostile client never holds a task and its buffers for ever. Bytes read past a line wait in
    ``_buf`` for the next read (the body)."""

    def __init__(self, stream, ms):
        self._s = stream
        self._ms = ms
        self._buf = b""
        self._lines = 0  # lines of the head read so far; -1 once the head is complete
        self._size = 0  # bytes of the head read so far

    async def _wait(self, aw):
        try:
            return await asyncio.wait_for_ms(aw, self._ms)
        except asyncio.TimeoutError:
            raise _Refuse(408)

    async def readline(self):
        b = self._buf
        limit = Request.max_readline
        while True:
            i = b.find(b"\n")
            if i >= 0:
                line = b[:i + 1]
                self._buf = b[i + 1:]
                break
            if len(b) > limit:
                line = b
                break
            c = await self._wait(self._s.read(_CHUNK))
            if not c:  # end of the stream: what there is (Microdot answers a cut-off request 400)
                line = b
                self._buf = b""
                break
            b = b + c if b else c
        if len(line) > limit:
            self._buf = b""
            raise _Refuse(431)
        if self._lines >= 0:
            self._size += len(line)
            if line == b"\r\n" or line == b"\n":
                self._lines = -1
            else:
                self._lines += 1
                if self._lines > _HEADERS + 1:
                    raise _Refuse(432)  # answered 431: too many header fields
                if self._size > _HEAD:
                    raise _Refuse(433)  # answered 431: head too long
        return line

    async def readexactly(self, n):
        b = self._buf
        if len(b) >= n:
            self._buf = b[n:]
            return b[:n]
        self._buf = b""
        rest = await self._wait(self._s.readexactly(n - len(b)))
        return b + rest if b else rest

    async def read(self, n=-1):
        b = self._buf
        if b:
            if n < 0 or n >= len(b):
                self._buf = b""
                return b
            self._buf = b[n:]
            return b[:n]
        return await self._wait(self._s.read(n))

    def __getattr__(self, name):
        return getattr(self._s, name)


async def _raw(writer, data, reader=None):
    writer.write(data)
    await writer.drain()
    if reader is not None:  # a request already sent would reset the connection on close: read a little of it
        try:
            await asyncio.wait_for_ms(reader.read(1024), 50)
        except Exception:
            pass


_create = Request.create


async def _create_or_refuse(*args, **kwargs):
    # Microdot answers any exception while it parses a request with 400; out of memory is the device's fault
    # and passing: 503, retry.
    try:
        return await _create(*args, **kwargs)
    except MemoryError:
        raise _Refuse(503)


Request.create = staticmethod(_create_or_refuse)


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
            return _json(await m.handle(app.device, app, req))
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
                a = await m.check(auth, req, False)  # the refusal (a Response), or None
                m = None  # let authz's code go before the handler needs the RAM
                return a or _json(await handler(req, *args, **kwargs))
            who = await auth.check_basic(a)
            if who == "wait":
                return error(429, "too many failed logins; wait and retry")
            if who != "admin":
                res = error(401, "authentication required")
                res.headers["WWW-Authenticate"] = 'Basic realm="sensorbox"'
                return res
            return _json(await handler(req, *args, **kwargs))

        return guarded

    handle = app.handle_request

    async def handle_request(reader, writer):
        # Microdot leaves the connection open when writing a response fails with anything but a socket error
        # (a MemoryError while streaming a file, say): the client would wait for ever. Close it.
        r = None
        app.connections += 1
        try:
            if app.connections > MAX_CONNECTIONS:  # idle sockets must not eat the heap: the newest is refused
                app.refused += 1
                await _raw(writer, _BUSY, reader)
                return
            cfg = app.device.config if app.device is not None else None
            r = _TimedReader(reader, 1000 * cfg.get("http.read_timeout_s") if cfg else 10000)
            await handle(r, writer)
        except _Refuse as e:  # 431, 408 (cold code answers) or 503 while the request was read; then closed
            try:
                if e.args[0] == 503:
                    await _raw(writer, _SHORT)
                else:
                    m = lazy.load(_REFUSE)
                    lazy.unload(_REFUSE)
                    await m.answer(e.args[0], r, writer, log)
            except Exception:
                pass
        except Exception as e:
            log.warning("http", "connection dropped: {!r}".format(e))
        finally:
            app.connections -= 1
            try:
                await writer.aclose()
            except Exception:
                pass

    app.handle_request = handle_request
    app.connections = 0  # open now (in /api/status)
    app.refused = 0  # refused for MAX_CONNECTIONS
    app.require = require
    app.device = None
    return app
