"""The station service: keeps an ESP32 on Wi-Fi for as long as it runs (``wifi`` in the supervisor).

The ESP32's network life is in ``net/`` (a package without ``__init__``: on flash every file takes a whole 4 KB
block): this module stays loaded; ``portal`` (the set-up access point, its captive portal, the NTP query) and
``setup_http`` (the set-up page's routes) load while used.

- The hostname (``network.hostname``: DHCP and mDNS, which answers ``<hostname>.local``) is set from
  ``device.name`` before the interface first comes up (``hostname``).
- Known networks come from ``wifi.json`` in the data directory: ``[{"ssid", "password"}, ...]`` (or one
  ``{"ssid", "password"}``), newest first, at most ``MAX_NETWORKS``. With one known network the station
  connects to it; with several it scans and tries those in range, strongest first.
- A lost or failed connection is retried with a backoff doubling from 2 s to 120 s, with jitter
  (devices that lost the same access point do not come back in step).
- Without credentials, or when no connection came for ``wifi.fallback_s``, the set-up access point opens
  (``net/portal.py``, loaded only then): the station keeps trying meanwhile, and the access point closes
  ``grace_ms`` after the station is up again (so the set-up page can still say where the device went).
- At each connection and every 6 hours the clock is set by NTP (``portal.query``, loaded for it).

Sampling and storing never wait for any of this: every wait is an ``await``. The state, network, address, RSSI
and counters are in ``/api/status`` -> ``wifi`` (``status``).
"""

import random
import time

import asyncio
from micropython import const

from sensorbox.device import lazy

MAX_NETWORKS = const(5)
CONNECT_MS = const(15000)  # one connection attempt at most
_POLL_MS = const(200)  # the link's status while connecting
NTP_EVERY_MS = const(6 * 3600000)  # NTP again after this long while connected
_PORTAL = const("sensorbox.device.net.portal")
_FILES = const("sensorbox.device.files")
_RECOVER = const("sensorbox.device.store.recover")
REASONS = {201: "no access point found", 202: "wrong password", 203: "association failed",
            204: "handshake timeout", 200: "beacon timeout"}


def hostname(name, device_id):
    """The network name for ``device.name``: lower case letters, digits and '-' (at most 32); the default name
    gets the id's last 4 digits so that two new devices do not answer the same ``.local`` name."""
    out = bytearray()
    for c in name.lower().encode():  # (bytes: a loop over a str interns each character as a name, for good)
        if 97 <= c <= 122 or 48 <= c <= 57:  # a-z, 0-9
            out.append(c)
        elif out and out[-1] != 45:  # "-"
            out.append(45)
    h = out.decode().strip("-")[:32] or "sensorbox"
    if h == "sensorbox":
        h = "sensorbox-" + device_id[-4:]
    return h


def load_networks(data_dir, log):
    """The known networks, [(ssid, password), ...] newest first; [] when there are none or the file is
    unreadable (``device/files.py``: it is then set aside as ``wifi.json.bad`` and reported, and the set-up access
    point opens)."""
    v = lazy.call(_FILES, "load_json", data_dir + "/wifi.json", log, "wifi_ok")
    return v[:MAX_NETWORKS] if v is not None else []


