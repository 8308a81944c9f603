"""The live stream, ``GET /api/live``: Server-Sent Events for the dashboard (imported on the first request).

Every ``_PERIOD_MS`` a client gets an ``accel`` event with the new accelerometer frames, decimated to about
``_OUT_HZ``: ``{"t": epoch ms of the first frame, "dt": ms between frames, "n": frames, "lost": frames skipped
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
They are polled from the pipeline's and sound meter's latest results rather than subscribed on the bus: a
subscription would grow the bus's lists while streams come and go, leaving small long-lived blocks that split
the heap (measured: after one stream, a 2.5 KB allocation failed for good).

Costs: each client preallocates its frame buffer when it connects; reading and decimating the ring allocate
nothing per sample (one base64 string per event). The body is this module's own async iterator (not an SSE
module's: no extra task, no extra module in RAM). The stream only reads the sample ring (readers keep
their own position), so a slow client never holds up sampling: frames it was too slow for are skipped (counted
in ``lost``), and a client whose socket stopped taking data for ``_STALL_MS`` is disconnected when another
stream starts. At most ``MAX_CLIENTS`` streams at once (503 beyond). When the last stream ends this module
unloads itself (``lazy``): the device carries it only while someone watches.

A stream lasts only as long as the credential that opened it: every turn it checks again that its API token is
still there (same id and secret), its session still open, or (HTTP Basic) the password unchanged; when not, it
sends ``end`` ``{"reason": ...}`` and closes.
"""

import array
import binascii
import hashlib
import json
import time

import asyncio
from micropython import const

from sensorbox.device import lazy
from sensorbox.device.http.server import error
from sensorbox.shared import features

MAX_CLIENTS = const(4)
_PERIOD_MS = const(200)
_OUT_HZ = const(25)
_FRAMES = const(64)  # frames read per turn (>= 100 Hz x 200 ms x 2)
_STALL_MS = const(15000)
_SOUND = ("leq", "lmin", "lmax", "l10", "l50", "l90")
_FULL_EVERY = const(8)  # the whole feature vector in every 8th features event (~10 s at 50 Hz, hop 64)
# "am" (the magnitude) is the 4th signal of features.signals(): its 20 features start at 60; of them mean is the
# 1st, std the 2nd, jerk the 12th, domf the 20th (features.SIGNAL_FEATURES); the gravity direction is last
# (tests/host/test_live_api.py checks these against features.names)
_AM = const(60)
_FEAT = '{{"t":{},"window":{},"am_mean":{},"am_std":{},"am_jerk":{},"am_domf":{},"grav_x":{},"grav_y":{},"grav_z":{}'

streams = []  # the _Client of each open stream


