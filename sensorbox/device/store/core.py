"""The store's writer: resources, segment files on flash, crash recovery, retention and reader cursors.

Resources (``recover.RESOURCES``) and the bus values the store expects from their producers:

- ``accel``: int16 x, y, z (with ``accel.gyro`` also gx, gy, gz: the ring's channels, set at boot) at the sensor's
  rate, read from ``device.sensors["accel"].ring`` (not the bus). Exports give the frames of the current width.
- ``features``: bus topic "features", value = ``array('h')`` (or tuple of ints), one per window. The width is
  taken from the value (at boot from the newest segment, then from each new segment); a change of width starts a
  new segment and exports show the newest width. Column names: ``sensorbox.shared.features.names(channels)``
  when the width is that of 3 or 6 channels (86 or 169), else f0, f1, ...
- ``predictions``: value = ``(class_id, confidence_permille)`` ints: the class's id in the store's class table
  (``class_ids``; -1 = unknown), which names it for good whatever model runs later (``classes.py``).
- ``soundlevel``: value = ``(leq, lmin, lmax, l10, l50, l90)`` ints in centi-dB (int16).
- ``events``: value = a small JSON-able dict with a "type" key (at most 500 bytes as JSON).
- ``soundclass``: as ``predictions``, from the sound classifier (``sensorbox.device.analysis.soundclass``). Made on
  first use (``resource``: the classifier starts, a sink reads it) or at boot when it has a directory: a device that
  never classified sounds holds no RAM for it, and neither lists nor exports it.
Values outside int16 are clamped. Times are epoch ms ints; within a resource they are made strictly increasing
(a row up to 2 s older than the previous one is stored 1 ms after it; a bigger jump back starts a new segment).

Layout: ``<root>/<resource>/<name>.seg``, ``name`` = start time in epoch ms (made unique and increasing).
A segment is a 32-byte header (magic ``SBS1``, version 2, resource code, columns, codec, rate, row bytes, t0,
seq0, generation, CRC-32 of the first 28 bytes) followed by blocks, appended only. A block is one batch of rows
as it was written (accel frames read from one piece of the ring, or the rows a RAM buffer held at a flush point)::

    crc32 (uint32, of the 4 bytes that follow and the payload), payload bytes (uint16), first (uint16), payload

``first`` is the index of the block's first row in the segment for rate rows (mod 65536), else the low 16 bits of
its time offset. Rows:

- rate rows (accel): ``columns`` int16 values, row i at ``t0 + i*1000//rate``. A gap in the sample sequence,
  a sensor restart (new generation) or clock drift of more than two sample periods starts a new segment, so
  every gap is explicit: the next segment's ``seq0``/``t0`` say where sampling resumed.
- timed rows: int32 ms offset from t0, then ``columns`` int16 values.
- text rows (events): ``<epoch ms>\\t<json>\\n`` lines.

The payload is the rows as they are (codec 0) or, in segments of codec 1 (numeric resources while
``store.compress`` is on, the default), the block's rows coded by ``sensorbox.shared.codec``: columns delta- or
delta-of-delta coded and bit-packed (or sparse: those mostly 0), each block decodable on its own (a row is 16-bit words: a timed row's time
offset is two of them), or a 0 byte and the rows as they are when coding would not make them smaller. Readers
decode (``reader.py``); exports and everything after them see the same rows either way. A block holds at most
``BLOCK_MAX`` payload bytes (and at most ``BLOCK_MAX - 1`` bytes of rows). Readers (``reader.py``: export, the
outbox, recovery) check every block's CRC: a block that fails is skipped and counted, never read as data, and
the rows after it are found again. Segments of version 1 (rows without blocks or checksums, written by earlier versions) stay readable as they
are (in pieces of whole rows, unchecked) until retention deletes them.

A segment is closed when the next block would pass ``seg_bytes`` (8 littlefs blocks of 4 KB, less the CTZ
pointers; smaller when a budget is small) or after 24 h. Writes are batched: accel frames are appended once per
flush interval (the ring is read at least every half of its span, so a long interval at a high rate loses
nothing; frames overwritten before they were read count in ``lost_rows``), bus values wait in a preallocated RAM
buffer, already in their row format; then each written file is flushed (littlefs: synced). Writing a row
allocates nothing; a block costs a memoryview and its CRC.

Power-loss contract: a row is durable once a flush point passed it; flush points come every ``store.flush_ms``
(default 1 s), so at most that much data (plus one write) is lost. A crash or a power cut can leave a torn tail
in the newest segment, cut at any byte: a partial block or a partial header. ``open()`` deletes a torn header or
a segment without a whole block; readers ignore a torn last block; a segment is never appended to after a
restart. A file that does not belong (wrong name, bad header, other resource) is moved to ``<root>/quarantine``
(the newest 8 are kept) and reported: never a crash loop.

Retention: each resource has a byte budget (``store.<name>_kb``, 0 = not stored) and the file system keeps a
free floor (``store.min_free_kb``). The oldest segment goes first. Reader cursors (``cursor``/``advance``) hold
back deletion for the free floor while other data can go; past the budget data goes anyway, counted as
``forced`` and in the cursor's ``lost``. A write that fails (full flash) frees space and retries once; what
still cannot be written is counted in ``lost_rows``. Sampling never stops for the store.

Pins: a segment of a full-resolution resource holding rows inside a label's range (or an open recording's,
``pin_open``) that have not been pulled yet is pinned: retention skips it (the next unpinned one goes instead),
for the budget and for the free floor alike, and never deletes it. Pulled means the resource's ``pull.<name>``
cursor (``POST /api/pulled``, which ``sensorbox pull`` sends) has passed them; a label can also be unpinned
(``meta.label_delete`` with status U). When pinned segments alone fill a budget the resource keeps sampling into its
newest segments (the store grows past its budget by what is pinned, ``held``); when they fill the flash to the floor
(``pin_floor``) new rows that cannot be written are counted in ``lost_rows``. Both show in ``/api/status``. The
pinned ranges are kept merged in RAM (``PINS`` of them at most: more labels are merged into wider ranges, which
pins more, never less); ``meta.pins`` reads them from labels.bin again after a change.

Rollups (``rollup.py``, loaded once a minute by the store service: ``job``): the stored ``soundlevel`` and
``predictions`` rows are summarised per minute and per hour into resources of their own, kept far longer. A
rollup's rows go to its ``rollup-stage.seg`` first (one-row blocks; readers read it after the other segments) and into
a segment as one coded block when they fill one. A rollup segment spans at most ``_RSPAN_MS`` (its rows' int32
time offsets), a full-resolution one 24 h.
"""

