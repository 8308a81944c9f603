"""Event capture (``capture.*``): raw accelerometer data around events, kept like labelled data.

An event is a prediction (of the activity model or the sound classifier) whose class changes into one of
``capture.classes`` (class names as the model gives them, comma separated) or a sound level whose Leq reaches
``capture.sound_db``. With ``clip.enabled`` on, each event starts an audio clip too (``clips.py``). Its capture is the
time from ``capture.pre_s`` before it to ``capture.post_s`` after it; an event inside an open capture
extends it. A capture is pinned like a label until ``sensorbox pull`` has fetched it (``record``: a
record in labels.bin that is never listed as a label; while it is open, ``pinned`` here), at most ``_MAX_PINNED``
at a time (a new one releases the oldest, counted), and announced as an event ``{"type": "capture", "start",
"end", "trigger", ...}`` (History, exports, MQTT and webhooks get it like any event).

With ``capture.only`` the accelerometer is stored only inside captures, for when continuous raw data costs
more flash than it is worth: the store leaves the ring's newest ``pre_s + HOLD_S`` seconds unread (a trigger can
still want them: a prediction is known a window after its first frame) and skips what is older and in no capture;
``config_schema`` keeps that within the ring. Without it the accelerometer is stored as always and captures only
pin their part of it.

Loaded by the store when capture is configured and kept while it is (``Store.cap``: it sees every prediction and
sound level row, and reads the ring in capture-only mode); nothing of it is resident otherwise.
"""

from micropython import const

_MAX_PINNED = const(64)  # captures pinned at once (labels.bin records, status "C"; tests/device: 64 too)
HOLD_S = const(2)  # seconds of frames beyond pre_s left unread in capture-only mode (config_schema._check_capture: 2 s)
_FRAMES = const(50)  # frames per ring read (as core._FRAMES)


def configure(st, cfg):
    """Capture on (``st.cap``; an open capture carries over a config change) or off (the last one recorded, this
    module unloaded)."""
    from sensorbox.device import lazy

    if st.clip is not None or cfg.get("clip.enabled"):  # audio clips (clips.py), which start with captures
        lazy.load("sensorbox.device.store.clips").configure(st, cfg)
    old = st.cap
    if cfg.get("capture.classes").strip() or cfg.get("capture.sound_db"):
        c = st.cap = Capture(st, cfg)
        if old is not None:
            c.a, c.b, c.kind, c.val, c.done, c.last = old.a, old.b, old.kind, old.val, old.done, old.last
            c._slast = old._slast
            c.made, c.released, c.lost = old.made, old.released, old.lost
        return
    if old is not None:
        if old.a >= 0:
            old.close()
        old.flush(st)  # (records the last one)
        st.cap = None
    lazy.unload("sensorbox.device.store.capture")  # (clips.py loads it for a moment to record a clip)


