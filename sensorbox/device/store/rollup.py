"""Rollups: per-minute and per-hour summaries of the sound levels and the predictions, in resources of their own
(``soundlevel_1m``, ``soundlevel_1h``, ``predictions_1m``, ``predictions_1h``) kept far longer than the
full-resolution rows they summarise. Computed from those rows on flash, after they are stored: the store service
runs them once a minute (``step``), loaded for it and unloaded after, so rollups cost no resident heap and
nothing per row; a restart or a power cut loses nothing (the next run starts after the newest period stored).

A period (a minute or an hour of epoch time) is summarised once it is over by ``GRACE`` ms, from the rows whose
time falls in it; its rows are stored at the period's start (predictions: one row per class seen, at start,
start + 1, ... in class id order). Rows that arrive later than that, or that retention
deleted before, are not in it (``n`` / ``windows`` say how many rows were).

Sound (from ``soundlevel``, centi-dB rows): ``n`` (rows), ``leq`` (energy average of the rows' Leq:
1000 log10(mean(10^(leq/1000))), rounded), ``lmin`` / ``lmax`` (lowest Lmin, highest Lmax, rounded), ``l10`` /
``l50`` / ``l90`` (the Leq of the row of rank ``N * (100 - n) // 100`` in ascending order, truncated: from a
histogram of 0.1 dB classes from 0 to 150 dB, levels outside counting in the end classes). Stored to 0.1 dB
(deci-dB: a block of minutes codes into ~30 % fewer bytes than at 0.01 dB); exports give them in centi-dB, as
``soundlevel`` (``export.py``).

Predictions (from ``predictions``): per class id, in id order (at most ``SLOTS`` a period: the rest count as -2),
``windows`` (rows), ``permille`` (the time the class covered, per mille of the period: a row covers the time to
the next row, at most ``CAP`` ms), ``changes`` (rows whose class differs from the row before, when that one is at
most ``CAP`` ms earlier), ``confidence`` (mean, permille). tests/device/test_store_rollup.py recomputes all of it
in float64 from the full-resolution rows.

Storing: a row is appended at once, as it is, to its resource's ``rollup-stage.seg`` (a segment of one-row blocks,
generation 1, closed after each row); exports read the stage after the other segments. When the stage holds as
many rows as fit a block (``ROWS_BYTES``), ``flush`` moves them into the open segment as one (coded) block and
removes the stage: a block per row would cost more than the row.

Recoding (loaded by the store service after a segment of ``features``, ``predictions`` or ``soundlevel`` was
closed: ``step``): those rows arrive a few a second, so each flush point writes a block of
one or two rows: too few for the codec to make smaller, and the block header (8 bytes) costs as much as the row.
Once such a segment is closed it is rewritten, its rows in coded blocks of up to ``ROWS_BYTES`` (``_OUTBOX_BYTES``
for the resources the outbox reads: its reader holds less; ``sensorbox.shared.codec``), into ``<name>.seg.tmp``,
synced, then renamed over the segment (one atomic step: a power cut leaves either the old segment or the new one
whole; a ``.tmp`` left behind is removed when the store opens). A recoded segment says so in its header
(generation 2) and is not recoded again. Nothing is recoded while an export streams (it may be reading the
segment) or when ``store.compress`` is off; a segment retention deleted meanwhile is not brought back. Readers
holding a position in a segment (the outbox) see ``Store.changes`` change and look for it again.
"""

import os
import struct

from micropython import const

from sensorbox.device.store.core import _HFMT, _MAGIC, _i32, _rm, crc32, seg_names
from sensorbox.device.store.reader import Reader

# the segment format's constants (as core.py defines them: no names to import)
_HDR = const(32)
_BLK = const(8)
_TIMED = const(1)

_VERSION = const(2)  # (core._VERSION)
MINUTE = const(60000)
HOUR = const(3600000)
GRACE = const(20000)  # a period is summarised this long after its end (its rows are on flash by then)
CAP = const(15000)  # a prediction covers at most this long (less than GRACE: the next row is known by then)
SLOTS = const(8)
BINS = const(1500)  # the histogram's classes: 0.1 dB from 0 to 150 dB (made while a rollup runs)
_PART = const(250)  # ... in parts of this many (500 B each: no 3 KB block needed on a fragmented heap)
ROWS_BYTES = const(510)  # rows of a stage moved into one block, of a recoded block (half a reader's buffer)
_OUTBOX_BYTES = const(256)  # ... of the resources the outbox reads (predictions, soundlevel: its reader is half as big)
_GEN = const(2)  # a recoded segment's generation


