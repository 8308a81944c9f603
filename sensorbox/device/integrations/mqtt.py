"""A small asyncio MQTT 3.1.1 client for MicroPython (device side).

    c = MQTTClient("box-1", "broker.local", user="u", password="p", keepalive=60,
                   will=("sensorbox/box-1/status", b"offline", True, 1), on_message=handler)
    await c.connect()                      # or: await c.ensure() (reconnects with backoff)
    await c.subscribe("homeassistant/status")
    await c.publish("t", b"payload", qos=1)   # returns once the broker's PUBACK arrived

Scope: CONNECT (client id, username/password, keepalive, last will, clean session), PUBLISH QoS 0 and 1 (PUBACK
awaited; a QoS 1 publish not acknowledged within ``timeout_ms`` is sent again with DUP set, then the connection is
dropped so the caller's retry goes over a fresh one), SUBSCRIBE (re-sent on every reconnect), PINGREQ every
keepalive/2 of silence, inbound PUBLISH QoS 0/1 (PUBACK sent) handed to ``on_message(topic, payload, retain)``,
DISCONNECT. An inbound PUBLISH larger than ``_MAX_IN`` is read past in small pieces (acknowledged if QoS 1)
and handed on as ``on_message(topic, None, retain)``: the receiver can answer it, and the connection stays (its
topic must fit in ``_MAX_IN``). One acknowledged operation (QoS 1 publish or subscribe) is in flight at a
time (a Lock serialises them): small and enough for a sink that sends in order.

Every network await has a timeout. Lengths are counted in bytes: topics and payloads are encoded to UTF-8 before
their lengths are taken (a ``len(str)`` remaining length makes the broker drop the connection on "°C").
TCP_NODELAY is set (with Nagle, each PUBACK round trip costs ~40 ms). TLS: pass an ``ssl.SSLContext`` (or True:
encrypted, not verified); with ``verify_mode = CERT_REQUIRED`` and a CA loaded the broker's certificate chain and
host name are checked during the handshake, and a refusal fails ``connect`` with mbedTLS's reason (a ValueError).
"""

import struct
import time

import asyncio
from micropython import const

from sensorbox.device.supervisor import wait_for_ms  # (asyncio.wait_for_ms leaves a stray cancel behind)

_IPPROTO_TCP = const(6)
_TCP_NODELAY = const(1)
# (this module's .mpy is ~4,090 bytes: past 4,096 it takes a second 4 KB flash block, tests/host/test_bundle.py)
_MAX_IN = const(2048)  # largest inbound packet kept (commands, HA status); a larger PUBLISH arrives as None


class MQTTError(OSError):
    pass


def _b(s):
    return s.encode() if isinstance(s, str) else s


def _len_bytes(n):
    """MQTT variable-length encoding of a remaining length."""
    if n > 268435455:
        raise MQTTError("packet too large")
    out = bytearray()
    while True:
        d = n & 0x7F
        n >>= 7
        out.append(d | 0x80 if n else d)
        if not n:
            return out


def _str(s):
    s = _b(s)
    return struct.pack("!H", len(s)) + s


