"""The live stream, ``GET /api/live``: Server-Sent Events for the dashboard (imported on the first request).

Every ``_PERIOD_MS`` a client gets an ``accel`` event with the new accelerometer frames, decimated to about
``OUT_HZ``: ``{"t": epoch ms of the first frame, "dt": ms between frames, "n": frames, "lost": frames skipped
since the last event, "b64": base64 of the int16 x,y,z frames, little-endian}``. Between them, as they happen:
``prediction`` ``{"t", "class", "confidence"}`` (confidence 0..1, class "unknown" below the threshold),
``soundlevel`` ``{"t", "leq", "lmin", "lmax", "l10", "l50", "l90"}`` (centi-dB SPL, ints: 6543 = 65.43 dB),
``soundclass`` ``{"t", "class", "confidence"}`` as ``prediction``, from the sound classifier (while
``sound.classify`` is on: every 128 ms window), ``event`` ``{"t", "type": "class_change", "from", "to",
"confidence"}`` when the class changes (as stored), and
``features`` once per analysis window (every ``ml.hop`` frames: 1.28 s at 50 Hz): ``{"t": epoch ms of the
window's last frame, "window": the pipeline's window count, "am_mean", "am_std", "am_jerk", "am_domf",
"grav_x", "grav_y", "grav_z"}`` -- a few of the window's int16 features by name (scales in
``shared/features.py``: magnitude mean and standard deviation in counts, 4096 = 1 g; jerk; dominant frequency
in centi-Hz; the gravity direction, 4096 = 1) -- and, in the first and every ``_FULL_EVERY``-th features event
of a stream, ``"all"``: base64 of the whole int16 vector (little-endian, in the order of
``features.names(channels)``; ``hello`` gives its length and the feature version).

One task (``_run``) serves every stream: each turn (``step``) it reads the new frames from the sample ring once, encodes
each event once, and hands the same bytes to every client; the results are polled from the pipeline's and sound
meter's latest values rather than subscribed on the bus (a subscription would grow the bus's lists while streams
come and go, leaving small long-lived blocks that split the heap). A stream's connection is handed over by the
HTTP server once the response head is out (``accept``): no task, request or response object per stream, only
its ``_Client`` (the credential, the messages waiting for it) and its connection slot. Messages go out with
non-blocking writes, so a slow client never holds up the others or sampling: it gets no new ``accel`` event
while ``_QUEUE`` messages wait for it (the frames it missed are counted in the ``lost`` of its next one), and a
client whose socket took nothing for ``_STALL_MS`` is disconnected. At most ``MAX_CLIENTS`` streams at once (503
beyond). When the last stream ends this module unloads itself (``lazy``): the device carries it only while
someone watches.

A stream lasts only as long as the credential that opened it: every turn it checks again that its API token is
still there (same id and secret), its session still open, or (HTTP Basic) the password unchanged; when not, it
sends ``end`` ``{"reason": ...}`` and closes.
"""

import array
import binascii
import json
import time

import asyncio
from micropython import const

from sensorbox.device import lazy
from sensorbox.device.http.server import error, release
from sensorbox.shared import features  # noqa: F401 (resident with live; device_api's hello reads its version here: imported
# by a module loaded per request, it would be loaded and dropped with every request on a device without analysis)

MAX_CLIENTS = const(4)
_PERIOD_MS = const(200)
OUT_HZ = const(25)  # (device_api's hello says it)
_FRAMES = const(64)  # frames read per turn (>= 100 Hz x 200 ms x 2; half with accel.gyro: 6 channels, same buffer)
_STALL_MS = const(15000)
_QUEUE = const(10)  # messages waiting for a client (~2 s of events) past which it gets no new accel event...
_DROP = const(40)  # ...and past which it is disconnected as stalled
_SOUND = ("leq", "lmin", "lmax", "l10", "l50", "l90")
_FULL_EVERY = const(8)  # the whole feature vector in every 8th features event (~10 s at 50 Hz, hop 64)
# "am" (the magnitude) is the 4th signal of features.signals(): its 20 features start at 60; of them mean is the
# 1st, std the 2nd, jerk the 12th, domf the 20th (features.SIGNAL_FEATURES); the gravity direction is last
# (tests/host/test_live_api.py checks these against features.names)
_AM = const(60)
_FEAT = '{{"t":{},"window":{},"am_mean":{},"am_std":{},"am_jerk":{},"am_domf":{},"grav_x":{},"grav_y":{},"grav_z":{}'
_ACCEL = 'event: accel\ndata: {{"t":{},"dt":{},"n":{},"lost":{},"b64":"{}"}}\n\n'
_END = const(b'event: end\ndata: {"reason":"credential revoked, session ended or password changed"}\n\n')

streams = []  # the _Client of each open stream
# What every stream shares while there are any (set up by the first, ``_start``): the device, its accelerometer,
# the serving task's position in its ring and frame buffer, what it last saw of the analysis, and this turn's
# encoded events (``step``).
_dev = _sensor = _buf = _mv = None
_seq = _gen = 0
# the last prediction / sound level / features / sound class sent; the class
_pred_t = _sound_t = _feat_t = _class_t = _label = None
_news = []  # this turn's events for every client (bytes)
_feats = None  # this turn's features event: [its text without the end, plain, with "all"] or None
# this turn's accel event: (first seq read, end seq, its format arguments, (lost, bytes) of the event every client
# in step with the task gets) or None
_accel = None