def step(st, k):
    """The steps of store job ``k``, a generator to run to its end (None: nothing to do). 0: the rollups of every
    period that is over and not stored yet; 1: recoding the closed segments not recoded yet; 2: moving segments onto
    the SD card (``sd.py``). (``Store._jobs`` runs each when it is due.)"""
    if k == 2:
        return st.sd.run(st) if st.sd is not None else None
    if k == 0:
        return _rollups(st, st.clock())
    return _recode(st) if st.codec else None


async def run(st, n):
    """The store service's jobs due, ``n`` (bits: 1 << k for ``step`` k), a step per event-loop turn; returns the
    bits of those that found the heap too fragmented for their buffers (a reader's 1 KB, the level histogram's
    parts) even with lazy's reserve given up for a second try: they stop and run again later (they resume where
    the stored rows say), never failing the store service: sampling goes on."""
    import asyncio

    from sensorbox.device import lazy

    failed = 0
    for k in range(3):
        again = True  # once more with lazy's reserve given up (as a request that ran out of memory), then later
        while again and n >> k & 1:
            again = False
            g = step(st, k)
            if g is None:
                break
            try:
                for _ in g:
                    await asyncio.sleep_ms(0)
            except MemoryError:
                g.close()
                g = None
                again = lazy.release()
                if not again:
                    failed |= 1 << k
                    if k == 2:
                        st.sd.pending = True
                    st.log.warning("store", "job {} short of memory: again later".format(k))  # (see step)
            finally:
                if g is not None:
                    g.close()
    return failed


def _rollups(st, now):
    """Summarise every period that is over (by GRACE) and not stored yet, for each rollup with a budget."""
    for r in st.res:
        if r.period and r.budget:
            src = st.by_name["soundlevel" if r.code < 9 else "predictions"]  # (7, 8: sound; 9, 10: classes)
            last = r.last_t
            a = last - last % r.period + r.period if last is not None else None
            b = (now - GRACE) - (now - GRACE) % r.period
            for x in (_sound if r.code < 9 else _preds)(st, r, src, a, b):
                yield x


def rows(st, r, a, b):
    """(t, values) of resource ``r``'s stored rows with a <= t < b (a None: from the first), oldest first, and
    None after each block read. Timed resources without a stage only (the rollups' sources)."""
    names = seg_names(r)
    rd = Reader()
    real = st.real  # (segment names are stored times: rows stored while the clock was unknown belong later)
    for i in range(len(names)):
        if a is not None and i + 1 < len(names) and real(names[i + 1]) <= a:
            continue
        if real(names[i]) >= b:
            break
        try:
            h = rd.open("{}/{}.seg".format(r.dir, names[i]), st, names[i])
        except (OSError, ValueError):
            continue
        fmt = "<{}h".format(h[2])
        try:
            while True:
                n = rd.next()
                if n == 0:
                    break
                if n > 0:
                    buf = rd.buf
                    for o in range(_BLK, _BLK + n, h[4]):
                        t = h[5] + _i32(buf, o)
                        if (a is None or t >= a) and t < b:
                            yield t, struct.unpack_from(fmt, buf, o + 4)
                yield None
        finally:
            rd.close()