class MQTTClient:
    def __init__(self, client_id, host, port=1883, user=None, password=None, keepalive=60, ssl=None, will=None,
                 timeout_ms=5000, on_message=None):
        self.client_id = client_id
        self.host = host
        self.port = port
        self.user = user or None
        self.password = password or None
        self.keepalive = keepalive
        self.ssl = ssl
        self.will = will  # (topic, payload, retain, qos)
        self.timeout_ms = timeout_ms
        self.on_message = on_message
        self.on_error = None  # on_error(why): a connection attempt in ensure() failed for a new reason
        self.subs = []  # (topic, qos), re-subscribed on reconnect
        self.connected = False
        self.error = None  # why the last connection ended or failed
        self.connects = 0
        self.published = 0
        self.retransmits = 0
        self.received = 0
        self.backoff_ms = 0
        self._r = self._w = None
        self._pid = 0
        self._wait_pid = 0
        self._ev = None
        self._lock = None
        self._tasks = ()
        self._rx = self._tx = 0

    # ---- connection ----

    async def connect(self, clean=True):
        self.close()
        if self._lock is None:
            self._lock = asyncio.Lock()
            self._ev = asyncio.Event()
        t = self.timeout_ms
        ctx = self.ssl
        if ctx is True:
            import ssl

            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.verify_mode = ssl.CERT_NONE
        if ctx:
            r, w = await wait_for_ms(asyncio.open_connection(self.host, self.port, ssl=ctx), t)
        else:
            r, w = await wait_for_ms(asyncio.open_connection(self.host, self.port), t)
        self._r, self._w = r, w
        try:
            w.s.setsockopt(_IPPROTO_TCP, _TCP_NODELAY, 1)
        except (AttributeError, OSError):
            pass  # TLS socket objects do not all expose setsockopt
        flags = 0x02 if clean else 0
        pl = _str(self.client_id)
        if self.will:
            wt, wm, wr, wq = self.will
            flags |= 0x04 | (wq << 3) | (0x20 if wr else 0)
            pl += _str(wt) + _str(wm)
        if self.user is not None:
            flags |= 0x80
            pl += _str(self.user)
            if self.password is not None:
                flags |= 0x40
                pl += _str(self.password)
        vh = b"\x00\x04MQTT\x04" + bytes((flags,)) + struct.pack("!H", self.keepalive)
        try:
            await self._send(b"\x10" + _len_bytes(len(vh) + len(pl)), vh, pl)
            ack = await wait_for_ms(r.readexactly(4), t)
        except Exception:
            self.close()
            raise
        if ack[0] != 0x20 or ack[1] != 2:
            self.close()
            raise MQTTError("bad CONNACK")
        if ack[3]:
            self.close()
            raise MQTTError("connection refused by the broker (code {})".format(ack[3]))
        self.connected = True
        self.connects += 1
        self.error = None
        self._rx = time.ticks_ms()
        self._tasks = (asyncio.create_task(self._reader()), asyncio.create_task(self._pinger()))
        for topic, qos in self.subs:
            await self._subscribe(topic, qos)

    async def ensure(self, min_ms=1000, max_ms=60000):
        """Return once connected: retries with exponential backoff and jitter (``backoff_ms`` shows the wait)."""
        delay = min_ms
        while not self.connected:
            try:
                await self.connect()
                self.backoff_ms = 0
                return
            except Exception as e:  # OSError, MQTTError, TimeoutError, ValueError (a refused certificate)
                why = "{}: {}".format(type(e).__name__, " ".join(str(e).split()))
                if self.on_error is not None and why != self.error:
                    self.on_error(why)  # each new reason once, not every retry
                self.error = why
            import random

            self.backoff_ms = delay // 2 + random.getrandbits(16) % (delay // 2 + 1)
            await asyncio.sleep_ms(self.backoff_ms)
            delay = min(delay * 2, max_ms)

    def close(self, why=None):
        """Drop the connection (no DISCONNECT: the broker publishes the last will)."""
        if why is not None and self.connected:
            self.error = why
        self.connected = False
        cur = asyncio.current_task()
        for tk in self._tasks:
            if tk is not cur:
                tk.cancel()
        self._tasks = ()
        w = self._w
        self._r = self._w = None
        if w is not None:
            try:
                w.close()
            except OSError:
                pass
        if self._ev is not None:
            self._ev.set()  # wake a waiter for an acknowledgement: it sees the connection gone

    async def disconnect(self):
        """Clean DISCONNECT (the broker discards the last will: publish ``offline`` yourself first)."""
        if self.connected:
            try:
                await self._send(b"\xe0\x00")
            except Exception:
                pass
        self.close()

    # ---- sending ----

    async def _send(self, *parts):
        w = self._w
        if w is None:
            raise MQTTError("not connected")
        for p in parts:
            w.write(p)  # no await between the writes: a packet is never interleaved with another
        self._tx = time.ticks_ms()
        try:
            await wait_for_ms(w.drain(), self.timeout_ms)
        except Exception as e:
            self.close("send failed: {}".format(e))
            raise

    def _next_pid(self):
        self._pid = self._pid % 65535 + 1
        return self._pid

    async def publish(self, topic, payload, retain=False, qos=0):
        """Send ``payload`` (bytes; a str is UTF-8 encoded; a list of bytes pieces is sent as one message without
        joining them, so a large payload needs no large block of RAM) to ``topic``. QoS 1 returns after the
        PUBACK."""
        topic = _b(topic)
        if isinstance(payload, list):
            pl = payload
        else:
            pl = (_b(payload),)
        n = 0
        for p in pl:
            n += len(p)
        if not self.connected:
            raise MQTTError("not connected")
        head = 0x30 | (qos << 1) | (1 if retain else 0)
        if qos == 0:
            await self._send(bytes((head,)) + _len_bytes(2 + len(topic) + n) + _str(topic), *pl)
            self.published += 1
            return
        async with self._lock:
            pid = self._next_pid()
            vh = _str(topic) + struct.pack("!H", pid)
            size = _len_bytes(len(vh) + n)
            for attempt in range(2):
                self._ev.clear()
                self._wait_pid = pid
                await self._send(bytes((head | (0x08 if attempt else 0),)) + size, vh, *pl)
                if await self._acked(pid):
                    self.published += 1
                    return
                if not self.connected:
                    break
                self.retransmits += 1
            self.close("no PUBACK within {} ms".format(self.timeout_ms))
            raise MQTTError("not acknowledged")

    async def _acked(self, pid):
        try:
            await wait_for_ms(self._ev.wait(), self.timeout_ms)
        except asyncio.TimeoutError:
            return False
        return self.connected and self._wait_pid == -pid

    async def subscribe(self, topic, qos=0):
        if (topic, qos) not in self.subs:
            self.subs.append((topic, qos))
        if self.connected:
            await self._subscribe(topic, qos)

    async def _subscribe(self, topic, qos):
        async with self._lock:
            pid = self._next_pid()
            self._ev.clear()
            self._wait_pid = pid
            pl = struct.pack("!H", pid) + _str(topic) + bytes((qos,))
            await self._send(b"\x82" + _len_bytes(len(pl)), pl)
            if not await self._acked(pid):
                self.close("no SUBACK")
                raise MQTTError("subscribe not acknowledged")

    # ---- receiving and keepalive ----

    async def _read(self, n):
        return await wait_for_ms(self._r.readexactly(n), self.keepalive * 1500)

    async def _reader(self):
        try:
            while True:
                b = await self._read(1)
                typ = b[0]
                n = 0
                sh = 0
                while True:
                    d = (await self._read(1))[0]
                    n |= (d & 0x7F) << sh
                    sh += 7
                    if not d & 0x80:
                        break
                    if sh > 21:
                        raise MQTTError("bad remaining length")
                if n > _MAX_IN and typ & 0xF0 != 0x30:
                    raise MQTTError("packet too large")
                body = await self._read(min(n, _MAX_IN)) if n else b""
                drop = n - len(body)
                while drop > 0:  # a PUBLISH too large to keep: the rest is read and dropped, its payload is None
                    drop -= len(await self._read(min(drop, 256)))
                self._rx = time.ticks_ms()
                kind = typ & 0xF0
                if kind == 0x40 or kind == 0x90:  # PUBACK, SUBACK
                    pid = (body[0] << 8) | body[1]
                    if pid == self._wait_pid and not (kind == 0x90 and body[2] == 0x80):
                        self._wait_pid = -pid
                    self._ev.set()
                elif kind == 0x30:
                    tl = (body[0] << 8) | body[1]
                    topic = body[2:2 + tl]
                    off = 2 + tl
                    if typ & 0x06:
                        await self._send(b"\x40\x02" + body[off:off + 2])
                        off += 2
                    self.received += 1
                    if self.on_message is not None:
                        self.on_message(topic.decode(), body[off:] if n <= _MAX_IN else None, bool(typ & 1))
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self.close("receive: {}: {}".format(type(e).__name__, e))

    async def _pinger(self):
        ka = self.keepalive * 1000
        while self.connected:
            await asyncio.sleep_ms(min(1000, ka // 4))
            now = time.ticks_ms()
            if time.ticks_diff(now, self._rx) > ka * 3 // 2:
                self.close("keepalive: nothing from the broker for {} s".format(self.keepalive * 3 // 2))
                return
            if time.ticks_diff(now, self._tx) >= ka // 2:
                try:
                    await self._send(b"\xc0\x00")
                except Exception:
                    return
