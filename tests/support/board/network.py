"""Test double of MicroPython's ``network`` module as the ESP32 port has it, for the unix port: ``WLAN`` (station
and access point), ``hostname``, the constants. It follows docs/library/network.rst and network.WLAN.rst and
ports/esp32/network_wlan.c (MicroPython 1.29), and its names and signatures are checked against PyPI's
``micropython-esp32-esp32-generic-stubs`` by tests/host/test_board_doubles.py.

The radio is simulated. The access points around the board are in ``air.json`` of the board directory
(``_board``): ``{"aps": [{"ssid", "key", "rssi", "channel", "security", "hidden", "bssid" (hex), "ip"}],
"connect_ms": 300}``, read again while the board runs, so a test can move access points away, weaken them or
bring them back. As on the board: there is one station and one access-point interface (``WLAN(id)`` returns the
same object each time); a station must be active to scan or connect; a connection takes ``connect_ms`` and ends
in ``STAT_GOT_IP``, ``STAT_WRONG_PASSWORD`` (202) or ``STAT_NO_AP_FOUND`` (201); a link whose access point has
gone is lost and, while a connection is requested, is retried by the driver (``STAT_CONNECTING``) until the
access point is back; mDNS takes the hostname the first time an interface is activated (``mdns_hostname``).
What the doubles saw is kept for the tests: ``log`` (calls), ``scans``.
"""

import time

import _board

STA_IF = 0
AP_IF = 1
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_BEACON_TIMEOUT = 200
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202
STAT_ASSOC_FAIL = 203
STAT_CONNECT_FAIL = 203
STAT_HANDSHAKE_TIMEOUT = 204
AUTH_OPEN = 0
AUTH_WEP = 1
AUTH_WPA_PSK = 2
AUTH_WPA2_PSK = 3
AUTH_WPA_WPA2_PSK = 4

_hostname = "espressif"  # the port's default (MICROPY_PY_NETWORK_HOSTNAME_DEFAULT)
mdns_hostname = None  # what mDNS answers to: the hostname when an interface first came up
log = []  # ("hostname", name), ("active", if, bool), ("connect", ssid), ("config", if, keys), ...
scans = 0
_air = None
_air_read = None


def _aps():
    global _air, _air_read
    now = time.ticks_ms()
    if _air is None or time.ticks_diff(now, _air_read) > 50:
        _air = _board.load("air.json", {})
        _air_read = now
    return _air.get("aps", ())


def _find(ssid):
    for ap in _aps():
        if ap.get("ssid") == ssid:
            return ap
    return None


def hostname(name=None):
    """Get or set the hostname (DHCP and mDNS) of every interface."""
    global _hostname
    if name is None:
        return _hostname
    if not isinstance(name, str):
        raise TypeError("can't convert to str")
    if len(name) > 32:  # MICROPY_PY_NETWORK_HOSTNAME_MAX_LEN
        raise ValueError("hostname too long")
    _hostname = name
    log.append(("hostname", name))


def country(code=None):
    if code is None:
        return "XX"


def ipconfig(*args, **kwargs):
    if args and args[0] == "dns":
        return "192.168.1.1"
    return None


