"""The web UI's files, pre-gzipped in ``www/`` (loaded per request by ``server``, then unloaded).

A client that accepts gzip gets the file as stored, with ``Content-Encoding: gzip`` and its ``Content-Length``
(a body cut short shows). One that does not (plain ``curl``, a script) gets it decompressed on the fly in
512-byte pieces (``server.Response``) through ``deflate.DeflateIO``: the files are compressed with a ``WBITS``
window (2 KB, see ``host/webassets.py``), so that costs ~3.4 KB of heap on the unix port while the file is sent,
where gzip's usual 32 KB window would need a 32 KB block. Both answers carry ``Vary: Accept-Encoding``.
"""

from micropython import const

from sensorbox.device.http.server import Response, error, not_allowed

# the types of the UI's files, by extension (one string: no dict, no interned names)
_TYPES = const(" js=application/javascript css=text/css json=application/json svg=image/svg+xml png=image/png ")

#: log2 of the deflate window the files were compressed with (host/webassets.py writes them with the same).
WBITS = 11


def send_file(filename, status_code=200, content_type=None, stream=None, max_age=None, compressed=False):
    """A Response sending a file (``stream``, or opened from ``filename``), its type from the name's extension
    unless given; ``compressed``: it is gzip (``Content-Encoding: gzip``). (Here, not in the resident server:
    every route that sends a file loads this module for it.)"""
    if content_type is None:
        i = _TYPES.find(" " + filename.rpartition(".")[2] + "=")
        content_type = _TYPES[i:].split("=", 1)[1].split(" ", 1)[0] if i >= 0 else "application/octet-stream"
    h = {"Content-Type": content_type}
    if max_age is not None:
        h["Cache-Control"] = "max-age={}".format(max_age)
    if compressed:
        h["Content-Encoding"] = "gzip"
    return Response(stream or open(filename, "rb"), status_code, h)


def accepts_gzip(req):
    """True if the request's Accept-Encoding allows gzip (``gzip`` or ``*``, without ``q=0``)."""
    for part in (req.headers.get("Accept-Encoding") or "").split(","):
        name, _, q = part.partition(";")
        name = name.strip().lower()
        if name == "gzip" or name == "*":
            q = q.strip()
            q = q[2:].strip() if q[:2].lower() == "q=" else "1"
            return q.strip("0.") != "" or q == ""  # q=0, q=0.0, q=0.000: not acceptable
    return False


def static_file(www, name, req):
    """``www/<name>.gz`` (pre-gzipped) when ``name`` is a plain file name: letters, digits, ``-``, ``_`` and
    inner dots only, so no request path can reach outside ``www``; else 404. Decompressed for a request that
    does not accept gzip."""
    if not 0 < len(name) <= 48 or name[:1] == "." or ".." in name:
        return error(404, "no such file", "name")
    # bytes, not characters: indexing or a loop over a str interns each character as a name, for good (a request
    # path of other characters would grow the name pool)
    for c in name.encode():
        if not (48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122 or c in b"._-"):
            return error(404, "no such file", "name")
    try:
        f = open(www + "/" + name + ".gz", "rb")
    except OSError:
        return error(404, "no such file", "name")
    gz = accepts_gzip(req)
    if not gz:
        try:
            import deflate
        except ImportError:  # a firmware built without it
            f.close()
            return error(406, "{} is stored gzip-compressed only; send Accept-Encoding: gzip".format(name))
        f = deflate.DeflateIO(f, deflate.GZIP, WBITS, True)  # closes the file when the response closes it
    res = send_file(name, stream=f, compressed=gz, max_age=0,
                    content_type="text/html; charset=UTF-8" if name.endswith(".html") else None)
    res.headers["Vary"] = "Accept-Encoding"
    if gz:  # as stored: its length, so that a client tells a body cut short from a whole one
        res.headers["Content-Length"] = f.seek(0, 2)
        f.seek(0)
    return res


async def handle(device, http, req):
    p = req.path
    if req.method != "GET":  # (HEAD arrives as GET)
        return not_allowed(req)
    return static_file(device.platform.www_dir, p[8:] if len(p) > 1 else "index.html", req)
