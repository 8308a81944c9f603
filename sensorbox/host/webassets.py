"""The web UI's files for the device: ``web/`` sources plus uPlot from ``node_modules``, gzipped into ``www/``; and
the Analysis page's runtime (``build_runtime``), which only boards with room carry and ``sensorbox ui`` serves.

Called by ``bundle.build_www``. Every asset is written as ``<name>.gz`` (gzip, mtime 0: the same input gives the
same bytes) and served as is with ``Content-Encoding: gzip`` (decompressed on the fly for a client that does not
accept gzip, so written with a small window, ``WBITS``); the device never compresses anything. The
OpenAPI description ``web/openapi.json`` is checked (it must parse and document ``/api/status``) and written
minified as ``openapi.json.gz``, without the prose (``apidoc.device_document``). ``ASSET_BUDGET`` caps the
gzipped total (tested).
"""

import json
import os
import struct
import zlib

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WEB = os.path.join(REPO, "web")
#: (source relative to the repo, name on the device)
VENDOR = (("node_modules/uplot/dist/uPlot.iife.min.js", "uplot.js"),)
#: uPlot's style sheet goes in front of app.css (one file: its 0.7 KB gzipped took a 4 KB flash block of its own)
VENDOR_CSS = "node_modules/uplot/dist/uPlot.min.css"
#: Served files, gzipped, at most (the in-browser analysis runtime is separate).
ASSET_BUDGET = 150 * 1024

#: The Analysis page's runtime: MicroPython WebAssembly from npm (its loader renamed .js, which every server types
#: as JavaScript, as a module import needs) and the Python the page imports, in one pack (``analysis-py.bin``:
#: "SBPY", then per file: u16 name length, name, u32 size, bytes). The modules go in as bytecode .mpy (mpy-cross
#: without an architecture: what a board runs, and what MicroPython WebAssembly imports).
RUNTIME_NPM = "node_modules/@micropython/micropython-webassembly-pyscript/"
RUNTIME = ((RUNTIME_NPM + "micropython.mjs", "mpy-runtime.js"), (RUNTIME_NPM + "micropython.wasm", "micropython.wasm"))
PY_PACK = "analysis-py.bin"
PY_MODULES = ("sensorbox/__init__.py", "sensorbox/shared/__init__.py", "sensorbox/shared/features.py",
              "sensorbox/shared/kernels.py", "sensorbox/shared/kernels_py.py", "sensorbox/shared/dsp_setup.py",
              "sensorbox/shared/trees.py", "sensorbox/shared/trees_csv.py", "sensorbox/shared/model.py",
              "sensorbox/shared/npy.py", "sensorbox/shared/analysis.py", "web/sbworker.py")
#: The page's own code comes with the runtime: a UI without it has no use for it (index.html then loads none).
PAGE = ("analysis.js", "analysis-worker.js")
RUNTIME_NAMES = tuple(name for _, name in RUNTIME) + (PY_PACK,) + PAGE
_PAGE_TAG = b'<script src="/static/analysis.js"></script>\n'

_TYPES = (".html", ".css", ".js", ".svg", ".ico")
#: log2 of the deflate window (device/http/static.py decompresses with the same).
WBITS = 11


class WebBuildError(Exception):
    pass


def gzip_bytes(data):
    """``data`` gzipped with a 2**WBITS-byte window: the device decompresses for clients that do not accept gzip,
    and the window is the RAM that takes (2 KB, not zlib's default 32 KB; the files are ~17 % bigger for it, and
    were ~32 % with 1 KB: three 4 KB blocks of flash more, for 1 KB less heap while a file goes to such a client)."""
    z = zlib.compressobj(9, zlib.DEFLATED, 16 + WBITS, 9)
    return z.compress(data) + z.flush()


def _write_gz(path, data):
    # through bundle.put_file (written aside, renamed over the old file): a device serving this folder meanwhile
    # (the host UI's, or a bundle's) reads the old file or the new one, never one cut short (a test rebuilding the
    # shared bundle's UI in place gave a soak's device an empty index.html.gz: a 200 with no body)
    from sensorbox.host import bundle

    return bundle.put_file(path, gzip_bytes(data))


