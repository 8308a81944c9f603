"""The device's HTTP server: request reading with limits, dispatch to the route modules, JSON errors, responses.

HTTP/1.0, one request per connection (``Connection: close``), as the UI and the host tools use it. No route is
registered in RAM: ``_route`` maps a path to the module that answers it (``api``: status, config, debug;
``model_api``; ``data_api``: resources, labels; ``static``: the UI's files; ``web_lazy``: the rest), which is
loaded for the request and unloaded at once (``lazy``). Each has ``async def handle(device, app, req)``
returning a ``Response``, a dict or list (sent as JSON), or ``(body, status[, headers])``.

Every error is JSON: ``{"error": "<message>", "field": "<offending key or parameter>"}``. A handler raises
``BadRequest`` for 400; a MemoryError anywhere gets ``503 device is short of memory; retry``; any other
exception is logged with its traceback and answered 500. ``guard`` checks credentials (``require`` of old).
"""

import json

import asyncio
from micropython import const

from sensorbox.device import lazy

_AUTHZ = const("sensorbox.device.http.authz")
_WEB = const("sensorbox.device.http.web_lazy")
_REFUSE = const("sensorbox.device.http.refuse")
_CORS = const("sensorbox.device.http.cors")
_SETUP = const("sensorbox.device.net.setup_http")
# the set-up page and the connectivity probes of Android, Apple, Windows and Firefox (the captive portal)
_PROBES = const(" /setup /generate_204 /gen_204 /hotspot-detect.html /library/test/success.html /connecttest.txt "
                "/ncsi.txt /redirect /canonical.html /success.txt ")

_BUF = const(512)  # files (UI assets, schema) go out in 512-byte reads: small blocks to find
# the types of the UI's files, by extension (one string: no dict, no interned names)
_TYPES = const(" js=application/javascript css=text/css json=application/json svg=image/svg+xml png=image/png ")


class Request:
    """A parsed request: ``method``, ``path`` (not URL-decoded), ``args`` (the query, decoded), ``headers``
    (names in any case), ``cookies``, ``body`` (bytes), ``content_type``, ``sock`` (reader, writer), ``app``."""

    # Limits: the device has tens of KB of heap; bodies past these are refused before they are read.
    max_content_length = 16 * 1024
    max_readline = 2 * 1024

    def __init__(self, app, method, url, headers, sock):
        self.app = app
        self.method = method
        self.headers = headers
        self.sock = sock
        self.body = b""
        self.content_type = headers.get("Content-Type")
        self.content_length = int(headers.get("Content-Length") or 0)
        self.args = {}
        p, _, q = url.partition("?")
        self.path = p
        for kv in q.split("&"):
            if kv:
                k, _, v = kv.partition("=")
                k = _unquote(k)
                if k not in self.args:  # the first value of a repeated parameter
                    self.args[k] = _unquote(v)
        self.cookies = {}
        for c in (headers.get("Cookie") or "").split(";"):
            k, _, v = c.strip().partition("=")
            if k:
                self.cookies[k] = v


def _unquote(s):
    # %XX and "+" of a query string; a bad escape or invalid UTF-8 raises ValueError (answered 400)
    if "%" not in s and "+" not in s:
        return s
    b = s.replace("+", " ").encode()
    parts = b.split(b"%")
    out = bytearray(parts[0])
    for p in parts[1:]:
        if len(p) < 2:
            raise ValueError("bad %-escape")
        out.append(int(p[:2], 16))
        out += p[2:]
    return bytes(out).decode()


class _Headers(dict):
    """Header fields by lower-case name; looked up in any case."""

    def __getitem__(self, k):
        return super().__getitem__(k.lower())

    def __contains__(self, k):
        return super().get(k.lower()) is not None  # (values are str, never None)

    def get(self, k, default=None):
        return super().get(k.lower(), default)


