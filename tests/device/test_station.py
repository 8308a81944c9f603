"""The station service (net/station.py) on the board doubles: hostname before the interface, known networks
strongest first, reconnection with backoff and jitter, the set-up access point without credentials and as a
fallback, NTP at connect and every 6 hours; the event loop never waits for any of it."""

import json
import os
import socket
import struct
import time

import asyncio

from sensorbox.device import supervisor  # noqa: F401 - resident in the app, imported before the rest as boot does

import _board
from devtest import StubConfig, quiet_log, tmpdir, until

BOARD = True


class _Plat:
    name = "esp32"
    dns_host = "127.0.0.1"
    dns_port = 0  # (set per test)
    www_dir = "/nonexistent/www"

    def __init__(self, data):
        self.data_dir = data
        self.times = []

    def set_time(self, ms):
        self.times.append(ms)
        return 5000  # (how far the clock moved forward: esp32.Platform.set_time)


class _Dev:
    store = None  # (none, as in safe mode; test_ntp_at_connect gives it one)

    def __init__(self, **cfg):
        cfg.setdefault("time__ntp_host", "off")
        self.config = StubConfig(**cfg)
        self.log = quiet_log()
        self.platform = _Plat(tmpdir("data"))
        self.device_id = "240ac412ab12"


def _air(aps, connect_ms=30):
    _board.save("air.json", {"aps": aps, "connect_ms": connect_ms})
    import network

    network._air = None


def _wifi(dev, nets):
    with open(dev.platform.data_dir + "/wifi.json", "w") as f:
        json.dump([{"ssid": s, "password": p} for s, p in nets], f)


def _station(dev):
    import network

    from sensorbox.device.net.station import Station

    network._reset()
    st = Station(dev, network)
    st.backoff_ms = 40
    st.up_ms = 20
    st.grace_ms = 100
    st.connect_ms = 300
    st.retry_max_ms = 5000
    return st


class _Ticker:
    """A task that wants to run every 5 ms, as the sampler does: it counts its turns."""

    def __init__(self):
        self.turns = 0
        self.task = asyncio.create_task(self.run())

    async def run(self):
        while True:
            await asyncio.sleep_ms(5)
            self.turns += 1


def test_hostname_rules():
    from sensorbox.device.net.station import hostname

    assert hostname("sensorbox", "240ac412ab12") == "sensorbox-ab12"
    assert hostname("Lab Bench #3", "x") == "lab-bench-3"
    assert hostname("Ünïcode!!", "240ac412ab12") == "n-code"
    assert len(hostname("a" * 60, "x")) == 32


async def test_hostname_before_interface_strongest_known_network_and_status():
    import network

    _air([{"ssid": "far", "key": "password1", "rssi": -85, "ip": "10.0.0.9"},
          {"ssid": "near", "key": "password2", "rssi": -48, "ip": "10.0.0.7"},
          {"ssid": "stranger", "key": "", "rssi": -30}])
    dev = _Dev(device__name="Bench 1")
    _wifi(dev, [("far", "password1"), ("near", "password2")])
    st = _station(dev)
    task = asyncio.create_task(st.run())
    await until(lambda: st.state == "up", 3000)
    log = network.log
    assert log.index(("hostname", "bench-1")) < log.index(("active", 0, True))
    assert network.mdns_hostname == "bench-1"
    s = st.status()
    assert s["ssid"] == "near" and s["ip"] == "10.0.0.7" and s["rssi"] == -48 and s["url"] == "http://bench-1.local/"
    assert [e for e in log if e[0] == "connect"] == [("connect", "near")]  # strongest known first, no other
    assert st.portal is None and s["setup_ap"] is None
    task.cancel()


