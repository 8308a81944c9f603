"""Rollups: per-minute and per-hour summaries of the sound levels and the predictions, in resources of their own
(``soundlevel_1m``, ``soundlevel_1h``, ``predictions_1m``, ``predictions_1h``) kept far longer than the
full-resolution rows they summarise. Computed from those rows on flash, after they are stored: the store service
runs ``run`` once a minute (``Store.roll``), loaded for it and unloaded after, so rollups cost no resident heap and
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

Storing: a row is appended at once, as it is, to its resource's ``stage.seg`` (a segment of one-row blocks,
generation 1, closed after each row); exports read the stage after the other segments. When the stage holds as
many rows as fit a block (``ROWS_BYTES``), ``compact`` moves them into the open segment as one (coded) block and
removes the stage: a block per row would cost more than the row.
"""

import struct

from micropython import const

from sensorbox.device.store.core import _HFMT, _MAGIC, BLK, HDR, VERSION, _i32, _rm, crc32, seg_names
from sensorbox.device.store.reader import Reader

MINUTE = const(60000)
HOUR = const(3600000)
GRACE = const(20000)  # a period is summarised this long after its end (its rows are on flash by then)
CAP = const(15000)  # a prediction covers at most this long (less than GRACE: the next row is known by then)
SLOTS = const(8)
BINS = const(1500)  # the histogram's classes: 0.1 dB from 0 to 150 dB (made while a rollup runs)
ROWS_BYTES = const(510)  # rows of a stage moved into one block (a block of rows at most: core._ZBUF - 2)


def run(st, now):
    """Summarise every period that is over (by GRACE) and not stored yet, for each rollup with a budget. A
    generator: it yields after each block read (the store service awaits between steps)."""
    for r in st.res:
        if r.period and r.budget:
            src = st.by_name["soundlevel" if r.code < 8 else "predictions"]  # (6, 7: sound; 8, 9: classes)
            last = r.last_t
            a = last - last % r.period + r.period if last is not None else None
            b = (now - GRACE) - (now - GRACE) % r.period
            for x in (_sound if r.code < 8 else _preds)(st, r, src, a, b):
                yield x


def rows(st, r, a, b):
    """(t, values) of resource ``r``'s stored rows with a <= t < b (a None: from the first), oldest first, and
    None after each block read. Timed resources without a stage only (the rollups' sources)."""
    names = seg_names(r)
    rd = Reader()
    for i in range(len(names)):
        if a is not None and i + 1 < len(names) and names[i + 1] <= a:
            continue
        if names[i] >= b:
            break
        try:
            h = rd.open("{}/{}.seg".format(r.dir, names[i]))
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
                    for o in range(BLK, BLK + n, h[4]):
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
    hist = array.array("H", bytes(2 * BINS))  # (counts of an hour's rows at most: 3600)
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
            for i in range(BINS):
                hist[i] = 0
        s += math.pow(10.0, (v[0] - ref) / 1000.0)
        lo = v[1] if v[1] < lo else lo
        hi = v[2] if v[2] > hi else hi
        k = v[0] // 10
        k = 0 if k < 0 else (BINS - 1 if k >= BINS else k)
        hist[k] += 1
        n += 1
    if n:
        _sound_row(st, r, ps, n, s, ref, lo, hi, hist)


def _sound_row(st, r, ps, n, s, ref, lo, hi, hist):
    import math

    ln = [0, 0, 0]
    for j in range(3):
        rank = n * (90, 50, 10)[j] // 100  # L10 is the level exceeded 10 % of the time: rank 90 % ascending
        c = 0
        for k in range(BINS):
            c += hist[k]
            if c > rank:
                ln[j] = k
                break
    leq = ref + 1000 * math.log10(s / n)  # centi-dB: to deci-dB, rounded
    row(st, r, ps, (n, int(math.floor(leq / 10 + 0.5)), (lo + 5) // 10, (hi + 5) // 10, ln[0], ln[1], ln[2]))


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


def _pred_rows(st, r, ps, cls):
    q = r.period // 1000  # (ms per mille: small ints on a 32-bit board)
    cls.sort()  # (by class id)
    for k in range(len(cls)):
        c = cls[k]
        w = c[1]
        row(st, r, ps + k, (c[0], min(w, 32767), (c[2] + q // 2) // q, min(c[3], 32767), (c[4] + w // 2) // w))


def row(st, r, t, value):
    """Append rollup row ``value`` at ``t`` (made later than the last row, as ``Store.put`` does) to ``r``'s stage,
    synced; when the stage holds a block's worth, ``compact`` it."""
    last = r.last_t
    if last is not None and t <= last:
        t = last + 1
    n = len(value)
    rb = 4 + 2 * n
    z = st._zbuf  # (nothing is being coded now)
    o = 0
    if r.brows == 0:  # a new stage: a segment header of its own (generation 1)
        r.bt0 = t
        struct.pack_into(_HFMT, z, 0, _MAGIC, VERSION, r.code, n, 0, 0, rb, t, 0, 1)
        struct.pack_into("<I", z, 28, crc32(memoryview(z)[:28]) & 0xFFFFFFFF)
        o = HDR
    struct.pack_into("<i", z, o + BLK, t - r.bt0)
    for i in range(n):
        v = value[i]
        struct.pack_into("<h", z, o + BLK + 4 + 2 * i, -32768 if v < -32768 else (32767 if v > 32767 else v))
    struct.pack_into("<HH", z, o + 4, rb, (t - r.bt0) & 0xFFFF)
    struct.pack_into("<I", z, o, crc32(memoryview(z)[o + 4:o + BLK + rb]))
    try:
        with open(r.dir + "/stage.seg", "ab" if o == 0 else "wb") as f:
            f.write(memoryview(z)[:o + BLK + rb])
    except OSError as e:
        st.errors += 1
        r.lost_rows += 1
        st.log.error("store", "{}: cannot stage a row ({})".format(r.name, e))
        st.retain(True)
        return
    r.brows += 1
    r.bytes += o + BLK + rb
    r.last_t = t
    if (r.brows + 1) * rb > ROWS_BYTES:
        compact(st, r)


def compact(st, r, after=-1):
    """Move the rows of rollup ``r``'s stage with t > ``after`` into a segment as one block, then remove the stage.
    A row whose block does not check is left out (counted as corrupt); a torn last one is ignored."""
    path = r.dir + "/stage.seg"
    rb = 4 + 2 * r.ncols
    k = bad = size = 0
    t0 = last = None
    buf = bytearray(ROWS_BYTES)
    try:
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            f.seek(0)
            h = st._hdr
            if (f.readinto(h) or 0) == HDR and h[:4] == _MAGIC and h[10] | h[11] << 8 == rb and \
                    struct.unpack_from("<I", h, 28)[0] == crc32(memoryview(h)[:28]):
                t0 = struct.unpack_from("<q", h, 12)[0]
                z = memoryview(st._zbuf)[:BLK + rb]
                while (k + 1) * rb <= len(buf) and (f.readinto(z) or 0) == BLK + rb:
                    if z[4] | z[5] << 8 != rb or crc32(z[4:]) != struct.unpack_from("<I", z, 0)[0]:
                        bad += 1
                        continue
                    t = t0 + _i32(z, BLK)
                    if t > after and (last is None or t > last):
                        buf[k * rb:k * rb + rb] = z[BLK:]
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
        st._sync(r)
        r.buf = None
        r.blen = r.brows = 0
    _rm(path)
    if staged:
        r.bytes -= size
    r.brows = 0
