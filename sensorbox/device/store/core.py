"""The store's writer: resources, segment files on flash, crash recovery, retention and reader cursors.

Resources (``RESOURCES``) and the bus values the store expects from their producers:

- ``accel``: int16 x, y, z at the sensor's rate, read from ``device.sensors["accel"].ring`` (not the bus).
- ``features``: bus topic "features", value = ``array('h')`` (or tuple of ints), one per window. The width is
  taken from the value (at boot from the newest segment, then from each new segment); a change of width starts a
  new segment and exports show the newest width. Column names: ``sensorbox.shared.features.names(channels)``
  when the width is that of 3 or 6 channels (86 or 169), else f0, f1, ...
- ``predictions``: value = ``(class_id, confidence_permille)`` ints: the class's id in the store's class table
  (``class_ids``; -1 = unknown), which names it for good whatever model runs later (``classes.py``).
- ``soundlevel``: value = ``(leq, lmin, lmax, l10, l50, l90)`` ints in centi-dB (int16).
- ``events``: value = a small JSON-able dict with a "type" key (at most 500 bytes as JSON).
- ``soundclass``: as ``predictions``, from the sound classifier (``sensorbox.device.soundclass``). Made on first
  use (``resource``: the classifier starts, a sink reads it) or at boot when it has a directory: a device that
  never classified sounds holds no RAM for it, and neither lists nor exports it.
Values outside int16 are clamped. Times are epoch ms ints; within a resource they are made strictly increasing
(a row up to 2 s older than the previous one is stored 1 ms after it; a bigger jump back starts a new segment).

Layout: ``<root>/<resource>/<name>.seg``, ``name`` = start time in epoch ms (made unique and increasing).
A segment is a 32-byte header (magic ``SBS1``, version 2, resource code, columns, codec, rate, row bytes, t0,
seq0, generation, CRC-32 of the first 28 bytes) followed by blocks, appended only. A block is one batch of rows
as it was written (one ring read of accel frames, or the rows a RAM buffer held at a flush point)::

    crc32 (uint32, of the 4 bytes that follow and the payload), payload bytes (uint16), first (uint16), payload

``first`` is the index of the block's first row in the segment for rate rows (mod 65536), else the low 16 bits of
its time offset. Payload (codec 0, the only one yet; the codec byte and the framing leave room for compressed
blocks, each decodable on its own):

- rate rows (accel): ``columns`` int16 values, row i at ``t0 + i*1000//rate``. A gap in the sample sequence,
  a sensor restart (new generation) or clock drift of more than two sample periods starts a new segment, so
  every gap is explicit: the next segment's ``seq0``/``t0`` say where sampling resumed.
- timed rows: int32 ms offset from t0, then ``columns`` int16 values.
- text rows (events): ``<epoch ms>\\t<json>\\n`` lines.

A block holds at most ``BLOCK_MAX`` payload bytes. Readers (``reader.py``: export, the outbox, recovery) check
every block's CRC: a block that fails is skipped and counted, never read as data, and the rows after it are found
again. Segments of version 1 (rows without blocks or checksums, written by earlier versions) stay readable as they
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
"""

import json
import os
import struct

from micropython import const

HDR = const(32)
BLK = const(8)  # block header: crc32, payload bytes, first
BLOCK_MAX = const(1024)  # payload bytes per block at most (a reader's buffer: BLK + BLOCK_MAX)
BUS_BLOCK = const(520)  # ... and of the bus resources' blocks (their RAM buffers, below, are no bigger)
VERSION = const(2)
_MAGIC = b"SBS1"
_HFMT = "<4sBBBBHHqII"  # magic, version, code, ncols, codec, rate_hz, row_bytes, t0, seq0, generation (+ crc32)
SEG_BYTES = 32704  # 8 x 4096 less littlefs CTZ skip-list pointers: a full segment occupies exactly 8 blocks
_SPAN_MS = const(86400000)
TEXT_MAX = const(500)
_FRAMES = const(128)  # accel frames per ring read
_CUR_SAVE_MS = const(10000)

RATE = 0
TIMED = 1
TEXT = 2

