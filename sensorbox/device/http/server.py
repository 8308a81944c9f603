"""Creating the Microdot app: request limits, JSON errors and the ``require`` authentication decorator.

Every error is JSON: ``{"error": "<message>", "field": "<offending key or parameter>"}``.
"""

import errno
import json
import select
import socket
import time

import asyncio
from micropython import const
from microdot import Microdot, Request, Response

from sensorbox.device import lazy

_AUTHZ = "sensorbox.device.http.authz"
_WEB = "sensorbox.device.http.web_lazy"
_STATIC = "sensorbox.device.http.static"
_REFUSE = "sensorbox.device.http.refuse"

# Limits: the device has tens of KB of heap; bodies past these are refused before they are read. 8 KB: four times
# the largest body a client sends (a model's meta.json, a 2 KB model.csv chunk); at 16 KB a fragmented heap often
# had no block for the body (503 where a 4xx was due).
Request.max_content_length = 8 * 1024
Request.max_body_length = 8 * 1024
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


_BODY = "sensorbox.device.http.body"


def read_json(req):
    """The request body as JSON; raises BadRequest with a reason when it is not, or when it holds what would break
    a handler or a response (see ``http/body.py``, loaded for the call)."""
    m = lazy.load(_BODY)
    lazy.unload(_BODY)
    return m.read_json(req)


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
_BUSY = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n\r\n"
         b'{"error":"too many connections; retry"}')
_SHORT = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n\r\n"
          b'{"error":"device is short of memory; retry"}')
_HEAD = const(4096)  # bytes of request line + header fields at most (431 beyond)
_CHUNK = const(256)  # bytes read per socket read while the head is read

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
    """One client connection: Microdot's reader and writer both, and the server's record of it.

    Microdot has no deadline of its own, and MicroPython's ``Stream.readline`` has no length limit (a client could
    send one endless line into the heap; Microdot only measures it afterwards). So lines are read here in
    ``_CHUNK`` pieces and cut off past ``Request.max_readline``: an over-long line, more than ``_HEADERS`` header
    fields or a head over ``_HEAD`` bytes is refused with 431, a target over ``_URL`` bytes with 414, a second or
    non-numeric ``Content-Length`` or an encoded surrogate with 400. The whole request (head and body) must
    arrive within ``http.read_timeout_s``, however slowly its bytes come, or it is answered 408 (the server's
    turn checks, see ``_sweep``); either way the connection is then closed. Bytes read past a line wait in
    ``_buf`` for the next read (the body)."""

    why = 0  # why the server cut it off: 408 (deadline), 503 (evicted for another client), 1 (idle, closed)
    state = 1  # 1 while its request is read (no credential checked yet), 2 while it is answered
    task = None

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

    def get_extra_info(self, name):
        return self.peer  # Request.client_addr: the address without its port

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
            if not c:  # end of the stream: what there is (Microdot answers a cut-off request 400)
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
            out = bytearray(n)
        except MemoryError:  # no block for it now: read through, and an over-deep body still gets its 400
            m = lazy.load(_BODY)
            lazy.unload(_BODY)
            st = [0, 0, False, False]
            m.scan(b, st)
            while n > len(b) and st[1] <= m.DEPTH:
                n -= len(b)
                b = await self._s.read(min(n, _CHUNK))
                if not b:
                    raise EOFError
                m.scan(b, st)
            raise _Refuse(4004 if st[1] > m.DEPTH else 503)
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

    async def awrite(self, data):
        s = self._s
        s.write(data)
        await s.drain()
        self.seen = time.ticks_ms()

    async def aclose(self):
        self.raw.close()

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


def _admit(app, sock, addr, handle):
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
    k.task = asyncio.create_task(handle(k))
    _conns[free] = k


def _release(c):
    for i in range(MAX_CONNECTIONS):
        if _conns[i] is c:
            _conns[i] = None
    try:
        c.raw.close()
    except Exception:
        pass


async def _accept(app, s, handle):
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
            _admit(app, sock, addr, handle)
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
        t = asyncio.create_task(_accept(app, s, app.handle_request))
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
            m = lazy.load(_REFUSE)
            lazy.unload(_REFUSE)
            await m.answer(why, c, c, log)
    except (Exception, asyncio.CancelledError):
        pass


_create = Request.create


async def _create_or_refuse(app, reader, *args, **kwargs):
    # Microdot answers any exception while it parses a request with 400; out of memory is the device's fault
    # and passing: 503, retry. Once read, the request is being answered (its credential is checked next).
    try:
        req = await _create(app, reader, *args, **kwargs)
    except MemoryError:
        raise _Refuse(503)
    reader.state = 2
    return req


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
        try:
            log.error("http", "out of memory on {} {}".format(req.method, req.path))
            return error(503, "device is short of memory; retry")
        except MemoryError:  # not even for the answer: 503 as it is (Microdot would make it a 500)
            raise _OOM

    @app.errorhandler(Exception)
    async def crashed(req, exc):
        try:
            log.exception("http", "{} {} failed".format(req.method, req.path), exc)
        except MemoryError:
            raise _OOM
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
            who = await auth.check_basic(a, req.client_addr)
            if who == "wait":
                return error(429, "too many failed logins; wait and retry")
            if who != "admin":
                res = error(401, "authentication required")
                res.headers["WWW-Authenticate"] = 'Basic realm="sensorbox"'
                return res
            return _json(await handler(req, *args, **kwargs))

        return guarded

    handle = app.handle_request

    async def handle_request(c):
        # Microdot leaves the connection open when writing a response fails with anything but a socket error
        # (a MemoryError while streaming a file, say): the client would wait for ever. Closed here, always, with
        # nothing allocated on the way (the error path must work when the heap is full).
        try:
            await handle(c, c)
        except _Refuse as e:  # 431, 414, 400 or 408 (cold code answers) or 503 while the request was read
            await _answer(e.args[0], c, log)
        except asyncio.CancelledError:  # cut off by the server: past its deadline (408), evicted or idle
            if c.why == 408:
                await _answer(408, c, log)
        except MemoryError:
            try:
                c.raw.write(_SHORT)
            except Exception:
                pass
        except Exception as e:
            try:
                log.warning("http", "connection dropped: {!r}".format(e))
            except MemoryError:
                pass
        finally:
            _release(c)

    async def start_server(host="0.0.0.0", port=5000, **kw):
        await serve(app, host, port)

    def shutdown():
        s = app.listening
        if s is not None:
            s.close()

    def stats():
        n = 0
        for k in _conns:
            if k is not None:
                n += 1
        return {"connections": n, "refused": app.refused, "evicted": app.evicted, "timeouts": app.timeouts}

    app.handle_request = handle_request
    app.start_server = start_server
    app.shutdown = shutdown
    app.stats = stats  # for /api/status: open now, refused (503 at once), evicted, timed out (408)
    app.refused = app.evicted = app.timeouts = app.accepts = 0
    app.beat = None  # ticks_ms of the server's last turn (see serve)
    app.listening = app.fault = None
    app.require = require
    app.device = None
    return app
