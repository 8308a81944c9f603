"""SNTP (RFC 4330) client over UDP, awaited: one query, the server's time in epoch ms. Loaded for a sync."""

import socket
import struct
import time

import asyncio
from micropython import const

from sensorbox.device.net import readable

_NTP_1970 = const(2208988800)  # seconds from 1900 (NTP's era 0) to 1970


async def query(host, port=123, timeout_ms=3000):
    """The time at ``host`` (a name, or ``name:port``) in epoch ms, corrected by half the round trip. OSError
    when the name does not resolve, TimeoutError when no answer came, ValueError for a reply that is not a
    server's time."""
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
        await asyncio.wait_for_ms(readable(s), timeout_ms)
        r = s.recv(48)
        rtt = time.ticks_diff(time.ticks_ms(), t0)
    finally:
        s.close()
    if len(r) < 48 or r[0] & 7 not in (4, 5) or r[1] == 0 or r[0] >> 6 == 3:
        raise ValueError("not a server's time (mode {}, stratum {})".format(r[0] & 7 if r else None,
                                                                            r[1] if len(r) > 1 else None))
    sec, frac = struct.unpack("!II", r[40:48])  # transmit timestamp
    return (sec - _NTP_1970) * 1000 + (frac >> 22) * 1000 // 1024 + rtt // 2