# name, code, kind, columns (None: from the first value), RAM buffer bytes, default budget KB (config_schema)
RESOURCES = (
    ("accel", 1, RATE, ("x", "y", "z"), 0),
    ("features", 2, TIMED, None, 512),
    ("predictions", 3, TIMED, ("class", "confidence"), 256),
    ("soundlevel", 4, TIMED, ("leq", "lmin", "lmax", "l10", "l50", "l90"), 256),
    ("events", 5, TEXT, ("type", "data"), 520),  # a line: time, tab, TEXT_MAX bytes of JSON, newline
    ("soundclass", 6, TIMED, ("class", "confidence"), 128),  # as predictions, from the sound classifier
)
# Resources made on first use (``Store.resource``: their producer starts, a sink reads them), or at boot when
# their directory exists (``open``): until then a device holds no RAM for them (~0.9 KB each on this port).
_ON_USE = ("soundclass",)


def crc32_py(data, c=0):
    """CRC-32 (as zlib/binascii, ``c`` the CRC so far), for firmware built without ``binascii.crc32``."""
    c ^= 0xFFFFFFFF
    for b in data:
        c ^= b
        for _ in range(8):
            c = (c >> 1) ^ (0xEDB88320 if c & 1 else 0)
    return c ^ 0xFFFFFFFF


try:
    from binascii import crc32
except ImportError:  # pragma: no cover - depends on the firmware build
    crc32 = crc32_py


class QueryError(ValueError):
    def __init__(self, reason, field):
        super().__init__(reason)
        self.reason = reason
        self.field = field


def columns_of(r):
    if r.cols is not None:
        return r.cols
    from sensorbox.shared import features  # resident anyway on the device (the pipeline's)

    for ch in (3, 6):
        names = features.names(ch)
        if len(names) == r.ncols:
            return names
    return tuple("f{}".format(i) for i in range(r.ncols))


def seg_names(r):
    """Segment names (ints, ascending) of resource ``r``."""
    out = []
    for e in os.ilistdir(r.dir):
        n = e[0]
        if n.endswith(".seg") and n[:-4].isdigit():
            out.append(int(n[:-4]))
    out.sort()
    return out


class Res:
    def __init__(self, spec, root):
        self.name, self.code, self.kind, self.cols, bufsize = spec
        self.ncols = len(self.cols) if self.cols else 0
        self.dir = root + "/" + self.name
        self.budget = 0
        self.seg_max = SEG_BYTES
        self.bytes = 0  # bytes of its segment files
        self.nseg = 0
        self.first = None  # name of the oldest segment
        self.newest = 0  # name of the newest segment
        self.last_t = None  # time of the newest row on flash (or in RAM, for ordering)
        self.f = None  # the open segment
        self.seg_name = self.seg_t0 = self.seg_rows = self.seg_size = self.seg_ncols = 0
        self.seg_next = self.seg_gen = self.seg_rate = 0
        self.buf = bytearray(bufsize) if bufsize else None  # rows waiting for the flush point, as on flash
        self.blen = 0
        self.brows = 0
        self.bt0 = 0  # timed rows in buf: offsets from this time
        self.bn = 0  # ... and their width
        self.dirty = False
        self.rows = 0  # rows stored since boot
        self.added = 0  # bytes appended since boot (bytes/day estimate)
        self.lost_rows = 0  # RAM buffer full or write failed
        self.ret_segs = 0  # segments deleted by retention
        self.ret_bytes = 0
        self.forced = 0  # ... of which a cursor still needed
        self.gaps = 0
        self.errors = 0


