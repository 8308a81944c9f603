"""The web UI's files in the device bundle: gzipped, within the 150 KB budget, no CDN, every page present."""

import gzip
import json
import os
import re

from sensorbox.host import bundle, webassets


def test_ui_assets_gzipped_within_budget_and_local(tmp_path):
    www = os.path.join(bundle.build("unix"), "www")
    total = webassets.asset_bytes(www)
    assert 25 * 1024 < total <= webassets.ASSET_BUDGET, total  # uPlot alone is ~22 KB gzipped
    names = set(os.listdir(www))
    assert {"index.html.gz", "app.js.gz", "app.css.gz", "uplot.js.gz", "openapi.json.gz"} <= names
    assert "uplot.css.gz" not in names  # (in front of app.css: a flash block less)
    css = gzip.decompress(open(os.path.join(www, "app.css.gz"), "rb").read()).decode()
    assert css.startswith(".uplot") and css.index(".uplot") < css.index("body"), css[:80]
    html = gzip.decompress(open(os.path.join(www, "index.html.gz"), "rb").read()).decode()
    for page in ("dashboard", "history", "settings", "models", "health", "login"):
        assert 'id="{}"'.format(page) in html, page
    for name in names:
        if name.endswith((".html.gz", ".js.gz", ".css.gz")):
            text = gzip.decompress(open(os.path.join(www, name), "rb").read()).decode()
            # no CDN: every URL the page loads is the device's own
            assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), name
    # each referenced static file exists
    for ref in re.findall(r'/static/([\w.-]+)', html):
        assert ref + ".gz" in names, ref
    # deterministic: building again gives the same bytes (elsewhere: devices of other tests serve the bundle's files
    # meanwhile, and this rewrote them in place once, one of them answering a 200 with no body)
    webassets.build(str(tmp_path))
    for name in ("index.html.gz", "app.js.gz", "app.css.gz", "openapi.json.gz"):
        assert open(os.path.join(www, name), "rb").read() == (tmp_path / name).read_bytes(), name


def test_openapi_documents_every_path_with_errors():
    www = os.path.join(bundle.build("unix"), "www")
    spec = json.loads(gzip.decompress(open(os.path.join(www, "openapi.json.gz"), "rb").read()))
    assert spec["openapi"].startswith("3.")
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            assert op["summary"] and any(c.startswith("2") for c in op["responses"]), (path, method)
            if op.get("security") != []:
                assert "401" in op["responses"], (path, method)


