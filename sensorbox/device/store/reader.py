"""Reading store segments (the format is in ``core``): the one reader, and the one loop over a resource's
segments, that export, the outbox and recovery use (rollup and the class table read through the reader too).
Loaded with them (the outbox keeps it while a sink runs; export and recovery only while they run).

    rd = Reader()                      # or Reader(size): blocks of at most ``size`` payload bytes
    h = rd.open(path, store, name)     # header tuple (see check_header); OSError (gone) or ValueError(reason)
    while True:
        n = rd.next()                  # a block checked by its CRC-32: n bytes of rows at rd.buf[BLK:BLK + n]
        if n == 0: break               # the end (rd.torn: bytes of a torn tail ignored)
        if n < 0: continue             # a corrupt stretch was skipped (rd.bad, rd.bad_bytes): call again
        for t, v in rows(rd): ...      # its rows as records (or rd.time(i), rd.values(i) for row i)
    rd.close()

``segments(...)`` is that loop over the segments of a resource that may hold rows in a time range: it opens each
in the reader, yields its name, closes it and counts its corrupt stretches in the store's status. Readers see
records, never bytes: ``rows`` gives each row of a block as (t, values) or (t, JSON text).

A block that fails its check is never returned: the reader searches the bytes after it for the next block whose
CRC holds (a damaged length field cannot hide the rest of a segment), at most ``_SCAN`` bytes per call so a caller
can yield between calls. Bytes at the end that are not a whole block are a torn tail (a crash or power cut while
it was written), not corruption. Version 1 segments (no blocks) are read in pieces of whole rows, unchecked.

Blocks of coded segments (codec 1) are read into the upper half of the buffer and decoded (``core.decode``:
``sensorbox.shared.codec`` in viper) into its lower half, where the rows of any block are: the store writes coded
blocks of at most half a reader's buffer (510 bytes of rows: ``rollup.ROWS_BYTES``). A block whose bytes pass the
CRC but do not decode (or would not fit) counts as corrupt.
"""

import struct

from micropython import const

from sensorbox.device.store.core import _HFMT, _MAGIC, _i32, crc32, decode

# the segment format's constants (as core.py defines them: no names to import)
_HDR = const(32)
_BLK = const(8)
_BLOCK_MAX = const(1024)
_BUS_BLOCK = const(520)
_TIMED = const(1)
_DENSE = const(3)  # a rollup segment's generation: rows without times, one per period (rollup.py)
_STAGE = const(4)  # ... a rollup stage's (its rows with their times)

_SCAN = const(1024)  # bytes searched per call for the next good block after a corrupt one


def check_header(buf, n, size):
    """Validate the ``n`` header bytes read into ``buf`` of a segment of ``size`` bytes: (size, code, ncols,
    rate, row_bytes, t0, seq0, gen, version, codec); ValueError("torn" | reason) when it is not a segment's
    header."""
    if n < _HDR:
        raise ValueError("torn" if bytes(buf[:min(n, 4)]) == _MAGIC[:min(n, 4)] else "not a segment")
    h = struct.unpack_from(_HFMT, buf, 0)
    if h[0] != _MAGIC or not 1 <= h[1] <= 2:
        raise ValueError("not a segment")
    if struct.unpack_from("<I", buf, 28)[0] != crc32(memoryview(buf)[:28]):
        raise ValueError("header checksum")
    if h[4] and (h[1] == 1 or h[4] > 1 or not h[6]):  # v1: the high byte of a uint16 column count
        raise ValueError("codec {} is not known to this version".format(h[4]))
    return size, h[2], h[3], h[5], h[6], h[7], h[8], h[9], h[1], h[4]


