"""The device's HTTP server: request reading with limits, dispatch to the route modules, JSON errors, responses.

HTTP/1.0, one request per connection (``Connection: close``), as the UI and the host tools use it. No route is
registered in RAM: ``_route`` maps a path to the module that answers it (``api``: status, config, debug;
``model_api``; ``data_api``: resources, clips, events; ``labels``; ``session``: login, logout; ``static``:
the UI's files; ``device_api``: the rest), which is loaded for the request and unloaded at once (``lazy``). Each has ``async def handle(device, app, req)``
returning a ``Response``, a dict or list (sent as JSON), or ``(body, status[, headers])``.

Every error is JSON: ``{"error": "<message>", "field": "<offending key or parameter>"}``. A handler raises
``BadRequest`` for 400; a MemoryError anywhere gets ``503 device is short of memory; retry``; any other
exception is logged with its traceback and answered 500. ``guard`` checks credentials (``require`` of old): the
route's, except a ``PUT /api/config``'s (whose CA values would stream to flash) and any body's over 1 KB, checked
by ``_read`` before the body is read; a refusal there is the answer, the route never runs (docs/security.md).

Connections (``serve``): the server's own accept loop gives each connection one of ``MAX_CONNECTIONS`` slots (at
most ``PER_CLIENT`` per client address) and a task; a full device or client makes room by evicting the longest
idle connection still reading its head, else answers 503 at once. Every request must arrive whole within
``http.read_timeout_s`` (408), however slowly its bytes come; malformed or oversized requests get a 4xx
(``_Conn``, ``http/refuse.py``), never a 5xx. The error paths allocate nothing they can avoid: a full heap gets a
prepared 503. While it works the server beats (``app.beat``) for the supervisor's watch.
"""

import errno
import gc
import json
import select
import socket
import time

import asyncio
from micropython import const

from sensorbox.device import lazy

_AUTHZ = const("sensorbox.device.http.authz")
_WEB = const("sensorbox.device.http.device_api")
_REFUSE = const("sensorbox.device.http.refuse")
_BODY = const("sensorbox.device.http.body")
_JSON = const("sensorbox.device.http.json_body")

_BUF = const(512)  # files (UI assets, schema) go out in 512-byte reads: small blocks to find
# The reason phrases of the status codes the device sends (RFC 9110), in one string (no digits in a phrase)
_REASONS = const(",200 OK,201 Created,204 No Content,302 Found,400 Bad Request,401 Unauthorized,403 Forbidden,404 Not Found"
                 ",405 Method Not Allowed,406 Not Acceptable,408 Request Timeout,409 Conflict,413 Content Too Large"
                 ",414 URI Too Long,415 Unsupported Media Type,429 Too Many Requests"
                 ",431 Request Header Fields Too Large,500 Internal Server Error,503 Service Unavailable"
                 ",507 Insufficient Storage,")
_ADOPTED = const(3)  # _Conn.state of a connection a live stream took over (Response.write)
_SENT = const(4)  # ... of one whose response head is out (Response.write): a failure after it only cuts it off


