"""Recoding closed segments of the timed resources (``features``, ``predictions``, ``soundlevel``): loaded by the
store service after a segment of one was closed (``Store.recode``), unloaded after.

Those rows arrive a few a second, so each flush point writes a block of one or two rows: too few for the codec to
make smaller, and the block header (8 bytes) costs as much as the row. Once such a segment is closed it is
rewritten, its rows in coded blocks of up to ``ROWS_BYTES`` (``OUTBOX_BYTES`` for the resources the outbox reads:
its reader holds less; ``sensorbox.shared.codec``), into ``<name>.seg.tmp``,
synced, then renamed over the segment (one atomic step: a power cut leaves either the old segment or the new one
whole; a ``.tmp`` left behind is removed when the store opens). A recoded segment says so in its header
(generation 2) and is not recoded again. Nothing is recoded while an export streams (it may be reading the
segment) or when ``store.compress`` is off; a segment retention deleted meanwhile is not brought back. Readers
holding a position in a segment (the outbox) see ``Store.recodes`` change and look for it again.
"""

import os
import struct

from sensorbox.device.store.core import _HFMT, BLK, HDR, TIMED, _i32, _rm, crc32, seg_names
from sensorbox.device.store.reader import Reader

ROWS_BYTES = 510  # rows of a coded block at most (half a reader's buffer: reader.py) ...
OUTBOX_BYTES = 256  # ... of the resources the outbox reads (predictions, soundlevel: its reader is half as big)
GEN = 2  # a recoded segment's generation


def run(st):
    """Recode every closed, not yet recoded version 2 segment of the timed resources. A generator: it yields after
    each block (the store service awaits between steps)."""
    from sensorbox.device.store import core

    for r in st.res:
        if r.kind != TIMED or r.period or not st.codec:
            continue
        for name in seg_names(r):
            if r.f is not None and name == r.seg_name:
                continue
            if st.reading is not None and st.clock() - st.reading < 10000:
                return  # an export is streaming (next time)
            for x in _one(st, r, name, core._encode):
                yield x


def _one(st, r, name, encode):
    path = "{}/{}.seg".format(r.dir, name)
    rd = Reader()
    try:
        h = rd.open(path)
    except (OSError, ValueError):
        return
    hb = bytearray(rd.buf[:HDR])
    if h[8] != 2 or h[7] == GEN or h[4] == 0:
        rd.close()
        return
    old = h[0]
    rb = h[4]
    w = rb >> 1
    rows = bytearray((ROWS_BYTES if r.name == "features" else OUTBOX_BYTES) // rb * rb)
    z = bytearray(ROWS_BYTES + 2)
    bh = bytearray(BLK)
    k = got = 0
    tmp = path + ".tmp"
    f = None
    try:
        f = open(tmp, "wb")
        struct.pack_into(_HFMT, hb, 0, hb[:4], 2, h[1], h[2], 1, h[3], rb, h[5], h[6], GEN)
        struct.pack_into("<I", hb, 28, crc32(memoryview(hb)[:28]) & 0xFFFFFFFF)
        f.write(hb)
        while True:
            n = rd.next()
            if n == 0:
                break
            if n < 0:
                continue
            for o in range(BLK, BLK + n, rb):
                if k + rb > len(rows):
                    _block(f, rows, k, w, rb, z, bh, encode)
                    k = 0
                rows[k:k + rb] = rd.buf[o:o + rb]
                k += rb
                got += 1
            yield
        if k:
            _block(f, rows, k, w, rb, z, bh, encode)
        if not got:
            raise OSError("no row read")  # (never a segment replaced by an empty one)
        f.flush()
        f.close()
        f = None
        rd.close()
        os.stat(path)  # (retention may have deleted it meanwhile: then not brought back)
        new = os.stat(tmp)[6]
        if rd.bad:  # (blocks that did not check are left out: the segment as it was goes to quarantine)
            st.quarantine(path, r.name, "{} corrupt stretch(es) left out when recoded".format(rd.bad))
        os.rename(tmp, path)
        r.bytes += new - old
        st.recodes += 1
    except OSError as e:
        st.log.warning("store", "{}: segment {} not recoded ({})".format(r.name, name, e))
    finally:
        rd.close()
        if f is not None:
            f.close()
        _rm(tmp)


def _block(f, rows, k, w, rb, z, bh, encode):
    """Write ``k`` bytes of ``rows`` as one block (coded, or a 0 byte and the rows)."""
    m = encode(rows, k // rb, w, z, len(z))
    if m > 0:
        data = memoryview(z)[:m]
    else:
        z[0] = 0
        z[1:1 + k] = rows[:k]
        m = k + 1
        data = memoryview(z)[:m]
    struct.pack_into("<HH", bh, 4, m, _i32(rows, 0) & 0xFFFF)
    struct.pack_into("<I", bh, 0, crc32(data, crc32(memoryview(bh)[4:])))
    f.write(bh)
    f.write(data)
