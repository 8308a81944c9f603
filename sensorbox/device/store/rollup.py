"""Rollups: per-minute and per-hour summaries of the sound levels and the predictions, in resources of their own
(``soundlevel_1m``, ``soundlevel_1h``, ``predictions_1m``, ``predictions_1h``) kept far longer than the
full-resolution rows they summarise. Computed from those rows on flash, after they are stored: the store service
runs them once a minute (``step``), loaded for it and unloaded after, so rollups cost no resident heap and
nothing per row; a restart or a power cut loses nothing (the next run starts after the newest period stored).

A period (a minute or an hour of epoch time) is summarised once it is over by ``GRACE`` ms, from the rows whose
time falls in it: one row per period. Rows that arrive later than that, or that retention deleted before, are not
in it (``n`` / ``windows`` say how many rows were).

Sound (from ``soundlevel``, centi-dB rows): ``n`` (rows), ``leq`` (energy average of the rows' Leq:
1000 log10(mean(10^(leq/1000))), rounded), ``lmin`` / ``lmax`` (lowest Lmin, highest Lmax, rounded), ``l10`` /
``l50`` / ``l90`` (the Leq of the row of rank ``N * (100 - n) // 100`` in ascending order, truncated: from a
histogram of 0.1 dB classes from 0 to 150 dB, levels outside counting in the end classes). Stored to 0.1 dB
(deci-dB), in ascending order of level (n, lmin, l90, l50, l10, leq, lmax); exports give them in centi-dB and the
API's order, as ``soundlevel`` (``export.py``).

Classes (from ``predictions``): ``windows`` (rows), ``changes`` (rows whose class differs from the row before, when
that one is at most ``CAP`` ms earlier), ``confidence`` (mean, permille), then the time each class covered (a row
covers the time to the next row, at most ``CAP`` ms) in ``_unit``s (1 s of a minute, 10 s of an hour): of the class
ids from ``_KMAX`` on together (``other``), of unknown (-1), of class 0, 1, ... (as many columns as the highest id
seen needs: a wider row starts a new segment; exports name them ``c0``, ``c1``, ... in seconds).
tests/device/test_store_rollup.py recomputes all of it in float64 from the full-resolution rows.

Stored densely (generation 3 segments): no time per row; the header's t0 is the first period's start, its seq0 the
period, and each block's ``first`` field the index of its first row's period: rows are consecutive periods (a
period without rows ends the block; the next block says where rows resume). A block holds up to ``_DROWS`` bytes of
rows (255 at most: a stage's rows in one block, what export decodes into its buffer; the writer holds them in two
buffers of ``_DBUF``, the viper encoder reads across both: no 1 KB block on a cut-up heap; a version before wrote
blocks of half as many rows, each with its headers and first values) coded by ``sensorbox.shared.codec`` (sparse
columns for the seconds per class) in at most ``_DCODED`` bytes, which the segment
reader returns as they are (codec 0 in the header) and the rollup readers decode (export into a buffer of their
own). Rows are staged first: a row is appended at once to its resource's ``rollup-stage.seg`` (one-row blocks with
their times, generation 4, synced); exports read the stage after the segments. When the stage holds ``_DROWS``
bytes of rows, ``flush`` writes them into this boot's segment (appended while the file is as this boot left it; else a new
segment: never appended to after a restart) and removes the stage. Segments and stages of the previous format (a
row per period, or per class and period, with its time) are converted once, at the first rollup run after an
upgrade (``_convert``: a ``.tmp`` synced and renamed over the segment).

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

from sensorbox.device.store.core import _MAGIC, _i32, _new_seg, _rm, crc32, seg_names
from sensorbox.device.store.reader import Reader

# the segment format's constants (as core.py defines them: no names to import)
_HDR = const(32)
_BLK = const(8)
_TIMED = const(1)
_BUS_BLOCK = const(520)

MINUTE = const(60000)
HOUR = const(3600000)
GRACE = const(20000)  # a period is summarised this long after its end (its rows are on flash by then)
CAP = const(15000)  # a prediction covers at most this long (less than GRACE: the next row is known by then)
_KMAX = const(27)  # class ids with a column of their own (a class rollup row: at most 32 columns)
BINS = const(1500)  # the histogram's classes: 0.1 dB from 0 to 150 dB (made while a rollup runs)
_PART = const(125)  # ... in parts of this many (250 B each: no 3 KB block on a fragmented heap; parts of 500 B
# were missing 3 times in 10 minutes of the core soak from ROMFS at 88wK)
ROWS_BYTES = const(510)  # rows of a recoded block (half a reader's buffer)
_OUTBOX_BYTES = const(256)  # ... of the resources the outbox reads (predictions, soundlevel: its reader is half as big)
_GEN = const(2)  # a recoded segment's generation
_DENSE = const(3)  # a rollup segment's (rows without times, one per period)
_STAGE = const(4)  # a rollup stage's (this format's rows, with their times; 1: the previous format's)
_DROWS = const(1020)  # a rollup block's rows at most (decoded: export.py's buffer), and what a stage holds
_DBUF = const(510)  # ... in two buffers of this many as this version writes them (no 1 KB block on a cut-up heap)
_DCODED = const(512)  # ... coded, at most (a reader of half the 1 KB buffer reads it)


_TRIES = const(4)  # runs of a job that found the heap short (run): the reserve given up, then pauses
_PAUSE_MS = const(100)  # ... the first pause, twice it the next


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
    parts) even with lazy's reserve given up for a second try and after pauses of 100-300 ms (up to ``_TRIES``
    runs): they stop and run again later (they resume where the stored rows say), never failing the store
    service: sampling goes on."""
    import gc

    import asyncio

    from sensorbox.device import lazy

    failed = 0
    for k in range(3):
        again = True  # once more with lazy's reserve given up (as a request that ran out of memory), then after
        tries = 0  # pauses (a request's peak is a moment's: in 10 minutes of the core soak from ROMFS at 88wK
        while again and n >> k & 1:  # the rollups found no block of 250-500 bytes 4 times), then later
            again = False
            g = None
            try:
                g = step(st, k)  # (a generator: its frame is a block too, which a cut-up heap may lack: the
                if g is None:  # gyroscope's soak at 144wK lost the store service to one of 464 bytes once)
                    break
                for _ in g:
                    await asyncio.sleep_ms(0)
            except MemoryError as e:
                if g is not None:
                    g.close()
                g = None
                tries += 1
                again = lazy.release()
                if not again and tries < _TRIES:
                    await asyncio.sleep_ms(_PAUSE_MS * tries)
                    gc.collect()
                    again = True
                if not again:
                    failed |= 1 << k
                    if k == 2:
                        st.sd.pending = True
                    try:  # (the message itself may find no room: never the service's failure)
                        st.log.warning("store", "job {} short of memory: again later ({})".format(k, e))
                    except MemoryError:
                        pass
            finally:
                if g is not None:
                    g.close()
    return failed