class Reader:
    """Reads one segment at a time (``open`` again for the next), through one buffer of ``BLK + size`` bytes: a
    reader of resources whose blocks are smaller (the bus resources' are at most ``_BUS_BLOCK``) may take
    less; a block that does not fit is not read (as if corrupt)."""

    def __init__(self, size=_BLOCK_MAX, buf=None):
        self.buf = bytearray(_BLK + size) if buf is None else buf  # (``buf``: one of _BLK + size bytes, kept)
        self._mv = memoryview(self.buf)
        self.pmv = self._mv[_BLK:]
        self.f = None

    def open(self, path, st, n):
        """Open segment ``path`` (``<dir>/<n>.seg``): its header tuple. With the store ``st`` (None: times as
        stored), a segment stored while the clock was unknown has its t0 (``h[5]``) placed where it belongs
        (``Store.real``) and ``shift`` says by how much (text rows carry their own times: add it to them). No
        default arguments: their tuple would cost a sink's heap."""
        self.close()
        f = open(path, "rb")
        try:
            size = f.seek(0, 2)
            f.seek(0)
            h = check_header(self.buf, f.readinto(self.buf, _HDR) or 0, size)
        except BaseException:
            f.close()
            raise
        self.f = f
        self.shift = s = st.real(n) - n if st else 0
        if s:
            h = h[:5] + (h[5] + s,) + h[6:]
        self.h = h
        self.size = size
        self.rb = h[4]
        self.fmt = "<{}h".format(h[2])  # (a row's values; the rate: h[3])
        self.v = h[8]
        self.z = h[9]
        self.end = _HDR  # where the next block starts
        self.pos = self.n = self.first = self.idx = 0
        self.scan = -1  # searching for a good block from here (after a corrupt stretch)
        self.badpos = 0
        self.maybe_torn = False
        self.bad = self.bad_bytes = self.torn = 0
        return h

    def close(self):
        if self.f is not None:
            self.f.close()
            self.f = None

    def seek(self, pos, first=0):
        """Go on from block offset ``pos`` (an earlier block's ``pos``; ``first``: its first row's index)."""
        self.end = pos
        self.idx = first
        self.scan = -1

    def time(self, i):
        """The time of row ``i`` of the block loaded (rate, timed and dense rollup rows)."""
        h = self.h
        if h[3]:
            return h[5] + (self.first + i) * 1000 // h[3]
        if h[7] == _DENSE:  # one row per period (h[6]) from the block's first index
            return h[5] + (self.first + i) * h[6]
        return h[5] + _i32(self.buf, _BLK + i * self.rb)

    def count(self):
        """The rows of the block loaded (rate, timed and dense rollup rows: those are coded by the rollup, their
        first byte the count, or a 0 byte and the rows as they are)."""
        if self.rb:
            return self.n // self.rb
        return self.buf[_BLK] or (self.n - 1) // (2 * self.h[2])

    def values(self, i):
        """The values of row ``i`` of the block loaded, a tuple of ints (rate and timed rows)."""
        return struct.unpack_from(self.fmt, self.buf, _BLK + i * self.rb + (0 if self.h[3] else 4))

    def next(self):
        """Load the next good block into ``buf[BLK:]``: its payload bytes (> 0), 0 at the end, -1 after skipping
        a corrupt stretch (call again). Sets ``pos`` (where it starts), ``end``, ``n`` and ``first``."""
        if self.v == 1:
            return self._next_v1()
        if self.scan >= 0:
            return self._search()
        pos = self.end
        if pos >= self.size:
            return 0
        n = self._try(pos)
        if n > 0:
            return n
        self.scan = pos + 1
        self.badpos = pos
        self.maybe_torn = n == 0
        return self._search()

    def _try(self, pos):
        """The block at ``pos``: its rows' bytes when whole, its CRC holds (and it decodes), 0 when it would end
        past the end of the file (torn, or a damaged length), -1 when it is not a valid block."""
        f = self.f
        buf = self.buf
        size = self.size
        if pos + _BLK > size:
            return 0
        f.seek(pos)
        f.readinto(buf, _BLK)
        n = buf[4] | buf[5] << 8
        z = self.z
        most = len(buf) - _BLK
        if z:  # the payload above half, its rows below
            most >>= 1
        if n == 0 or n > most or (self.rb and n % self.rb and not z):
            return -1
        if pos + _BLK + n > size:
            return 0
        end = pos + _BLK + n
        mv = self._mv
        if z:
            o = _BLK + most
            if (f.readinto(mv[o:o + n]) or 0) < n or \
                    crc32(mv[o:o + n], crc32(mv[4:_BLK])) != struct.unpack_from("<I", buf, 0)[0]:
                return -1
            n = decode(buf, o, o + n, self.rb >> 1, buf, _BLK, most) * self.rb
            if n <= 0:
                return -1
        elif (f.readinto(self.pmv, n) or 0) < n or crc32(mv[4:_BLK + n]) != struct.unpack_from("<I", buf, 0)[0]:
            return -1  # (a raw block: read in place, one memoryview made)
        self.pos = pos
        self.end = end
        self.n = n
        if self.h[3]:  # the row index: the next one expected, moved on by the skipped rows (mod 65536)
            self.first = self.idx + (((buf[6] | buf[7] << 8) - self.idx) & 0xFFFF)
            self.idx = self.first + n // self.rb
        elif self.h[7] == _DENSE:  # (a rollup's: the index of its first row's period)
            self.first = buf[6] | buf[7] << 8
        return n

    def _search(self):
        q = self.scan
        size = self.size
        rb = self.rb
        buf = self.buf
        most = len(buf) - _BLK
        limit = q + _SCAN
        while q + _BLK <= size and q < limit:
            self.f.seek(q)
            got = self.f.readinto(buf, min(len(buf), size - q)) or 0
            i = 0
            found = -1
            while i + _BLK <= got:
                n = buf[i + 4] | buf[i + 5] << 8
                if 0 < n <= most and (rb == 0 or n % rb == 0 or self.z) and q + i + _BLK + n <= size:  # (_try checks)
                    found = q + i
                    break
                i += 1
            if found < 0:
                q += i if i else 1
                continue
            n = self._try(found)
            if n > 0:
                self.scan = -1
                self.bad += 1
                self.bad_bytes += found - self.badpos
                self.maybe_torn = False
                return n
            q = found + 1
        if q + _BLK > size:  # nothing good after the stretch: a torn tail, or damage up to the end
            if self.maybe_torn:
                self.torn = size - self.badpos
            else:
                self.bad += 1
                self.bad_bytes += size - self.badpos
            self.end = size
            self.scan = -1
            return 0
        self.scan = q
        return -1

    def _next_v1(self):
        pos = self.end
        size = self.size
        if pos >= size:
            return 0
        self.f.seek(pos)
        got = self.f.readinto(self.pmv, min(len(self.buf) - _BLK, size - pos)) or 0
        if self.rb:
            n = got // self.rb * self.rb
            self.first = (pos - _HDR) // self.rb
        else:  # whole lines
            n = got
            while n > 0 and self.buf[_BLK + n - 1] != 10:
                n -= 1
        if n <= 0:
            if pos + got < size:  # a line longer than any the store writes
                self.bad += 1
                self.bad_bytes += size - pos
            else:
                self.torn = size - pos
            self.end = size
            return 0
        self.pos = pos
        self.end = pos + n
        self.n = n
        return n


