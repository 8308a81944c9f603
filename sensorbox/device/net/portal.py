"""The device's small UDP protocols: the set-up access point with its captive portal's DNS responder, and the
SNTP query that sets the clock (``query``). Loaded only while the access point is open (``station`` opens it when
there are no Wi-Fi credentials or no connection came for ``wifi.fallback_s``) and for a time sync.

The access point is WPA2, ``sensorbox-XXXX`` (the device id's last 4 digits), never open: its password comes
from ``ap.json`` in the data directory (``sensorbox deploy --ap-password``), else it is made once at random and
kept there.
It is printed on the serial console each time the access point opens, never logged or sent by the API.

The DNS responder answers every A (and ANY) query with the access point's own address and every other type with
no record, so a phone that joins finds its connectivity probe (``generate_204``, ``hotspot-detect.html``,
``connecttest.txt``) answered by the device, which sends it to the set-up page (``setup_http``).
"""

import json
import os
import socket
import struct
import time

import asyncio
from asyncio import core  # type: ignore[attr-defined]  # (MicroPython's asyncio/core.py: its I/O queue)
from micropython import const

from sensorbox.device.supervisor import wait_for_ms  # (asyncio.wait_for_ms leaves a stray cancel behind)

_TTL = const(60)
_NTP_1970 = const(2208988800)  # seconds from 1900 (NTP's era 0) to 1970
_LETTERS = const("abcdefghjkmnpqrstuvwxyz23456789")  # no 0/o, 1/l/i: read off a serial console


def ap_password(data_dir):
    """The set-up access point's WPA2 password (8 to 63 characters), made and kept on first use."""
    try:
        with open(data_dir + "/ap.json") as f:
            pw = json.load(f).get("ap_password")
        if isinstance(pw, str) and 8 <= len(pw) <= 63:
            return pw
    except (OSError, ValueError, AttributeError):
        pass
    pw = "".join(_LETTERS[b % len(_LETTERS)] for b in os.urandom(12))
    with open(data_dir + "/ap.json", "w") as f:
        json.dump({"ap_password": pw}, f)
    return pw


def answer(q, ip):
    """The DNS reply to query ``q`` (bytes) pointing every name at ``ip`` (4 bytes); None for what is not a
    query (a reply, a packet too short or malformed), which is dropped."""
    if len(q) < 17 or q[2] & 0x80:
        return None
    opcode = (q[2] >> 3) & 0xF
    i = 12
    while True:  # the question's name: labels up to a zero byte (no compression in a question)
        if i >= len(q):
            return None
        n = q[i]
        if n == 0:
            break
        if n > 63:
            return None
        i += n + 1
    end = i + 5  # zero byte, QTYPE, QCLASS
    if end > len(q) or struct.unpack_from("!H", q, 4)[0] < 1:
        return None
    qtype = struct.unpack_from("!H", q, i + 1)[0]
    flags = 0x8400 | (q[2] & 0x79) << 8 | 0x80  # QR, AA, the query's opcode and RD; RA
    if opcode != 0:
        return struct.pack("!HHHHHH", struct.unpack_from("!H", q)[0], flags | 4, 0, 0, 0, 0)  # NOTIMP
    a = qtype in (1, 255)
    out = struct.pack("!HHHHHH", struct.unpack_from("!H", q)[0], flags, 1, 1 if a else 0, 0, 0) + q[12:end]
    if a:
        out += struct.pack("!HHHIH", 0xC00C, 1, 1, _TTL, 4) + ip
    return out


class Portal:
    def __init__(self, device, network):
        self.d = device
        self.net = network
        self.ap = None
        self.ip = None
        self.ssid = "sensorbox-" + device.device_id[-4:]
        self.why = None
        self.since = None
        self.answers = 0
        self._task = None

    def open(self, why):
        net = self.net
        plat = self.d.platform
        pw = ap_password(plat.data_dir)
        ap = self.ap = net.WLAN(net.AP_IF)
        ap.active(True)
        ap.config(ssid=self.ssid, key=pw, security=net.AUTH_WPA2_PSK)
        self.ip = ap.ifconfig()[0]
        self.why = why
        self.since = time.ticks_ms()
        # The password on the serial console only (never the log on flash, never the API).
        print("\n*** set-up Wi-Fi: {}  password: {}  then open http://{}/setup ***\n".format(self.ssid, pw, self.ip))
        self.d.log.info("net", "set-up access point {} open at {} ({})".format(self.ssid, self.ip, why))
        self._task = asyncio.create_task(self._dns())

    def close(self):
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self.ap is not None:
            self.ap.active(False)
        self.d.log.info("net", "set-up access point {} closed".format(self.ssid))

    def status(self):
        try:
            clients = len(self.ap.status("stations"))
        except (OSError, ValueError, TypeError):
            clients = None
        return {"ssid": self.ssid, "ip": self.ip, "why": self.why, "clients": clients, "dns_answers": self.answers,
                "open_s": time.ticks_diff(time.ticks_ms(), self.since) // 1000}

    async def _dns(self):
        plat = self.d.platform
        ip = bytes(int(x) for x in self.ip.split("."))
        while True:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(socket.getaddrinfo(getattr(plat, "dns_host", "0.0.0.0"), plat.dns_port)[0][-1])
                s.setblocking(False)
                while True:
                    await readable(s)
                    try:
                        q, addr = s.recvfrom(512)
                    except OSError:  # (EAGAIN: another wake-up took it)
                        continue
                    r = answer(q, ip)
                    if r is not None:
                        s.sendto(r, addr)
                        self.answers += 1
            except OSError as e:  # the port is taken, the interface went: tell, and try again in a while
                self.d.log.warning("net", "dns responder: {}".format(e))
            finally:
                s.close()
            await asyncio.sleep_ms(5000)


def readable(sock):
    """Await this to wait until the non-blocking socket ``sock`` can be read (asyncio's own I/O wait, as its
    streams use it: no polling; a cancel, e.g. ``wait_for_ms``'s timeout, takes the wait off the queue)."""
    yield core._io_queue.queue_read(sock)


async def query(host, port=123, timeout_ms=3000):
    """SNTP (RFC 4330), one query: the time at ``host`` (a name, or ``name:port``) in epoch ms, corrected by half
    the round trip. OSError when the name does not resolve, TimeoutError when no answer came, ValueError for a
    reply that is not a server's time."""
    if ":" in host:
        host, port = host.split(":")[0], int(host.split(":")[1])
    addr = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)[0][-1]  # (DNS: blocks while it resolves)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.setblocking(False)
        q = bytearray(48)
        q[0] = 0x23  # LI 0, version 4, mode 3 (client)
        t0 = time.ticks_ms()
        s.sendto(q, addr)
        await wait_for_ms(readable(s), timeout_ms)
        r = s.recv(48)
        rtt = time.ticks_diff(time.ticks_ms(), t0)
    finally:
        s.close()
    if len(r) < 48 or r[0] & 7 not in (4, 5) or r[1] == 0 or r[0] >> 6 == 3:
        raise ValueError("not a server's time (mode {}, stratum {})".format(r[0] & 7 if r else None,
                                                                            r[1] if len(r) > 1 else None))
    sec, frac = struct.unpack("!II", r[40:48])  # transmit timestamp
    return (sec - _NTP_1970) * 1000 + (frac >> 22) * 1000 // 1024 + rtt // 2