class Response:
    """``body``: bytes or str, a file (sent in 512-byte reads, then closed), an iterator of str/bytes pieces (a
    generator: closed when done or when the client goes) or an async iterator (a stream, ``aclose``d)."""

    def __init__(self, body=b"", status_code=200, headers=None, reason=None):
        self.status_code = status_code
        self.headers = {} if headers is None else headers
        self.reason = reason
        self.body = body.encode() if isinstance(body, str) else body

    def set_cookie(self, name, value, path=None, http_only=False, max_age=None):
        c = "{}={}".format(name, value)
        if path:
            c += "; Path=" + path
        if max_age is not None:
            c += "; Max-Age={}".format(max_age)
        if http_only:
            c += "; HttpOnly"
        if "Set-Cookie" not in self.headers:
            self.headers["Set-Cookie"] = []
        self.headers["Set-Cookie"].append(c)

    @staticmethod
    def send_file(filename, status_code=200, content_type=None, stream=None, max_age=None, compressed=False):
        """A file (``stream``, or opened from ``filename``), its type from the name's extension unless given;
        ``compressed``: it is gzip (``Content-Encoding: gzip``)."""
        if content_type is None:
            i = _TYPES.find(" " + filename.rpartition(".")[2] + "=")
            content_type = _TYPES[i:].split("=", 1)[1].split(" ", 1)[0] if i >= 0 else "application/octet-stream"
        h = {"Content-Type": content_type}
        if max_age is not None:
            h["Cache-Control"] = "max-age={}".format(max_age)
        if compressed:
            h["Content-Encoding"] = "gzip"
        return Response(stream or open(filename, "rb"), status_code, h)

    async def write(self, w, head=False):
        h = self.headers
        b = self.body
        if isinstance(b, (bytes, bytearray)) and "Content-Length" not in h:
            h["Content-Length"] = len(b)
        if "Content-Type" not in h:
            h["Content-Type"] = "text/plain; charset=UTF-8"
        out = ["HTTP/1.0 {} {}\r\n".format(self.status_code, self.reason or ("OK" if self.status_code == 200
                                                                               else "N/A"))]
        for k in h:
            v = h[k]
            for x in (v if isinstance(v, list) else (v,)):
                out.append("{}: {}\r\n".format(k, x))
        out.append("\r\n")
        try:
            w.write("".join(out).encode())
            out = None
            await w.drain()
            if head or isinstance(b, (bytes, bytearray)):
                if not head:
                    w.write(b)
                    await w.drain()
            elif hasattr(b, "__anext__"):
                async for x in b:
                    w.write(x)
                    await w.drain()
            elif hasattr(b, "readinto"):
                buf = bytearray(_BUF)
                mv = memoryview(buf)
                while True:
                    n = b.readinto(buf)
                    if not n:
                        break
                    w.write(mv[:n])
                    await w.drain()
            else:
                for x in b:
                    w.write(x.encode() if isinstance(x, str) else x)
                    await w.drain()
        finally:
            if hasattr(b, "aclose"):
                await b.aclose()
            elif hasattr(b, "close"):
                b.close()



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
    elif isinstance(obj, (list, tuple)) or hasattr(obj, "__next__"):  # (a generator: a list made as it is sent)
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


def _response(res):
    # what a handler returned, as a Response: a dict or list (or (dict, status)) goes out through json_response,
    # never as one string (a 2.6 KB /api/resources once failed so on a fragmented heap)
    if isinstance(res, Response):
        return res
    if isinstance(res, (dict, list)):
        return json_response(res)
    body, status = res[0], res[1]
    if isinstance(body, (dict, list)):
        return json_response(body, status)
    return Response(body, status, res[2] if len(res) > 2 else None)


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


def not_found(req):
    return error(404, "no such endpoint: {}".format(req.path))


def not_allowed(req):
    return error(405, "method {} not allowed here".format(req.method))