def rows(rd):
    """(t, value) of each row of the block ``rd`` loaded, oldest first: the row's values (a tuple of ints), or for
    a text resource (events) the event's JSON text (bytes)."""
    if rd.rb:
        for i in range(rd.n // rd.rb):
            yield rd.time(i), rd.values(i)
        return
    buf = rd.buf  # text rows: ``<ms>\t<json>\n`` (t = -1 when its time does not read)
    o = _BLK
    end = _BLK + rd.n
    while o < end:
        nl = buf.find(b"\n", o, end)
        tab = buf.find(b"\t", o, nl)
        try:
            t = int(bytes(buf[o:tab]))
        except ValueError:
            t = -1
        yield t + rd.shift, bytes(buf[tab + 1:nl])
        o = nl + 1


_bus = None  # the reader every outbox shares (``bus_reader``)


def bus_reader():
    """The one reader of the bus resources' segments (blocks of at most ``_BUS_BLOCK`` bytes) that every outbox
    shares, made on first use: an outbox reads without awaiting, so no two reads overlap."""
    global _bus
    if _bus is None:
        _bus = Reader(_BUS_BLOCK)
    return _bus


def segments(st, r, names, start, end, rd, first, durable):
    """The loop over the segments of resource ``r`` (``names``: their names, ascending) that may hold rows in
    [start, end) (``end`` None: no end), from segment ``first`` on (0: the first): each is opened in ``rd`` and
    its name yielded, then closed and its corrupt stretches counted (``note_corrupt``). None is yielded for a
    segment that could not be opened (deleted by retention meanwhile, or torn: the store deals with it at the
    next start). ``durable`` (the outbox): only rows a flush point passed, so the loop ends at the open segment
    while it holds rows not yet flushed; else (an export) a timed or rate segment of another width than the resource's
    (an older feature vector, frames from before ``accel.gyro`` changed; rollups' rows are as wide as their classes
    need) and a class rollup's segment of
    the previous format (``old_rollup``) give None. Close the generator to stop early (MicroPython does not close an
    abandoned one: its segment would stay open)."""
    real = st.real  # (segment names are stored times: rows stored while the clock was unknown belong later)
    for i in range(len(names)):
        name = names[i]
        if name < first or (i + 1 < len(names) and real(names[i + 1]) <= start):
            continue
        if end is not None and real(name) >= end:
            break
        if durable and r.f is not None and name == r.seg_name and r.dirty:
            break  # rows written since the last flush point are not durable yet
        try:
            h = rd.open("{}/{}.seg".format(r.dir, name), st, name)
        except (OSError, ValueError):
            yield None
            continue
        if not durable and ((h[2] != r.ncols and r.kind <= _TIMED and not r.period) or old_rollup(r, h)):
            rd.close()
            yield None  # an older feature width or accelerometer width (accel.gyro changed: 3 or 6 channels), or
            # class rollup rows of the previous format (converted soon)
            continue
        try:
            yield name
        finally:
            rd.close()
            note_corrupt(st, r, name, rd)


def old_rollup(r, h):
    """True for a class rollup's segment or stage (header ``h``) of the previous format (a row per class and
    period: rollup.py converts them at its first run after an upgrade): exports skip them."""
    return r.period and r.code > 8 and h[7] != _DENSE and h[7] != _STAGE


def note_corrupt(st, r, name, reader):
    """Count the corrupt stretches ``reader`` found in segment ``name`` of resource ``r`` (once per segment)."""
    if not reader.bad:
        return
    key = "{}/{}".format(r.name, name)
    if key in st.bad_segs:
        return
    if not st.bad_segs:
        st.bad_segs = []
    st.bad_segs.append(key)
    if len(st.bad_segs) > 8:
        st.bad_segs.pop(0)
    st.corrupt += reader.bad
    st.log.error("store", "{}: {} corrupt stretch(es), {} bytes, in segment {} skipped".format(
        r.name, reader.bad, reader.bad_bytes, name))