class WLAN:
    IF_STA = 0
    IF_AP = 1
    SEC_OPEN = 0
    SEC_WEP = 1
    SEC_WPA = 2
    SEC_WPA2 = 3
    SEC_WPA_WPA2 = 4
    PM_NONE = 0
    PM_PERFORMANCE = 1
    PM_POWERSAVE = 2
    _if = {}

    def __new__(cls, interface_id=0):
        if interface_id not in (STA_IF, AP_IF):
            raise ValueError("invalid WLAN interface identifier")
        o = WLAN._if.get(interface_id)
        if o is None:
            o = object.__new__(cls)
            o._id = interface_id
            o._active = False
            o._cfg = {"ssid": "ESP_1A2B3C" if interface_id == AP_IF else "", "key": "", "channel": 1,
                      "security": AUTH_OPEN if interface_id == AP_IF else AUTH_WPA2_PSK, "hidden": False,
                      "reconnects": -1, "txpower": 20, "pm": 1,
                      "mac": bytes((0x24, 0x0A, 0xC4, 0x12, 0x34, 0x56 + interface_id))}
            o._want = None  # (ssid, key, ticks of the attempt) while a connection is requested
            o._up = None  # the access point we are connected to
            WLAN._if[interface_id] = o
        return o

    def __init__(self, interface_id=0):
        pass

    def active(self, is_active=None):
        global mdns_hostname
        if is_active is None:
            return self._active
        is_active = bool(is_active)
        if is_active and not self._active and mdns_hostname is None:
            mdns_hostname = _hostname
        if not is_active:
            self._want = self._up = None
        self._active = is_active
        log.append(("active", self._id, is_active))

    def _need(self):
        if not self._active:
            raise OSError("Wifi Not Started")

    def connect(self, ssid=None, key=None, *, bssid=None):
        if self._id != STA_IF:
            raise OSError("STA required")
        self._need()
        if ssid is None:
            ssid = self._cfg["ssid"]
        if bssid is not None and len(bssid) != 6:
            raise ValueError()
        self._cfg["ssid"] = ssid
        self._want = (ssid, key or "", time.ticks_ms())
        self._up = None
        log.append(("connect", ssid))

    def disconnect(self):
        self._want = self._up = None
        log.append(("disconnect",))

    def _link(self):
        # what the driver reached by now: (status, access point or None)
        if self._id != STA_IF or not self._active or self._want is None:
            return STAT_IDLE, None
        ssid, key, t0 = self._want
        ap = _find(ssid)
        if self._up is not None:
            if ap is not None and ap.get("key", "") == key:
                return STAT_GOT_IP, ap
            self._up = None  # its access point went away: the driver retries from now on
            self._want = (ssid, key, time.ticks_ms())
            return STAT_CONNECTING, None
        ms = _air.get("connect_ms", 300) if _air else 300
        if time.ticks_diff(time.ticks_ms(), t0) < ms:
            return STAT_CONNECTING, None
        if ap is None:
            return STAT_NO_AP_FOUND, None
        if ap.get("key", "") != key:
            return STAT_WRONG_PASSWORD, None
        self._up = ap
        return STAT_GOT_IP, ap

    def status(self, param=None):
        if param is None:
            if self._id != STA_IF:
                return None
            return self._link()[0]
        if param == "rssi":
            if self._id != STA_IF:
                raise OSError("STA required")
            ap = self._link()[1]
            if ap is None:
                raise OSError(-12301)  # ESP_ERR_WIFI_NOT_CONNECT
            return ap.get("rssi", -60)
        if param == "stations":
            if self._id != AP_IF:
                raise OSError("AP required")
            return [(bytes(6), "192.168.4.2")] * _board.load("air.json", {}).get("ap_clients", 0)
        raise ValueError("unknown status param")

    def isconnected(self):
        if self._id == AP_IF:
            return self._active and _board.load("air.json", {}).get("ap_clients", 0) > 0
        return self._link()[0] == STAT_GOT_IP

    def scan(self):
        global scans
        if not WLAN(STA_IF)._active:
            raise OSError("STA must be active")
        scans += 1
        out = []
        for ap in _aps():
            hidden = 1 if ap.get("hidden") else 0
            out.append((b"" if hidden else ap["ssid"].encode(), bytes.fromhex(ap.get("bssid", "000000000000")),
                        ap.get("channel", 1), ap.get("rssi", -60), ap.get("security", AUTH_WPA2_PSK), hidden))
        return out

    def ifconfig(self, ip_mask_gateway_dns=None):
        if ip_mask_gateway_dns is not None:
            self._cfg["ifconfig"] = tuple(ip_mask_gateway_dns)
            return None
        if self._id == AP_IF:
            return self._cfg.get("ifconfig") or ("192.168.4.1", "255.255.255.0", "192.168.4.1", "0.0.0.0")
        ap = self._link()[1]
        if ap is None:
            return ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")
        ip = ap.get("ip", "192.168.1.50")
        gw = ip[:ip.rfind(".")] + ".1"
        return (ip, "255.255.255.0", gw, gw)

    def ipconfig(self, *args, **kwargs):
        if args and args[0] == "addr4":
            c = self.ifconfig()
            return (c[0], c[1])
        return None

    def config(self, *args, **kwargs):
        if args and kwargs:
            raise TypeError("either pos or kw args are allowed")
        if args:
            if len(args) != 1:
                raise TypeError("can query only one param")
            p = {"essid": "ssid", "password": "key", "authmode": "security", "dhcp_hostname": "hostname"}.get(
                args[0], args[0])
            if p == "hostname":
                return _hostname
            if p == "key":
                raise ValueError("unknown config param")  # (the port never reads a key back)
            if p not in self._cfg:
                raise ValueError("unknown config param")
            return self._cfg[p]
        for k in kwargs:
            p = {"essid": "ssid", "password": "key", "authmode": "security", "dhcp_hostname": "hostname"}.get(k, k)
            if p == "hostname":
                hostname(kwargs[k])
                continue
            if p not in self._cfg and p not in ("max_clients", "protocol", "bandwidth"):
                raise ValueError("unknown config param")
            self._cfg[p] = kwargs[k]
        if self._id == AP_IF and self._cfg["security"] != AUTH_OPEN and len(self._cfg["key"]) < 8:
            self._cfg["security"] = AUTH_OPEN
            raise OSError(-12294)  # ESP_ERR_WIFI_PASSWORD: WPA2 needs 8 to 63 characters
        log.append(("config", self._id, tuple(sorted(kwargs))))
        return None


def _reset():
    """Tests: forget the interfaces, as a reset of the board does."""
    global _hostname, mdns_hostname, scans, _air
    WLAN._if = {}
    _hostname = "espressif"
    mdns_hostname = None
    scans = 0
    _air = None
    del log[:]