def _rollups(st, now):
    """Summarise every period that is over (by GRACE) and not stored yet, for each rollup with a budget."""
    for r in st.res:
        if r.period and r.budget:
            if r.first is not None and _gen(r, r.first) != _DENSE:  # (segments of the previous format: once)
                for x in _convert(st, r):
                    yield x
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
    rd = Reader(_BUS_BLOCK, st.spare)  # (the store's: one job at a time reads through it)
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
    # stored in ascending order of level (lmin, L90, L50, L10, Leq, lmax: each column codes as the difference to
    # its neighbour's change, ~7 % fewer bytes than in the API's order)
    _put_row(st, r, p, (n, (lo + 5) // 10, ln[2], ln[1], ln[0], int(math.floor(leq / 10 + 0.5)), (hi + 5) // 10))


def _unit(period):
    """The ms of one unit of a class rollup's time per class: a second in a minute, 10 s in an hour."""
    return 1000 if period <= MINUTE else 10000


def _preds(st, r, src, a, b):
    p = r.period
    ps = -1
    cur = [0, 0, 0]  # the open period: windows, changes, confidence sum
    ms = {}  # ... and ms per class id (-1 unknown; ids past the columns: -2)
    prev = None  # the row before: (t, class, its class's key in ms, or None before the first period)
    for x in rows(st, src, None if a is None else a - CAP, b + CAP):
        if x is None:
            yield
            continue
        t, v = x
        if prev is not None and prev[2] is not None:  # it covers the time to this row
            ms[prev[2]] += min(t - prev[0], CAP)
        if t >= b:
            prev = None
            break
        if a is not None and t < a:  # a row before the first period: only its class and time matter
            prev = (t, v[0], None)
            continue
        if t - t % p != ps:
            if cur[0]:
                _pred_row(st, r, ps, cur, ms)
            ps = t - t % p
            cur = [0, 0, 0]
            ms = {}
        c = v[0] if v[0] < _KMAX else -2
        if c not in ms:
            ms[c] = 0
        cur[0] += 1
        cur[2] += v[1]
        if prev is not None and prev[1] != v[0] and t - prev[0] <= CAP:
            cur[1] += 1
        prev = (t, v[0], c)
    if prev is not None and prev[2] is not None:  # no row after it (yet): it covers CAP (GRACE > CAP)
        ms[prev[2]] += CAP
    if cur[0]:
        _pred_row(st, r, ps, cur, ms)


def _pred_row(st, r, t0, cur, ms):
    """The period's row: windows, changes, mean confidence (permille), then the time (in ``_unit``s) of the classes
    past the columns (-2), of unknown (-1), of class 0, 1, ... (as many columns as the highest id seen needs)."""
    q = _unit(r.period)
    w = 5
    for c in ms:
        if c + 6 > w:
            w = c + 6
    if w < r.ncols:
        w = r.ncols
    row = [0] * w
    n = cur[0]
    row[0] = n
    row[1] = cur[1]
    row[2] = (cur[2] + n // 2) // n
    for c in ms:
        row[c + 5] = (ms[c] + q // 2) // q
    _put_row(st, r, t0, row)


def _put_row(st, r, t, value):
    """Append rollup row ``value`` for the period at ``t`` (after the last one) to ``r``'s stage, synced; when the
    stage holds a block's worth (or the row is wider than the stage's: a class id past its columns), ``flush``."""
    last = r.last_t
    if last is not None and t <= last:
        return  # (summarised already)
    n = len(value)
    if r.brows and n != r.ncols:  # (the stage's rows are all as wide: rows are padded to the widest so far)
        flush(st, r)
    if n > r.ncols:
        r.ncols = n  # (the columns exports give)
    rb = 4 + 2 * n
    z = bytearray(_HDR + _BLK + rb) if _HDR + _BLK + rb > len(st._zbuf) else st._zbuf  # (nothing is being coded now)
    o = 0
    if r.brows == 0:  # a new stage: a segment header of its own (its rows with their times: generation 4)
        r.bt0 = t
        _new_seg(None, z, r.code, n, 0, 0, rb, t, r.period, _STAGE)
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
    if (r.brows + 1) * 2 * n > _DROWS:
        flush(st, r)


def staged(st, r, path, since):
    """(t, values) of the rows of stage ``path`` with t > ``since`` (in order; a row that does not check is left out
    and counted as corrupt, a torn last one ignored), and the stage's size. A stage of the previous format
    (generation 1: rows as its segments had them) gives its rows converted (``_old``)."""
    out = []
    size = bad = 0
    try:
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            f.seek(0)
            h = bytearray(_HDR)
            if (f.readinto(h) or 0) == _HDR and h[:4] == _MAGIC and \
                    struct.unpack_from("<I", h, 28)[0] == crc32(memoryview(h)[:28]):
                rb = h[10] | h[11] << 8
                t0 = struct.unpack_from("<q", h, 12)[0]
                fmt = "<{}h".format(h[6])
                z = bytearray(_BLK + rb)
                out = [None] * ((size - _HDR) // (_BLK + rb))  # (as many as it holds: appends grew it to 1 KB)
                n = 0
                while (f.readinto(z) or 0) == _BLK + rb:
                    if z[4] | z[5] << 8 != rb or crc32(memoryview(z)[4:]) != struct.unpack_from("<I", z, 0)[0]:
                        bad += 1
                        continue
                    out[n] = (t0 + _i32(z, _BLK), struct.unpack_from(fmt, z, _BLK + 4))
                    n += 1
                del out[n:]
                if struct.unpack_from("<I", h, 24)[0] != _STAGE:
                    out = list(_old(r, out))
    except OSError:
        pass
    if bad:
        st.corrupt += bad
        st.log.error("store", "{}: {} staged rows did not check".format(r.name, bad))
    k = 0
    while k < len(out) and (out[k][0] <= since or (k and out[k][0] <= out[k - 1][0])):
        k += 1
    return out[k:] if k else out, size


def _old(r, rows):
    """Rows of the previous rollup format (a row at each period's start: sound in the API's column order; classes a
    row per class seen, at start + 0, 1, ...: class, windows, permille, changes, confidence) as this one's: a
    generator over ``rows`` ((t, values) in time order; a None passes through)."""
    p = r.period
    q = _unit(p)
    cur = None
    for x in rows:
        if x is None:
            yield None
            continue
        t, v = x
        ps = t - t % p
        if r.code < 9:
            yield ps, (v[0], v[2], v[6], v[5], v[4], v[1], v[3])
            continue
        if cur is not None and ps != cur[0]:
            yield _whole(cur)
            cur = None
        c = v[0] if v[0] < _KMAX else -2
        if cur is None:
            cur = [ps, [0] * 5]
        row = cur[1]
        if c + 6 > len(row):
            row.extend([0] * (c + 6 - len(row)))
        row[0] += v[1]
        row[1] += v[3]
        row[2] += v[4] * v[1]  # (a confidence sum: the mean once the period is whole)
        row[c + 5] += (v[2] * p // 1000 + q // 2) // q
    if cur is not None:
        yield _whole(cur)


def _whole(cur):
    row = cur[1]
    n = row[0]
    row[2] = (row[2] + n // 2) // n if n else 0
    return cur[0], tuple(row)


def flush(st, r, since=-1):
    """Move the rows of rollup ``r``'s stage with t > ``since`` into its dense segment (``_dense_write``), synced, then
    remove the stage."""
    path = r.dir + "/rollup-stage.seg"
    rows, size = staged(st, r, path, since)
    staged_rows = r.brows  # (0 at a start: the stage was not counted)
    if rows:
        w = 7 if r.code < 9 else 5
        for t, v in rows:
            if len(v) > w:
                w = len(v)
        if w > r.ncols:
            r.ncols = w
        if _dense_write(st, r, rows, w, None):
            _rm(path)
    else:
        _rm(path)
    if staged_rows:
        r.bytes -= size
    r.brows = 0


def _dense_write(st, r, rows, w, tmp):
    """Write ``rows`` ((t, values), periods in ascending order) as dense blocks of ``w`` columns: into the segment
    this boot writes to (appended while it is as this boot left it), else a new one; with ``tmp``, into that new
    file (a conversion). False (logged, counted) when the flash refused."""
    from sensorbox.device.store.core import encode

    p = r.period
    half = _DBUF // (2 * w)  # rows a buffer holds: a block's first half in buf, the rest in buf2
    buf = bytearray(_DBUF)  # a block's rows (two buffers of 510 bytes: no 1 KB block on a cut-up heap)
    buf2 = bytearray(_DBUF)
    out = bytearray(_DCODED)  # ... coded
    bh = bytearray(_BLK)
    f = None
    i = 0
    try:
        while i < len(rows):
            t = rows[i][0]
            if f is None:
                f = _dense_file(st, r, t, w, tmp)
            idx = (t - r.seg_t0) // p
            if idx >= 65536 and tmp is not None:
                raise OSError(27)  # (EFBIG: a converted segment spans at most 65,536 periods)
            if tmp is None and (idx >= 65536 or r.seg_size > _HDR and r.seg_size + 2 * (_BLK + _DCODED) > r.seg_max):
                # (a block, or two when not smaller coded, past the segment's size: a new one, unless it is new)
                f.close()
                f = None
                r.seg_name = 0  # (a new segment for the rest)
                continue
            k = _pack(rows, i, w, idx, p, half, buf, buf2)
            m = _wblock(f, buf, 2 * k * w, w, 2 * w, out, bh, encode, idx, buf2, half)
            r.seg_size += _BLK + m
            if tmp is None:
                r.bytes += _BLK + m
                r.added += _BLK + m
                r.rows += k
            i += k
            if r.last_t is None or rows[i - 1][0] > r.last_t:
                r.last_t = rows[i - 1][0]
        if f is not None:
            f.close()
            f = None
        return True
    except OSError as e:
        st.errors += 1
        if tmp is None:
            r.lost_rows += len(rows) - i
        r.seg_name = 0
        st.log.error("store", "{}: cannot write rollup rows ({})".format(r.name, e))
        st.retain(True)
        return False
    finally:
        if f is not None:
            f.close()


def _pack(rows, i, w, idx, p, half, buf, buf2):
    """Put the rows of consecutive periods from ``rows[i]`` on (period index ``idx`` in its segment, ``p`` ms each)
    into a block's two buffers, ``half`` rows in each at most, ``w`` columns (padded with 0); returns how many."""
    t = rows[i][0]
    k = 0
    while i + k < len(rows) and k < 2 * half and k < 255 and idx + k < 65536 and rows[i + k][0] == t + k * p:
        v = rows[i + k][1]
        b = buf if k < half else buf2
        o = 2 * w * (k if k < half else k - half)
        for j in range(w):
            struct.pack_into("<h", b, o + 2 * j, v[j] if j < len(v) else 0)
        k += 1
    return k


def _dense_file(st, r, t, w, tmp):
    """The file the rows from period ``t`` on go to (open, at its end): this boot's segment when it is as this boot
    left it and has ``w`` columns, else a new one (a segment header, generation 3: rows without times, one per period
    from the header's t0 and each block's first index; the period in the header's seq0)."""
    if tmp is not None and r.seg_name == -1:  # (a conversion's file, begun)
        return open(tmp, "ab")
    if tmp is None and r.seg_name > 0 and r.seg_ncols == w and t >= r.seg_t0 and st.real(r.seg_name) == r.seg_name:
        # (not one stored while the clock was unknown and placed since: recover.resync)
        path = "{}/{}.seg".format(r.dir, r.seg_name)
        try:
            if os.stat(path)[6] == r.seg_size:  # (not moved to the card, deleted or torn meanwhile)
                return open(path, "ab")
        except OSError:
            pass
    t0 = t - t % r.period
    name = t0 if t0 > r.newest else r.newest + 1
    path = tmp or "{}/{}.seg".format(r.dir, name)
    f = _new_seg(path, bytearray(_HDR), r.code, w, 0, 0, 0, t0, r.period, _DENSE)
    r.seg_t0 = t0
    r.seg_size = _HDR
    r.seg_ncols = w
    r.seg_name = -1
    if tmp is None:
        r.seg_name = r.newest = name
        r.bytes += _HDR
        r.nseg += 1
        if r.first is None:
            r.first = name
        st.changes += 1
        st._rolled = True  # (retention looks at the budget at the next flush point)
    return f


def _gen(r, name):
    """The generation of ``r``'s segment ``name`` (-1: unreadable)."""
    try:
        return _header("{}/{}.seg".format(r.dir, name))[7]
    except (OSError, ValueError):
        return -1


def _header(path):
    """The header tuple of segment ``path`` (``reader.check_header``), read through a reader of no blocks."""
    rd = Reader(_HDR - _BLK)
    try:
        return rd.open(path, None, 0)
    finally:
        rd.close()


def _convert(st, r):
    """Rewrite the rollup's segments of the previous format (a row per period, or per class and period, each with
    its time) in this one, once (the first rollup run after an upgrade): each into ``<name>.seg.tmp``, synced,
    renamed over it (a power cut leaves the old one whole: converted at the next start). A generator."""
    keep = (r.seg_name, r.seg_t0, r.seg_size, r.seg_ncols)
    for name in seg_names(r):
        path = "{}/{}.seg".format(r.dir, name)
        try:
            h = _header(path)
        except (OSError, ValueError):
            continue
        if h[7] == _DENSE:
            continue
        w = 7 if r.code < 9 else 5  # (the class columns the segment needs: its highest id, read first)
        if r.code > 8:
            for x in _seg_rows(st, r, path, name):
                if x is None:
                    yield
                elif x[1][0] < _KMAX and x[1][0] + 6 > w:
                    w = x[1][0] + 6
        tmp = path + ".tmp"
        r.seg_name = 0
        part = []
        n = 0
        try:
            for x in _old(r, _seg_rows(st, r, path, name)):
                if x is not None:
                    part.append(x)
                if len(part) >= 64 or (x is None and part):
                    if not _dense_write(st, r, part, w, tmp):
                        raise OSError("write")
                    n += len(part)
                    part = []
                if x is None:
                    yield
            if part:
                if not _dense_write(st, r, part, w, tmp):
                    raise OSError("write")
                n += len(part)
            if n:
                new = os.stat(tmp)[6]
                os.rename(tmp, path)
                if w > r.ncols:
                    if r.brows:
                        flush(st, r)  # (the stage's rows are as wide as r.ncols)
                    r.ncols = w
                r.bytes += new - h[0]
                st.changes += 1
                st.log.info("store", "{}: segment {} converted ({} periods)".format(r.name, name, n))
        except OSError as e:
            st.log.warning("store", "{}: segment {} not converted ({})".format(r.name, name, e))
        finally:
            _rm(tmp)
        yield
    r.seg_name, r.seg_t0, r.seg_size, r.seg_ncols = keep


def _seg_rows(st, r, path, name):
    """(t, values) of a segment of timed rows (the previous format), None after each block."""
    rd = Reader()
    try:
        h = rd.open(path, st, name)
        fmt = "<{}h".format(h[2])
        while True:
            n = rd.next()
            if n == 0:
                break
            if n > 0:
                for o in range(_BLK, _BLK + n, h[4]):
                    yield h[5] + _i32(rd.buf, o), struct.unpack_from(fmt, rd.buf, o + 4)
            yield None
    except (OSError, ValueError):
        return
    finally:
        rd.close()


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
    # the levels' and predictions' blocks are at most _BUS_BLOCK: read through the store's 528-byte buffer (one job
    # at a time reads through it), not a 1 KB reader of their own (the block the core soaks lacked); features' need 1 KB
    rd = Reader() if r.name == "features" else Reader(_BUS_BLOCK, st.spare)
    try:
        h = rd.open(path, None, 0)  # (the times as stored: the copy keeps them)
    except (OSError, ValueError):
        return
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
        f = _new_seg(tmp, bytearray(_HDR), h[1], h[2], 1, h[3], rb, h[5], h[6], _GEN)
        while True:
            n = rd.next()
            if n == 0:
                break
            if n < 0:
                continue
            for o in range(_BLK, _BLK + n, rb):
                if k + rb > len(rows):
                    _wblock(f, rows, k, w, rb, z, bh, encode, _i32(rows, 0), rows, 255)
                    k = 0
                rows[k:k + rb] = rd.buf[o:o + rb]
                k += rb
                got += 1
            yield
        if k:
            _wblock(f, rows, k, w, rb, z, bh, encode, _i32(rows, 0), rows, 255)
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


def _wblock(f, rows, k, w, rb, z, buf, encode, first, rows2, k2):
    """Write ``k`` bytes of rows (rows of ``rb`` bytes, ``w`` int16 columns: the first ``k2`` in ``rows``, the rest
    from the start of ``rows2``) as one block (coded into ``z``, or a 0 byte and the rows when coding does not make
    them smaller: then one block per buffer), its header's first field ``first`` (16 bits; ``buf``: the block
    header's 8 bytes). The bytes written after the (first) header."""
    m = encode(rows, k // rb, w, z, len(z), rows2, k2)
    if m <= 0 and k > k2 * rb:  # (not smaller coded, and the rows are in two buffers)
        m = _wblock(f, rows, k2 * rb, w, rb, z, buf, encode, first, rows, 255)
        return m + _BLK + _wblock(f, rows2, k - k2 * rb, w, rb, z, buf, encode, first + k2, rows2, 255)
    if m <= 0:
        z[0] = 0
        z[1:1 + k] = rows[:k]
        m = k + 1
    data = memoryview(z)[:m]
    struct.pack_into("<HH", buf, 4, m, first & 0xFFFF)
    struct.pack_into("<I", buf, 0, crc32(data, crc32(memoryview(buf)[4:])))
    f.write(buf)
    f.write(data)
    return m
