"""host/client.py: what a device URL may be, and that a malformed one is refused with DeviceError (a one-line
error from the commands), never a traceback."""

import http.server
import subprocess
import sys
import threading

import pytest

from sensorbox.host import client


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:abc", "http://127.0.0.1:99999", "http://127.0.0.1:-1", "127.0.0.1:abc", "http://:8080",
    "http://", "", "ftp://127.0.0.1", "http://[::1", "http://my host:8080", "http://host\n:8080",
    "http://a@:8080", "http:///x",
])
def test_a_malformed_url_is_refused_saying_so(url):
    with pytest.raises(client.DeviceError) as e:
        client.Client(url, password="x")
    assert "is not a device URL" in str(e.value) and "http://127.0.0.1:8080" in str(e.value), str(e.value)


@pytest.mark.parametrize("url,base", [
    ("127.0.0.1:8080", "http://127.0.0.1:8080"),
    ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
    ("http://admin:pw@box.local", "http://box.local"),
    ("http://[::1]:8080", "http://[::1]:8080"),
    ("https://box.example:8443/sb", "https://box.example:8443/sb"),
])
def test_good_urls_keep_their_host_and_port(url, base):
    c = client.Client(url, password="x")
    assert c.url == base


@pytest.mark.parametrize("cmd", [
    ["pull", "http://127.0.0.1:abc", "--out", "{tmp}/d", "--password", "x"],
    ["model", "info", "http://127.0.0.1:99999", "--password", "x"],
    ["train", "excerpt", "--out", "{tmp}/m", "--push", "http://127.0.0.1:abc", "--password", "x"],
])
def test_commands_say_a_bad_url_in_one_line(tmp_path, cmd):
    r = subprocess.run([sys.executable, "-m", "sensorbox.host.cli"] + [c.format(tmp=tmp_path) for c in cmd],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    assert "is not a device URL" in r.stderr, r.stderr


def test_https_to_a_plain_http_device_says_what_to_try():
    srv = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        c = client.Client("https://127.0.0.1:{}".format(srv.server_port), password="x", timeout=5)
        with pytest.raises(client.DeviceError) as e:
            c.json("/api/status")
        assert "TLS" in str(e.value) and "http://127.0.0.1:{}".format(srv.server_port) in str(e.value), str(e.value)
    finally:
        srv.shutdown()
        srv.server_close()
