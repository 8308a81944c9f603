"""First boot without credentials, on a simulated ESP32 (the real app, esp32 platform, board doubles): the WPA2
set-up access point, the captive portal's DNS responder answering real DNS queries from CPython, the answers to
the OS connectivity probes, and the set-up page driven in headless Chromium (desktop and phone) through scan ->
credentials -> "connected", then the Wi-Fi card of the web UI's Health page."""

import json
import os
import struct

import pytest
from fielddev import FieldDevice, ui_login
from test_browser_ui import chromium  # noqa: F401 - the chromium fixture (all its users: one unit in a parallel run)

from conftest import ADMIN_PASSWORD

pytestmark = pytest.mark.e2e  # the simulated ESP32's whole app (fielddev.py)

ARTIFACTS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                         "test-artifacts")
APS = [{"ssid": "home", "key": "correct-horse", "rssi": -55, "channel": 6, "security": 3, "ip": "10.0.0.7",
        "bssid": "a0b1c2d3e4f5"},
       {"ssid": "neighbour", "key": "whatever99", "rssi": -81, "channel": 11, "security": 4},
       {"ssid": "cafe", "key": "", "rssi": -70, "channel": 1, "security": 0}]
QUIET = {"time.ntp_host": "off", "accel.enabled": False, "mic.enabled": False}


@pytest.fixture
def fresh(tmp_path):
    d = FieldDevice(tmp_path, aps=APS, config=QUIET)
    yield d
    d.stop()


def _wait_status(dev, pred, timeout=20):
    import time

    t0 = time.time()
    while time.time() - t0 < timeout:
        s = dev.get("/api/status", auth=False).json()
        if pred(s):
            return s
        time.sleep(0.2)
    raise AssertionError("status never matched: {}\n{}".format(s, dev.output()[-2000:]))


def test_first_boot_opens_a_wpa2_access_point_with_a_dns_responder_and_probe_answers(fresh):
    dev = fresh
    s = _wait_status(dev, lambda s: (s.get("wifi") or {}).get("setup_ap"))
    ap = s["wifi"]["setup_ap"]
    assert s["wifi"]["state"] == "setup" and ap["ssid"].startswith("sensorbox-") and ap["ip"] == "192.168.4.1"
    with open(os.path.join(dev.data_dir, "ap.json")) as f:
        pw = json.load(f)["ap_password"]
    console = dev.output()
    assert "set-up Wi-Fi: {}  password: {}".format(ap["ssid"], pw) in console  # on the serial console
    assert pw not in open(os.path.join(dev.data_dir, "log.txt")).read() if os.path.exists(
        os.path.join(dev.data_dir, "log.txt")) else True
    assert pw not in json.dumps(dev.status())  # nor in the API
    # DNS: every name -> the access point's address, over real UDP from CPython
    for name in ("connectivitycheck.gstatic.com", "captive.apple.com", "www.msftconnecttest.com", "x.y.z.example"):
        r = dev.dns_query(name, ident=0xBEEF)
        assert r is not None, dev.output()[-2000:]
        ident, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", r[:12])
        assert ident == 0xBEEF and flags & 0x8000 and flags & 0xF == 0 and (qd, an) == (1, 1)
        assert r[-4:] == bytes((192, 168, 4, 1)) and struct.unpack("!HHIH", r[-14:-4])[0:2] == (1, 1)
    r = dev.dns_query("example.com", qtype=28)  # AAAA: no record (the phone uses the IPv4 answer)
    assert struct.unpack("!HHHHHH", r[:12])[3] == 0 and struct.unpack("!HHHHHH", r[:12])[1] & 0xF == 0
    assert dev.dns_query("garbage") is not None
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sk:  # not a query: dropped, and the responder lives on
        sk.sendto(b"\x00\x01junk", ("127.0.0.1", dev.dns_port))
    assert dev.dns_query("again.example") is not None
    # the OS probes are sent to the set-up page
    import http.client

    for path in ("/generate_204", "/hotspot-detect.html", "/connecttest.txt", "/ncsi.txt", "/canonical.html"):
        c = http.client.HTTPConnection("127.0.0.1", dev.port, timeout=10)
        c.request("GET", path, headers={"Host": "connectivitycheck.gstatic.com"})
        r = c.getresponse()
        assert r.status == 302 and r.getheader("Location") == "http://192.168.4.1/setup", (path, r.status)
        c.close()
    page = dev.get("/setup", auth=False)  # (a client that does not say it accepts gzip gets it plain)
    assert page.status == 200 and b"Connect this sensorbox to Wi-Fi" in page.body