class Capture:
    def __init__(self, st, cfg):
        self.names = [n.strip() for n in cfg.get("capture.classes").split(",") if n.strip()]
        self.level = cfg.get("capture.sound_db") * 100  # centi-dB, as the sound level rows; 0: off
        self._pre = cfg.get("capture.pre_s") * 1000
        self.post = cfg.get("capture.post_s") * 1000
        self.only = cfg.get("capture.only")
        # capture-only: the seconds of the ring the store leaves unread for triggers still to come (core.Store)
        self.window = cfg.get("capture.pre_s") + HOLD_S if self.only else 0
        self.ids = bytearray(32)  # the class ids that trigger, a bit each (the store's class table: 256 ids)
        self.last = -3  # class id of the last prediction
        self._slast = -3  # ... and of the sound classifier's last
        self.st = st  # (audio clips, st.clip, start with a capture's triggers: clips.py)
        self.a = self.b = -1  # the open capture (epoch ms; a < 0: none) ...
        self.kind = self.val = 0  # ... and its first trigger: 1 class (val: id), 2 sound (val: centi-dB)
        self.done = [-1, -1, 0, 0]  # a closed capture not recorded yet (a, b, kind, val)
        self.upto = -1  # capture-only: the time up to which the ring's frames have been handled
        self.made = self.released = self.lost = 0
        self.reset(st)

    def reset(self, st):
        """The class ids of ``names`` in the store's class table (again after a model gave it new names)."""
        ids = self.ids
        for i in range(32):
            ids[i] = 0
        if not self.names:
            return
        from sensorbox.device import lazy

        try:
            table = lazy.call("sensorbox.device.store.classes", "names", st)
        except OSError:
            table = []
        for k in range(min(len(table), 256)):
            if table[k] in self.names:
                ids[k >> 3] |= 1 << (k & 7)

    def on(self, topic, t, v):
        """A row on the bus (``Store.on_bus``): a trigger opens or extends a capture. Integers only."""
        if topic == "predictions" or topic == "soundclass":
            k = v[0]
            if k != (self.last if topic[1] == "r" else self._slast) and 0 <= k < 256 and \
                    self.ids[k >> 3] & (1 << (k & 7)):
                self._hit(t, 1, k)
            if topic[1] == "r":
                self.last = k
            else:
                self._slast = k
        elif topic == "soundlevel" and self.level and v[0] >= self.level:
            self._hit(t, 2, v[0])

    def _hit(self, t, kind, val):
        if self.st.clip is not None:  # a clip too (clips.py: kind 2 sound, 3 class)
            self.st.clip.trigger(3 if kind == 1 else 2, val)
        a = t - self._pre
        b = t + self.post
        if self.a >= 0 and a <= self.b:  # inside (or touching) the open capture: it lasts longer
            if b > self.b:
                self.b = b
            return
        if self.a >= 0:
            self.close()
        self.a, self.b, self.kind, self.val = a, b, kind, val

    def close(self):
        d = self.done
        if d[0] >= 0:  # the last one is not recorded yet (between two flush points): one record for both
            d[1] = self.b
        else:
            d[0], d[1], d[2], d[3] = self.a, self.b, self.kind, self.val
        self.a = self.b = -1

    def pinned(self, a, b):
        """True when the open capture, or a closed one not recorded yet, holds time in [a, b)."""
        d = self.done
        return (self.a >= 0 and self.a < b and self.b > a) or (d[0] >= 0 and d[0] < b and d[1] > a)

    def flush(self, st):
        """At the store's flush point: close a capture whose time is over (its frames handled), record the one
        closed (labels.bin, then its event)."""
        if self.a >= 0:
            now = st.clock()
            upto = self.upto if self.only else (st.accel.last_t if st.accel.budget else now)
            if (upto is not None and upto >= self.b) or now >= self.b + self._pre + 10000:  # (or given up on)
                self.close()
                if self.only:  # (the next capture's frames start a segment of their own, not a sensor gap)
                    st._close_seg(st.accel)
        d = self.done
        if d[0] < 0:
            return
        a, b, kind, val = d
        d[0] = -1
        if kind == 1:
            name = st.class_name(val) or "class {}".format(val)
            ev = {"type": "capture", "start": a, "end": b, "trigger": "class", "class": name}
        else:
            name = "{} dB".format(val / 100)
            ev = {"type": "capture", "start": a, "end": b, "trigger": "sound", "leq_db": val / 100}
        from sensorbox.device import lazy

        try:  # (meta.py, loaded for it)
            self.released += record(st, a, b, ("capture " + name)[:40])
            self.made += 1
        except OSError as e:  # (a full flash: the capture's rows stay until retention needs them)
            st.log.error("store", "capture {}..{} not recorded ({})".format(a, b, e))
        finally:
            lazy.unload("sensorbox.device.store.meta")
        st.on_bus("events", st.clock(), ev)

    def poll(self, st, ring, buf):
        """Capture-only: store the ring's frames inside the open capture; skip those no trigger can still want."""
        rate = ring.rate_hz
        hold = ring.head - (self._pre + HOLD_S * 1000) * rate // 1000  # frames from here on wait for triggers
        for _ in range(64):
            seq = ring.next_held(st._seq)
            if seq > st._seq and self.a >= 0 and ring.time_of(st._seq) <= self.b and \
                    ring.time_of(seq) >= self.a:  # overwritten before they were read, inside the capture
                self.lost += seq - st._seq
                st.accel.lost_rows += seq - st._seq
            st._seq = seq
            if seq >= ring.head:
                return
            if self.a < 0:  # no capture: what is older than the hold goes
                if seq < hold:
                    st._seq = hold
                return
            sa = _first(ring, self.a)  # the capture's first frame
            sb = _first(ring, self.b + 1)  # ... and the one after its last
            if seq < sa:
                if sa > hold:  # (never the case: the capture began pre_s before its trigger)
                    sa = hold
                if sa <= seq:
                    return
                st._seq = sa
                continue
            if seq >= sb:  # all of it handled: the flush point closes it
                self.upto = self.b
                return
            first, n = st._piece(ring, seq, min(sb - seq, _FRAMES))
            if n <= 0:
                return
            o = first % ring.capacity * ring.channels  # (``buf``: a memoryview of the ring's buffer)
            st.append_frames(ring.time_of(first), first, st._gen, rate, buf[o:o + n * ring.channels], n)
            st._seq = first + n
            self.upto = ring.time_of(first + n - 1)

    def status(self, out):
        """``out["capture"]``: the store's summary (``figures.status``) while capture is on."""
        out["capture"] = {"only": self.only, "classes": self.names,
                          "sound_db": self.level // 100 if self.level else None, "pre_s": self._pre // 1000,
                          "post_s": self.post // 1000, "open": self.a >= 0, "captures": self.made,
                          "released_unpulled": self.released, "lost_frames": self.lost}