async def guard(req, admin=False):
    """None when ``req`` may go on, else the refusal (a Response). Any credential may read (GET, HEAD);
    changing state, and with ``admin`` reading too, needs admin. Plain HTTP Basic from a non-browser client (no
    ``Origin``/``Sec-Fetch-Site``/``Cookie`` header) is checked here; everything else (API tokens, the UI's
    session and CSRF token, cross-site requests) by ``authz``, loaded for the request."""
    h = req.headers
    a = h.get("Authorization")
    auth = req.app.auth
    if "Origin" in h or "Sec-Fetch-Site" in h or "Cookie" in h or (a and not a.startswith("Basic ")):
        m = lazy.load(_AUTHZ)
        lazy.unload(_AUTHZ)
        return await m.check(auth, req, admin)
    who = await auth.check_basic(a)
    if who == "wait":
        return error(429, "too many failed logins; wait and retry")
    if who != "admin":
        res = error(401, "authentication required")
        res.headers["WWW-Authenticate"] = 'Basic realm="sensorbox"'
        return res
    return None


def _route(p):
    # the module that answers path p (each answers 404/405 for what it does not know)
    if p == "/" or p.startswith("/static/"):
        return "sensorbox.device.http.static"
    s = p[5:].partition("/")[0] if p.startswith("/api/") else None
    if s == "setup" or (s is None and (" " + p + " ") in _PROBES):
        return _SETUP
    if s == "ota":
        return "sensorbox.device.ota"
    if s in ("status", "config", "debug"):
        return "sensorbox.device.http.api"
    if s == "model":
        return "sensorbox.device.http.model_api"
    if s in ("resources", "labels"):
        return "sensorbox.device.http.data_api"
    return _WEB


async def _dispatch(app, req):
    try:
        if req.content_length > Request.max_content_length and not req.path.startswith("/api/ota"):  # (streamed)
            return error(413, "request body too large (limit {} bytes)".format(Request.max_content_length))
        if req.method == "OPTIONS":  # a preflight: no credentials (CORS headers below)
            return Response(b"", 200, {"Allow": "GET, HEAD, POST, PUT, DELETE, OPTIONS"})
        if req.method not in ("GET", "POST", "PUT", "DELETE"):
            return error(405, "method {} not allowed".format(req.method))
        name = _route(req.path)
        for retry in (False, True):
            try:
                m = lazy.load(name)
                lazy.unload(name)
                return _response(await m.handle(app.device, app, req))
            except MemoryError:
                # GET and PUT may run again (idempotent): once more with lazy's reserve given up, which leaves
                # a hole of 2 KB (a config update needs blocks of ~1 KB that a busy heap may lack for a moment)
                m = None
                if retry or req.method not in ("GET", "PUT") or not lazy.release():
                    raise
    except BadRequest as e:
        return error(400, e.message, e.field)
    except MemoryError:
        app.log.error("http", "out of memory on {} {}".format(req.method, req.path))
        return error(503, "device is short of memory; retry")
    except Exception as e:
        app.log.exception("http", "{} {} failed".format(req.method, req.path), e)
        return error(500, "internal error; see the device log")


class _Refuse(BaseException):
    """A request refused while it is read: ``args[0]`` says why (see ``http/refuse.py``, which answers it with
    431 or 408; 503 when the heap had no room to parse it, answered here). A BaseException: it passes through
    the parser's and the handlers' ``except Exception`` to ``App._connection``."""


_HEADERS = const(32)  # header fields per request at most (431 beyond)
MAX_CONNECTIONS = const(10)  # open connections at most (a browser opens up to 6, a live stream holds one)
# Answers that must work when nothing else can be allocated: written as they are, then the connection is closed.
_BUSY = const(b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n\r\n"
         b'{"error":"too many connections; retry"}')
_SHORT = const(b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n\r\n"
          b'{"error":"device is short of memory; retry"}')
_BAD = const(b"HTTP/1.0 400 N/A\r\nContent-Type: application/json\r\n\r\n"
        b'{"error":"bad request"}')