async def test_reconnects_with_backoff_and_jitter_while_the_loop_runs_on():
    import network

    _air([{"ssid": "home", "key": "password1", "rssi": -60}])
    dev = _Dev(wifi__fallback_s=0)
    _wifi(dev, [("home", "password1")])
    st = _station(dev)
    tick = _Ticker()
    task = asyncio.create_task(st.run())
    await until(lambda: st.state == "up", 3000)
    _air([])  # the access point goes away
    await until(lambda: st.failures >= 4, 8000)
    assert st.state in ("down", "connecting") and st.ip is None and "no access point found" in st.last_error
    attempts = [e for e in network.log if e[0] == "connect"]
    assert len(attempts) >= 5
    # waits double from backoff_ms (40, 80, 160, ...), each cut to between half and all of it
    assert st.retry_ms == 0 or 40 <= st.retry_ms <= 5000
    waits = []
    for _ in range(6):
        await until(lambda: st.retry_ms > 0, 5000)
        waits.append(st.retry_ms)
        await until(lambda: st.retry_ms == 0, 5000)
    assert max(waits) <= 5000 and max(waits) >= 2 * min(waits), waits
    _air([{"ssid": "home", "key": "password1", "rssi": -70}])  # back
    await until(lambda: st.state == "up", 8000)
    assert st.connects == 2 and st.rssi == -70
    assert st.portal is None  # fallback off: no access point
    assert tick.turns > 20, tick.turns  # it ran on all along (every wait was an await)
    task.cancel()
    tick.task.cancel()


async def test_without_credentials_the_setup_access_point_opens_and_closes_once_connected():
    import network

    _air([{"ssid": "home", "key": "password1", "rssi": -60}])
    dev = _Dev()
    with open(dev.platform.data_dir + "/wifi.json", "w") as f:
        f.write("{not json")  # unreadable: set aside, the access point opens
    st = _station(dev)
    dev.platform.dns_port = 0
    task = asyncio.create_task(st.run())
    await until(lambda: st.portal is not None, 3000)
    assert st.state == "setup"
    assert os.stat(dev.platform.data_dir + "/wifi.json.bad")
    ap = network.WLAN(network.AP_IF)
    assert ap.active() and ap.config("ssid") == "sensorbox-ab12" and ap.config("security") == network.AUTH_WPA2_PSK
    with open(dev.platform.data_dir + "/ap.json") as f:
        pw = json.load(f)["ap_password"]
    assert len(pw) >= 8  # WPA2, never open; kept for the next boot
    assert pw not in str(dev.log.entries())  # on the console only
    assert st.status()["setup_ap"]["ssid"] == "sensorbox-ab12"
    _wifi(dev, [("home", "password1")])  # what the set-up page saves
    await until(lambda: st.state == "up", 3000)
    await until(lambda: st.portal is None, 3000)  # closed after the grace time
    assert not ap.active()
    task.cancel()


async def test_fallback_access_point_after_wifi_fallback_s_while_the_station_keeps_trying():
    import network

    _air([])
    dev = _Dev(wifi__fallback_s=1)
    _wifi(dev, [("home", "password1")])
    st = _station(dev)
    task = asyncio.create_task(st.run())
    await asyncio.sleep_ms(500)
    assert st.portal is None  # not yet
    await until(lambda: st.portal is not None, 4000)
    assert "no connection for 1 s" in st.portal.why and network.WLAN(network.AP_IF).active()
    n = st.failures
    await until(lambda: st.failures > n, 4000)  # still trying
    _air([{"ssid": "home", "key": "password1", "rssi": -60}])
    await until(lambda: st.state == "up", 8000)
    await until(lambda: st.portal is None, 3000)
    task.cancel()


def _ntp_socket():
    # a UDP socket on 127.0.0.1 for a test's NTP server, and its port
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(socket.getaddrinfo("127.0.0.1", 0)[0][-1])
    port = srv.getsockname()[1] if hasattr(srv, "getsockname") else None
    if port is None:  # (the unix port's sockets have no getsockname: pick a fixed free port)
        srv.close()
        srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        port = 40000 + (time.ticks_ms() % 20000)
        srv.bind(socket.getaddrinfo("127.0.0.1", port)[0][-1])
    srv.setblocking(False)
    return srv, port