def _sound(st, r, src, a, b):
    import array
    import math

    p = r.period
    hist = [array.array("H", bytes(2 * _PART)) for _ in range(BINS // _PART)]  # (counts: an hour's rows at most)
    ps = -1
    n = lo = hi = ref = 0
    s = 0.0
    for x in rows(st, src, a, b):
        if x is None:
            yield
            continue
        t, v = x
        if t - t % p != ps:
            if n:
                _sound_row(st, r, ps, n, s, ref, lo, hi, hist)
            ps = t - t % p
            n = 0
            s = 0.0
            ref = v[0]  # energies relative to the period's first level (float32 on a board: no overflow)
            lo = v[1]
            hi = v[2]
            for h in hist:
                for i in range(_PART):
                    h[i] = 0
        s += math.pow(10.0, (v[0] - ref) / 1000.0)
        lo = v[1] if v[1] < lo else lo
        hi = v[2] if v[2] > hi else hi
        k = v[0] // 10
        k = 0 if k < 0 else (BINS - 1 if k >= BINS else k)
        hist[k // _PART][k % _PART] += 1
        n += 1
    if n:
        _sound_row(st, r, ps, n, s, ref, lo, hi, hist)


def _sound_row(st, r, p, n, s, t0, lo, hi, hist):
    import math

    ln = [0, 0, 0]
    for j in range(3):
        rank = n * (90, 50, 10)[j] // 100  # L10 is the level exceeded 10 % of the time: rank 90 % ascending
        c = 0
        for k in range(BINS):
            c += hist[k // _PART][k % _PART]
            if c > rank:
                ln[j] = k
                break
    leq = t0 + 1000 * math.log10(s / n)  # centi-dB: to deci-dB, rounded
    _put_row(st, r, p, (n, int(math.floor(leq / 10 + 0.5)), (lo + 5) // 10, (hi + 5) // 10, ln[0], ln[1], ln[2]))


def _preds(st, r, src, a, b):
    p = r.period
    ps = -1
    cls = []  # per class of the open period: [class, windows, ms, changes, confidence sum]
    prev = None  # the row before: (t, class, its entry)
    for x in rows(st, src, None if a is None else a - CAP, b + CAP):
        if x is None:
            yield
            continue
        t, v = x
        if prev is not None and prev[2] is not None:  # it covers the time to this row
            prev[2][2] += min(t - prev[0], CAP)
        if t >= b:
            prev = None
            break
        if a is not None and t < a:  # a row before the first period: only its class and time matter
            prev = (t, v[0], None)
            continue
        if t - t % p != ps:
            _pred_rows(st, r, ps, cls)
            ps = t - t % p
            cls = []
        e = None
        for c in cls:
            if c[0] == v[0]:
                e = c
                break
        if e is None:
            if len(cls) < SLOTS:
                e = [v[0], 0, 0, 0, 0]
                cls.append(e)
            else:  # more classes than slots: the last one counts the rest
                e = cls[-1]
                e[0] = -2
        e[1] += 1
        e[4] += v[1]
        if prev is not None and prev[1] != v[0] and t - prev[0] <= CAP:
            e[3] += 1
        prev = (t, v[0], e)
    if prev is not None and prev[2] is not None:  # no row after it (yet): it covers CAP (GRACE > CAP)
        prev[2][2] += CAP
    _pred_rows(st, r, ps, cls)


def _pred_rows(st, r, t0, classes):
    q = r.period // 1000  # (ms per mille: small ints on a 32-bit board)
    classes.sort()  # (by class id)
    for k in range(len(classes)):
        c = classes[k]
        w = c[1]
        _put_row(st, r, t0 + k, (c[0], min(w, 32767), (c[2] + q // 2) // q, min(c[3], 32767), (c[4] + w // 2) // w))


def _put_row(st, r, t, value):
    """Append rollup row ``value`` at ``t`` (made later than the last row, as ``Store.put`` does) to ``r``'s stage,
    synced; when the stage holds a block's worth, ``flush`` it."""
    last = r.last_t
    if last is not None and t <= last:
        t = last + 1
    n = len(value)
    rb = 4 + 2 * n
    z = st._zbuf  # (nothing is being coded now)
    o = 0
    if r.brows == 0:  # a new stage: a segment header of its own (generation 1)
        r.bt0 = t
        struct.pack_into(_HFMT, z, 0, _MAGIC, _VERSION, r.code, n, 0, 0, rb, t, 0, 1)
        struct.pack_into("<I", z, 28, crc32(memoryview(z)[:28]) & 0xFFFFFFFF)
        o = _HDR
    struct.pack_into("<i", z, o + _BLK, t - r.bt0)
    for i in range(n):
        v = value[i]
        struct.pack_into("<h", z, o + _BLK + 4 + 2 * i, -32768 if v < -32768 else (32767 if v > 32767 else v))
    struct.pack_into("<HH", z, o + 4, rb, (t - r.bt0) & 0xFFFF)
    struct.pack_into("<I", z, o, crc32(memoryview(z)[o + 4:o + _BLK + rb]))
    try:
        with open(r.dir + "/rollup-stage.seg", "ab" if o == 0 else "wb") as f:
            f.write(memoryview(z)[:o + _BLK + rb])
    except OSError as e:
        st.errors += 1
        r.lost_rows += 1
        st.log.error("store", "{}: cannot stage a row ({})".format(r.name, e))
        st.retain(True)
        return
    r.brows += 1
    r.bytes += o + _BLK + rb
    r.last_t = t
    if (r.brows + 1) * rb > ROWS_BYTES:
        flush(st, r)


def flush(st, r, since=-1):
    """Move the rows of rollup ``r``'s stage with t > ``since`` into a segment as one block, then remove the stage.
    A row whose block does not check is left out (counted as corrupt); a torn last one is ignored."""
    path = r.dir + "/rollup-stage.seg"
    rb = 4 + 2 * r.ncols
    k = bad = size = 0
    t0 = last = None
    buf = bytearray(ROWS_BYTES)
    try:
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            f.seek(0)
            h = st._hdr
            if (f.readinto(h) or 0) == _HDR and h[:4] == _MAGIC and h[10] | h[11] << 8 == rb and \
                    struct.unpack_from("<I", h, 28)[0] == crc32(memoryview(h)[:28]):
                t0 = struct.unpack_from("<q", h, 12)[0]
                z = memoryview(st._zbuf)[:_BLK + rb]
                while (k + 1) * rb <= len(buf) and (f.readinto(z) or 0) == _BLK + rb:
                    if z[4] | z[5] << 8 != rb or crc32(z[4:]) != struct.unpack_from("<I", z, 0)[0]:
                        bad += 1
                        continue
                    t = t0 + _i32(z, _BLK)
                    if t > since and (last is None or t > last):
                        buf[k * rb:k * rb + rb] = z[_BLK:]
                        last = t
                        k += 1
    except OSError:
        pass
    if bad:
        st.corrupt += bad
        st.log.error("store", "{}: {} staged rows did not check".format(r.name, bad))
    staged = r.brows  # (0 at a start: the stage was not counted)
    if k:
        r.buf = buf
        r.blen = k * rb
        r.brows = k
        r.bt0 = t0
        r.bn = r.ncols
        if r.last_t is None or last > r.last_t:
            r.last_t = last
        st._drain(r)
        st._fsync(r)
        r.buf = None
        r.blen = r.brows = 0
    _rm(path)
    if staged:
        r.bytes -= size
    r.brows = 0


def _recode(st):
    """Recode every closed, not yet recoded version 2 segment of the timed resources (see the module's docstring).
    A generator: it yields after each block (the store service awaits between steps)."""
    from sensorbox.device.store.core import encode

    for r in st.res:
        if r.kind != _TIMED or r.period or not st.codec:
            continue
        for name in seg_names(r):
            if r.f is not None and name == r.seg_name:
                continue
            if st.reading is not None and st.clock() - st.reading < 10000:
                return  # an export is streaming (next time)
            for x in _one(st, r, name, encode):
                yield x


def _one(st, r, name, encode):
    path = "{}/{}.seg".format(r.dir, name)
    rd = Reader()
    try:
        h = rd.open(path, None, 0)  # (the times as stored: the copy keeps them)
    except (OSError, ValueError):
        return
    hb = bytearray(rd.buf[:_HDR])
    if h[8] != 2 or h[7] == _GEN or h[4] == 0:
        rd.close()
        return
    old = h[0]
    rb = h[4]
    w = rb >> 1
    rows = bytearray((ROWS_BYTES if r.name == "features" else _OUTBOX_BYTES) // rb * rb)
    z = bytearray(ROWS_BYTES + 2)
    bh = bytearray(_BLK)
    k = got = 0
    tmp = path + ".tmp"
    f = None
    try:
        f = open(tmp, "wb")
        struct.pack_into(_HFMT, hb, 0, hb[:4], 2, h[1], h[2], 1, h[3], rb, h[5], h[6], _GEN)
        struct.pack_into("<I", hb, 28, crc32(memoryview(hb)[:28]) & 0xFFFFFFFF)
        f.write(hb)
        while True:
            n = rd.next()
            if n == 0:
                break
            if n < 0:
                continue
            for o in range(_BLK, _BLK + n, rb):
                if k + rb > len(rows):
                    _wblock(f, rows, k, w, rb, z, bh, encode)
                    k = 0
                rows[k:k + rb] = rd.buf[o:o + rb]
                k += rb
                got += 1
            yield
        if k:
            _wblock(f, rows, k, w, rb, z, bh, encode)
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
        st.changes += 1  # (block offsets changed: readers look again; the budgets' figures too)
    except OSError as e:
        st.log.warning("store", "{}: segment {} not recoded ({})".format(r.name, name, e))
    finally:
        rd.close()
        if f is not None:
            f.close()
        _rm(tmp)


def _wblock(f, rows, k, w, rb, z, buf, encode):
    """Write ``k`` bytes of ``rows`` as one block (coded, or a 0 byte and the rows)."""
    m = encode(rows, k // rb, w, z, len(z))
    if m > 0:
        data = memoryview(z)[:m]
    else:
        z[0] = 0
        z[1:1 + k] = rows[:k]
        m = k + 1
        data = memoryview(z)[:m]
    struct.pack_into("<HH", buf, 4, m, _i32(rows, 0) & 0xFFFF)
    struct.pack_into("<I", buf, 0, crc32(data, crc32(memoryview(buf)[4:])))
    f.write(buf)
    f.write(data)