def _raw_get(dev, path, accept):
    """GET over a plain socket (urllib would add its own Accept-Encoding): (status, headers, body)."""
    import http.client

    c = http.client.HTTPConnection("127.0.0.1", dev.port, timeout=10)
    c.putrequest("GET", path, skip_accept_encoding=True)
    if accept is not None:
        c.putheader("Accept-Encoding", accept)
    c.endheaders()
    r = c.getresponse()
    out = (r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    c.close()
    return out


def test_gzip_only_to_clients_that_accept_it(device_app):
    # Before: every file went out with Content-Encoding: gzip, also to `curl` without --compressed.
    www = os.path.join(bundle.build("unix"), "www")
    for name in sorted(os.listdir(www)):
        if not name.endswith(".gz"):
            continue
        stored = open(os.path.join(www, name), "rb").read()
        plain = gzip.decompress(stored)
        path = "/api/openapi.json" if name == "openapi.json.gz" else "/static/" + name[:-3]
        for accept, want_gz in ((None, False), ("identity", False), ("gzip;q=0", False), ("br, gzip;q=0.0", False),
                                ("gzip", True), ("gzip, deflate, br", True), ("*", True), ("GZIP;q=0.5", True)):
            status, h, body = _raw_get(device_app, path, accept)
            assert status == 200, (path, accept, status, body[:200])
            assert h.get("vary") == "Accept-Encoding", (path, h)
            if want_gz:
                assert h.get("content-encoding") == "gzip" and body == stored, (path, accept)
            else:
                assert "content-encoding" not in h and body == plain, (path, accept, h, len(body), len(plain))
    status, h, body = _raw_get(device_app, "/", None)
    assert status == 200 and h["content-type"].startswith("text/html") and b'id="dashboard"' in body
    assert json.loads(_raw_get(device_app, "/api/openapi.json", None)[2])["openapi"].startswith("3.")


def test_the_analysis_runtime_comes_with_its_page_and_no_cdn():
    """Only a bundle with room carries the Analysis page (its code, MicroPython WebAssembly from npm and the Python it
    imports as bytecode .mpy); without it index.html loads none of it. Neither counts against the UI's budget."""
    plain = os.path.join(bundle.build("unix"), "www")
    www = os.path.join(bundle.build("unix", analysis=True), "www")
    runtime = {n + ".gz" for n in webassets.RUNTIME_NAMES}
    assert not runtime & set(os.listdir(plain)) and runtime <= set(os.listdir(www))
    page = lambda w: gzip.decompress(open(os.path.join(w, "index.html.gz"), "rb").read()).decode()  # noqa: E731
    assert "/static/analysis.js" in page(www) and "/static/analysis.js" not in page(plain)
    assert 'id="analysis"' in page(plain)  # the page says where to get it
    # the runtime is not counted; index.html differs by the page's script tag only
    assert webassets.asset_bytes(plain) <= webassets.asset_bytes(www) <= webassets.asset_bytes(plain) + 64
    assert webassets.asset_bytes(www) <= webassets.ASSET_BUDGET
    wasm = gzip.decompress(open(os.path.join(www, "micropython.wasm.gz"), "rb").read())
    npm = os.path.join(bundle.REPO, webassets.RUNTIME_NPM)
    assert wasm == open(os.path.join(npm, "micropython.wasm"), "rb").read() and wasm[:4] == b"\0asm"
    for name in ("analysis.js", "analysis-worker.js", "mpy-runtime.js"):
        text = gzip.decompress(open(os.path.join(www, name + ".gz"), "rb").read()).decode()
        assert not re.search(r"""(import|fetch|src=|href=)\(?["']?(https?:)?//""", text), name
    pack = gzip.decompress(open(os.path.join(www, "analysis-py.bin.gz"), "rb").read())
    assert pack[:4] == b"SBPY"
    files, o = {}, 4
    while o < len(pack):
        nl = int.from_bytes(pack[o:o + 2], "little")
        name = pack[o + 2:o + 2 + nl].decode()
        size = int.from_bytes(pack[o + 2 + nl:o + 6 + nl], "little")
        files[name] = pack[o + 6 + nl:o + 6 + nl + size]
        o += 6 + nl + size
    assert set(files) == {m[4:-3] + ".mpy" if m.startswith("web/") else m[:-3] + ".mpy" for m in webassets.PY_MODULES}
    for name, data in files.items():  # bytecode only (no architecture): what any MicroPython imports
        assert data[:3] == b"M\x06\x00", name
    assert "sensorbox/device" not in " ".join(files)  # no viper kernels: the browser has no native emitter


def test_scripts_ship_without_their_comment_lines():
    # the device's copy of each script is its source less the lines holding only a // comment (flash), nothing else
    www = os.path.join(bundle.build("unix"), "www")
    for name in ("app.js",):
        src = open(os.path.join(webassets.WEB, name), "rb").read()
        assert all(b"`" not in line.split(b"//")[0] for line in src.split(b"\n")), "a template literal: a // line may be text"
        served = gzip.decompress(open(os.path.join(www, name + ".gz"), "rb").read())
        kept = [line for line in src.split(b"\n") if not line.lstrip().startswith(b"//")]
        assert served.split(b"\n") == kept and len(kept) < len(src.split(b"\n")), name
    assert webassets.strip_comment_lines(b"a = 1;\n  // why\nb = 2; // kept\n//x") == b"a = 1;\nb = 2; // kept"