class _Client:
    """One stream: its position in the accelerometer ring, its buffer, what it has sent; and the response body."""

    def __init__(self, device, sock, req):
        self.device = device
        self.sock = sock
        # What the request authenticated with (web_lazy checked it): a token's (id, hash of its secret), the
        # session's sha256, or the password generation (Basic), to check again every turn (``valid``).
        a = req.headers.get("Authorization") or ""
        if a.startswith("Bearer "):
            p = a[7:].split("_")
            self.cred = (int(p[1]), binascii.hexlify(hashlib.sha256(p[2].encode()).digest()).decode())
        elif a:
            self.cred = device.auth.generation
        else:
            self.cred = hashlib.sha256((req.cookies.get("sb_session") or "").encode()).digest()
        self.last = time.ticks_ms()  # last time the response writer asked for more (a stuck one stops asking)
        self.queue = []
        self.hello = True
        self.closed = False
        self.sensor = device.sensors["accel"]
        self.buf = array.array("h", bytes(2 * 3 * _FRAMES))
        self.mv = memoryview(self.buf)
        self.sensor.pump()  # the stream starts now, not at the sampler's last read of the FIFO
        self.seq = self.sensor.ring.head
        self.gen = self.sensor.generation
        # time of the last prediction / sound level / features / sound class sent
        self.pred_t = self.sound_t = self.feat_t = self.class_t = None
        self.nfeat = 0  # features events sent
        self.label = None  # the class last sent (a change makes a class_change event)

    def news(self):
        """[(event name, dict)] of what the analysis produced since the last call (polled: no bus subscription,
        so a stream leaves no long-lived object behind in the heap)."""
        out = []
        d = self.device
        p = d.pipeline.latest if d.pipeline is not None else None
        if p is not None and p[0] != self.pred_t:
            self.pred_t = p[0]
            m = d.model
            c = p[1]
            name = m.classes[c] if (m is not None and 0 <= c < len(m.classes)) else "unknown"
            out.append(("prediction", {"t": p[0], "class": name, "confidence": p[2] / 1000}))
            if name != self.label:
                if self.label is not None:
                    out.append(("event", {"t": p[0], "type": "class_change", "from": self.label, "to": name,
                                          "confidence": p[2]}))
                self.label = name
        s = d.soundmeter.latest
        if s is not None and s[0] != self.sound_t:
            self.sound_t = s[0]
            v = {"t": s[0]}
            for i in range(len(_SOUND)):
                v[_SOUND[i]] = s[1][i]
            out.append(("soundlevel", v))
        c = d.soundmeter._classifier  # (soundclass.py: while sound.classify is on)
        s = c.latest if c is not None else None
        if s is not None and s[0] != self.class_t:
            self.class_t = s[0]
            m = c.model
            out.append(("soundclass", {"t": s[0], "class": m.classes[s[1]] if (m is not None and 0 <= s[1] < len(
                m.classes)) else "unknown", "confidence": s[2] / 1000}))
        p = d.pipeline
        if p is not None and p.feats_t is not None and p.feats_t != self.feat_t:
            self.feat_t = p.feats_t
            out.append(("features", self.feat_event(p)))
        return out

    def feat_event(self, p):
        """The ``features`` event's data (a str) for the pipeline's latest window: formatted straight from its
        array (no dict or list made), with the whole vector as base64 now and then."""
        f = p.feats
        n = len(f)
        v = _FEAT.format(p.feats_t, p.windows, f[_AM], f[_AM + 1], f[_AM + 11], f[_AM + 19], f[n - 3], f[n - 2], f[n - 1])
        if self.nfeat % _FULL_EVERY == 0:
            v += ',"all":"{}"}}'.format(binascii.b2a_base64(f).decode().strip())
        else:
            v += "}"
        self.nfeat += 1
        return v

    def frames(self):
        """(first_seq, n, step) of the new frames now in ``buf`` (decimated in place), n = 0 when none."""
        s = self.sensor
        ring = s.ring
        s.pump()  # the FIFO is read for the ring every accel.poll_ms (1 s): a watched chart wants it now
        if s.generation != self.gen:
            self.gen = s.generation
            self.seq = ring.head
        first, n = ring.read(self.seq, self.buf, _FRAMES)
        if n == 0:
            return first, 0, 1, 0
        step = ring.rate_hz // _OUT_HZ or 1
        # keep frames whose sequence number is a multiple of step: the output grid stays aligned across reads
        k0 = k = (step - first % step) % step
        out = 0
        b = self.buf
        while k < n:
            i = k * 3
            o = out * 3
            b[o] = b[i]
            b[o + 1] = b[i + 1]
            b[o + 2] = b[i + 2]
            out += 1
            k += step
        lost = first - self.seq
        self.seq = first + n
        return first + k0, out, step, lost


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

    # --- the response body: an async iterator of SSE messages (MicroPython has no async generators) ---

    def __aiter__(self):
        return self

    async def __anext__(self):
        self.last = time.ticks_ms()
        if self.queue:
            return self.queue.pop(0)
        if self.closed:
            raise StopAsyncIteration
        if self.hello:
            self.hello = False
            p = self.device.pipeline
            f = p.feats if p is not None else None
            return _msg("hello", json.dumps({"rate_hz": self.sensor.ring.rate_hz, "columns": ["x", "y", "z"],
                                             "out_hz": _OUT_HZ, "features": len(f) if f is not None else 0,
                                             "feature_version": features.FEATURE_VERSION}))
        while True:
            await asyncio.sleep_ms(_PERIOD_MS)
            self.last = time.ticks_ms()
            if self.closed:
                raise StopAsyncIteration
            if not self.valid():  # revoked, logged out, the password changed: the last message, then the end
                self.device.log.info("http", "live stream ended: its credential is no longer valid")
                self.close()
                return _msg("end", '{"reason":"credential revoked, session ended or password changed"}')
            for ev, d in self.news():
                self.queue.append(_msg(ev, d if isinstance(d, str) else json.dumps(d)))
            first, n, step, lost = self.frames()
            if n:
                ring = self.sensor.ring
                self.queue.append(_msg("accel", '{{"t":{},"dt":{},"n":{},"lost":{},"b64":"{}"}}'.format(
                    ring.time_of(first), step * 1000 // ring.rate_hz, n, lost,
                    binascii.b2a_base64(self.mv[:n * 3]).decode().strip())))
            if self.queue:
                return self.queue.pop(0)

    async def aclose(self):
        self.close()

    def close(self):
        if self in streams:
            streams.remove(self)
            self.device.log.debug("http", "live stream ended ({} left)".format(len(streams)))
        self.closed = True
        self.queue = []
        if not streams:  # the last stream: give this module's RAM back
            lazy.unload("sensorbox.device.http.live")


def _msg(event, data):
    return "event: {}\ndata: {}\n\n".format(event, data).encode()


def response(device, req):
    now = time.ticks_ms()
    for s in streams[:]:  # a stream whose client stopped reading (its write is stuck): disconnect it
        if time.ticks_diff(now, s.last) > _STALL_MS:
            device.log.warning("http", "live client stalled; disconnecting it")
            s.close()
            try:
                s.sock.close()
            except Exception:
                pass
    if len(streams) >= MAX_CLIENTS:
        return error(503, "at most {} live streams at once; close one".format(MAX_CLIENTS))
    s = _Client(device, req.sock[1], req)
    streams.append(s)
    return s, 200, {"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
