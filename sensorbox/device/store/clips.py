"""Audio clips (``clip.*``): short stretches of the microphone's int16 samples kept in the store, a segment each.

A clip is ``clip.length_ms`` (1-3 s) of the microphone at ``mic.rate_hz`` (8 or 16 kHz), of which ``clip.pre_ms``
come from before its trigger. Triggers: on demand (``POST /api/clips``, the MQTT command ``clip``, the UI's
button: ``demand``) and event capture's (``capture.sound_db``: a sound level at or above it, ``sound``;
``capture.classes``: a change into one of those classes of the activity model or the sound classifier, ``class``;
``capture.py`` hands them here). A trigger while a clip records is ignored (counted).

RAM. A generic ESP32 cannot hold seconds of audio (1 s at 16 kHz is 32 KB), so a clip is never held: the sound
meter hands each 256-sample chunk it reads to ``feed`` before it weights it, and a recording clip writes the
chunk straight to flash in blocks of ``_BLOCK`` frames (littlefs buffers them; the store's flush point syncs
them). The blocks are cut from a ring of the last chunks (``_MARGIN`` frames, 1 KB: whole blocks whatever the size
of the meter's chunks) which also holds the pre-trigger audio, ``clip.pre_ms`` more: its RAM is what
``board.clip_ring_ms`` (the board profile's: 0 on a generic ESP32, 3 s on a PSRAM board) allows; the ring is
allocated when clips are turned on, and a board without the RAM for the pre-trigger part runs without it (logged,
and ``/api/status`` -> ``store`` -> ``clips`` -> ``ring_error``), never a failing service. A clip is written from
the ring at most ``_PER_FEED`` blocks a chunk: twice the microphone's rate, so the writer catches up with the
pre-trigger audio within ``clip.pre_ms`` of the trigger while new chunks keep coming.

Format: the store's resource ``clips`` (made at the first clip): a rate segment per clip, one column ``pcm``,
blocks stored uncoded (``Res.raw``; audio codes poorly and this costs no encoder time), all of ``_BLOCK`` frames but
the last, so a clip's frames follow from its segment's size (``figures.clips``). The header's
``seq0`` is 0 and its ``generation`` says why it was made: ``kind << 30 | pre_ms << 16 | value`` (kind 1 demand,
2 sound, 3 class; value the level in centi-dB or the class id: ``figures.clips`` lists them so). Exports read clips like any rate resource
(``GET /api/resources/clips/data?start=&end=&format=wav|npy``: ``export.py``).

Kept: a finished clip is recorded at the store's next flush point as a pin (``capture.record``: a record in
labels.bin, never listed as a label, released when ``sensorbox pull`` has the clips resource past it; at most 64
pins with the captures) and announced as an event ``{"type": "clip", "start", "end", "trigger", "rate_hz"[,
"class" | "leq_db"]}`` (History, exports, MQTT and webhooks get it like any event).

Loaded by the store (``capture.configure``, which ``recover.configure`` calls) while ``clip.enabled`` is on and kept
in ``Store.clip``; off, nothing of it is resident. Only the recording path is here: the listing (``GET /api/clips``)
and the status are ``figures.py``'s, loaded per request.
"""

import array

from micropython import const

from sensorbox.shared import kernels

_BLOCK = const(128)  # frames per block (256 bytes: half an export's rate reader, export._RATE_BLOCK)
_PER_FEED = const(4)  # blocks written per chunk at most: 512 frames a 256-frame chunk
_MARGIN = const(512)  # ring frames beyond clip.pre_ms: the chunk that arrives while the pre-trigger part is written
_HDR = const(32)
_KINDS = ("", "demand", "sound", "class")
_CAP = const("sensorbox.device.store.capture")


def configure(st, cfg):
    """Clips on (``st.clip``, made again for a config change: a clip recording ends here, recorded at the next flush
    point) or off (the one recording ended and recorded at once, this module unloaded). Clips turned on where the
    heap has no block for their 1 KB ring even with lazy's reserve given up stay off until the store starts again
    (a config change), noted in ``/api/status`` -> ``store`` -> ``notes``: never a failing store (the config fuzz at
    144wK turned them on late on a cut-up heap, and the store service failed)."""
    from sensorbox.device import lazy

    old = st.clip
    if old is not None:
        old.end(st)
        old.flush(st)
        st.clip = None  # (the store's own attribute by now: no RAM)
    if cfg.get("clip.enabled"):
        for _ in range(2):
            try:
                st.clip = Clips(st, cfg, old)  # (set the first time, it grows the store's attribute table: RAM too)
                break
            except MemoryError:
                if not lazy.release():
                    break
        c = st.clip
        if c is not None:
            if old is not None:
                c.made, c.skipped, c.lost = old.made, old.skipped, old.lost
            return
        from sensorbox.device.store.recover import note  # (loaded: recover.configure is what calls this)

        note(st, "clips: no RAM for their 1 KB ring now: off until the store starts again")
    lazy.unload("sensorbox.device.store.clips")