def _start(device):
    global _dev, _sensor, _buf, _mv, _seq, _gen, _pred_t, _sound_t, _feat_t, _class_t, _label
    _dev = device
    _sensor = device.sensors["accel"]
    _buf = array.array("h", bytes(2 * 3 * _FRAMES))
    _mv = memoryview(_buf)
    _sensor.pump()  # the stream starts now, not at the sampler's last read of the FIFO
    _seq = _sensor.ring.head
    _gen = _sensor.generation
    _pred_t = _sound_t = _feat_t = _class_t = _label = None
    asyncio.create_task(_run())


def step():
    """Read and encode what is new once, for every client (the serving task's turn, before each client's)."""
    global _news, _feats, _accel, _pred_t, _sound_t, _feat_t, _class_t, _label
    d = _dev
    news = _news = []
    _feats = None
    p = d.pipeline.latest if d.pipeline is not None else None
    if p is not None and p[0] != _pred_t:
        _pred_t = p[0]
        m = d.ml.model
        c = p[1]
        name = m.classes[c] if (m is not None and 0 <= c < len(m.classes)) else "unknown"
        news.append(msg("prediction", json.dumps({"t": p[0], "class": name, "confidence": p[2] / 1000})))
        if name != _label:
            if _label is not None:
                news.append(msg("event", json.dumps({"t": p[0], "type": "class_change", "from": _label,
                                                      "to": name, "confidence": p[2]})))
            _label = name
    s = d.soundmeter.latest
    if s is not None and s[0] != _sound_t:
        _sound_t = s[0]
        v = {"t": s[0]}
        for i in range(len(_SOUND)):
            v[_SOUND[i]] = s[1][i]
        news.append(msg("soundlevel", json.dumps(v)))
    c = d.soundmeter._classifier  # (soundclass.py: while sound.classify is on)
    s = c.latest if c is not None else None
    if s is not None and s[0] != _class_t:
        _class_t = s[0]
        m = c.ml.model
        news.append(msg("soundclass", json.dumps({"t": s[0], "class": m.classes[s[1]] if (
            m is not None and 0 <= s[1] < len(m.classes)) else "unknown", "confidence": s[2] / 1000})))
    p = d.pipeline
    if p is not None and p.feats_t is not None and p.feats_t != _feat_t:
        _feat_t = p.feats_t
        f = p.feats
        n = len(f)
        _feats = [_FEAT.format(p.feats_t, p.windows, f[_AM], f[_AM + 1], f[_AM + 11], f[_AM + 19], f[n - 3],
                               f[n - 2], f[n - 1]), None, None]
    _accel = _frames()


def _feat(full):
    # this turn's features event, formatted straight from the pipeline's array (no dict or list made), with the
    # whole vector as base64 when ``full``; each variant made once, for the first client that needs it
    f = _feats
    i = 2 if full else 1
    if f[i] is None:
        v = f[0]
        if full:
            v += ',"all":"{}"}}'.format(binascii.b2a_base64(_dev.pipeline.feats).decode().strip())
        else:
            v += "}"
        f[i] = msg("features", v)
    return f[i]


def _frames():
    # this turn's accel event (see _accel) with the new frames (decimated in _buf), or None
    global _seq, _gen
    s = _sensor
    ring = s.ring
    s.pump()  # the FIFO is read for the ring every accel.poll_ms (1 s): a watched chart wants it now
    if s.generation != _gen:
        _gen = s.generation
        _seq = ring.head
        for c in streams:
            c.seq = ring.head
    first, n = ring.read(_seq, _buf, _FRAMES)
    if n == 0:
        return None
    step = ring.rate_hz // OUT_HZ or 1
    # keep frames whose sequence number is a multiple of step: the output grid stays aligned across reads
    k0 = k = (step - first % step) % step
    out = 0
    b = _buf
    ch = ring.channels  # (6 with accel.gyro: the event has x, y, z; at most 32 frames a turn then)
    while k < n:
        i = k * ch
        o = out * 3
        b[o] = b[i]
        b[o + 1] = b[i + 1]
        b[o + 2] = b[i + 2]
        out += 1
        k += step
    lost = first - _seq
    _seq = first + n
    t = ring.time_of(first + k0)
    dt = step * 1000 // ring.rate_hz
    b64 = binascii.b2a_base64(_mv[:out * 3]).decode().strip()
    return (first, first + n, (t, dt, out, b64), (lost, _ACCEL.format(t, dt, out, lost, b64).encode()))


