"""The UI's pre-gzipped files (http/static.py): decompressed on the fly for a client that does not accept gzip,
in small pieces and with a small window, so the heap it takes while a file is sent stays small."""

import gc

WWW = "build/unix/www"  # the bundle the tests run (the harness builds it)


class Req:
    def __init__(self, accept=None):
        self.headers = {"Accept-Encoding": accept} if accept is not None else {}


def _body(res):
    """The response body as bytes, read in the server's piece size (512: server.Response); and the heap in use
    while it is read."""
    gc.collect()
    before = gc.mem_alloc()
    out = bytearray()
    peak = 0
    while True:
        b = res.body.read(512)
        if not b:
            break
        out += b
        gc.collect()
        peak = max(peak, gc.mem_alloc() - before - len(out))
    res.body.close()
    return bytes(out), peak


def test_identity_when_gzip_is_not_accepted_with_a_small_window():
    import json

    from sensorbox.device.http import static

    res = static.static_file(WWW, "openapi.json", Req())
    assert "Content-Encoding" not in res.headers and res.headers["Vary"] == "Accept-Encoding"
    body, peak = _body(res)
    assert json.loads(body)["openapi"].startswith("3.")
    # ~2.4 KB here: the 1 KB window and the decompressor's tables (a 32 KB window would take over 34 KB)
    print("heap while decompressing:", peak)
    assert peak < 4096, peak
    res = static.static_file(WWW, "index.html", Req("deflate, gzip"))
    assert res.headers["Content-Encoding"] == "gzip"
    body, _ = _body(res)
    assert body[:2] == b"\x1f\x8b"


def test_accept_encoding_parsing():
    from sensorbox.device.http.static import accepts_gzip

    for h in ("gzip", "GZip", "deflate, gzip", "*", "gzip;q=1", "gzip; q=0.001", "br;q=1, gzip;q=0.5"):
        assert accepts_gzip(Req(h)), h
    for h in (None, "", "identity", "deflate, br", "gzip;q=0", "gzip; q=0.000", "*;q=0", "xgzip"):
        assert not accepts_gzip(Req(h)), h