class Store:
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
        self.res = [Res(s, root) for s in RESOURCES if s[0] not in _ON_USE]  # (the others: open, resource)
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
        self.notes = []  # recent quarantine/recovery messages (newest 4)
        self._hdr = bytearray(HDR)
        self._bh = bytearray(BLK)  # a block's header
        self._bh4 = memoryview(self._bh)[4:]
        self._cname = None  # (class id, name): the last class_name looked up
        self.corrupt = 0  # corrupt stretches found in segments (recovery and readers; each segment counted once)
        self.bad_segs = []  # the segments they were found in (newest 8)
        self._fbuf = None
        self._gen = None
        self._seq = 0
        self._rolled = False
        self.reading = None  # time an export last read a chunk: routine retention waits 10 s (a full flash not)
        self.t_open = clock()

    # ---- configuration and recovery ----

    def resource(self, name):
        """The resource ``name`` (None if there is none by that name); one made on first use (``_ON_USE``) is made
        now, with its directory and budget (``recover.make``)."""
        r = self.by_name.get(name)
        if r is None and name in _ON_USE:
            from sensorbox.device import lazy

            r = lazy.load("sensorbox.device.store.recover").make(self, name)
            lazy.unload("sensorbox.device.store.recover")
        return r

    def configure(self, cfg):
        self.flush_ms = cfg.get("store.flush_ms")
        self.min_free = cfg.get("store.min_free_kb") * 1024
        # (their budgets, not the config: a store kept alive would keep a config of its own alive too)
        self._later = tuple(cfg.get("store." + n + "_kb") * 1024 for n in _ON_USE)
        for r in self.res:
            self._budget(r, cfg.get("store." + r.name + "_kb") * 1024)

    def _budget(self, r, b):
        if b == 0:
            self._close_seg(r)
        r.budget = b
        # Retention deletes whole segments: keep each to a quarter of a small budget (at least 1 KB).
        r.seg_max = min(self.seg_bytes, max(b // 4, 1024))

    def open(self):
        """Scan the store after a (re)start: recover torn tails, quarantine what does not belong (the code for
        this runs once per boot, so it lives in ``recover`` and is unloaded afterwards)."""
        from sensorbox.device import lazy

        lazy.load("sensorbox.device.store.recover").open_store(self)
        lazy.unload("sensorbox.device.store.recover")

    def quarantine(self, path, rname, reason):
        from sensorbox.device import lazy

        lazy.load("sensorbox.device.store.recover").quarantine(self, path, rname, reason)
        lazy.unload("sensorbox.device.store.recover")

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
            return lazy.load("sensorbox.device.store.classes").ids(self, names)
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

    def _open_seg(self, r, t0, ncols, seq0=0, gen=0, rate=0):
        self._close_seg(r)
        rb = 2 * ncols if r.kind == RATE else (4 + 2 * ncols if r.kind == TIMED else 0)
        name = t0 if t0 > r.newest else r.newest + 1
        h = self._hdr
        struct.pack_into(_HFMT, h, 0, _MAGIC, VERSION, r.code, ncols, 0, rate, rb, t0, seq0 & 0xFFFFFFFF,
                         gen & 0xFFFFFFFF)
        struct.pack_into("<I", h, 28, crc32(memoryview(h)[:28]) & 0xFFFFFFFF)
        path = "{}/{}.seg".format(r.dir, name)
        f = open(path, "wb")
        try:
            f.write(h)
        except OSError:
            f.close()
            _rm(path)
            raise
        r.f = f
        r.seg_name = r.newest = name
        r.seg_t0, r.seg_ncols, r.seg_next, r.seg_gen, r.seg_rate = t0, ncols, seq0, gen, rate
        if r.kind == TIMED and r.cols is None:  # features: the width of the newest segment (as recover.py does)
            r.ncols = ncols
        r.seg_rows = 0
        r.seg_size = HDR
        r.bytes += HDR
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

    def _block(self, r, data, n, first, rows):
        """Append one block (``n`` payload bytes in ``data``, ``rows`` rows) to the open segment; on failure close
        it (its tail may be torn) and free space."""
        h = self._bh
        struct.pack_into("<HH", h, 4, n, first & 0xFFFF)
        struct.pack_into("<I", h, 0, crc32(data, crc32(self._bh4)))
        try:
            r.f.write(h)
            r.f.write(data)
        except OSError as e:
            r.errors += 1
            self.log.error("store", "{}: write failed ({}); new segment".format(r.name, e))
            r.seg_rows += 1  # keep the file: what was written before is valid
            self._close_seg(r)
            self.retain(True)
            return False
        r.seg_rows += rows
        n += BLK
        r.seg_size += n
        r.bytes += n
        r.added += n
        r.rows += rows
        r.dirty = True
        return True

    def append_frames(self, t_first, seq, gen, rate, data, n):
        """Append ``n`` frames (int16, interleaved, ``data`` a memoryview) of the rate resource."""
        r = self.accel
        if r.budget == 0 or n <= 0:
            return
        ch = r.ncols
        rb = 2 * ch
        done = fails = 0
        t = t_first
        while done < n and fails < 4:
            if r.f is not None:
                exp_t = r.seg_t0 + r.seg_rows * 1000 // rate
                if seq + done != r.seg_next or gen != r.seg_gen or rate != r.seg_rate \
                        or abs(t - exp_t) > 2 * 1000 // rate + 2 or r.seg_size + BLK + rb > r.seg_max:
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
            k = min(n - done, (r.seg_max - r.seg_size - BLK) // rb, BLOCK_MAX // rb)
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
        r = self.by_name.get(topic)
        if r is None or r.budget == 0 or r.buf is None:
            return
        last = r.last_t
        if last is not None and last - 2000 < t <= last:
            t = last + 1
        buf = r.buf
        if r.kind == TEXT:
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
        if r.kind == TIMED:
            first += _i32(r.buf, 0)
        for attempt in range(2):
            if r.f is not None and (r.seg_size + BLK + n > r.seg_max or first < r.seg_t0
                                    or r.last_t - r.seg_t0 > _SPAN_MS or (r.kind == TIMED and r.bn != r.seg_ncols)):
                self._close_seg(r)
            if r.f is None:
                try:
                    self._open_seg(r, first, 0 if r.kind == TEXT else r.bn)
                except OSError as e:
                    self.log.error("store", "{}: cannot open a segment ({})".format(r.name, e))
                    self.retain(True)
                    continue
            if r.kind == TIMED and r.bt0 != r.seg_t0:  # the rows go into another segment than planned
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
        if self._fbuf is None:
            import array

            self._fbuf = array.array("h", bytes(2 * _FRAMES * r.ncols))
        if sensor.generation != self._gen:
            self._gen = sensor.generation
            self._seq = ring.oldest()
        if self._seq < ring.oldest():  # overwritten before the store read them: lost (sensor gaps among them too)
            r.lost_rows += ring.oldest() - self._seq
            self.log.warning("store", "accel: {} frames overwritten unread".format(ring.oldest() - self._seq))
        buf = self._fbuf
        mv = memoryview(buf)
        for _ in range(64):
            first, n = ring.read(self._seq, buf, _FRAMES)
            if n <= 0:
                break
            self.append_frames(ring.time_of(first), first, self._gen, ring.rate_hz, mv, n)
            self._seq = first + n

    def flush(self):
        """The flush point: write buffered rows and sync every file written since the last one."""
        for r in self.res:
            if r.blen:
                self._drain(r)
            if r.dirty and r.f is not None:
                r.dirty = False
                try:
                    r.f.flush()
                except OSError as e:
                    r.errors += 1
                    self.log.error("store", "{}: flush failed ({})".format(r.name, e))
                    self._close_seg(r)
        if self._rolled:
            self._rolled = False
            self.retain()
        if self._cur_dirty and self.clock() - self._cur_saved >= _CUR_SAVE_MS:
            self.save_cursors()
        if self.flushed is not None:
            self.flushed.set()  # rows up to here are readable: wake the sinks waiting for them

    def close(self):
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
                now = time.ticks_ms()
                due = time.ticks_add(now, grid_ms(self.flush_ms))
            # Read the ring before half of it is overwritten, even when flush points are further apart. Both on
            # the device's timer grid: with the sensors' reads, one wake-up for all.
            period = self.flush_ms
            if sensor is not None and sensor.ring is not None and sensor.ring.rate_hz > 0:
                period = min(period, max(sensor.ring.capacity * 500 // sensor.ring.rate_hz, 50))
            await asyncio.sleep_ms(min(grid_ms(period), time.ticks_diff(due, now)))

    # ---- retention and cursors ----

    def _oldest(self, r):
        """(oldest, next) segment names that may be deleted, or None (the open segment is never deleted)."""
        if r.nseg < 1:
            return None
        a = b = None
        for e in os.ilistdir(r.dir):
            n = e[0]
            if n.endswith(".seg") and n[:-4].isdigit():
                v = int(n[:-4])
                if a is None or v < a:
                    a, b = v, a
                elif b is None or v < b:
                    b = v
        if a is None or (r.f is not None and a == r.seg_name):
            return None
        return a, b

    def _held(self, r, end):
        """Cursors on ``r`` that have not consumed data before ``end``."""
        out = []
        for k in self.cursors:
            c = self.cursors[k]
            if c[0] == r.name and (end is None or c[1] < end - 1):
                out.append(c)
        return out

    def _drop(self, r, old):
        a, b = old
        path = "{}/{}.seg".format(r.dir, a)
        try:
            size = os.stat(path)[6]
            os.remove(path)
        except OSError as e:
            self.log.error("store", "{}: cannot delete {} ({})".format(r.name, path, e))
            return False
        r.bytes -= size
        r.nseg -= 1
        r.first = b
        r.ret_segs += 1
        r.ret_bytes += size
        held = self._held(r, self.real(b) if b is not None else (r.last_t or 0) + 2)
        if held:
            r.forced += 1
            for c in held:
                c[2] += 1
            self._cur_dirty = True
            self.log.warning("store", "{}: retention deleted unread segment {}".format(r.name, a))
        return True

    def _free(self):
        if self.flash_stats is None:
            return None
        try:
            return self.flash_stats()[1]
        except OSError:
            return None

    def retain(self, urgent=False):
        """Delete the oldest segments: per-resource budgets, then the free floor (``urgent``: a write failed)."""
        if self.reading is not None and self.clock() - self.reading < 10000 and not urgent:
            return  # an export is streaming: do not delete what its .npy header already counted
        for r in self.res:
            while r.bytes > r.budget:
                old = self._oldest(r)
                if old is None or not self._drop(r, old):
                    break
        for i in range(64):
            free = self._free()
            if not urgent and (free is None or free >= self.min_free):
                return
            best = None
            for r in self.res:
                old = self._oldest(r)
                if old is not None:
                    held = 1 if self._held(r, self.real(old[1]) if old[1] is not None else (r.last_t or 0) + 2) else 0
                    key = (held, old[0])
                    if best is None or key < best[0]:
                        best = (key, r, old)
            if best is None or not self._drop(best[1], best[2]):
                return
            if urgent and i >= 1:
                return

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
        tmp = self.root + "/cursors.json.tmp"
        try:
            with open(tmp, "w") as f:
                f.write(json.dumps(self.cursors))
            os.rename(tmp, self.root + "/cursors.json")
        except OSError as e:
            self.log.error("store", "cannot save cursors ({})".format(e))

    # ---- figures ----

    def per_day(self, r):
        """Bytes per day at the current settings: nominal for the rate resource, observed for the others."""
        if r.budget == 0:
            return 0
        if r.kind == RATE:
            if r.seg_rate:  # a block per ring read (every flush point, at most _FRAMES rows), a header per segment
                rb = 2 * r.ncols
                k = max(1, min(r.seg_rate * self.flush_ms // 1000, BLOCK_MAX // rb, _FRAMES))
                return (r.seg_rate * 86400 * (k * rb + BLK) // k) * (r.seg_max + HDR) // r.seg_max
            return 0
        el = self.clock() - self.t_open
        return r.added * 86400000 // el if el > 60000 else 0

    def days_until_full(self, r):
        """Days until the resource's budget (or the free-flash floor) is reached and retention starts."""
        d = self.per_day(r)
        if not d:
            return None
        room = max(r.budget - r.bytes, 0)
        free = self._free()
        if free is not None:
            room = min(room, max(free - self.min_free, 0))
        return round(room / d, 2)

    def status(self):
        """The store's summary for /api/status."""
        used = budget = segs = forced = lost = 0
        days = None
        for r in self.res:
            used += r.bytes
            budget += r.budget
            segs += r.ret_segs
            forced += r.forced
            lost += r.lost_rows
            d = self.days_until_full(r)
            if d is not None and (days is None or d < days):
                days = d
        return {"bytes": used, "budget": budget, "days_until_full": days, "retention_deleted_segments": segs,
                "forced_loss_segments": forced, "lost_rows": lost, "quarantined": self.quarantined,
                "torn_tails": self.torn, "corrupt_blocks": self.corrupt, "corrupt_segments": self.bad_segs,
                "notes": self.notes}


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