def _first(ring, t):
    """The first frame of ``ring`` whose time (``ring.time_of``) is ``t`` or later."""
    s = ring.head + (t - ring.time_of(ring.head)) * ring.rate_hz // 1000
    while ring.time_of(s - 1) >= t:
        s -= 1
    while ring.time_of(s) < t:
        s += 1
    return s


def record(store, a, b, name):
    """Record capture [a, b) named ``name`` (printable, at most 40 characters): pinned like a label until
    pulled, never listed as one. With ``_MAX_PINNED`` pinned already, the oldest is released (marked deleted: its
    rows stay until retention needs them). Returns the number released (0 or 1)."""
    from sensorbox.device.store.meta import _info, _recs, _rel_all, _rewrite, pack, pins

    info = _info()
    rel = _rel_all(store)
    live = dead = caps = 0
    nxt = 1
    oldest = -1
    for pos, st, ident, x, y, nm in _recs(store, info):
        if st == 88:
            dead += 1
        elif st == 67:
            if y - 1 > rel:
                caps += 1
                if oldest < 0:
                    oldest = pos
            else:
                dead += 1  # (pulled: dropped at the next rewrite)
        else:
            live += 1
        if ident >= nxt:
            nxt = ident + 1
    nxt = max(nxt, info[2])
    released = 0
    if caps >= _MAX_PINNED and oldest >= 0:
        with open(store.root + "/labels.bin", "r+b") as f:
            f.seek(oldest)
            f.write(b"X")
        released = 1
        store.log.warning("store", "{} captures not pulled yet: the oldest released to retention".format(caps))
    if not info[2] or info[3] or info[4] or info[5] != 2 or (dead >= 32 and dead >= live + caps):
        _rewrite(store, nxt)
    with open(store.root + "/labels.bin", "ab") as f:
        f.write(pack(nxt, a, b, name, 67))
    pins(store)
    return released