def test_setup_api_tests_before_saving_and_never_returns_credentials(fresh):
    dev = fresh
    _wait_status(dev, lambda s: (s.get("wifi") or {}).get("state") == "setup")
    st = dev.get("/api/wifi", auth=False).json()
    assert st["first"] is True and st["networks"] == []
    scan = dev.get("/api/wifi/scan", auth=False).json()
    assert [n["ssid"] for n in scan] == ["home", "cafe", "neighbour"]  # strongest first
    assert scan[0]["security"] == "WPA2" and scan[1]["security"] == "open"
    bad = dev.post("/api/wifi", {"ssid": "home", "password": "wrong-horse", "admin_password": "new-admin-pw"},
                   auth=False)
    assert bad.status == 400 and bad.json()["field"] == "password" and "wrong password" in bad.json()["error"]
    assert not os.path.exists(os.path.join(dev.data_dir, "wifi.json"))  # not saved
    r = dev.post("/api/wifi", {"ssid": "home", "password": "correct-horse"}, auth=False)
    assert r.status == 400 and r.json()["field"] == "admin_password"
    r = dev.post("/api/wifi", {"ssid": "home", "password": "x"}, auth=False)
    assert r.status == 400 and r.json()["field"] == "password"
    r = dev.request("POST", "/api/wifi", b"ssid=home", auth=False, headers={"Content-Type": "text/plain"})
    assert r.status == 415 and r.json()["field"] == "Content-Type"
    # a method a set-up path does not have: 405 with the OpenAPI document's Allow (http/refuse.py), on a board too
    for method, path, allow in (("DELETE", "/api/wifi", "GET, HEAD, POST, OPTIONS"),
                                ("POST", "/api/wifi/scan", "GET, HEAD, OPTIONS"), ("PUT", "/setup", "GET, HEAD, OPTIONS")):
        r = dev.request(method, path, b"{}" if method != "DELETE" else None, auth=False)
        assert r.status == 405 and r.headers["Allow"] == allow, (method, path, r.status, r.body)
    assert dev.get("/api/wifi/nope", auth=False).status == 404
    ok = dev.post("/api/wifi", {"ssid": "home", "password": "correct-horse", "admin_password": "new-admin-pw",
                                 "name": "Bench 7"}, auth=False)
    assert ok.status == 200, ok.body
    d = ok.json()
    assert d["ip"] == "10.0.0.7" and d["url"] == "http://bench-7.local/" and d["address"] == "http://10.0.0.7/"
    # configured now: set-up needs the (new) admin password; the old one is gone
    assert dev.get("/api/wifi", auth=False).status == 401
    assert dev.get("/api/wifi", password=ADMIN_PASSWORD).status == 401
    import time

    time.sleep(0.6)  # (the failed login above locks logins out for 500 ms)
    st = dev.get("/api/wifi", password="new-admin-pw").json()
    assert st["first"] is False and st["networks"] == [{"ssid": "home", "password": "set"}]
    s = _wait_status(dev, lambda s: s["wifi"]["state"] == "up")
    assert s["wifi"]["ssid"] == "home" and s["wifi"]["ip"] == "10.0.0.7" and s["wifi"]["rssi"] == -55
    for path in ("/api/wifi", "/api/status", "/api/config"):
        body = dev.get(path, password="new-admin-pw").body
        assert b"correct-horse" not in body and b"new-admin-pw" not in body, path
    assert "correct-horse" not in dev.output()