class Station:
    """The service (``run``) and its figures (``status``). ``hold``: a set-up test owns the radio for now."""

    state = "off"  # "connecting", "up", "down" (waiting to retry), "setup" (no credentials)
    ssid = ip = rssi = last_error = None
    connects = failures = ntp_syncs = 0
    hold = False
    portal = None  # the set-up access point while it is open (net/portal.py)
    # timings (class attributes: tests make them short)
    backoff_ms = 2000  # the first wait before a retry
    up_ms = 2000  # the link's status (and RSSI) is read this often while up
    grace_ms = 30000  # the set-up access point stays open this long after the station is up
    connect_ms = CONNECT_MS
    retry_max_ms = 120000  # the longest wait between attempts

    def __init__(self, device, network):
        self.d = device
        self.net = network
        self.hostname = hostname(device.config.get("device.name"), device.device_id)
        self.up_since = None
        self.down_since = time.ticks_ms()
        self.retry_ms = 0
        self.ntp_at = None
        self.sta = None
        self.lock = asyncio.Lock()  # the radio: a connection attempt at a time (the service's or a set-up test)

    def status(self):
        p = self.portal
        return {"state": self.state, "ssid": self.ssid, "ip": self.ip, "rssi": self.rssi,
                "hostname": self.hostname, "url": "http://{}.local/".format(self.hostname),
                "connects": self.connects, "failures": self.failures, "last_error": self.last_error,
                "retry_ms": self.retry_ms, "setup_ap": p.status() if p is not None else None,
                "ntp_syncs": self.ntp_syncs}

    async def run(self):
        net = self.net
        cfg = self.d.config
        self.hostname = hostname(cfg.get("device.name"), self.d.device_id)
        net.hostname(self.hostname)  # before the interface comes up: mDNS starts with the first interface
        sta = self.sta = net.WLAN(net.STA_IF)
        sta.active(True)
        fails = 0
        while True:
            if sta.isconnected():
                await self._up(sta)
                fails = 0
                continue
            if self.state == "up":
                self.d.log.warning("net", "wifi lost ({})".format(self.ssid))
                self.state = "down"
                self.ip = self.rssi = None
                self.down_since = time.ticks_ms()
            nets = load_networks(self.d.platform.data_dir, self.d.log)
            if not nets:
                self.state = "setup"
                self._open_portal("no Wi-Fi credentials")
                await asyncio.sleep_ms(1000)
                continue
            if self.hold:
                await asyncio.sleep_ms(_POLL_MS)
                continue
            if await self._connect(sta, nets):
                continue
            fails += 1
            self.failures += 1
            fb = cfg.get("wifi.fallback_s")
            if fb and time.ticks_diff(time.ticks_ms(), self.down_since) >= fb * 1000:
                self._open_portal("no connection for {} s".format(fb))
            wait = min(self.backoff_ms << min(fails - 1, 12), self.retry_max_ms)
            wait = wait // 2 + random.getrandbits(16) % (wait // 2 + 1)  # jitter: half to all of it
            self.state = "down"
            self.retry_ms = wait
            end = time.ticks_add(time.ticks_ms(), wait)
            while time.ticks_diff(end, time.ticks_ms()) > 0 and not self.hold:
                await asyncio.sleep_ms(min(1000, max(1, time.ticks_diff(end, time.ticks_ms()))))
            self.retry_ms = 0

    async def _connect(self, sta, nets):
        # one round over the known networks in range, strongest first; True once one is up
        if len(nets) > 1:
            seen = {}
            try:
                for ap in sta.scan():  # (blocks the loop ~1-2 s on a board: only while offline)
                    s = ap[0].decode("utf-8", "replace") if isinstance(ap[0], bytes) else ap[0]
                    if s and ap[3] > seen.get(s, -999):
                        seen[s] = ap[3]
            except OSError as e:
                self.last_error = "scan failed: {}".format(e)
            cands = [n for n in nets if n[0] in seen]
            cands.sort(key=lambda n: -seen[n[0]])
            if not cands:
                self.last_error = "none of the {} known networks in range".format(len(nets))
                return False
        else:
            cands = nets
        for ssid, pw in cands:
            self.state = "connecting"
            self.ssid = ssid
            async with self.lock:
                st = await attempt(sta, self.net, ssid, pw, self.connect_ms)
            if st == self.net.STAT_GOT_IP:
                return True
            self.last_error = "{}: {}".format(ssid, REASONS.get(st, "status {}".format(st)))
            self.d.log.warning("net", "wifi {}".format(self.last_error))
            if self.hold:
                return False
        return False

    async def _up(self, sta):
        if self.state != "up":
            self.state = "up"
            self.connects += 1
            self.last_error = None
            self.ip = sta.ifconfig()[0]
            try:
                self.ssid = sta.config("ssid")  # (a set-up test may have made the connection)
            except (OSError, ValueError):
                pass
            self.up_since = time.ticks_ms()
            self.d.log.info("net", "wifi up: {} on {} (http://{}.local/)".format(self.ip, self.ssid, self.hostname))
            self.ntp_at = time.ticks_ms()  # now
        try:
            self.rssi = sta.status("rssi")
        except (OSError, ValueError):
            pass
        now = time.ticks_ms()
        if self.ntp_at is not None and time.ticks_diff(now, self.ntp_at) >= 0:
            await self._ntp()
            self.ntp_at = time.ticks_add(now, NTP_EVERY_MS)
        if self.portal is not None and time.ticks_diff(now, self.up_since) >= self.grace_ms and not self.hold:
            self._close_portal()
        await asyncio.sleep_ms(self.up_ms)

    async def _ntp(self):
        host = self.d.config.get("time.ntp_host") or "pool.ntp.org"
        if host == "off":
            return
        try:
            t = await lazy.load(_PORTAL).query(host)
        except Exception as e:  # OSError, TimeoutError, a bad reply: next time
            self.d.log.warning("net", "ntp {}: {}".format(host, e))
            t = None
        finally:
            if self.portal is None:  # (the set-up access point's module: the same)
                lazy.unload(_PORTAL)
        if t is not None:
            add = self.d.platform.set_time(t)
            self.ntp_syncs += 1
            s = self.d.store
            if add and s is not None and s._shifts and s._shifts[-1][2] is None:  # stored while it was unknown
                lazy.call(_RECOVER, "resync", s, add)

    def _open_portal(self, why):
        if self.portal is None:
            self.portal = lazy.load(_PORTAL).Portal(self.d, self.net)
            self.portal.open(why)

    def _close_portal(self):
        p = self.portal
        self.portal = None
        if p is not None:
            p.close()
        lazy.unload(_PORTAL)


async def attempt(sta, net, ssid, password, timeout_ms):
    """Connect ``sta`` to ``ssid``; the final status: ``STAT_GOT_IP``, a failure (wrong password, no access point,
    ...) or ``STAT_CONNECTING`` when ``timeout_ms`` passed first (then disconnected)."""
    sta.disconnect()
    sta.connect(ssid, password)
    t0 = time.ticks_ms()
    while True:
        await asyncio.sleep_ms(_POLL_MS)
        st = sta.status()
        if st == net.STAT_GOT_IP:
            return st
        if st != net.STAT_CONNECTING and st != net.STAT_IDLE:
            sta.disconnect()
            return st
        if time.ticks_diff(time.ticks_ms(), t0) >= timeout_ms:
            sta.disconnect()
            return net.STAT_CONNECTING
