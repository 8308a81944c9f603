"""``sensorbox ui URL``: the web UI's Analysis page for a device, served from this computer with its runtime
(MicroPython WebAssembly and the analysis modules), for boards whose flash has no room for it (docs/analysis.md "Analysis in
the browser"). The page talks to the device's API directly: the device must allow this page's origin
(``http.cors_origin``, which ``--allow-origin`` sets), and the page authenticates with its own Authorization header
(an API token or the admin password, never a cookie)."""

import gzip
import json
import os
import re
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sensorbox.host import client, webassets

DEFAULT_PORT = 8765
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css", ".json": "application/json",
         ".wasm": "application/wasm", ".bin": "application/octet-stream"}

EPILOG = """examples:
  sensorbox ui http://192.168.1.7 --token sb_3_...        open the Analysis page of that device in the browser
  sensorbox ui http://192.168.1.7 --allow-origin          first let this page's origin use the device's API
  sensorbox ui http://127.0.0.1:8080 --port 9000 --no-browser

The page is served on http://127.0.0.1:PORT (8765 unless --port) and calls the device's API from there, so the
device must allow that origin: its setting http.cors_origin must be exactly http://127.0.0.1:PORT (--allow-origin
sets it, with the admin password or an admin token; or set it in the device's Settings). With "*" the page can
read but not store labels. A read token can analyse; accepting proposed labels needs an admin token or the
password. The credential goes to the browser in the page address's fragment (never sent to a server, kept for the
tab only) and is not printed; with --no-browser the page asks for it.
"""


def build_www(out=None):
    """The UI with the Analysis page's runtime, gzipped as on a device (``webassets.build(www, analysis=True)``)."""
    www = out or os.path.join(webassets.REPO, "build", "ui", "www")
    os.makedirs(www, exist_ok=True)
    webassets.build(www, analysis=True)
    return www


class _Handler(BaseHTTPRequestHandler):
    www = None
    server_version = "sensorbox-ui"

    def log_message(self, fmt, *args):  # quiet: the terminal is for what the user must know
        pass

    def do_HEAD(self):
        self.do_GET(head=True)

    def do_GET(self, head=False):
        path = urllib.parse.urlsplit(self.path).path
        name = "index.html" if path == "/" else path[8:] if path.startswith("/static/") else None
        if name is None or not re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}", name) or ".." in name:
            return self._send(404, b"not found\n", "text/plain")
        p = os.path.join(self.www, name + ".gz")
        if not os.path.isfile(p):
            return self._send(404, b"not found\n", "text/plain")
        with open(p, "rb") as f:
            body = f.read()
        gz = "gzip" in (self.headers.get("Accept-Encoding") or "")
        self._send(200, body if gz else gzip.decompress(body), TYPES.get(os.path.splitext(name)[1],
                   "application/octet-stream"), gz, head)

    def _send(self, code, body, ctype, gz=False, head=False):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        if gz:
            self.send_header("Content-Encoding", "gzip")
        self.end_headers()
        if not head:
            self.wfile.write(body)


def serve(www, host="127.0.0.1", port=DEFAULT_PORT):
    """An HTTP server for ``www`` (call ``serve_forever``; ``server_address`` has the port when ``port`` is 0)."""
    handler = type("Handler", (_Handler,), {"www": www})
    return ThreadingHTTPServer((host, port), handler)


def cors_state(url, origin):
    """What the device at ``url`` lets a page from ``origin`` do: "write" (its configured origin), "read" ("*") or
    None, from an (unauthenticated) preflight as a browser sends it."""
    req = urllib.request.Request(url + "/api/labels", method="OPTIONS", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            h = r.headers
    except urllib.error.HTTPError as e:
        h = e.headers
    allowed = h.get("Access-Control-Allow-Origin")
    if allowed == origin and "POST" in (h.get("Access-Control-Allow-Methods") or ""):
        return "write"
    return "read" if allowed == "*" else None


def page_url(local, device, auth=None):
    """The page's address on this computer for ``device``; ``auth`` (an Authorization value) in the fragment."""
    u = "{}/?device={}#analysis".format(local, urllib.parse.quote(device, safe=":/"))
    return u + ("&auth=" + urllib.parse.quote(auth, safe="") if auth else "")


def cmd_ui(args):
    try:
        dev = client.Client(args.url, args.password, args.token, ask=not args.no_browser)
        st = dev.json("/api/status")
        print("device {} ({}) at {}".format(st["device"]["name"], st["device"]["id"], dev.url))
        if dev.auth:
            print("credential: {} ({})".format(dev.kind, dev.json("/api/session").get("scope")))
        www = build_www()
        srv = serve(www, args.host, args.port)
    except client.DeviceError as e:
        sys.exit("error: {}".format(e))
    except webassets.WebBuildError as e:
        sys.exit("error: {}".format(e))
    except OSError as e:
        sys.exit("error: cannot listen on {}:{} ({}); try --port".format(args.host, args.port, e.strerror))
    host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    local = origin = "http://{}:{}".format(host, srv.server_address[1])
    try:
        state = cors_state(dev.url, origin)
        if state != "write" and args.allow_origin:
            if not dev.auth:
                raise client.DeviceError("--allow-origin needs the admin password or an admin token")
            old = dev.json("/api/config")["config"].get("http.cors_origin")
            dev.json("/api/config", "PUT", json.dumps({"http.cors_origin": origin}).encode())
            print("set the device's http.cors_origin to {}{}".format(origin, " (was {!r})".format(old) if old else ""))
            state = cors_state(dev.url, origin)
    except client.DeviceError as e:
        srv.server_close()
        sys.exit("error: {}".format(e))
    if state is None:
        print("warning: the device does not let this page's origin use its API, so the page cannot load data.\n"
              "  set its http.cors_origin to {o}: sensorbox ui {u} --allow-origin (admin), or\n"
              "  curl -u admin:PASSWORD -X PUT -d '{{\"http.cors_origin\": \"{o}\"}}' {u}/api/config".format(
                  o=origin, u=dev.url), file=sys.stderr)
    elif state == "read":
        print("note: the device lets any origin read (http.cors_origin \"*\"): accepting proposed labels needs "
              "http.cors_origin {} (--allow-origin)".format(origin), file=sys.stderr)
    print("sensorbox ui: the Analysis page of {} on {}  (Ctrl-C stops)".format(dev.url, page_url(local, dev.url)),
          flush=True)
    if not args.no_browser:
        import webbrowser

        threading.Timer(0.3, webbrowser.open, (page_url(local, dev.url, dev.auth),)).start()
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        print("sensorbox ui: stopped")
    finally:
        srv.server_close()
    return 0


def add_parser(sub):
    import argparse

    p = sub.add_parser("ui", help="serve a device's Analysis page (with MicroPython WebAssembly) from this computer",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("url", metavar="URL", help="the device, e.g. http://192.168.1.7 or http://127.0.0.1:8080")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="local port of the page (default %(default)s: "
                   "the device's http.cors_origin names it, so keep it)")
    p.add_argument("--host", default="127.0.0.1", help="address to serve the page on (default 127.0.0.1)")
    p.add_argument("--allow-origin", action="store_true", help="set the device's http.cors_origin to this page's "
                   "origin first (needs the admin password or an admin token)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser; print the address only")
    client.add_credential_args(p, "read")
    p.set_defaults(func=cmd_ui)