@pytest.mark.parametrize("form", ["desktop", "phone"])
def test_setup_page_in_chromium(tmp_path, form, chromium):  # noqa: F811
    dev = FieldDevice(tmp_path, aps=APS, config=QUIET)
    try:
        _wait_status(dev, lambda s: (s.get("wifi") or {}).get("state") == "setup")
        os.makedirs(ARTIFACTS, exist_ok=True)
        ctx = chromium.new_context(viewport={"width": 1200, "height": 900}) if form == "desktop" else \
            chromium.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                                 device_scale_factor=2)
        try:
            page = ctx.new_page()
            page.goto(dev.url + "/setup")
            page.wait_for_selector("#nets li")
            assert page.locator("#nets li").count() == 3
            assert page.is_visible("#admin")  # first set-up: the admin password is asked for
            page.screenshot(path=os.path.join(ARTIFACTS, "setup-{}-scan.png".format(form)), full_page=True)
            if form == "phone":
                page.locator("#nets li").first.tap()
            else:
                page.locator("#nets li").first.click()
            assert page.input_value("#ssid") == "home"
            page.fill("#password", "wrong-horse")
            page.fill("#admin", "browser-admin-pw")
            page.fill("#name", "Field unit")
            page.click("#save")
            page.wait_for_function("document.getElementById('err-password').textContent.length > 0",
                                   timeout=20000)
            assert "wrong password" in page.text_content("#err-password")
            page.screenshot(path=os.path.join(ARTIFACTS, "setup-{}-error.png".format(form)), full_page=True)
            page.fill("#password", "correct-horse")
            page.click("#save")
            page.wait_for_selector("#done:not([hidden])", timeout=20000)
            assert page.text_content("#d-ssid") == "home"
            assert page.text_content("#d-url-t") == "http://field-unit.local/"
            assert page.text_content("#d-addr-t") == "http://10.0.0.7/"
            page.screenshot(path=os.path.join(ARTIFACTS, "setup-{}-connected.png".format(form)), full_page=True)
        finally:
            ctx.close()
        s = _wait_status(dev, lambda s: s["wifi"]["state"] == "up")
        assert s["wifi"]["hostname"] == "field-unit"
        assert dev.get("/api/config", password="browser-admin-pw").status == 200
        _wifi_card(dev, chromium, form)
    finally:
        dev.stop()


def _wifi_card(dev, browser, form):
    # the station, connected, on the web UI's Health page: the Wi-Fi card says its state, network, RSSI, address
    # and name (web/app.js showHealth); on the desktop it follows the RSSI as the signal weakens
    ctx = browser.new_context(viewport={"width": 1200, "height": 900}) if form == "desktop" else \
        browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        page = ctx.new_page()
        ui_login(page, dev.url + "/#health", "browser-admin-pw")
        card = page.locator('#hstatus .card:has(.k:text-is("Wi-Fi")) .s')
        card.wait_for()
        assert card.text_content() == "up · home · -55 dBm · 10.0.0.7 · http://field-unit.local/", \
            card.text_content()
        # (its sensors are turned off: said so, not "null Hz")
        assert page.text_content('#hstatus .card:has(.k:text-is("Sensor accel")) .s') == "off, received 0, dropped 0"
        page.screenshot(path=os.path.join(ARTIFACTS, "health-wifi-{}.png".format(form)), full_page=True)
        if form == "desktop":
            dev.air([dict(APS[0], rssi=-71)] + APS[1:])  # farther from the access point
            page.wait_for_function("document.querySelector('#hstatus').textContent.indexOf('home · -71 dBm') >= 0",
                                   timeout=30000)
    finally:
        ctx.close()
