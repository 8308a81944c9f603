"""The UI's pre-gzipped files (http/static.py): decompressed on the fly for a client that does not accept gzip,
in small pieces and with a small window, so the heap it takes while a file is sent stays small."""

import gc

WWW = "build/unix/www"  # the bundle the tests run (the harness builds it)


class Req:
    def __init__(self, accept=None):
        self.headers = {"Accept-Encoding": accept} if accept is not None else {}


def _body(res):
    """The response body's first 64 bytes, its last byte and its length, read in the server's piece size (512:
    server.Response); and the heap in use while it is read (the body is not kept: ~77 KB)."""
    gc.collect()
    before = gc.mem_alloc()
    head = b""
    last = b""
    n = 0
    peak = 0
    while True:
        b = res.body.read(512)
        if not b:
            break
        if len(head) < 64:
            head = (head + b)[:64]
        last = b[-1:]
        n += len(b)
        b = None
        gc.collect()
        peak = max(peak, gc.mem_alloc() - before - len(head))
    res.body.close()
    return head, last, n, peak


def test_identity_when_gzip_is_not_accepted_with_a_small_window():
    from sensorbox.device.http import static

    res = static.static_file(WWW, "openapi.json", Req())
    assert "Content-Encoding" not in res.headers and res.headers["Vary"] == "Accept-Encoding"
    head, last, n, peak = _body(res)
    assert head.startswith(b'{"openapi":"3.') and last == b"}" and n > 20000, (head, last, n)
    # the 2 KB window, the decompressor's tables and a piece (a 32 KB window would take over 34 KB)
    print("heap while decompressing:", peak)
    assert peak < 5120, peak  # (4,096 here)
    res = static.static_file(WWW, "index.html", Req("deflate, gzip"))
    assert res.headers["Content-Encoding"] == "gzip"
    head, _, n, _ = _body(res)
    assert head[:2] == b"\x1f\x8b"
    assert res.headers["Content-Length"] == n > 0, (res.headers, n)  # (a body cut short shows)
    res = static.static_file(WWW, "openapi.json", Req())
    assert "Content-Length" not in res.headers  # (decompressed: its size unknown)
    res.body.close()


def test_accept_encoding_parsing():
    from sensorbox.device.http.static import accepts_gzip

    for h in ("gzip", "GZip", "deflate, gzip", "*", "gzip;q=1", "gzip; q=0.001", "br;q=1, gzip;q=0.5"):
        assert accepts_gzip(Req(h)), h
    for h in (None, "", "identity", "deflate, br", "gzip;q=0", "gzip; q=0.000", "*;q=0", "xgzip"):
        assert not accepts_gzip(Req(h)), h