def strip_comment_lines(js):
    """``js`` without its lines that hold only a ``//`` comment: the sources explain themselves at length, the
    device's flash pays for every byte (app.js gzipped: 24.7 -> 21.9 KB, a 4 KB block). Nothing else changes, so a
    line number in a browser's error still points near its source line. (The UI's JavaScript has no multi-line
    template literals, where such a line would be text: ``test_webassets`` checks.)"""
    return b"\n".join(line for line in js.split(b"\n") if not line.lstrip().startswith(b"//"))


def build(www, analysis=False):
    """Write the UI into ``www``; with ``analysis`` the Analysis page's runtime too (``build_runtime``). Returns
    the paths written."""
    out = []
    for name in sorted(os.listdir(WEB)):
        if name.endswith(_TYPES) and (analysis or name not in PAGE):
            with open(os.path.join(WEB, name), "rb") as f:
                data = f.read()
            if name.endswith(".js"):
                data = strip_comment_lines(data)
            if name == "index.html" and not analysis:
                data = data.replace(_PAGE_TAG, b"")
            if name == "app.css":
                p = os.path.join(REPO, VENDOR_CSS)
                if not os.path.exists(p):
                    raise WebBuildError("{} is missing: run `npm ci` (make does) to install the UI's chart library"
                                        .format(VENDOR_CSS))
                with open(p, "rb") as f:
                    data = f.read() + b"\n" + data
            out.append(_write_gz(os.path.join(www, name + ".gz"), data))
    out += _from_npm(www, VENDOR, "the UI's chart library")
    from sensorbox.host import apidoc

    try:
        spec = apidoc.document()
    except (ValueError, KeyError) as e:
        raise WebBuildError("web/openapi.json: {}".format(e))
    if "/api/status" not in spec.get("paths", {}):
        raise WebBuildError("web/openapi.json does not document /api/status")
    out.append(_write_gz(os.path.join(www, "openapi.json.gz"),  # (without the prose: apidoc.device_document)
                         json.dumps(apidoc.device_document(spec), separators=(",", ":"), ensure_ascii=False).encode()))
    if analysis:
        out += build_runtime(www)
    else:
        remove_runtime(www)
    return out


def asset_bytes(www):
    """Gzipped bytes of the UI's files in ``www`` (what a browser downloads; openapi.json, the config schema and the
    analysis runtime not counted)."""
    return sum(os.path.getsize(os.path.join(www, n)) for n in os.listdir(www)
               if n.endswith(".gz") and n not in ("openapi.json.gz", "config-schema.json.gz") and
               n[:-3] not in RUNTIME_NAMES)


def py_pack():
    """The bytes of ``analysis-py.bin``: ``PY_MODULES`` compiled by mpy-cross, named by their path in the runtime's
    /lib (``web/sbworker.py`` is the module ``sbworker``)."""
    from sensorbox.host import bundle

    out = [b"SBPY"]
    for rel in PY_MODULES:
        name = rel[4:] if rel.startswith("web/") else rel
        try:
            data = bundle.mpy_bytes(os.path.join(REPO, rel), None, bundle.module_name(name))
        except bundle.BuildError as e:
            raise WebBuildError(str(e))
        path = (name[:-3] + ".mpy").encode()
        out.append(struct.pack("<H", len(path)) + path + struct.pack("<I", len(data)) + data)
    return b"".join(out)


def build_runtime(www):
    """Write the Analysis page's runtime (MicroPython WebAssembly and the Python pack) into ``www``, gzipped like
    the UI (``build(www, analysis=True)`` does this and writes the page's code); returns the paths written."""
    return _from_npm(www, RUNTIME, "MicroPython WebAssembly") + [_write_gz(os.path.join(www, PY_PACK + ".gz"),
                                                                           py_pack())]


def _from_npm(www, files, what):
    out = []
    for src, name in files:
        p = os.path.join(REPO, src)
        if not os.path.exists(p):
            raise WebBuildError("{} is missing: run `npm ci` (make does) to install {}".format(src, what))
        with open(p, "rb") as f:
            out.append(_write_gz(os.path.join(www, name + ".gz"), f.read()))
    return out


def remove_runtime(www):
    """Take the runtime out of ``www`` (a bundle built again without it)."""
    for name in RUNTIME_NAMES:
        p = os.path.join(www, name + ".gz")
        if os.path.exists(p):
            os.remove(p)