class _Client:
    """One stream: the credential it was opened with, the messages waiting for it, and (once the HTTP server has
    sent the head and handed it over: ``accept``) its connection. Also the response body until then."""

    def __init__(self, device, cred, hello):
        self.device = device
        self.conn = None  # the server's connection (server._Conn) once it is handed over (``accept``)
        self.off = 0  # bytes of out[0] already written
        self.nfeat = 0  # features events sent
        self.done = False  # its credential no longer holds: closed once the end event is out
        # What the request authenticated with (device_api checked it and works it out: ``_live``): a token's (id,
        # hash of its secret), the session's sha256, or the password generation (Basic), to check again every turn
        # (``valid``).
        self.cred = cred
        self.moved = time.ticks_ms()  # when its socket last took bytes
        self.out = [hello]  # messages (bytes) waiting for it, oldest first: the hello (device_api) sent at accept
        self.seq = None  # the accel frame its next accel event should start at (None: from the hub's)

    def valid(self):
        """Whether the credential that opened the stream still holds (allocates nothing)."""
        auth = self.device.auth
        c = self.cred
        if isinstance(c, int):
            return c == auth.generation
        if isinstance(c, tuple):
            for t in getattr(auth, "tokens", None) or ():
                if t["id"] == c[0] and t["hash"] == c[1]:
                    return True
            return False
        for s in getattr(auth, "sessions", None) or ():
            if s[0] == c:
                return True
        return False

    def accept(self, conn):
        """The HTTP server hands the connection over once the response head is out (``server.Response``)."""
        self.conn = conn
        if _dev is None:
            _start(self.device)
        self.seq = _seq
        self.send(time.ticks_ms())

    def step(self, now):
        """Queue this turn's events (``step()``, the module's) for the client and send what its socket takes."""
        if self.conn is None:  # (its head is still being sent)
            return
        if self.conn.why:  # cut off by the server (idle, shutting down)
            self.close()
            return
        out = self.out
        if out and not self.send(now):  # what waits from earlier turns first
            return
        if not self.done:
            if not self.valid():  # revoked, logged out, the password changed: the last message, then the end
                self.device.log.info("http", "live stream ended: its credential is no longer valid")
                self.done = True
                out.append(_END)
            else:
                out.extend(_news)
                if _feats is not None:
                    out.append(_feat(self.nfeat % _FULL_EVERY == 0))
                    self.nfeat += 1
                a = _accel
                if a is not None and len(out) < _QUEUE:  # (too slow: no new frames until it catches up)
                    lost = a[0] - self.seq
                    if lost == a[3][0]:
                        out.append(a[3][1])
                    else:  # it missed frames the others got: its own event says how many
                        b = a[2]
                        out.append(_ACCEL.format(b[0], b[1], b[2], lost, b[3]).encode())
                    self.seq = a[1]
        self.send(now)

    def send(self, now):
        """Write what the socket takes without blocking; disconnect a client that takes nothing for too long.
        False when the stream is over."""
        out = self.out
        conn = self.conn
        while out:
            m = out[0]
            try:
                n = conn.raw.write(m, self.off, len(m) - self.off)
            except OSError:  # the client went away
                self.close()
                return False
            if not n:  # (None: its socket takes nothing now)
                break
            self.moved = conn.seen = now
            self.off += n
            if self.off < len(m):
                break
            out.pop(0)
            self.off = 0
        if not out:
            if self.done:
                self.close()
                return False
        elif time.ticks_diff(now, self.moved) > _STALL_MS or len(out) > _DROP:
            self.device.log.warning("http", "live client stalled; disconnecting it")
            self.close()
            return False
        return True

    def close(self):
        if self in streams:
            streams.remove(self)
            self.device.log.debug("http", "live stream ended ({} left)".format(len(streams)))
        self.out = []
        c = self.conn
        self.conn = None
        if c is not None:
            release(c)  # its slot freed, its socket closed
        if not streams and _dev is None:  # (never handed over: nothing runs; give this module's RAM back)
            lazy.unload("sensorbox.device.http.live")


async def _run():
    # The one task of all streams: every _PERIOD_MS, what is new, encoded once, to each client.
    global _dev, _news, _feats, _accel
    try:
        while streams:
            await asyncio.sleep_ms(_PERIOD_MS)
            try:
                step()
                now = time.ticks_ms()
                for c in streams[:]:
                    c.step(now)
            except MemoryError:  # this turn's events are lost: the next accel event says how many frames
                _news = []
                _feats = _accel = None
    except Exception as e:  # (a bug): every stream ends, said in the log, rather than all of them hanging
        _dev.log.exception("http", "live streams failed", e)
    finally:
        _dev = None
        for c in streams[:]:
            c.close()
        lazy.unload("sensorbox.device.http.live")  # the last stream ended: give this module's RAM back


def msg(event, data):
    return "event: {}\ndata: {}\n\n".format(event, data).encode()


def response(device, cred, hello):
    """A stream for ``device_api._live``: ``cred`` its credential (``_Client.valid``), ``hello`` its first message
    (``msg``; made there, with the credential, so that this resident module's code and flash block stay small)."""
    if len(streams) >= MAX_CLIENTS:
        return error(503, "at most {} live streams at once; close one".format(MAX_CLIENTS))
    s = _Client(device, cred, hello)
    streams.append(s)
    return s, 200, {"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