_HEAD = const(4096)  # bytes of request line + header fields at most (431 beyond)
_CHUNK = const(256)  # bytes read per socket read while the head is read


class _TimedReader:
    """The client's stream with a deadline on every read and bounded header lines.

    MicroPython's ``Stream.readline`` has no length limit (a client could send one endless line into the
    heap). So lines are read here in ``_CHUNK`` pieces and cut off past ``Request.max_readline``: an over-long
    line, more than ``_HEADERS`` header fields or a head over ``_HEAD`` bytes is refused with 431; a client that
    sends nothing for the deadline (``http.read_timeout_s``) with 408; either way the connection is then closed,
    so a slow or hostile client never holds a task and its buffers for ever. Bytes read past a line wait in
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
            if not c:  # end of the stream: what there is (a cut-off request is answered 400)
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


async def _read(app, r, w):
    # the request, or None when the client sent nothing; ValueError/UnicodeError when it is malformed
    line = await r.readline()
    if not line.strip():
        return None
    method, url, _ = line.decode().split()
    h = _Headers()
    while True:
        line = await r.readline()
        line = line.strip()
        if not line:
            break
        k, v = line.decode().split(":", 1)
        h[k.lower()] = v.strip()
    req = Request(app, method, url, h, (r, w))
    n = req.content_length
    if 0 < n <= Request.max_content_length:
        req.body = await r.readexactly(n)
    return req


class App:
    """The server: ``start_server``, ``shutdown``; ``device`` (set once the app is built), ``connections``
    open now and ``refused`` for ``MAX_CONNECTIONS`` (in /api/status)."""

    def __init__(self, auth, log):
        self.auth = auth
        self.log = log
        self.device = None
        self.connections = 0
        self.refused = 0
        self.server = None

    async def start_server(self, host="0.0.0.0", port=80):
        self.server = await asyncio.start_server(self._connection, host, port)
        await self.server.wait_closed()

    def shutdown(self):
        if self.server is not None:
            self.server.close()

    async def _connection(self, reader, writer):
        # One request, answered, then the connection is closed, whatever happened (a client must never wait
        # for ever on a connection the device has given up).
        r = None
        self.connections += 1
        try:
            if self.connections > MAX_CONNECTIONS:  # idle sockets must not eat the heap: the newest is refused
                self.refused += 1
                await _raw(writer, _BUSY, reader)
                return
            cfg = self.device.config if self.device is not None else None
            r = _TimedReader(reader, 1000 * cfg.get("http.read_timeout_s") if cfg else 10000)
            try:
                req = await _read(self, r, writer)
            except MemoryError:
                raise _Refuse(503)
            except (ValueError, UnicodeError, IndexError):
                await _raw(writer, _BAD)
                return
            if req is None:
                return
            head = req.method == "HEAD"
            if head:
                req.method = "GET"
            res = await _dispatch(self, req)
            o = cfg.get("http.cors_origin") if cfg else ""
            if o and "Origin" in req.headers:  # CORS headers (http.cors_origin), from a module loaded for it
                m = lazy.load(_CORS)
                lazy.unload(_CORS)
                m.add(req, res, o)
                m = None
            r = req = None  # a long response (a live stream, an export) does not keep the request's objects
            await res.write(writer, head)
        except _Refuse as e:  # 431, 408 (cold code answers) or 503 while the request was read; then closed
            try:
                if e.args[0] == 503:
                    await _raw(writer, _SHORT)
                else:
                    m = lazy.load(_REFUSE)
                    lazy.unload(_REFUSE)
                    await m.answer(e.args[0], r, writer, self.log)
            except Exception:
                pass
        except OSError:  # the client went away
            pass
        except Exception as e:
            self.log.warning("http", "connection dropped: {!r}".format(e))
        finally:
            self.connections -= 1
            try:
                await writer.aclose()
            except Exception:
                pass


def make_app(auth, log):
    return App(auth, log)