import json
import os
import struct

import micropython
from micropython import const

from sensorbox.shared import InputError

_HDR = const(32)
_BLK = const(8)  # block header: crc32, payload bytes, first
_BLOCK_MAX = const(1024)  # payload bytes per block at most (a reader's buffer: BLK + BLOCK_MAX)
_BUS_BLOCK = const(520)  # ... and of the bus resources' blocks (their RAM buffers, below, are no bigger)
_VERSION = const(2)  # (rollup.py has it too)
_MAGIC = b"SBS1"
_HFMT = "<4sBBBBHHqII"  # magic, version, code, ncols, codec, rate_hz, row_bytes, t0, seq0, generation (+ crc32)
SEG_BYTES = 32704  # 8 x 4096 less littlefs CTZ skip-list pointers: a full segment occupies exactly 8 blocks
_SPAN_MS = const(86400000)
_RSPAN_MS = const(1728000000)  # 20 days: a rollup segment (int32 ms offsets reach 24.8 days)
TEXT_MAX = const(500)
_FRAMES = const(50)  # accel frames a block at most (1 s at 50 Hz; at 100 Hz a flush point writes two)
_CUR_SAVE_MS = const(10000)

_RATE = const(0)
_TIMED = const(1)
_TEXT = const(2)

_CODEC = const(1)  # sensorbox.shared.codec (recover.py has it too)
_PINS = const(8)  # pinned ranges kept in RAM (meta.pins)
_ZBUF = const(304)  # an accelerometer block coded (a raw one: _FRAMES frames of 3 channels and a 0 byte)
# Resources made on first use (``Store.resource``: their producer starts, a sink reads them), or at boot when
# their directory exists (``recover.open_store``): until then a device holds no RAM for them (~0.9 KB each here).
_ON_USE = ("soundclass", "clips")

_Z0 = b"\x00"  # the payload's first byte of a block stored raw in a coded segment


try:
    from binascii import crc32
except ImportError:  # pragma: no cover - depends on the firmware build: the plain one (recover.py)
    from sensorbox.device.store.recover import crc32_py as crc32


class QueryError(InputError):
    """A query of the store refused: ``reason``, and ``field`` the parameter."""


def seg_names(r):
    """Segment names (ints, ascending) of resource ``r``."""
    out = []
    for e in os.ilistdir(r.dir):
        n = e[0]
        if n.endswith(".seg") and n[:-4].isdigit():
            out.append(int(n[:-4]))
    out.sort()
    return out


def columns_of(r):
    """The names of resource ``r``'s columns (an export's header, ``GET /api/resources``; here, resident, rather
    than a module of its own: every module interns three names for good, and the whole app's are near the pool's
    doubling, docs/heap.md)."""
    from sensorbox.shared import features  # (resident)

    if r.cols is not None:
        return r.cols
    if r.period:  # a rollup's: the sound (codes 7, 8) or the class rollups' (9, 10: seconds per class; rollup.py)
        if r.code < 9:
            return ("n", "leq", "lmin", "lmax", "l10", "l50", "l90")
        return ("windows", "changes", "confidence", "other", "unknown") + tuple(
            "c" + str(i) for i in range(r.ncols - 5))
    for ch in (3, 6):
        names = features.names(ch)
        if len(names) == r.ncols:
            return names
    return tuple("f{}".format(i) for i in range(r.ncols))


class Res:
    """A resource's state. A rollup's (written once a minute, rollup.py) and the counters of rare events are class
    attributes until first set: an instance's attribute table holds only what it sets (~0.7 KB each on the unix
    port with all of them). The others set what their hot paths write here, so writing a row never grows it."""

    kind = _TIMED
    cols = None  # (features: from the first value)
    ncols = 0
    seg_max = SEG_BYTES
    period = 0  # a rollup's period (ms); 0: full resolution
    budget = 0
    bytes = 0  # bytes of its segment files
    nseg = 0
    first = None  # name of the oldest segment
    newest = 0  # name of the newest segment
    last_t = None  # time of the newest row on flash (or in RAM, for ordering)
    f = None  # the open segment
    seg_name = seg_t0 = seg_rows = seg_size = seg_ncols = 0
    buf = None  # rows waiting for the flush point, as on flash
    blen = 0
    brows = 0  # (a rollup, which has no buffer: the rows in its stage, rollup.py)
    bt0 = 0  # timed rows in buf: offsets from this time
    bn = 0  # ... and their width
    dirty = False
    synced = 0  # rows of the open segment its last sync passed
    rows = 0  # rows stored since boot
    added = 0  # bytes appended since boot (bytes/day estimate)
    lost_rows = 0  # RAM buffer full or write failed
    ret_segs = 0  # segments deleted by retention
    ret_bytes = 0
    forced = 0  # ... of which a cursor still needed
    gaps = 0
    raw = False  # segments stored uncoded (the audio clips': clips.py)

    @property
    def dir(self):
        """The resource's segment directory: ``base`` (the store's root, or the SD card's: sd.place) and its name.
        Made when asked (segments open a few times an hour): a resource keeps no path of its own."""
        return self.base + "/" + self.name

    def __init__(self, spec, root):
        self.name, self.code = spec[0], spec[1]
        if spec[2] != _TIMED:
            self.kind = spec[2]
        if spec[3] is not None:
            self.cols = spec[3]
            self.ncols = len(spec[3])
        bufsize = spec[4]
        self.base = root
        if len(spec) > 5:  # a rollup: the number of its columns in place of a buffer's size (names: columns_of)
            self.period = spec[5]
            self.ncols = bufsize
            return
        self.budget = self.bytes = self.nseg = self.newest = 0
        self.first = self.last_t = self.f = None
        self.seg_name = self.seg_t0 = self.seg_rows = self.seg_size = self.seg_ncols = 0
        if self.kind == _RATE:
            self.seg_next = self.seg_gen = self.seg_rate = 0
        if bufsize:
            self.buf = bytearray(bufsize)
            self.blen = self.brows = self.bt0 = self.bn = 0
        self.dirty = False
        self.rows = self.added = 0


