"""Answering a request refused while it was read (``server._Conn``): loaded only when that happens.

``answer(why, reader, writer, log)``: ``why`` is 431 (a request line or header field over
``Request.max_readline``), 432 (more than ``server._HEADERS`` header fields), 433 (request line and header fields
over ``server._HEAD`` bytes) -- all three answered ``431 Request Header Fields Too Large`` --, 414 (a target over
``server._URL`` bytes) and 4141 (more than ``server._PARAMS`` query parameters) -- ``414 URI Too Long`` --, 4001 (a
second ``Content-Length``), 4002 (a ``Content-Length`` that is not a number), 4003 (an encoded UTF-16 surrogate,
which is not text), 4004 (a body nested deeper than 32 levels, found while reading it when there was no room to
hold it) and 4005 (a query parameter given twice) -- ``400 Bad Request`` --, or 408 (the request did not arrive whole within
``http.read_timeout_s``: ``408 Request Timeout``). The caller closes the connection.

``handle(req)``: a method the path does not have (405 with ``Allow``), or a path the API does not have (404),
from the route list, ``_ROUTES``, which the bundle writes in from the OpenAPI document (``host/apidoc.routes``,
``bundle.constants``): in RAM only while this module is loaded (not at all from ROMFS). OPTIONS answers with the
same ``Allow`` (``server._dispatch``); ``GET /api/routes`` lists it (``routes``).
"""

from micropython import const

from sensorbox.device.http.server import Request, error, not_found
from sensorbox.device.supervisor import wait_for_ms  # (asyncio's would load asyncio.funcs for good, ~2 KB)

# a line per path of the OpenAPI document, the path then its methods ("/api/labels GET POST"): the bundle writes it in
_ROUTES = const("")

_WHY = {
    408: (408, "Request Timeout", "the request did not arrive whole within http.read_timeout_s"),
    432: (431, "Request Header Fields Too Large", "more than 32 header fields"),
    433: (431, "Request Header Fields Too Large", "request line and header fields longer than 4096 bytes"),
    414: (414, "URI Too Long", "request target (path and query) longer than 1024 bytes"),
    4141: (414, "URI Too Long", "more than 32 query parameters"),
    4001: (400, "Bad Request", "more than one Content-Length header field"),
    4002: (400, "Bad Request", "Content-Length is not a non-negative integer"),
    4003: (400, "Bad Request", "the request holds an encoded UTF-16 surrogate, which is not valid UTF-8 text"),
    4004: (400, "Bad Request", "request body is nested deeper than 32 levels"),
    4005: (400, "Bad Request", "a query parameter given more than once"),
}


async def answer(why, reader, writer, log):
    status, reason, msg = _WHY.get(why) or (431, "Request Header Fields Too Large",
                                            "request line or header field longer than {} bytes".format(
                                                Request.max_readline))
    log.info("http", "refused a request: " + msg)
    res = error(status, msg)
    res.reason = reason
    await res.write(writer)
    if why != 408:
        # What the client is still sending, read and dropped for a moment (<= 16 KB, 100 ms per read): closing
        # a socket with unread input resets the connection, and the client could lose the answer.
        for _ in range(32):
            try:
                if not await wait_for_ms(reader._s.read(512), 100):
                    return
            except Exception:
                return


def routes():
    """The API's route list, a line at a time split as ``[path, method, ...]`` (``/api/labels GET POST``)."""
    i = 0
    while i < len(_ROUTES):
        j = _ROUTES.find("\n", i)
        if j < 0:
            j = len(_ROUTES)
        p = _ROUTES[i:j].split()
        i = j + 1
        if p:
            yield p


def _allow(path):
    """The ``Allow`` header's value for ``path`` (its methods, HEAD where GET is, OPTIONS) from the route list
    (``{...}`` in a path matches one segment); None when no path matches."""
    segs = path.split("/")
    for p in routes():
        t = p[0].split("/")
        if len(t) != len(segs):
            continue
        for i in range(len(t)):
            if t[i] != segs[i] and not (t[i][:1] == "{" and segs[i]):
                break
        else:
            out = []
            for m in p[1:]:
                out.append(m)
                if m == "GET":
                    out.append("HEAD")
            out.append("OPTIONS")
            return ", ".join(out)
    return None


def handle(req):
    """A request no route takes (``server.not_allowed``): 405 with ``Allow`` when ``req.path`` is one of the API's,
    else 404."""
    a = _allow(req.path)
    if a is None:
        return not_found(req)
    res = error(405, "method {} not allowed here; allowed: {}".format(req.method, a))
    res.headers["Allow"] = a
    return res
