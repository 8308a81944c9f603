"""The live stream's one serving task (http/live.py): every event encoded once and the same bytes handed to every
client; a client's turn allocates nothing; a slow client gets no new frames while its queue is full and is told
how many it missed; a client whose socket takes nothing is disconnected; a revoked credential ends its stream.
(tests/host/test_live_api.py runs the real streams over sockets.)"""

import binascii
import json
import struct

import micropython

from devtest import inner, quiet_log
from sensorbox.device.sensors.ring import Batch, SampleRing

RATE = 50


class _Sock:
    """A non-blocking socket's write as the server's connections have it: ``take`` bytes at most per call (None:
    takes nothing now); keeps each message object it was given and the bytes."""

    held = None  # with ``hold``: the one message written (nothing allocated: for heap_lock)

    def __init__(self, take=1 << 20):
        self.take = take
        self.got = bytearray()
        self.objs = []
        self.closed = False
        self.hold = False

    def write(self, buf, off, n):
        if self.take == 0:
            return None
        n = min(n, self.take)
        if self.hold:
            self.held = buf
            return n
        if off == 0:
            self.objs.append(buf)
        self.got += buf[off:off + n]
        return n

    def close(self):
        self.closed = True


class _Conn:
    why = 0
    seen = 0
    state = 2

    def __init__(self, sock):
        self.raw = sock


class _Sensor:
    generation = 1

    def __init__(self):
        self.ring = SampleRing(3, 500, RATE)
        self.b = Batch(3, 64)

    def pump(self, batches=0):
        return 0

    def add(self, n):
        b = self.b
        seq = self.ring.head
        for i in range(n):
            for c in range(3):
                b.data[3 * i + c] = (seq + i) * 3 + c
        b.n = n
        b.seq = seq
        b.t_ms = self.ring.time_of(seq)
        self.ring.write(b)


class _Auth:
    generation = 1


class _Meter:
    latest = None
    _classifier = None  # (soundclass.py's, while sound.classify is on)


class _NoModel:  # the device's model state (analysis/pipeline.ModelSlot) with no model, without loading the pipeline
    model = error = None
    held = False


class _Device:
    def __init__(self):
        self.auth = _Auth()
        self.sensors = {"accel": _Sensor()}
        self.pipeline = None
        self.ml = _NoModel()
        self.soundmeter = _Meter()
        self.log = quiet_log()


class _Req:
    def __init__(self):
        self.headers = {"Authorization": "Basic YWRtaW46cHc="}
        self.cookies = {}


def _events(data):
    out = []
    for block in bytes(data).decode().split("\n\n"):
        if block:
            name, payload = block.split("\n")
            out.append((name[7:], json.loads(payload[6:])))
    return out


def _response(dev):
    # as GET /api/live: device_api works out the stream's credential and hello, live.response makes it
    from sensorbox.device.http import device_api

    return inner(device_api, "_live")(dev, _Req())


def _open(live, dev, sock):
    c, status, headers = _response(dev)
    assert status == 200 and headers["Content-Type"] == "text/event-stream"
    c.accept(_Conn(sock))
    return c


def _turn(live, now):
    live.step()
    for c in live.streams[:]:
        c.step(now)


def _fresh():
    import sys

    sys.modules.pop("sensorbox.device.http.live", None)
    from sensorbox.device.http import live

    return live


def test_every_client_gets_the_same_encoded_events_and_a_turn_allocates_nothing_per_client():
    live = _fresh()
    dev = _Device()
    sensor = dev.sensors["accel"]
    socks = [_Sock() for _ in range(4)]  # (live.MAX_CLIENTS)
    clients = [_open(live, dev, s) for s in socks]
    assert _response(dev).status_code == 503  # a fifth: refused
    for _ in range(3):  # warm: each client's queue has its room
        sensor.add(10)
        _turn(live, 1000)
    for s in socks:
        s.hold = True
    sensor.add(10)
    live.step()
    micropython.heap_lock()
    try:
        for c in clients:
            c.step(1200)
    finally:
        micropython.heap_unlock()
    for s in socks:
        assert s.held is socks[0].held is not None  # one encoding, shared
        s.hold = False
        s.got += s.held
    for s in socks:
        ev = _events(s.got)
        assert ev[0][0] == "hello" and ev[0][1]["rate_hz"] == RATE
        acc = [d for n, d in ev if n == "accel"]
        frames = []
        for d in acc:
            assert d["lost"] == 0 and d["dt"] == 1000 // 25
            frames += struct.unpack("<{}h".format(3 * d["n"]), binascii.a2b_base64(d["b64"]))
        # every second frame (50 Hz to 25 Hz) of the 40 written, none missing
        assert frames == [v for seq in range(0, 40, 2) for v in (seq * 3, seq * 3 + 1, seq * 3 + 2)], frames
    for c in clients:
        c.close()
    assert live.streams == [] and all(s.closed for s in socks)


def test_a_slow_client_does_not_hold_up_the_others_and_is_told_what_it_missed():
    live = _fresh()
    dev = _Device()
    sensor = dev.sensors["accel"]
    fast, slow = _Sock(), _Sock(take=0)
    _open(live, dev, fast)
    c = _open(live, dev, slow)
    for _ in range(30):  # 30 turns of 10 frames; the slow socket takes nothing
        sensor.add(10)
        _turn(live, 2000)
    assert len(c.out) <= 10 and slow.got == b""  # (live._QUEUE)
    slow.take = 1 << 20  # it reads again
    sensor.add(10)
    _turn(live, 2200)
    ev = [d for n, d in _events(slow.got) if n == "accel"]
    sent = sum(d["n"] for d in ev) * 2
    lost = [d["lost"] for d in ev]
    assert lost[-1] > 0 and sum(lost) == lost[-1] and sent + lost[-1] == 310, (sent, lost)
    assert all(d["lost"] == 0 for n, d in _events(fast.got) if n == "accel")
    # a socket that takes nothing for the stall time is disconnected; the other stream goes on
    slow.take = 0
    sensor.add(10)
    _turn(live, 2400)
    _turn(live, 2400 + 15001)  # (live._STALL_MS)
    assert slow.closed and c not in live.streams and len(live.streams) == 1 and not fast.closed
    live.streams[0].close()


def test_a_stream_ends_with_its_credential():
    live = _fresh()
    dev = _Device()
    sock = _Sock()
    c = _open(live, dev, sock)
    dev.sensors["accel"].add(10)
    _turn(live, 100)
    dev.auth.generation = 2  # the password changed
    _turn(live, 300)
    ev = _events(sock.got)
    assert ev[-1][0] == "end" and sock.closed and c not in live.streams