class Store:
    cap = None  # event capture (capture.py) while capture.* has it on
    clip = None  # audio clips (clips.py) while clip.enabled is on
    sd = None  # the SD card (sd.py) when board.sdcard names one
    # until first set (the instance's attribute table stays a size smaller):
    npins = 0  # pinned ranges in pins
    pin_open = -1  # start of an open recording (pinned while it lasts)
    pin_floor = False  # the free floor cannot be kept: only pinned segments are left to delete
    held = ()  # resources over budget with only pinned segments left to delete (a list once retention ran)
    errors = 0  # failed writes
    flushed = None  # an asyncio.Event set at each flush point, made when a sink first waits (outbox.flush_event)
    # [first, last, add]: rows stored at times first..last, while the clock was unknown, belong ``add`` ms later
    # (``real``); add is None until the time is known (recover.resync; kept in timefix.json). A list once any.
    _shifts = ()

    def __init__(self, root, log, clock, flash_stats=None, seg_bytes=SEG_BYTES):
        self.root = root
        self.log = log
        self.clock = clock
        self.flash_stats = flash_stats
        self.seg_bytes = seg_bytes
        from sensorbox.device import lazy

        try:  # the resources (``recover.RESOURCES``: their table is needed only now; not those made on first use)
            self.res = lazy.load("sensorbox.device.store.recover").resources(root)
        finally:
            lazy.unload("sensorbox.device.store.recover")
        self.by_name = {}
        for r in self.res:
            self.by_name[r.name] = r
        self.accel = self.by_name["accel"]
        self._later = (0,) * len(_ON_USE)  # budgets of the resources made on first use (configure, recover.make)
        self.flush_ms = 1000
        self.min_free = 0
        self.cursors = {}  # name -> [resource, t consumed, segments lost]
        self._cur_dirty = False
        self._cur_saved = 0
        self.quarantined = 0
        self.torn = 0
        self.labels = 0  # live labels in labels.bin (kept by store/meta.py)
        self.notes = ()  # recent quarantine/recovery messages (newest 4; a list once there is one)
        self._hdr = bytearray(_HDR)
        self._bh = bytearray(_BLK)  # a block's header
        self._bh4 = memoryview(self._bh)[4:]
        self._cname = None  # (class id, name): the last class_name looked up
        self.corrupt = 0  # corrupt stretches found in segments (recovery and readers; each segment counted once)
        self.bad_segs = ()  # the segments they were found in (newest 8; a list once there is one)
        self._zbuf = bytearray(_ZBUF)  # a block coded before it is written (and a rollup row staged)
        # the rollup job's reader's block (rollup.rows), taken while the heap is whole: at CORE_HEAP under load the
        # cut-up heap lacked a 528-byte piece for it now and then (the core soak: the job deferred). An export of
        # the accelerometer (604-byte blocks: export._RATE_BLOCK) or a bus resource borrows it while no job runs
        # (``_busy``; export._seg_reader): its own 612 or 528 bytes were what the ROMFS core soak at 84wK lacked
        # most often after lazy's list of modules
        self.spare = bytearray(_BLK + 604)
        self._busy = False  # the jobs run (``_jobs``): they read through ``spare``
        self.codec = _CODEC
        self.pins = None  # merged pinned ranges: start, end, ... (array("q") while a label pins data: meta.pins)
        self.changes = self._looked = 0  # segments opened or recoded, pin changes; ... as retention last saw them
        self.recode_due = True  # a closed segment of a timed resource may wait to be recoded (rollup.py)
        self.roll_at = 0  # when the rollups run next (epoch ms; None: no rollup is stored)
        self._gen = None
        self._seq = 0
        self._rolled = False
        self.reading = None  # time an export last read a chunk: routine retention waits 10 s (a full flash not)
        self.started = clock()  # (bytes a day: figures.per_day)

    # ---- configuration and recovery ----

    def resource(self, name):
        """The resource ``name`` (None if there is none by that name); one made on first use (``_ON_USE``) is made
        now, with its directory and budget (``recover.make``)."""
        r = self.by_name.get(name)
        if r is None and name in _ON_USE:
            from sensorbox.device import lazy

            r = lazy.call("sensorbox.device.store.recover", "make", self, name)
        return r

    def configure(self, cfg):
        """Apply the settings (``store.*``, ``capture.*``, ``board.sdcard``): ``recover.configure``, loaded for it (at
        boot and when the store service restarts for a change)."""
        from sensorbox.device import lazy

        lazy.call("sensorbox.device.store.recover", "configure", self, cfg)

    def open(self):
        """Scan the store after a (re)start: recover torn tails, quarantine what does not belong (the code for
        this runs once per boot, so it lives in ``recover`` and is unloaded afterwards)."""
        from sensorbox.device import lazy

        lazy.call("sensorbox.device.store.recover", "open_store", self)

    def quarantine(self, path, name, reason):
        from sensorbox.device import lazy

        lazy.call("sensorbox.device.store.recover", "quarantine", self, path, name, reason)

    def real(self, t):
        """The time that stored time ``t`` (a row's, a segment's name) stands for: ``t``, or later for what was
        stored while the clock was unknown and was placed when it became known (``_shifts``)."""
        for s in self._shifts:
            if s[2] and s[0] <= t <= s[1]:
                return t + s[2]
        return t

    def class_ids(self, names):
        """The stable ids (``array('h')``) of a model's class ``names``, in order; None (logged) when the class
        table cannot be written now (the caller tries again later)."""
        from sensorbox.device import lazy

        try:
            ids = lazy.load("sensorbox.device.store.classes").ids(self, names)
            if self.cap is not None:
                self.cap.reset(self)  # (new names may have ids now)
            return ids
        except (OSError, MemoryError) as e:
            self.log.error("store", "cannot give the model's classes ids ({})".format(e))
            return None
        finally:
            lazy.unload("sensorbox.device.store.classes")

    def class_name(self, k):
        """The name of class id ``k`` from the class table ("unknown" for -1, None if it has none)."""
        if k < 0:
            return "unknown"
        c = self._cname
        if c is None or c[0] != k:
            from sensorbox.device import lazy

            try:
                c = self._cname = (k, lazy.load("sensorbox.device.store.classes").name_of(self, k))
            finally:
                lazy.unload("sensorbox.device.store.classes")
        return c[1]

    # ---- writing ----

    def _open_seg(self, r, t0, ncols, seq=0, gen=0, rate=0):
        self._close_seg(r)
        rb = 2 * ncols if r.kind == _RATE else (4 + 2 * ncols if r.kind == _TIMED else 0)
        name = t0 if t0 > r.newest else r.newest + 1
        # coded as written: accel (a block a flush point holds 50 frames at 50 Hz) and rollups; the other timed
        # resources' blocks hold a row or two: written as they are, recoded once closed (rollup.py)
        codec = self.codec if (r.kind == _RATE or r.period) and not r.raw else 0  # (configure closes segments when it changes)
        r.f = _new_seg("{}/{}.seg".format(r.dir, name), self._hdr, r.code, ncols, codec, rate, rb, t0, seq, gen)
        r.seg_name = r.newest = name
        self.changes += 1
        r.seg_t0, r.seg_ncols = t0, ncols
        if r.kind == _RATE:  # (only the rate resource has these: set at once, see Res)
            r.seg_next, r.seg_gen, r.seg_rate = seq, gen, rate
        if r.kind == _TIMED and r.cols is None:  # features: the width of the newest segment (as recover.py does)
            r.ncols = ncols
        r.seg_rows = r.synced = 0
        r.seg_size = _HDR
        r.bytes += _HDR
        r.nseg += 1
        r.dirty = True
        if r.first is None:
            r.first = name
        self._rolled = True

    def _close_seg(self, r):
        f = r.f
        if f is None:
            return
        r.f = None
        try:
            f.close()
        except OSError:
            pass
        if r.seg_rows == 0:
            _rm("{}/{}.seg".format(r.dir, r.seg_name))
            r.bytes -= r.seg_size
            r.nseg -= 1
            if r.nseg == 0:
                r.first = None
        elif r.kind == _TIMED and not r.period and self.codec:
            self.recode_due = True

    def _block(self, r, data, n, first, rows):
        """Append one block (``rows`` rows: ``n`` bytes in ``data``) to the open segment, coded when the segment
        is; on failure close it (its tail may be torn) and free space."""
        h = self._bh
        z = None
        if self.codec and (r.kind == _RATE or r.period) and not r.raw:  # (as _open_seg wrote the segment's codec)
            o = self._zbuf
            if n + 2 > _ZBUF:  # (a rollup's block: rollup.flush, rarely)
                o = bytearray(n + 2)
            m = encode(data, rows, r.seg_ncols + (2 if r.kind == _TIMED else 0), o, len(o), data, 255)
            if m > 0:
                data = memoryview(o)[:m]
                n = m
            else:  # not smaller coded: a 0 byte, then the rows
                z = _Z0
                n += 1
        struct.pack_into("<HH", h, 4, n, first & 0xFFFF)
        c = crc32(self._bh4)
        if z is not None:
            c = crc32(z, c)
        struct.pack_into("<I", h, 0, crc32(data, c))
        try:
            r.f.write(h)
            if z is not None:
                r.f.write(z)
            r.f.write(data)
        except OSError as e:
            self.errors += 1
            self.log.error("store", "{}: write failed ({}); new segment".format(r.name, e))
            r.seg_rows += 1  # keep the file: what was written before is valid
            self._close_seg(r)
            self.retain(True)
            return False
        r.seg_rows += rows
        n += _BLK
        r.seg_size += n
        r.bytes += n
        r.added += n
        r.rows += rows
        r.dirty = True
        return True

    def append_frames(self, t0, seq, gen, rate, data, n):
        """Append ``n`` frames (int16, interleaved, ``data`` a memoryview) of the rate resource."""
        r = self.accel
        if r.budget == 0 or n <= 0:
            return
        ch = r.ncols
        rb = 2 * ch
        done = fails = 0
        t = t0
        while done < n and fails < 4:
            if r.f is not None:
                exp_t = r.seg_t0 + r.seg_rows * 1000 // rate
                if seq + done != r.seg_next or gen != r.seg_gen or rate != r.seg_rate \
                        or abs(t - exp_t) > 2 * 1000 // rate + 2 or r.seg_size + _BLK + 1 + rb > r.seg_max:
                    if seq + done != r.seg_next and gen == r.seg_gen:
                        r.gaps += 1
                    self._close_seg(r)
            if r.f is None:
                try:
                    self._open_seg(r, t, ch, seq + done, gen, rate)
                except OSError as e:
                    self.log.error("store", "accel: cannot open a segment ({})".format(e))
                    self.retain(True)
                    fails += 1
                    continue
            # (a block's rows and the byte before them when they do not code smaller; a coded one at most _ZBUF - 2
            # bytes of rows: half an export's reader, export._RATE_BLOCK, whose buffer a raw one fills)
            k = ((_ZBUF - 2) if self.codec else (2 * _ZBUF - 4)) // rb  # (a 6-channel block: 25 frames coded)
            k = (n - done + (n - done + k - 1) // k - 1) // ((n - done + k - 1) // k)  # (blocks of even size)
            k = min(k, (r.seg_max - r.seg_size - _BLK - 1) // rb)
            if self._block(r, data[done * ch:(done + k) * ch], k * rb, r.seg_rows, k):
                r.seg_next = seq + done + k
                done += k
                r.last_t = r.seg_t0 + (r.seg_rows - 1) * 1000 // rate
                t = r.seg_t0 + r.seg_rows * 1000 // rate
            else:
                fails += 1
        if done < n:
            r.lost_rows += n - done

    def on_bus(self, topic, t, value):
        """Bus subscriber: the value as a row into the resource's RAM buffer (written at the next flush)."""
        if self.cap is not None:
            self.cap.on(topic, t, value)
        r = self.by_name.get(topic)
        if r is None or r.budget == 0 or r.buf is None:
            return
        last = r.last_t  # (times made increasing: a row up to 2 s older than the last one is stored 1 ms after it)
        if last is not None and last - 2000 < t <= last:
            t = last + 1
        buf = r.buf
        if r.kind == _TEXT:
            data = json.dumps(value).encode()
            if len(data) > TEXT_MAX:
                r.lost_rows += 1
                return
            head = "{}\t".format(t).encode()
            size = len(head) + len(data) + 1
            if size > len(buf):
                r.lost_rows += 1
                return
            if r.blen and (r.blen + size > len(buf) or t < r.bt0 or t - r.bt0 > _SPAN_MS):
                self._drain(r)  # full before the flush point: write the batch now (synced at the flush point)
            if not r.blen:
                r.bt0 = t
            off = r.blen
            buf[off:off + len(head)] = head
            off += len(head)
            buf[off:off + len(data)] = data
            buf[off + len(data)] = 10
        else:
            n = len(value)
            if r.cols is not None and n != r.ncols:
                r.lost_rows += 1
                self.log.warning("store", "{}: expected {} values, got {}".format(r.name, r.ncols, n))
                return
            size = 4 + 2 * n
            if 2 * n > TEXT_MAX:
                r.lost_rows += 1
                return
            if r.blen and (n != r.bn or r.blen + size > len(buf) or t < r.bt0 or t - r.bt0 > _SPAN_MS):
                self._drain(r)
            if not r.blen:  # offsets from the open segment's t0 if the rows will go there, else from this row
                r.bn = n
                r.bt0 = r.seg_t0 if (r.f is not None and n == r.seg_ncols and r.seg_t0 <= t
                                     and t - r.seg_t0 <= _SPAN_MS) else t
            off = r.blen
            struct.pack_into("<i", buf, off, t - r.bt0)
            for i in range(n):
                v = value[i]
                struct.pack_into("<h", buf, off + 4 + 2 * i, -32768 if v < -32768 else (32767 if v > 32767 else v))
        r.blen += size
        r.brows += 1
        r.last_t = t

    def _drain(self, r):
        """Write the RAM buffer as one block (into the open segment, or a new one when it does not fit there)."""
        n = r.blen
        rows = r.brows
        r.blen = r.brows = 0
        first = r.bt0
        if r.kind == _TIMED:
            first += _i32(r.buf, 0)
        for attempt in range(2):
            if r.f is not None and (r.seg_size + _BLK + 1 + n > r.seg_max or first < r.seg_t0
                                    or r.last_t - r.seg_t0 > (_RSPAN_MS if r.period else _SPAN_MS)
                                    or (r.kind == _TIMED and r.bn != r.seg_ncols)):
                self._close_seg(r)
            if r.f is None:
                try:
                    self._open_seg(r, first, 0 if r.kind == _TEXT else r.bn)
                except OSError as e:
                    self.log.error("store", "{}: cannot open a segment ({})".format(r.name, e))
                    self.retain(True)
                    continue
            if r.kind == _TIMED and r.bt0 != r.seg_t0:  # the rows go into another segment than planned
                d = r.bt0 - r.seg_t0
                for o in range(0, n, 4 + 2 * r.bn):
                    struct.pack_into("<i", r.buf, o, _i32(r.buf, o) + d)
                r.bt0 = r.seg_t0
            if self._block(r, memoryview(r.buf)[:n], n, first - r.seg_t0, rows):
                return
        r.lost_rows += rows

    def poll(self, sensor):
        """Move new frames from the sensor's ring to flash (the store service calls this every flush)."""
        r = self.accel
        ring = sensor.ring
        if r.budget == 0 or ring is None or sensor.driver is None or ring.channels != r.ncols:
            return
        if sensor.generation != self._gen:
            self._gen = sensor.generation
            self._seq = ring.oldest()
        mv = memoryview(ring.buf)  # (blocks are written from the ring itself: the store keeps no copy of frames)
        if self.cap is not None and self.cap.window:  # capture-only: the frames around captures (capture.py)
            self.cap.poll(self, ring, mv)
            return
        if self._seq < ring.oldest():  # overwritten before the store read them: lost (sensor gaps among them too)
            r.lost_rows += ring.oldest() - self._seq
            self.log.warning("store", "accel: {} frames overwritten unread".format(ring.oldest() - self._seq))
        for _ in range(64):
            first, n = self._piece(ring, self._seq, _FRAMES)
            if n <= 0:
                break
            o = first % ring.capacity * r.ncols
            self.append_frames(ring.time_of(first), first, self._gen, ring.rate_hz, mv[o:o + n * r.ncols], n)
            self._seq = first + n

    def _piece(self, ring, seq, most):
        """(first, n): the frames the ring holds from ``seq`` on (``first``: later when they were overwritten or
        lie in a gap) that are in one piece of its buffer (up to its end; none past a gap), at most ``most``."""
        seq = ring.next_held(seq)
        n = ring.head - seq
        pos = seq % ring.capacity
        if n > most:
            n = most
        if n > ring.capacity - pos:
            n = ring.capacity - pos
        for g in ring.gaps:
            if seq < g[0] < seq + n:
                n = g[0] - seq
        return seq, n

    def _fsync(self, r):
        if r.dirty and r.f is not None:
            r.dirty = False
            try:
                r.f.flush()
                r.synced = r.seg_rows
            except OSError as e:
                self.errors += 1
                r.lost_rows += r.seg_rows - r.synced  # (written since the last flush point: not durable)
                self.log.error("store", "{}: flush failed ({}); {} rows since the last flush point lost".format(
                    r.name, e, r.seg_rows - r.synced))
                self._close_seg(r)
                if self.sd is not None:
                    self.sd.check(self)

    def flush(self):
        """The flush point: write buffered rows and sync every file written since the last one."""
        if self.cap is not None:
            self.cap.flush(self)
        if self.clip is not None:
            self.clip.flush(self)
        for r in self.res:
            if r.blen:
                self._drain(r)
            self._fsync(r)
        if self._rolled:
            self._rolled = False
            self.retain()
        if self._cur_dirty and self.clock() - self._cur_saved >= _CUR_SAVE_MS:
            self.save_cursors()
        if self.flushed is not None:
            self.flushed.set()  # rows up to here are readable: wake the sinks waiting for them

    def close(self):
        if self.cap is not None and self.cap.a >= 0:
            self.cap.close()  # (recorded by the flush: its rows so far are kept)
        self.flush()
        for r in self.res:
            self._close_seg(r)
        if self._cur_dirty:
            self.save_cursors()

    async def run(self, device):
        """The supervised store service (restarted on ``store.*`` config changes)."""
        import time

        import asyncio

        from sensorbox.device.supervisor import grid_ms

        self.configure(device.config)
        sensor = device.sensors.get("accel")
        n = 0
        due = time.ticks_ms()  # the next flush point: the first one now, then on the grid of store.flush_ms
        while True:
            if sensor is not None:
                sensor.pump()  # what the sensor's FIFO holds too: a flush point covers the frames made before it
                self.poll(sensor)
            now = time.ticks_ms()
            if time.ticks_diff(now, due) >= 0:
                self.flush()
                n += 1
                if n % 16 == 0:
                    self.retain()
                await self._jobs()  # after the flush point (the rows they read are on flash)
                now = time.ticks_ms()
                due = time.ticks_add(now, grid_ms(self.flush_ms))
            # Read the ring before half of it is overwritten, even when flush points are further apart. Both on
            # the device's timer grid: with the sensors' reads, one wake-up for all.
            period = self.flush_ms
            if sensor is not None and sensor.ring is not None and sensor.ring.rate_hz > 0:
                period = min(period, self._wait(sensor.ring))
            await asyncio.sleep_ms(min(grid_ms(period), time.ticks_diff(due, now)))

    def _wait(self, ring):
        """Ms until the ring must be read again: before half of what it keeps for the store is overwritten
        (capture-only: what it holds back for triggers is not room). (Not in ``run``: a coroutine's frame is as
        big as its deepest expression, for good.)"""
        held = self.cap.window * ring.rate_hz if self.cap is not None else 0
        return max((ring.capacity - held) * 500 // ring.rate_hz, 50)

    async def _jobs(self):
        """The rollups, the recoding and the moves onto the SD card, when one is due (``rollup.run``, loaded for
        them; the SD card, when it is missing, is tried again here). A coroutine of its own: the VM leaves popped
        references in a frame's stack slots, and the service's frame, which lives for good, would keep the module
        and its last generator (~6 KB) from being collected."""
        sd = self.sd
        if sd is not None:
            sd.tick(self)  # (on internal flash: the SD card tried again every 5 s)
        now = self.clock()
        due = 0  # the jobs (``rollup.step``) due: 1 the rollups (once a minute), 2 recoding, 4 moves onto the card
        if self.roll_at is not None and now >= self.roll_at:
            self.roll_at = now - now % 60000 + 80000  # (20 s into the next minute: rollup.GRACE)
            due = 1
        if self.recode_due and self.codec:  # (a segment of a timed resource was closed)
            self.recode_due = False
            due |= 2
        if sd is not None and sd.pending:
            due |= 4
        if due:
            import gc

            import asyncio

            from sensorbox.device import lazy

            for tries in range(4):
                try:
                    m = lazy.load("sensorbox.device.store.rollup")
                    break
                except MemoryError as e:  # no room for the jobs' code even with lazy's reserve given up: again
                    # after pauses (a request's peak is a moment's; the gyroscope's soak at 144wK lacked 592 bytes
                    # once), as a job short of memory does (rollup.run), then later; the service goes on (it failed
                    # here, and restarted on that heap failed again: 22 times in the every-feature soak at 144wK)
                    if tries < 3:
                        await asyncio.sleep_ms(100 * (tries + 1))
                        gc.collect()
                        continue
                    if due & 2:
                        self.recode_due = True
                    try:  # (the message itself may find no room: never the service's failure)
                        self.log.warning("store", "jobs {} short of memory: again later ({})".format(due, e))
                    except MemoryError:
                        pass
                    return
            lazy.unload("sensorbox.device.store.rollup")
            self._busy = True
            try:
                if await m.run(self, due) & 2:
                    self.recode_due = True  # (short of memory: again later)
            except MemoryError:  # (no block for the jobs' coroutine itself: they run again later, as above)
                if due & 2:
                    self.recode_due = True
            finally:
                self._busy = False

    # ---- retention and cursors ----

    def _free(self):
        if self.flash_stats is None:
            return None
        try:
            return self.flash_stats()[1]
        except OSError:
            return None

    def retain(self, full=False):
        """Delete the oldest segments that are not pinned: per-resource budgets, then the free floor (``full``: a
        write failed). The work is ``retain.run``, loaded only when a budget or the floor is passed and something
        changed since it last ran (a segment was opened, a pin changed: ``changes``). A failed write first asks
        the SD card, if there is one, whether it is still there (``sd.py``: else on internal flash from now on)."""
        if full and self.sd is not None:
            self.sd.check(self)
        if not full:
            if self.reading is not None and self.clock() - self.reading < 10000:
                return  # an export is streaming: do not delete what its .npy header already counted
            same = self.changes == self._looked
            over = held = False
            for r in self.res:
                if r.bytes > r.budget:
                    held = True
                    if not (same and r.name in self.held):  # (over budget for its pins: as it was)
                        over = True
            if not over:
                free = self._free()
                ok = free is None or free >= self.min_free
                if ok or (same and self.pin_floor):
                    if ok:
                        self.pin_floor = False
                    if not held:
                        self.held = []
                    return
        self._looked = self.changes
        from sensorbox.device import lazy

        try:
            lazy.load("sensorbox.device.store.retain").run(self, full)
        finally:
            lazy.unload("sensorbox.device.store.retain")

    def cursor(self, name, resource, start=None):
        """Register (or return) reader cursor ``name`` on ``resource``; a new one starts at ``start`` (default:
        the newest data). Returns the time it has consumed up to. Data after it is held back from deletion
        within the budget."""
        c = self.cursors.get(name)
        if c is None:
            r = self.resource(resource)
            c = self.cursors[name] = [resource, start if start is not None else (r.last_t or 0), 0]
            self._cur_dirty = True
        return c[1]

    def advance(self, name, t):
        """Cursor ``name`` has consumed (delivered) every row up to time ``t``."""
        c = self.cursors[name]
        if t > c[1]:
            c[1] = t
            self._cur_dirty = True

    def drop_cursor(self, name):
        if self.cursors.pop(name, None) is not None:
            self._cur_dirty = True

    def save_cursors(self):
        self._cur_saved = self.clock()
        self._cur_dirty = False
        try:
            tmp = self.root + "/cursors.json.tmp"
            with open(tmp, "w") as f:
                f.write(json.dumps(self.cursors))
            os.rename(tmp, self.root + "/cursors.json")
        except OSError as e:
            self.log.error("store", "cannot save cursors ({})".format(e))
        except MemoryError:  # (a cut-up heap at a request's peak: saved at a flush point ~10 s on; the store
            self._cur_dirty = True  # service failing for it was a restart, every feature on)

    # ---- figures ----

    def status(self):
        """The store's summary for /api/status (``figures.status``, loaded for the call)."""
        from sensorbox.device import lazy

        try:
            return lazy.load("sensorbox.device.store.figures").status(self)
        finally:
            lazy.unload("sensorbox.device.store.figures")


def _i32(b, o):
    """The little-endian int32 at ``b[o]`` (no allocation, unlike struct.unpack_from)."""
    v = b[o] | b[o + 1] << 8 | b[o + 2] << 16 | (b[o + 3] & 0x7F) << 24
    return v - 0x80000000 if b[o + 3] & 0x80 else v


def _mkdir(path):
    try:
        os.mkdir(path)
    except OSError:
        pass


def _rm(path):
    try:
        os.remove(path)
    except OSError:
        pass


def _new_seg(path, h, code, ncols, codec, rate, rb, t0, seq, gen):
    """A segment's header packed into ``h`` (32 bytes, its CRC last); with ``path``, a new segment file of it (open
    at its end; one whose header cannot be written is removed). The store's and ``rollup.py``'s segments."""
    struct.pack_into(_HFMT, h, 0, _MAGIC, _VERSION, code, ncols, codec, rate, rb, t0, seq & 0xFFFFFFFF,
                     gen & 0xFFFFFFFF)
    struct.pack_into("<I", h, 28, crc32(memoryview(h)[:28]) & 0xFFFFFFFF)
    if path is None:
        return None
    f = open(path, "wb")
    try:
        f.write(h)
    except OSError:
        f.close()
        _rm(path)
        raise
    return f

# ---- the block codec ----
# The store's block encoder (``sensorbox.shared.codec_enc.encode``) and decoder (``sensorbox.shared.codec.decode``)
# in ``@micropython.viper`` (every port the device runs on has it): the same bytes and rows, and the same refusals,
# checked against the plain ones by tests/device/test_store_codec.py. Resident with the store (every block written
# passes through the encoder; the decoder serves every reader: export, the outbox, recovery); here rather than in a
# module of their own: a module costs three interned names and a littlefs block of flash. Native code lives outside
# the GC heap on an ESP32. The decoder bounds-checks every byte it reads and writes (viper pointers are not
# checked). One function each and no calls: a viper call boxes its arguments, and a buffer passed as a pointer would
# be an int object holding its address (a long int, allocated, on an ESP32). Every intermediate stays below 2**31
# (at most 24 bits are pending in the bit accumulator), so the results are the same where viper ints wrap at 32 bits.


@micropython.viper
def encode(src, n: int, w: int, out, cap: int, src2, k2: int) -> int:
    # (rows k2 and after are in ``src2``, from its start: a block of more rows than one buffer holds, the rollups';
    # k2 >= n when there is no second part)
    if n < 1 or n > 255 or k2 < 2:
        return -1
    s = ptr8(src)
    s2 = ptr8(src2)
    d = ptr8(out)
    limit = 2 * n * w
    if cap < limit:
        limit = cap
    d[0] = n
    pos = 1
    acc = 0
    nb = 0
    rb = 2 * w
    lim = k2 * rb  # (a row's offset in src, or less lim in src2)
    j = 0
    while j < w:
        # passes t 1..4: the bits each order costs (as codec.cost): 1 = delta, 2 = delta of delta, 3 = delta minus
        # the previous column's delta in the same row, 4 = sparse (order 0: a bit per row, and each value that is
        # not 0, less one, in one width); pass 5 writes the column in the cheapest (u: its pass), the same
        # residuals again (no buffer): per group its largest first (its width), then each
        best = 0
        o = 1
        sw = 0
        wd = 0
        t = 1
        while t <= 5:
            if t == 3 and j == 0:
                t = 4
            u = t
            if t == 5:
                u = o if o != 0 else 4
                if pos + (nb + best + 7) // 8 > limit:
                    return -1
                if o == 0:
                    acc = acc | ((15 if sw == 16 else sw) << (nb + 2))
                    nb += 6
                else:
                    acc = acc | (o << nb) | ((int(s[2 * j]) | (int(s[2 * j + 1]) << 8)) << (nb + 2))
                    nb += 18
                    if o == 2 and n > 1:
                        while nb >= 8:
                            d[pos] = acc & 0xFF
                            pos += 1
                            acc = acc >> 8
                            nb -= 8
                        q = rb + 2 * j
                        v = (int(s[q]) | (int(s[q + 1]) << 8)) - (int(s[2 * j]) | (int(s[2 * j + 1]) << 8))
                        acc = acc | ((v & 0xFFFF) << nb)
                        nb += 16
                while nb >= 8:  # (at most 23 bits pending: no column may find more, 32-bit ints on a board)
                    d[pos] = acc & 0xFF
                    pos += 1
                    acc = acc >> 8
                    nb -= 8
            bits = 18
            i = 1
            if u == 2:
                i = 2
                if n > 1:
                    bits = 34
            if u == 4:
                i = 0
                bits = 6 + n
            while i < n:
                e = i + 16
                if e > n or u == 4:
                    e = n
                r = 0
                while r < 2:
                    if r == 1:
                        if t < 5:
                            break
                        if u != 4:
                            acc = acc | ((15 if wd == 16 else wd) << nb)
                            nb += 4
                    m = 0
                    c = 0
                    k = i
                    while k < e:
                        qa = k * rb + 2 * j
                        a = s
                        if qa >= lim:
                            a = s2
                            qa -= lim
                        x = int(a[qa]) | (int(a[qa + 1]) << 8)
                        if u == 4:
                            z = 0
                            if x != 0:
                                c += 1
                                z = x - 1
                            if r == 1:
                                if x != 0:
                                    acc = acc | ((1 | (z << 1)) << nb)
                                    nb += 1 + sw
                                else:
                                    nb += 1
                        else:
                            qb = qa - rb
                            b = a
                            if qb < 0:
                                b = s
                                qb += lim
                            p = int(b[qb]) | (int(b[qb + 1]) << 8)
                            v = x - p
                            if u == 2:
                                qc = qb - rb
                                f = b
                                if qc < 0:
                                    f = s
                                    qc += lim
                                v = v - p + (int(f[qc]) | (int(f[qc + 1]) << 8))
                            elif u == 3:
                                v = v - (int(a[qa - 2]) | (int(a[qa - 1]) << 8)) + (int(b[qb - 2]) | (int(b[qb - 1]) << 8))
                            v = v & 0xFFFF
                            z = ((v << 1) ^ (0 - (v >> 15))) & 0xFFFF
                            if r == 1:
                                acc = acc | (z << nb)
                                nb += wd
                        if z > m:
                            m = z
                        while nb >= 8:
                            d[pos] = acc & 0xFF
                            pos += 1
                            acc = acc >> 8
                            nb -= 8
                        k += 1
                    if r == 0:
                        wd = 0
                        while (m >> wd) != 0:
                            wd += 1
                        if wd == 15:
                            wd = 16
                        if u == 4:
                            bits += c * wd
                        else:
                            bits += 4 + wd * (e - i)
                    r += 1
                i = e
            if t < 5 and (t == 1 or bits < best):
                best = bits
                o = t & 3
                if t == 4:
                    sw = wd
            t += 1
        j += 1
    if nb:
        d[pos] = acc & 0xFF
        pos += 1
    return pos


@micropython.viper
def decode(src, a: int, b: int, w: int, out, o0: int, cap: int) -> int:
    if b <= a or w < 1:
        return -1
    s = ptr8(src)
    d = ptr8(out)
    n = int(s[a])
    rb = 2 * w
    if n == 0:  # stored raw
        k = b - a - 1
        if k <= 0 or k > cap:
            return -1
        r = k // rb
        if r * rb != k:
            return -1
        i = 0
        while i < k:
            d[o0 + i] = s[a + 1 + i]
            i += 1
        return r
    if n * rb > cap:
        return -1
    pos = a + 1
    acc = 0
    nb = 0
    j = 0
    while j < w:
        while nb < 6:
            if pos >= b:
                return -1
            acc = acc | (int(s[pos]) << nb)
            pos += 1
            nb += 8
        o = acc & 3
        q = o0 + 2 * j
        if o == 0:  # a sparse column: a bit per row, 1 followed by the value less one
            wd = (acc >> 2) & 15
            acc = acc >> 6
            nb -= 6
            if wd == 15:
                wd = 16
            mask = (1 << wd) - 1
            i = 0
            while i < n:
                if nb == 0:
                    if pos >= b:
                        return -1
                    acc = int(s[pos])
                    pos += 1
                    nb = 8
                x = 0
                if acc & 1:
                    while nb <= wd:
                        if pos >= b:
                            return -1
                        acc = acc | (int(s[pos]) << nb)
                        pos += 1
                        nb += 8
                    x = (((acc >> 1) & mask) + 1) & 0xFFFF
                    acc = acc >> wd
                    nb -= wd
                acc = acc >> 1
                nb -= 1
                d[q] = x & 0xFF
                d[q + 1] = x >> 8
                q += rb
                i += 1
            j += 1
            continue
        while nb < 18:
            if pos >= b:
                return -1
            acc = acc | (int(s[pos]) << nb)
            pos += 1
            nb += 8
        x = (acc >> 2) & 0xFFFF
        acc = acc >> 18
        nb -= 18
        if o == 3 and j == 0:
            return -1
        d[q] = x & 0xFF
        d[q + 1] = x >> 8
        dl = 0
        i = 1
        if o == 2 and n > 1:
            while nb < 16:
                if pos >= b:
                    return -1
                acc = acc | (int(s[pos]) << nb)
                pos += 1
                nb += 8
            dl = acc & 0xFFFF
            acc = acc >> 16
            nb -= 16
            x = (x + dl) & 0xFFFF
            q += rb
            d[q] = x & 0xFF
            d[q + 1] = x >> 8
            i = 2
        while i < n:
            e = i + 16
            if e > n:
                e = n
            while nb < 4:
                if pos >= b:
                    return -1
                acc = acc | (int(s[pos]) << nb)
                pos += 1
                nb += 8
            wd = acc & 15
            acc = acc >> 4
            nb -= 4
            if wd == 15:
                wd = 16
            mask = (1 << wd) - 1
            while i < e:
                while nb < wd:
                    if pos >= b:
                        return -1
                    acc = acc | (int(s[pos]) << nb)
                    pos += 1
                    nb += 8
                z = acc & mask
                acc = acc >> wd
                nb -= wd
                r = ((z >> 1) ^ (0 - (z & 1))) & 0xFFFF
                if o == 1:
                    dl = r
                elif o == 2:
                    dl = (dl + r) & 0xFFFF
                else:
                    c = o0 + i * rb + 2 * j - 2
                    dl = (r + (int(d[c]) | (int(d[c + 1]) << 8)) - (int(d[c - rb]) | (int(d[c - rb + 1]) << 8))) & 0xFFFF
                x = (x + dl) & 0xFFFF
                q += rb
                d[q] = x & 0xFF
                d[q + 1] = x >> 8
                i += 1
        j += 1
    if pos != b or acc != 0:
        return -1
    return n