class Request:
    """A parsed request: ``method``, ``path`` (not URL-decoded), ``args`` (the query, decoded), ``headers``
    (names in any case), ``cookies``, ``body`` (bytes), ``content_type``, ``sock`` (reader, writer: both the
    connection's ``_Conn``), ``client_addr`` (the client's address without its port: ``peer_key``), ``app``,
    ``refused`` (the answer when its credential was refused before its body was read: ``_read``)."""

    # Limits: the device has tens of KB of heap; bodies past these are refused before they are read. 8 KB: four
    # times the largest body a client sends (a model's meta.json, a 2 KB model.csv chunk); at 16 KB a fragmented
    # heap often had no block for the body (503 where a 4xx was due).
    max_content_length = 8 * 1024
    max_readline = 2 * 1024
    refused = None

    def __init__(self, app, method, url, headers, conn):
        self.app = app
        self.method = method
        self.headers = headers
        self.sock = (conn, conn)
        self.client_addr = conn.peer
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
                if k in self.args:  # (which value would count?)
                    raise _Refuse(4005)
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
    generator: closed when done or when the client goes), an async iterator (a stream, ``aclose``d) or an object
    with ``accept(conn)`` that takes the connection over once the head is out (its task then ends; it calls
    ``release(conn)`` when done; else ``close()``d). A file's response: ``static.send_file``; a cookie:
    ``admin``."""

    def __init__(self, body=b"", status_code=200, headers=None, reason=None):
        self.status_code = status_code
        self.headers = {} if headers is None else headers
        self.reason = reason
        self.body = body.encode() if isinstance(body, str) else body

    async def write(self, w, head=False):
        h = self.headers
        b = self.body
        c = self.status_code
        if c != 204:  # (204: no body, so neither of these)
            if isinstance(b, (bytes, bytearray)) and "Content-Length" not in h:
                h["Content-Length"] = len(b)
            if "Content-Type" not in h:
                h["Content-Type"] = "text/plain; charset=UTF-8"
        r = self.reason
        if r is None:  # the standard phrase
            i = _REASONS.find(str(c))
            r = _REASONS[i + 4:_REASONS.find(",", i)] if i >= 0 else ""
        out = ["HTTP/1.0 {} {}\r\n".format(c, r)]
        for k in h:
            v = h[k]
            for x in (v if isinstance(v, list) else (v,)):
                out.append("{}: {}\r\n".format(k, x))
        out.append("\r\n")
        try:
            if not head and hasattr(b, "readinto"):  # a file: its buffer and first piece before the head, so that
                buf = bytearray(_BUF)  # no block for them is a 503, not a 200 with no body (fresh14's soak)
                mv = memoryview(buf)
                n = b.readinto(buf)
            w.write("".join(out).encode())
            out = None
            await w.drain()
            w.state = _SENT
            if head or isinstance(b, (bytes, bytearray)):
                if not head:
                    w.write(b)
                    await w.drain()
            elif hasattr(b, "accept"):  # a live stream (http/live.py): the connection is handed over to it
                w.state = _ADOPTED
                b.accept(w)
                b = None
            elif hasattr(b, "__anext__"):
                async for x in b:
                    w.write(x)
                    await w.drain()
            elif hasattr(b, "readinto"):
                while n:
                    w.write(mv[:n])
                    await w.drain()
                    n = b.readinto(buf)
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
    """The request body as JSON; raises BadRequest with a reason when it is not, or when it holds what would break
    a handler or a response (see ``http/json_body.py``, loaded for the call)."""
    return lazy.call(_JSON, "read_json", req)


class BadRequest(__import__("sensorbox.shared").shared.InputError):  # (the base, with no global for it here)
    """A request refused with ``status`` (400; 415 for a body of the wrong media type), the reason and the field."""

    def __init__(self, reason, field=None, status=400):
        super().__init__(reason, field)
        self.status = status


def not_found(req):
    return error(404, "no such endpoint: {}".format(req.path))


def not_allowed(req):
    """405 with ``Allow`` (the path's methods, from the route list on flash: ``refuse.handle``), or 404 when the
    path is none of the API's."""
    return lazy.call(_REFUSE, "handle", req)


async def guard(req, admin=False):
    """None when ``req`` may go on, else the refusal (a Response). Any credential may read (GET, HEAD);
    changing state, and with ``admin`` reading too, needs admin. Plain HTTP Basic from a non-browser client (no
    ``Origin``/``Sec-Fetch-Site``/``Cookie`` header) is checked here; everything else (API tokens, the UI's
    session and CSRF token, cross-site requests) by ``authz``, loaded for the request."""
    h = req.headers
    a = h.get("Authorization")
    auth = req.app.auth
    if "Origin" in h or "Sec-Fetch-Site" in h or "Cookie" in h or (a and not a.startswith("Basic ")):
        return await lazy.call(_AUTHZ, "check", auth, req, admin)
    who = await auth.check_basic(a, req.client_addr)
    if who == "wait":
        return error(429, "too many failed logins; wait and retry")
    if who != "admin":
        res = error(401, "authentication required")
        res.headers["WWW-Authenticate"] = 'Basic realm="sensorbox"'
        return res
    return None


def _route(p):
    # the module that answers path p (each answers 404/405 for what it does not know; device_api: what is left,
    # the Wi-Fi set-up and updates too)
    if p == "/" or p.startswith("/static/"):
        return "sensorbox.device.http.static"
    s = p[5:].partition("/")[0] if p.startswith("/api/") else None
    if s in ("status", "config"):
        return "sensorbox.device.http.api"
    if s == "model":
        return "sensorbox.device.http.model_api"
    if s in ("resources", "clips", "events"):
        return "sensorbox.device.http.data_api"
    if s == "labels":
        return "sensorbox.device.http.labels"
    if s in ("login", "logout"):
        return "sensorbox.device.http.session"
    return _WEB


_TRIES = const(4)  # runs of a GET or PUT that found the heap short, or of a request whose module did (_dispatch)
_PAUSE_MS = const(60)  # ... and the pause before the third, twice it before the fourth


async def _dispatch(app, req):
    try:
        if req.content_length > Request.max_content_length and not req.path.startswith("/api/ota") and not \
                req.sock[0].split:  # (streamed)
            return error(413, "request body too large (limit {} bytes)".format(Request.max_content_length))
        if req.method == "OPTIONS":  # the path's methods (also a CORS preflight: no credentials, headers below)
            res = not_allowed(req)
            if res.status_code == 405:
                res = Response(b"", 204, {"Allow": res.headers["Allow"]})
            return res
        if req.method not in ("GET", "POST", "PUT", "DELETE"):
            return not_allowed(req)
        name = _route(req.path)
        for retry in range(_TRIES):
            c = None
            try:
                c = lazy.call(name, "handle", app.device, app, req)
                return _response(await c)
            except MemoryError:
                # GET and PUT may run again (idempotent), and any request whose module found no room to load
                # (nothing of it ran: ``c`` not made; label POSTs and DELETEs failed so at 84wK from ROMFS): with
                # lazy's reserve given up, which leaves a hole of 2 KB (a config update needs blocks of ~1 KB that
                # a busy heap may lack for a moment), then after a pause: the heap's peak is a moment's (a store
                # job, an integration's send, another answer), and what they let go makes the blocks this one needs
                if retry == _TRIES - 1 or (c is not None and req.method not in ("GET", "PUT")):
                    raise
                if not lazy.release():
                    await asyncio.sleep_ms(_PAUSE_MS * (retry + 1))
                    gc.collect()
    except BadRequest as e:
        return error(e.status, e.reason, e.field)
    except MemoryError:
        try:  # (the path cut short: a long one took the log ring, or the memory the message needed)
            app.log.error("http", "out of memory on {} {}".format(req.method, req.path[:64]))
            return error(503, "device is short of memory; retry")
        except MemoryError:  # not even for the answer: 503 as it is
            raise _OOM
    except Exception as e:
        try:
            app.log.exception("http", "{} {} failed".format(req.method, req.path[:64]), e)
        except MemoryError:
            raise _OOM
        return error(500, "internal error; see the device log")


class _Refuse(BaseException):
    """A request refused while it is read: ``args[0]`` says why (see ``http/refuse.py``, which answers it with
    431, 414, 400 or 408; 503 when the heap had no room to parse it, answered here). A BaseException: it passes
    through the parser's and the handlers' ``except Exception`` to ``_serve_conn``."""


_OOM = _Refuse(503)  # raised when even an error answer finds no memory (made now: raising it allocates nothing)
_HEADERS = const(32)  # header fields per request at most (431 beyond)
MAX_CONNECTIONS = const(10)  # open connections at most (a browser opens up to 6, a live stream holds one)
PER_CLIENT = const(6)  # of them, from one client address at most (a browser's 6)
_BACKLOG = const(8)  # connections the network stack holds until they are accepted
_URL = const(1024)  # bytes of request target (path and query) at most (414 beyond)
_PARAMS = const(32)  # query parameters at most (414 beyond)
_TICK_MS = const(250)  # the server's own turn: deadlines, self-check, heartbeat
_IDLE_MS = const(60000)  # an answer that neither reads nor writes for this long is cut off
# Answers that must work when nothing else can be allocated: written as they are, then the connection is closed.
_BUSY = const(b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n\r\n"
              b'{"error":"too many connections; retry"}')
_SHORT = const(b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n\r\n"
               b'{"error":"device is short of memory; retry"}')
_BAD = const(b"HTTP/1.0 400 Bad Request\r\nContent-Type: application/json\r\n\r\n"
             b'{"error":"bad request"}')
_HEAD = const(4096)  # bytes of request line + header fields at most (431 beyond)
_CONFIG_BODY = const(131072)  # bytes a PUT /api/config body may have (its CA certificates stream to files)
_CHUNK = const(256)  # bytes read per socket read while the head is read
_OPEN_BODY = const(1024)  # bytes of body at most read before the credential is checked (none for a config PUT)

_conns = [None] * MAX_CONNECTIONS  # the _Conn in each connection slot
_drain = bytearray(64)  # what a refused client sent already is read into it before its socket is closed


def peer_key(addr):
    """A client's address without its port: what connection limits and login throttling count by. ``addr`` is
    what ``accept`` gives: ("1.2.3.4", port) on an ESP32, a raw sockaddr (a bytearray) on the unix port."""
    if isinstance(addr, tuple):
        return addr[0]
    if isinstance(addr, (bytes, bytearray)) and len(addr) >= 8:
        return bytes(addr[4:8] if len(addr) < 24 else addr[8:24])  # IPv4 / IPv6 sockaddr
    return addr


def surrogate(b):
    """True when bytes ``b`` hold an encoded UTF-16 surrogate (ED A0..BF): MicroPython decodes them into strings
    that no longer encode as valid UTF-8, so every response echoing one would be broken."""
    i = b.find(b"\xed")
    while i >= 0:
        if i + 1 < len(b) and b[i + 1] >= 0xA0:
            return True
        i = b.find(b"\xed", i + 1)
    return False


def _target(line):
    # The request line's target: at most _URL bytes (414), at most _PARAMS query parameters (4141: 414), and no
    # percent-encoded surrogate (4003: 400).
    a = line.find(b" ")
    b = line.find(b" ", a + 1)
    if b < 0:
        b = len(line)
    if b - a - 1 > _URL:
        raise _Refuse(414)
    if line.count(b"&", a, b) >= _PARAMS:
        raise _Refuse(4141)
    i = line.find(b"%", a, b)
    if i >= 0:
        t = line[i:b].lower()
        i = t.find(b"%ed%")
        while i >= 0:
            if t[i + 4:i + 5] in (b"a", b"b"):
                raise _Refuse(4003)
            i = t.find(b"%ed%", i + 1)


class _Conn:
    """One client connection: the request's reader and the response's writer both, and the server's record of it.

    MicroPython's ``Stream.readline`` has no length limit (a client could send one endless line into the heap).
    So lines are read here in ``_CHUNK`` pieces and cut off past ``Request.max_readline``: an over-long line,
    more than ``_HEADERS`` header fields or a head over ``_HEAD`` bytes is refused with 431, a target over
    ``_URL`` bytes with 414, a second or non-numeric ``Content-Length`` or an encoded surrogate with 400. The
    whole request (head and body) must arrive within ``http.read_timeout_s``, however slowly its bytes come, or it
    is answered 408 (the server's turn checks, see ``_sweep``); either way the connection is then closed. Bytes
    read past a line wait in ``_buf`` for the next read (the body)."""

    why = 0  # why the server cut it off: 408 (deadline), 503 (evicted for another client), 1 (idle, closed)
    state = 1  # 1 while its request is read (no credential checked yet), 2 while it is answered, 4 (_SENT) once
    # its response head is out, 3 (_ADOPTED) once a live stream has taken it over
    task = None
    split = ""  # its body (PUT /api/config) is read as a JSON object's members, CA values into files beside
    # this file (config.json: ``readexactly``)

    def __init__(self, sock, peer, now):
        self.raw = sock
        self._s = asyncio.StreamReader(sock)
        self.peer = peer
        self.t0 = self.seen = now  # accepted / last byte read or written (ticks_ms)
        self._buf = b""
        self._lines = 0  # lines of the head read so far; -1 once the head is complete
        self._size = 0  # bytes of the head read so far
        self._cl = 0  # Content-Length fields seen
        self._drop = False  # its body is read and dropped (all but POST, PUT, PATCH: no route reads one)

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
            c = await self._s.read(_CHUNK)
            self.seen = time.ticks_ms()
            if not c:  # end of the stream: what there is (a cut-off request is answered 400)
                line = b
                self._buf = b""
                break
            b = b + c if b else c
        if len(line) > limit:
            self._buf = b""
            raise _Refuse(414 if self._lines == 0 else 431)
        if self._lines >= 0:
            self._size += len(line)
            if line == b"\r\n" or line == b"\n":
                self._lines = -1
            else:
                if self._lines == 0:
                    _target(line)
                    self._drop = line[:4] not in (b"POST", b"PUT ", b"PATC")
                elif line[:15].lower() == b"content-length:":
                    self._cl += 1
                    if self._cl > 1:
                        raise _Refuse(4001)  # RFC 9112 6.3: two lengths, no way to know which is meant
                    if not line[15:].strip().isdigit():
                        raise _Refuse(4002)
                if surrogate(line):
                    raise _Refuse(4003)
                self._lines += 1
                if self._lines > _HEADERS + 1:
                    raise _Refuse(432)  # answered 431: too many header fields
                if self._size > _HEAD:
                    raise _Refuse(433)  # answered 431: head too long
        return line

    async def readexactly(self, n):
        # (the body) Read into one buffer of its size: growing concatenation needed twice the size in one block,
        # which a fragmented heap lacked for 16 KB bodies (503 where the body deserved a 400).
        b = self._buf
        if self._drop:  # a body no route of its method reads: dropped as it comes, never held
            while n > len(b):
                n -= len(b)
                b = await self._s.read(min(n, _CHUNK))
                self.seen = time.ticks_ms()
                if not b:
                    raise EOFError
            self._buf = b[n:]
            return b""
        if len(b) >= n:
            self._buf = b[n:]
            return b[:n]
        try:
            if self.split and n > 1024:  # PUT /api/config: not held whole past 1 KB (below)
                raise MemoryError
            out = bytearray(n)
        except MemoryError:  # no block for it now: read through, and an over-deep body still gets its 400. The
            # whole-config PUT's object is always cut into its members (body.feed: json_body.read_json parses them one by
            # one), its CA certificates streamed into files as they arrive: no block larger than ~1 KB
            m = lazy.load(_BODY)
            lazy.unload(_BODY)
            st = m.start(self.split)
            m.feed(b, st)
            while n > len(b) and st[1] <= m.DEPTH:
                n -= len(b)
                b = await self._s.read(min(n, _CHUNK))
                if not b:
                    raise EOFError
                m.feed(b, st)
            if st[1] > m.DEPTH:
                raise _Refuse(4004)
            self._buf = b""
            if not self.split:
                raise _Refuse(503)
            return m.end(st)
        got = len(b)
        out[:got] = b
        self._buf = b""
        mv = memoryview(out)
        while got < n:
            k = await self._s.readinto(mv[got:])
            if k is not None:
                if not k:
                    raise EOFError
                got += k
                self.seen = time.ticks_ms()
        return out

    def write(self, data):
        self._s.write(data)

    async def drain(self):
        await self._s.drain()
        self.seen = time.ticks_ms()

    def close(self):
        """Cut the connection off (a live stream whose client stopped reading): its task ends, the socket closes."""
        self.cut(1)

    def cut(self, why):
        if not self.why:
            self.why = why
            t = self.task
            if t is not None and t is not asyncio.current_task():
                t.cancel()


def _readable(s):
    # Wait until the listening socket has a connection (as asyncio's own server waits).
    yield asyncio.core._io_queue.queue_read(s)


def _refuse(sock, msg):
    # Answered at once, with no task and nothing allocated, and closed.
    try:
        sock.setblocking(False)
        try:
            sock.readinto(_drain)  # a request already sent would reset the connection on close
        except OSError:
            pass
        sock.write(msg)
    except Exception:
        pass
    sock.close()


def _victim(peer, now):
    # The slot of the connection to give up for a new one: one still reading its request head (so no credential
    # seen yet), of ``peer`` when given, idle the longest. -1 when there is none.
    best = -1
    idle = -1
    for i in range(MAX_CONNECTIONS):
        k = _conns[i]
        if k is not None and k.state == 1 and k._lines >= 0 and not k.why and (peer is None or k.peer == peer):
            d = time.ticks_diff(now, k.seen)
            if d > idle:
                best = i
                idle = d
    return best


def _admit(app, sock, addr):
    """Give a new connection a slot and a task. A client holding ``PER_CLIENT`` connections, or a full device,
    makes room by closing the longest-idle connection still reading its head (of that client, or anyone's): an
    idle or trickling stranger cannot keep a client that sends its request out. With no such connection the new
    one is answered 503 at once."""
    peer = peer_key(addr)
    now = time.ticks_ms()
    free = -1
    mine = 0
    for i in range(MAX_CONNECTIONS):
        k = _conns[i]
        if k is None:
            if free < 0:
                free = i
        elif k.peer == peer:
            mine += 1
    if mine >= PER_CLIENT or free < 0:
        free = _victim(peer if mine >= PER_CLIENT else None, now)
        if free < 0:
            app.refused += 1
            _refuse(sock, _BUSY)
            return
        k = _conns[free]
        _conns[free] = None
        k.cut(503)
        app.evicted += 1
        if k._size:
            _refuse(k.raw, _BUSY)
        else:
            k.raw.close()
    sock.setblocking(False)
    k = _Conn(sock, peer, now)
    k.task = asyncio.create_task(_serve_conn(app, k))
    _conns[free] = k


def release(c):
    """Free connection ``c``'s slot and close it (what ends every connection; a live stream's, by the stream)."""
    for i in range(MAX_CONNECTIONS):
        if _conns[i] is c:
            _conns[i] = None
    try:
        c.raw.close()
    except Exception:
        pass


async def _accept(app, s):
    # Never ends by itself: every failure is answered or waited out here (asyncio's own accept loop ended on a
    # MemoryError, leaving the port open and nobody accepting).
    while True:
        await _readable(s)
        app.accepts += 1
        if app.fault == "dead":  # fault injection (POST /api/debug/fault): as if this loop had died...
            return
        if app.fault == "stuck":  # ...or hung
            await asyncio.sleep_ms(3600000)
        try:
            sock, addr = s.accept()
        except OSError as e:  # EAGAIN: gone already; EMFILE and others: wait a moment
            if e.errno != errno.EAGAIN:
                await asyncio.sleep_ms(50)
            continue
        except MemoryError:
            await asyncio.sleep_ms(20)
            continue
        try:
            _admit(app, sock, addr)
        except MemoryError:  # no room for its task: answered at once and closed
            app.refused += 1
            _refuse(sock, _SHORT)


def _sweep(app, now, limit):
    # The server's turn: requests past their deadline get 408; answers idle for _IDLE_MS and connections that
    # do not finish after being cut off are closed.
    for i in range(MAX_CONNECTIONS):
        k = _conns[i]
        if k is None:
            continue
        if k.why:
            if time.ticks_diff(now, k.seen) > _IDLE_MS:
                _conns[i] = None
                if k.task is not None:
                    k.task.cancel()
                k.raw.close()
        elif k.state == 1:
            if time.ticks_diff(now, k.t0) > limit:
                app.timeouts += 1
                k.seen = now
                k.cut(408)
        elif time.ticks_diff(now, k.seen) > _IDLE_MS:
            k.seen = now
            k.cut(1)


async def serve(app, host, port):
    """Listen on ``host``:``port`` and serve until cancelled; raises when the server stops working (its accept
    loop ended, or connections wait and none is taken), so that the supervisor starts it again. While it works
    it sets ``app.beat`` (ticks_ms) every ``_TICK_MS``: the supervisor's sign of life."""
    ai = socket.getaddrinfo(host, port)[0]
    s = socket.socket(ai[0])
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(ai[-1])
        s.listen(_BACKLOG)
        s.setblocking(False)
        p = select.poll()
        p.register(s, select.POLLIN)
        app.fault = None
        app.listening = s
        t = asyncio.create_task(_accept(app, s))
        try:
            n = app.accepts
            waiting = 0  # turns in a row that found a connection waiting and none taken
            while True:
                await asyncio.sleep_ms(_TICK_MS)
                now = time.ticks_ms()
                cfg = app.device.config if app.device is not None else None
                _sweep(app, now, 1000 * cfg.get("http.read_timeout_s") if cfg else 10000)
                if t.done():
                    raise RuntimeError("the HTTP accept loop ended")
                pending = False
                for _ in p.ipoll(0):
                    pending = True
                waiting = waiting + 1 if pending and app.accepts == n else 0
                n = app.accepts
                if waiting >= 4:
                    raise RuntimeError("HTTP connections wait and none is accepted")
                app.beat = now
        finally:
            t.cancel()
    finally:
        app.listening = None
        s.close()


async def _answer(why, c, log):
    # A request refused while it was read, or cut off by its deadline: 503 as it is, the rest by http/refuse.py.
    try:
        if why == 503:
            c.raw.write(_SHORT)
        else:
            await lazy.call(_REFUSE, "answer", why, c, c, log)
    except (Exception, asyncio.CancelledError):
        pass


async def _read(app, c):
    # the request, or None when the client sent nothing; ValueError/UnicodeError when it is malformed
    line = await c.readline()
    if not line.strip():
        return None
    method, url, _ = line.decode().split()
    h = _Headers()
    while True:
        line = await c.readline()
        line = line.strip()
        if not line:
            break
        k, v = line.decode().split(":", 1)
        h[k.strip().lower()] = v.strip()
    req = Request(app, method, url, h, c)
    n = req.content_length
    cfg = method == "PUT" and req.path == "/api/config" and app.device is not None
    if n <= 0 or n > (_CONFIG_BODY if cfg else Request.max_content_length):
        return req  # (no body; or one answered 413, or read by the route: an update's)
    if cfg or n > _OPEN_BODY and not c._drop:
        # its credential before its body (a config PUT's CA values stream to flash; any body is held in RAM): a
        # refusal is the answer, the route never runs (one failed login), the body is read through and dropped
        req.refused = await guard(req)
        if req.refused:
            c._drop = True
        elif cfg:
            c.split = app.device.config.path
    req.body = await c.readexactly(n)
    return req


async def _serve_conn(app, c):
    # One request, answered, then the connection is closed, whatever happened (a client must never wait for ever
    # on a connection the device has given up), with nothing allocated on the error paths (they must work when
    # the heap is full).
    log = app.log
    try:
        try:
            req = await _read(app, c)
        except MemoryError:
            raise _OOM
        except (ValueError, UnicodeError, IndexError):
            c.write(_BAD)
            await c.drain()
            return
        if req is None:
            return
        c.state = 2  # read: its credential is checked next (no longer one to evict)
        head = req.method == "HEAD"
        if head:
            req.method = "GET"
        res = req.refused or await _dispatch(app, req)
        cfg = app.device.config if app.device is not None else None
        o = cfg.get("http.cors_origin") if cfg else ""
        if o and "Origin" in req.headers:  # CORS headers (http.cors_origin: authz.cors, loaded for it)
            lazy.call(_AUTHZ, "cors", req, res, o)
        req = None  # a long response (a live stream, an export) does not keep the request's objects
        await res.write(c, head)
    except _Refuse as e:  # 431, 414, 400 or 408 (cold code answers) or 503 while the request was read
        await _answer(e.args[0], c, log)
    except asyncio.CancelledError:  # cut off by the server: past its deadline (408), evicted or idle
        if c.why == 408:
            await _answer(408, c, log)
    except MemoryError:
        try:  # (after the head, a body cut short: never a second status line inside it)
            if c.state != _SENT:
                c.raw.write(_SHORT)
        except Exception:
            pass
    except (OSError, EOFError):  # the client went away
        pass
    except Exception as e:
        try:
            log.warning("http", "connection dropped: {!r}".format(e))
        except MemoryError:
            pass
    finally:
        if c.state == _ADOPTED:  # a live stream's now: its slot stays taken until it ends
            c.task = None
        else:
            release(c)
        # The import reserve back at once if this request's retry used it: its garbage (or a collection) leaves
        # the hole the next one may need (rearmed only by the supervisor's turn, it was there for 1 request a s).
        lazy.rearm()


class App:
    """The server: ``start_server``, ``shutdown``, ``stats``; ``device`` (set once the app is built), ``port``
    (served), ``beat`` (ticks_ms of the server's last turn), ``fault`` (injected: "dead", "stuck")."""

    def __init__(self, auth, log):
        self.auth = auth
        self.log = log
        self.device = None
        self.port = None
        self.refused = self.evicted = self.timeouts = self.accepts = 0
        self.beat = None
        self.listening = self.fault = None

    async def start_server(self, host="0.0.0.0", port=80):
        await serve(self, host, port)

    def shutdown(self):
        s = self.listening
        if s is not None:
            s.close()

    def stats(self):
        """For /api/status: connections open now, refused (503 at once), evicted, timed out (408)."""
        n = 0
        for k in _conns:
            if k is not None:
                n += 1
        return {"connections": n, "refused": self.refused, "evicted": self.evicted, "timeouts": self.timeouts}


def make_app(auth, log):
    return App(auth, log)