async def _ntp_server(sock, t_s, queries=None):
    from sensorbox.device.net.portal import readable

    while True:
        await readable(sock)
        q, addr = sock.recvfrom(48)
        if queries is not None:
            queries.append(q)
        r = bytearray(48)
        r[0] = 0x24  # version 4, mode 4 (server)
        r[1] = 2
        struct.pack_into("!II", r, 40, t_s + 2208988800, 1 << 31)  # .5 s
        sock.sendto(r, addr)


async def test_ntp_at_connect():
    srv, port = _ntp_socket()
    server = asyncio.create_task(_ntp_server(srv, 1893456000))  # 2030-01-01
    _air([{"ssid": "home", "key": "password1", "rssi": -60}])
    dev = _Dev(time__ntp_host="127.0.0.1:{}".format(port))
    from sensorbox.device.store import core

    # (the store's clock: unknown since 1000000, then 5000 ms later once NTP set the time)
    dev.store = core.Store(tmpdir("store"), dev.log, lambda: 1005000 if dev.platform.times else 1000000)
    dev.store.configure(StubConfig())
    dev.store.open()
    dev.store._shifts = [[1000000, None, None]]  # (as recover.floor notes it)
    _wifi(dev, [("home", "password1")])
    st = _station(dev)
    task = asyncio.create_task(st.run())
    await until(lambda: st.ntp_syncs == 1, 3000)
    t = dev.platform.times[0]
    assert 1893456000500 <= t < 1893456000500 + 1000, t
    # what the store held while the time was unknown is placed 5000 ms later (store/recover.resync)
    assert dev.store._shifts[-1][2] == 5000 and dev.store.real(1000000) == 1005000, dev.store._shifts
    task.cancel()
    server.cancel()
    srv.close()


class _Later:
    """``time`` for the station module, with its ``ticks_ms`` moved ``ahead`` ms (six hours go by at once); it
    counts the reads (each turn of the station's loop while up reads it)."""

    def __init__(self):
        self.ahead = 0
        self.reads = 0
        self.ticks_add = time.ticks_add
        self.ticks_diff = time.ticks_diff

    def ticks_ms(self):
        self.reads += 1
        return time.ticks_add(time.ticks_ms(), self.ahead)


async def test_ntp_again_every_6_hours_while_connected():
    from sensorbox.device.net import station

    srv, port = _ntp_socket()
    queries = []
    server = asyncio.create_task(_ntp_server(srv, 1893456000, queries))
    _air([{"ssid": "home", "key": "password1", "rssi": -60}])
    dev = _Dev(time__ntp_host="127.0.0.1:{}".format(port))
    _wifi(dev, [("home", "password1")])
    st = _station(dev)
    later = station.time = _Later()
    try:
        task = asyncio.create_task(st.run())
        await until(lambda: st.ntp_syncs == 1, 3000)
        assert len(queries) == 1 and len(dev.platform.times) == 1

        async def turns(n):  # n more turns of the station's loop while up (each reads the clock once at least)
            r = later.reads
            await until(lambda: later.reads >= r + n, 3000)

        await turns(10)
        assert st.ntp_syncs == 1 and len(queries) == 1  # not at every turn
        later.ahead = station.NTP_EVERY_MS - 60000  # 5 h 59 min later: not yet
        await turns(10)
        assert st.ntp_syncs == 1 and len(queries) == 1
        later.ahead = station.NTP_EVERY_MS + 1000  # 6 hours after the first: again
        await until(lambda: st.ntp_syncs == 2, 3000)
        assert len(queries) == 2 and len(dev.platform.times) == 2 and st.state == "up"
        await turns(10)
        assert st.ntp_syncs == 2  # and then not again until 6 hours after that one
        later.ahead = 2 * station.NTP_EVERY_MS + 2000
        await until(lambda: st.ntp_syncs == 3, 3000)
        assert len(queries) == 3 and st.connects == 1  # (one connection all along)
        task.cancel()
    finally:
        station.time = time
        server.cancel()
        srv.close()