class Clips:
    def __init__(self, st, cfg, old=None):
        """``old``: the clips of before a config change or the store service's restart (ended and recorded), whose
        buffers are taken when they are of the size needed: a restart on a cut-up heap found no 1 KB block for
        a new one (the every-feature soak at 144wK) and failed again at every try."""
        self.st = st
        self.r = None  # the store's resource clips: made at the first clip (Store.resource)
        self.ms = cfg.get("clip.length_ms")
        self.pre_ms = cfg.get("clip.pre_ms")
        self._rate(cfg.get("mic.rate_hz"))
        self.ring_error = None
        try:
            n = self._pre_n + _MARGIN
            ring = old.ring if old is not None and len(old.ring) == n else array.array("h", bytes(2 * n))
        except MemoryError:  # (this board has not the RAM board.clip_ring_ms says: clips without pre-trigger audio)
            e = "clips: no {} bytes of RAM for {} ms of pre-trigger audio: clips start at their trigger".format(
                2 * (self._pre_n + _MARGIN), self.pre_ms)
            self.ring_error = e[7:]  # (without "clips: ", which would be one more interned name)
            st.log.error("store", e)
            self._pre_n = 0
            ring = array.array("h", bytes(2 * _MARGIN))
        self.ring = ring  # (blocks are written from it: whole ones, whatever the size of the meter's chunks)
        self.held = len(ring) - _MARGIN  # pre-trigger frames it can hold (at the rate it was made for)
        self.rmv = memoryview(ring)
        # a block across the ring's end
        self._across = array.array("h", bytes(2 * _BLOCK)) if old is None else old._across
        self.wmv = memoryview(self._across)
        self.head = -1  # sequence number of the next microphone frame (-1: none seen yet)
        self.fill = 0  # frames of the ring that hold audio
        self.a = -1  # the recording clip's first frame (-1: none), ...
        self.b = self.w = 0  # ... the frame after its last, the next one to write
        self.t0 = 0  # ... and its time (epoch ms)
        self._trig = 0  # a trigger to start a clip at the next chunk: kind << 30 | value
        self.done = None  # a clip ended, to record at the flush point: (t0, t1, kind, value)
        self.made = self.skipped = self.lost = 0

    def _rate(self, rate):
        # the frames of a clip and of its pre-trigger part at ``rate`` (mic.rate_hz, which may change while clips
        # are on: the microphone restarts, not the store)
        self.rate = rate
        self.n = self.ms * rate // 1000
        self._pre_n = self.pre_ms * rate // 1000

    def trigger(self, kind, val):
        """Start a clip at the next chunk the sound meter reads (kind 1 demand, 2 sound, 3 class; value: centi-dB
        or class id). False (counted) when one is recording or about to."""
        if self.a >= 0 or self._trig:
            self.skipped += 1
            return False
        self._trig = kind << 30 | (self._pre_n * 1000 // self.rate << 16) | (val & 0xFFFF)
        return True

    def feed(self, buf, n, last, mic):
        """The sound meter's chunk: ``n`` frames in ``buf`` (int16), the last one's sequence number ``last``, of the
        microphone's ring ``mic`` (its times). Into the pre-trigger ring, and into flash while a clip records."""
        first = last - n + 1
        if first != self.head or mic.rate_hz != self.rate:  # a gap (or another rate): the ring starts over
            if self.a >= 0:
                self.lost += self.b - self.w
                self.end(None)
            self.fill = 0
            if mic.rate_hz != self.rate:
                self._rate(mic.rate_hz)
                if self._pre_n > self.held:  # (a ring made for 8 kHz holds half as long at 16 kHz)
                    self._pre_n = self.held
        self.head = first + n
        ring = self.ring
        cap = len(ring)
        pos = first % cap
        k = cap - pos if cap - pos < n else n
        kernels.copy_i16(buf, 0, ring, pos, k)
        if k < n:
            kernels.copy_i16(buf, k, ring, 0, n - k)
        self.fill = cap if self.fill + n > cap else self.fill + n
        if self._trig:
            self._begin(first, mic)
        if self.a >= 0:
            self._write()

    def _begin(self, first, mic):
        held = self.fill - (self.head - first)  # frames the ring holds from before this chunk
        pre = self._pre_n if self._pre_n < held else held
        a = first - (pre if pre > 0 else 0)
        g = self._trig
        self._trig = 0
        self.t0 = mic.time_of(a)
        try:
            r = self.r = self.st.resource("clips")  # (made with Res.raw set: recover.make)
            m = _HDR + (self.n + _BLOCK - 1) // _BLOCK * (8 + 2 * _BLOCK)  # one segment a clip (retention: whole
            if m > r.seg_max:  # clips)
                r.seg_max = m
            self.st._open_seg(self.r, self.t0, 1, 0, g, self.rate)
        except OSError as e:
            self.lost += self.n
            self.st.log.error("store", "clips: cannot open a segment ({})".format(e))
            self.st.retain(True)
            return
        except MemoryError:  # no room for the resource's first making or the segment now (a cut-up heap): the
            self.skipped += 1  # trigger is skipped, counted; the sound meter, which feeds this, goes on (it failed:
            return  # the gyroscope's every-feature soak at 136wK)
        self.a = self.w = a
        self.b = a + self.n
        self.g = g

    def _write(self):
        r = self.r
        cap = len(self.ring)
        for _ in range(_PER_FEED):
            w = self.w
            k = (self.head if self.head < self.b else self.b) - w
            if k <= 0 or (k < _BLOCK and w + k < self.b):
                break  # (blocks are whole but the clip's last: its frames follow from its size)
            if k > _BLOCK:
                k = _BLOCK
            if w < self.head - cap:  # (overwritten before it was written: never at _PER_FEED blocks a chunk)
                self.lost += self.head - cap - w
                self.w = self.head - cap
                continue
            o = w % cap
            mv = self.rmv
            if k > cap - o:  # (across the ring's end: the block's two pieces into one, never a short block)
                kernels.copy_i16(self.ring, o, self._across, 0, cap - o)
                kernels.copy_i16(self.ring, 0, self._across, cap - o, k - cap + o)
                mv = self.wmv
                o = 0
            if not self.st._block(r, mv[o:o + k], 2 * k, r.seg_rows, k):
                self.lost += self.b - w
                self.end(None)
                return
            self.w = w + k
        if self.w >= self.b:
            self.end(None)

    def end(self, st):
        """End the recording clip (what it wrote is kept; ``done`` for the flush point)."""
        if self.a < 0:
            return
        r = self.r  # (made: a clip started)
        t1 = self.t0 + r.seg_rows * 1000 // self.rate
        if r.seg_rows:
            r.last_t = t1 - 1000 // self.rate
            self.done = (self.t0, t1, self.g >> 30, self.g & 0xFFFF)
        self.st._close_seg(r)
        self.a = -1

    def pinned(self, a, b):
        """True when the recording clip, or one not recorded yet, holds time in [a, b) (``retain.pinned``)."""
        d = self.done
        return (self.a >= 0 and self.t0 < b) or (d is not None and d[0] < b and d[1] > a)

    def flush(self, st):
        """At the store's flush point: record the clip that ended (a pin in labels.bin, then its event)."""
        d = self.done
        if d is None:
            return
        self.done = None
        t0, t1, kind, val = d
        ev = {"type": "clip", "start": t0, "end": t1, "trigger": _KINDS[kind], "rate_hz": self.rate}
        name = "clip"
        if kind == 2:
            ev["leq_db"] = val / 100
        elif kind == 3:
            ev["class"] = c = st.class_name(val) or "class {}".format(val)
            name = "{} {}".format(name, c)  # ("clip " would be one more interned name)
        from sensorbox.device import lazy

        try:  # (capture.py's record, loaded for it unless capture is on; meta.py with it)
            lazy.load(_CAP).record(st, t0, t1, name[:40])
            self.made += 1
        except OSError as e:  # (a full flash: the clip stays until retention needs its room)
            st.log.error("store", "clip {}..{} not recorded ({})".format(t0, t1, e))
        finally:
            if st.cap is None:
                lazy.unload(_CAP)
            lazy.unload("sensorbox.device.store.meta")
        st.on_bus("events", st.clock(), ev)
