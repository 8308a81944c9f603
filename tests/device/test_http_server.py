"""The device's HTTP server (http/server.py) answering one request over a connection double: what goes out when
the heap runs out in the middle of an answer. (tests/host/ run the real server over sockets.)

Issue 19's full proof run (four Schemathesis workers, seed 4242): a ``GET /api/routes`` answered 200 and then,
out of memory while its JSON was streamed, the server wrote its 503 answer, status line and all, into that body."""

import asyncio
import sys

from devtest import inner, quiet_log, renamed
from sensorbox.device.http import server


class _Raw:
    def __init__(self, out):
        self.out = out
        self.closed = False

    def write(self, b):
        self.out.append(bytes(b))

    def close(self):
        self.closed = True


class _Conn:
    """A connection as ``server._serve_conn`` uses it: the request's lines, then what was written."""

    why = 0
    state = 1
    task = None
    peer = "127.0.0.1"

    def __init__(self, request):
        self.lines = [x + b"\r\n" for x in request.split(b"\r\n")]
        self.out = []
        self.raw = _Raw(self.out)

    async def readline(self):
        return self.lines.pop(0) if self.lines else b""

    async def readexactly(self, n):
        return b""

    def write(self, b):
        self.out.append(bytes(b))

    async def drain(self):
        pass


class _App:
    device = None

    def __init__(self):
        self.log = quiet_log()


def _answer(handle, method=b"GET"):
    """What the server writes for ``<method> /api/x`` answered by ``handle`` (an async function of device, app,
    req)."""

    class Route:
        pass

    Route.handle = handle
    route = inner(server, "_route")
    sys.modules["sbtest_route"] = Route
    setattr(server, renamed("_route", "http/server.py"), lambda p: "sbtest_route")
    try:
        c = _Conn(method + b" /api/x HTTP/1.0\r\n")
        asyncio.run(inner(server, "_serve_conn")(_App(), c))
    finally:
        setattr(server, renamed("_route", "http/server.py"), route)
        sys.modules.pop("sbtest_route", None)
    return b"".join(c.out), c


def test_memory_running_out_after_the_head_cuts_the_answer_off():
    def body():
        yield '{"routes": ['
        raise MemoryError

    async def handle(device, app, req):
        return server.Response(body(), 200, {"Content-Type": "application/json"})

    out, c = _answer(handle)
    assert out.startswith(b"HTTP/1.0 200 OK\r\n") and out.endswith(b'\r\n\r\n{"routes": ['), out
    assert out.count(b"HTTP/1.0") == 1 and c.raw.closed, out  # (before: the 503 answer followed in the body)


def test_memory_running_out_before_the_head_is_a_503():
    async def handle(device, app, req):
        raise MemoryError

    out, c = _answer(handle, b"POST")  # (a GET runs once more first, with lazy's reserve given up)
    assert out.startswith(b"HTTP/1.0 503 Service Unavailable\r\n") and b"short of memory" in out, out
    assert out.count(b"HTTP/1.0") == 1 and c.raw.closed, out
