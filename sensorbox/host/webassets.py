"""The web UI's files for the device: ``web/`` sources plus uPlot from ``node_modules``, gzipped into ``www/``.

Called by ``bundle.build_www``. Every asset is written as ``<name>.gz`` (gzip, mtime 0: the same input gives the
same bytes) and served as is with ``Content-Encoding: gzip`` (decompressed on the fly for a client that does not
accept gzip, so written with a small window, ``WBITS``); the device never compresses anything. The
OpenAPI description ``web/openapi.json`` is checked (it must parse and document ``/api/status``) and written
minified as ``openapi.json.gz``. ``ASSET_BUDGET`` caps the gzipped total (tested).
"""

import json
import os
import zlib

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WEB = os.path.join(REPO, "web")
#: (source relative to the repo, name on the device)
VENDOR = (("node_modules/uplot/dist/uPlot.iife.min.js", "uplot.js"),
          ("node_modules/uplot/dist/uPlot.min.css", "uplot.css"))
#: Served files, gzipped, at most (the in-browser analysis runtime is separate).
ASSET_BUDGET = 150 * 1024
_TYPES = (".html", ".css", ".js", ".svg", ".ico")
#: log2 of the deflate window (device/http/static.py decompresses with the same).
WBITS = 10


class WebBuildError(Exception):
    pass


def _write_gz(path, data):
    # gzip with a 2**WBITS-byte window: the device decompresses for clients that do not accept gzip, and the
    # window is the RAM that takes (1 KB, not zlib's default 32 KB; the files are ~17 % bigger for it).
    z = zlib.compressobj(9, zlib.DEFLATED, 16 + WBITS, 9)
    with open(path, "wb") as f:
        f.write(z.compress(data) + z.flush())
    return path


def build(www):
    """Write the UI into ``www``; returns the paths written."""
    out = []
    for name in sorted(os.listdir(WEB)):
        if name.endswith(_TYPES):
            with open(os.path.join(WEB, name), "rb") as f:
                out.append(_write_gz(os.path.join(www, name + ".gz"), f.read()))
    for src, name in VENDOR:
        p = os.path.join(REPO, src)
        if not os.path.exists(p):
            raise WebBuildError("{} is missing: run `npm ci` (make does) to install the UI's chart library".format(src))
        with open(p, "rb") as f:
            out.append(_write_gz(os.path.join(www, name + ".gz"), f.read()))
    with open(os.path.join(WEB, "openapi.json")) as f:
        spec = json.load(f)
    if "/api/status" not in spec.get("paths", {}):
        raise WebBuildError("web/openapi.json does not document /api/status")
    import sensorbox

    spec["info"]["version"] = sensorbox.__version__
    out.append(_write_gz(os.path.join(www, "openapi.json.gz"), json.dumps(spec, separators=(",", ":")).encode()))
    return out


def asset_bytes(www):
    """Gzipped bytes of the UI's files in ``www`` (what a browser downloads; openapi.json not counted)."""
    return sum(os.path.getsize(os.path.join(www, n)) for n in os.listdir(www)
               if n.endswith(".gz") and n != "openapi.json.gz")
