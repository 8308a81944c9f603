"""The web UI's files, pre-gzipped in ``www/`` (loaded per request by ``server``, then unloaded)."""

from sensorbox.device.http.server import Response, error


def static_file(www, name):
    """``www/<name>.gz`` (pre-gzipped) when ``name`` is a plain file name: letters, digits, ``-``, ``_`` and
    inner dots only, so no request path can reach outside ``www``; else 404."""
    if not 0 < len(name) <= 48 or name[0] == "." or ".." in name:
        return error(404, "no such file", "name")
    for c in name:
        if not (c.isalpha() or c.isdigit() or c in "._-") or ord(c) > 127:
            return error(404, "no such file", "name")
    try:
        f = open(www + "/" + name + ".gz", "rb")
    except OSError:
        return error(404, "no such file", "name")
    return Response.send_file(name, stream=f, compressed=True, max_age=0,
                              content_type="text/html; charset=UTF-8" if name.endswith(".html") else None)


async def handle(device, http, req):
    p = req.path
    return static_file(device.platform.www_dir, p[8:] if len(p) > 1 else "index.html")
