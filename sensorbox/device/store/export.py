"""Reading the store: query parameters, rows by time range, min/max decimation, .npy/CSV/JSON streams.

Imported only when a request needs it (see ``http/data_api``). ``plan(store, name, params)`` validates the
parameters (``QueryError(reason, field)`` when wrong; ``plan.py``, loaded for it) and returns a ``plan.Plan``;
``stream(store, plan)`` is a generator of body chunks (at most 512 bytes each, from one buffer reused, but a CSV
row longer than that) that never holds a segment in RAM.

Segments are read through ``reader.Reader``: every block's CRC-32 is checked before its rows are used, so a
corrupt block is skipped (and counted in the store's status), never exported; ``prepare`` and ``stream`` read
the same blocks, so the row count in a .npy header is the number of rows that follow. Every path yields at least
once per block read (at most ``BLOCK_MAX`` = 1 KB: 170 accel rows, 5 feature rows), every segment opened, every 8
directory entries listed and every 32 labels, whatever the query: when such a step produced no output (a
decimated query, a time range that starts late in a segment) it yields an empty chunk, so the HTTP server (which
awaits each chunk's write) lets the samplers run. ``prepare`` yields the same way.

Predictions (and sound classes): ``class`` is the class's id in the store's class table (stable across models; -1 = unknown); CSV
adds ``label``, the name the model that made the row gave it (``/api/resources`` lists the names by id).

Output: rows with ``t <= end`` ... precisely ``start <= t < end`` (epoch ms). ``since=T`` adds ``t > T``: pass
the ``X-Sensorbox-Next`` response header (the time of the last row sent) to fetch only what is new. Columns:
``t`` plus the resource's columns (``columns=t,x`` picks). ``.npy`` bodies are structured arrays (``t`` int64,
values int16), so ``numpy.load`` gives named columns and ``pandas.DataFrame(arr)`` a table. With
``max_points=N`` and more than N rows in range, the range is cut into N equal buckets and each bucket gives one
row: ``t`` (bucket start), ``n`` (rows in it, 0 = none), then ``<col>_min`` and ``<col>_max``.

``resolution`` (``soundlevel`` and ``predictions``): ``raw`` (the default), ``1m`` / ``1h`` (their rollups,
``soundlevel_1m`` ...: the same as asking for those resources) or ``auto``: the coarsest whose rows are no coarser
than the ``max_points`` buckets (raw without ``max_points``), then a coarser one while that reaches further back
towards ``start`` (full-resolution rows age out first). The ``X-Sensorbox-Resolution`` header says which was read.
A rollup's rows are stored without times, a block of them coded as one (``rollup.py``): ``_rollup_rows`` decodes a
block into a buffer of the export's (1 KB) and gives the rows as the API has them; a class
rollup's row has a column per class (seconds), so no ``label`` column.
"""

from micropython import const

from sensorbox.device.store import reader

# the segment format's constants (as core.py defines them: no names to import)
_BLK = const(8)
_BLOCK_MAX = const(1024)
_BUS_BLOCK = const(520)
_RATE_BLOCK = const(604)  # ... the accelerometer's: 50 frames (core._FRAMES), raw of up to 6 channels or coded
_RATE = const(0)
_TIMED = const(1)
_DENSE = const(3)  # a rollup segment's generation: rows without times, one per period (rollup.py)
_STAGE = const(4)  # ... a rollup stage's (its rows with their times)
_DROWS = const(1020)  # a rollup block's rows at most (rollup._DROWS)

# (consts, the store's reader as a module, json, os, struct and core.decode imported where they are used, helpers
# of one function each in _Plan: fewer module globals, whose table an import grows in one block: at 41 it took 752
# bytes, the block a busy heap lacked most often in the soaks; 592 at 37; 464 at 29 with __name__ and __file__)
_CHUNK = const(512)  # the numeric streams' out buffer (a row longer than it goes out on its own)


class _Plan:
    # a plan's helpers (plan.Plan has no methods: its module goes once the plan is made), called through the
    # class with the plan first: one module global for seven
    def _opened(p, g):
        """``g``, noted in ``p`` so that closing ``stream`` or ``prepare`` closes it: MicroPython closes neither
        an abandoned generator nor the ones a closed generator iterates, and each of these holds an open file or
        directory until the next garbage collection."""
        p.gens.append(g)
        return g

    def _shut(p, store):
        for g in p.gens:
            g.close()
        p.gens = []
        rd = p.rd  # (the store's spare buffer back, or one of its size: the next read makes its reader again)
        if rd is not None and store.spare is None and len(rd.buf) == _BLK + _RATE_BLOCK:
            store.spare = rd.buf
            p.rd = None

    def _wav(p, store):
        """An audio clip's samples (``clips``, one column of int16 at one rate) as a 16-bit PCM WAV: the header, then each
        block's rows straight from the reader's buffer (the HTTP server writes a chunk before it asks for the next)."""
        from sensorbox.device import lazy

        yield lazy.call("sensorbox.shared.wav", "header", p.rate or 16000, 1, 2 * p.rows)
        p.rate = 0  # (the first segment's rate again, as prepare found it)
        rd = _seg_reader(store, p)
        for blk in _Plan._opened(p, _blocks(store, p, rd)):
            if blk is None or blk[1] <= blk[0]:
                yield b""
            else:
                yield rd._mv[_BLK + 2 * blk[0]:_BLK + 2 * blk[1]]

    # (helpers of one function each, methods here rather than module globals: see _CHUNK)
    def _index_at(h, x):
        """First row index of rate segment (or dense rollup segment) ``h`` with time >= x."""
        d = x - h[5]
        if d <= 0:
            return 0
        return (d * h[3] + 999) // 1000 if h[3] else (d + h[6] - 1) // h[6]

    def _label(p, k):
        names = p.names
        if k < 0:
            return "unknown"
        return _csv_str(names[k]) if k < len(names) and names[k] is not None else ""

    def _bucket_row(p, b, n, lo, hi):
        row = [p.t0 + b * p.width, n]
        for k in range(len(lo)):
            row.append(lo[k] if n else 0)
            row.append(hi[k] if n else 0)
        return row


def _seg_reader(store, p):
    """The plan's one segment reader, made on first use (``prepare`` and ``stream`` read through the same
    buffer: one block of heap per export, not two), sized for the resource's blocks: the bus resources' are at
    most ``_BUS_BLOCK`` (a 528-byte buffer, not 1 KB: a busy heap at the app's size often had no 1 KB block),
    and their recoded blocks decode to at most half of it (``rollup.recode``); the accelerometer's at most
    ``_RATE_BLOCK`` (coded ones at most 302 bytes, ``core._ZBUF``, decoded in the buffer's lower half: 612
    bytes); the features' recoded ones and the rollups' (up to ``rollup.ROWS_BYTES``, coded: decoded in the
    buffer's lower half) need the full size. The first two read through the store's spare 612 bytes when no
    job runs and no other export has them (``Store.spare``; ``_Plan._shut`` gives them back): no block of their
    own to find on a cut-up heap."""
    rd = p.rd
    if rd is None:
        r = p.r
        small = p.kind != _RATE and r is not None and not r.period and r.name != "features"
        b = store.spare if (small or p.kind == _RATE) and not store._busy else None
        if b is not None:
            store.spare = None
        rd = p.rd = reader.Reader(_RATE_BLOCK if p.kind == _RATE else (_BUS_BLOCK if small else _BLOCK_MAX), b)
    return rd


def plan(store, name, args, now, full=True):
    """Validate a query (``plan.plan``, loaded for the call); raises QueryError. ``args`` is a dict of strings.
    With ``full=False`` the caller must run ``prepare(store, plan)`` before ``stream`` (numeric resources)."""
    from sensorbox.device import lazy

    p = lazy.call("sensorbox.device.store.plan", "plan", store, name, args, now)
    if full and p.numeric:
        for _ in prepare(store, p):
            pass
    return p


def _segments(store, p, rd):
    """Open in ``rd`` (a ``reader.Reader``) each segment that may hold rows in [p.start, p.end) and yield its name
    (the store's one loop: ``reader.segments``); None for a step (directory entries listed, a segment that could not be opened or
    holds another feature width)."""
    r = p.r
    names = []
    yield from _names(r, names)  # (closing this generator closes the listing too)
    yield from _Plan._opened(p, reader.segments(store, r, names, p.start, p.end, rd, 0, False))
    if r.period:  # a rollup's newest rows: in its stage (store/core.py), after every segment
        try:
            h = rd.open(r.dir + "/rollup-stage.seg", None, 0)  # (unknown clock: none staged, recover.resync)
        except (OSError, ValueError):
            return
        try:
            if h[5] < p.end and not reader.old_rollup(r, h):
                yield -1  # (the stage)
        finally:
            rd.close()


def _blocks(store, p, rd):
    """Yield, for each good block of the segments in range, the rows in [p.start, p.end) as (first, stop):
    row indexes in the block (stop = first: none); None for a step without a block."""
    for name in _Plan._opened(p, _segments(store, p, rd)):
        if name is None:
            yield None
            continue
        h = rd.h
        if p.fmt == "wav" and p.rate != h[3]:
            if p.rate:  # (a WAV has one rate)
                yield None
                continue
            p.rate = h[3]
        while True:
            n = rd.next()
            store.reading = store.clock()
            if n == 0:
                break
            if n < 0:
                yield None
                continue
            k = rd.count()
            if h[3] or h[7] == _DENSE:  # rate rows, a rollup's dense rows: times follow from the index
                a = _Plan._index_at(h, p.start) - rd.first
                b = _Plan._index_at(h, p.end) - rd.first
                yield (0 if a < 0 else (k if a > k else a)), (0 if b < 0 else (k if b > k else b))
            else:
                a = 0
                while a < k and rd.time(a) < p.start:
                    a += 1
                b = a
                while b < k and rd.time(b) < p.end:
                    b += 1
                yield a, b


def _names(r, out):
    """Fill ``out`` with the segment names of ``r`` (ints, ascending), yielding None every 8 directory entries
    (listing a directory on flash is slow: ~0.1 ms an entry on the benchmark's littlefs)."""
    import os

    k = 0
    it = os.ilistdir(r.dir)
    try:
        for e in it:
            n = e[0]
            if n.endswith(".seg") and n[:-4].isdigit():
                out.append(int(n[:-4]))
            k += 1
            if k % 8 == 0:
                yield None
        it = None
    finally:
        if it is not None:  # closed while listing: run the listing to its end, which closes the directory
            for e in it:
                pass
    out.sort()


def prepare(store, p):
    """Count the rows in range and note the last one's time (fixing p.end, so rows appended meanwhile are not
    sent: the .npy header says how many rows follow). A generator: it yields after each block so the HTTP
    handler can let other tasks run (``plan`` runs it to the end when asked to). Close it if you stop early."""
    try:
        yield from _prepare(store, p)
    finally:
        _Plan._shut(p, store)


def _prepare(store, p):
    n = 0
    first = last = None
    rd = _seg_reader(store, p)
    for blk in _Plan._opened(p, _blocks(store, p, rd)):
        if blk is not None and blk[1] > blk[0]:
            n += blk[1] - blk[0]
            if first is None:
                first = rd.time(blk[0])
            last = rd.time(blk[1] - 1)
        yield
    p.rows = n
    p.last = last
    if last is not None:
        p.end = min(p.end, last + 1)
    p.buckets = 0
    if p.max_points and n > p.max_points:
        p.t0 = first
        p.width = (p.end - first + p.max_points - 1) // p.max_points
        p.buckets = (p.end - first + p.width - 1) // p.width


def headers(p):
    h = {}
    if p.kind in (_RATE, _TIMED):
        h["X-Sensorbox-Rows"] = str(p.buckets or p.rows)
        h["X-Sensorbox-Resolution"] = p.res
        h["X-Sensorbox-Next"] = str(p.last if p.last is not None else (p.since if p.since is not None else ""))
        if p.buckets:
            h["X-Sensorbox-Decimated"] = str(p.width)
    if p.fmt == "npy":
        h["Content-Type"] = "application/octet-stream"
    elif p.fmt == "wav":
        h["Content-Type"] = "audio/wav"
    elif p.fmt == "csv":
        h["Content-Type"] = "text/csv"
    else:
        h["Content-Type"] = "application/json"
    return h


def out_columns(p):
    """(name, npy descr) of each output column (a list made at its size: appends grew 88 columns' to 1 KB)."""
    if p.buckets:
        out = [None] * (2 + 2 * len(p.idx))
        out[0] = ("t", "<i8")
        out[1] = ("n", "<i4")
        k = 2
        for c in p.cols:
            if c != "t" and c != "label":
                out[k] = (c + "_min", "<i2")
                out[k + 1] = (c + "_max", "<i2")
                k += 2
        return out
    out = [None] * len(p.cols)
    for k in range(len(out)):
        c = p.cols[k]
        out[k] = (c, "<i8" if c == "t" else ("text" if c == "label" else "<i2"))
    return out


def _rows(store, p):
    """Yield (t, values tuple) of every row in range, and (None, None) after each block read and each segment
    opened (a step for the caller to yield on)."""
    rd = _seg_reader(store, p)
    buf = bytearray(_DROWS) if p.r.period else None  # (a rollup's dense block, decoded: _rollup_rows)
    for blk in _Plan._opened(p, _blocks(store, p, rd)):
        if blk is not None:
            if p.r.period:
                yield from _rollup_rows(p, rd, blk, buf)
            else:
                for i in range(blk[0], blk[1]):
                    yield rd.time(i), rd.values(i)
        yield None, None


def _rollup_rows(p, rd, blk, buf):
    """(t, values) of a rollup block's rows blk[0]..blk[1] as the API gives them: sound in centi-dB (stored to 0.1
    dB, rollup.py) and the API's column order; classes with the time per class in seconds, padded to the newest
    segment's classes. Dense blocks (rows without times) are decoded into ``buf`` (``_DROWS`` bytes)."""
    import struct

    from sensorbox.device.store.core import decode  # (here: one module global fewer, see _CHUNK)

    h = rd.h
    w = h[2]
    src = None  # (stage rows and the previous format's: the reader's values)
    if h[7] == _DENSE:
        src = rd.buf
        o = _BLK + 1  # (stored as they are, behind a 0 byte)
        if src[_BLK]:
            if decode(src, _BLK, _BLK + rd.n, w, buf, 0, _DROWS) <= 0:
                return
            src = buf
            o = 0
    old = h[7] != _DENSE and h[7] != _STAGE  # a sound rollup's segment of the previous format: the API's order
    sound = p.r.code < 9
    u = 1 if p.r.period <= 60000 else 10  # (seconds a stored unit of a class's time: rollup._unit)
    m = 7 if sound else p.r.ncols  # (core.columns_of's)
    for i in range(blk[0], blk[1]):
        v = rd.values(i) if src is None else struct.unpack_from(rd.fmt, src, o + 2 * w * i)
        t = rd.time(i)
        if old:
            yield t, (v[0], v[1] * 10, v[2] * 10, v[3] * 10, v[4] * 10, v[5] * 10, v[6] * 10)
        elif sound:  # stored n, lmin, l90, l50, l10, leq, lmax
            yield t, (v[0], v[5] * 10, v[1] * 10, v[6] * 10, v[4] * 10, v[3] * 10, v[2] * 10)
        else:
            yield t, tuple(v[j] * (u if j > 2 else 1) if j < w else 0 for j in range(m))


def stream(store, p):
    """The response body, chunk by chunk; closing it closes the files it reads."""
    try:
        yield from _stream(store, p)
    finally:
        _Plan._shut(p, store)


def _stream(store, p):
    if not p.numeric:
        for c in _text(store, p):
            yield c
        return
    if p.fmt == "wav":  # (a method: one module global fewer, see above)
        yield from _Plan._wav(p, store)
        return
    import struct

    cols = out_columns(p)
    fmt = bytearray(len(cols) + 1)  # (a join of 88 would take a 1 KB list)
    fmt[0] = 60  # "<"
    for k in range(len(cols)):
        d = cols[k][1]
        fmt[k + 1] = 113 if d == "<i8" else (105 if d == "<i4" else 104)  # q, i, h
    fmt = fmt.decode()
    size = struct.calcsize(fmt)
    # (512 bytes: 1 KB was the block a heap cut up at 96wK lacked; a .npy row of 87 feature columns' minima and
    # maxima is 360 bytes, a CSV row may be longer: it goes out on its own)
    out = bytearray(size if size > _CHUNK else _CHUNK)
    o = 0
    csv = p.fmt == "csv"
    if csv:
        line = (",".join(c[0] for c in cols) + "\n").encode()
        if len(line) > len(out):
            yield line
        else:
            out[0:len(line)] = line
            o = len(line)
    else:  # the header in pieces: with 87 named feature columns it is ~1.7 KB, more than the buffer
        from sensorbox.device import lazy  # (the .npy module only for .npy: ~4 KB less while a CSV streams)

        pieces = lazy.call("sensorbox.shared.npy", "header_pieces", cols, (p.buckets or p.rows,))
        for h in pieces:
            if o + len(h) > len(out):
                yield memoryview(out)[:o]
                o = 0
            out[o:o + len(h)] = h
            o += len(h)
    cap = len(out)
    sent = False  # a chunk went out since the last step
    for row in (_buckets(store, p) if p.buckets else _select(store, p)):
        if row is None:  # a step of reading done: yield, with output or without
            if not sent:
                yield b""
            sent = False
            continue
        if csv:
            s = (",".join(str(v) for v in row) + "\n").encode()
            n = len(s)
        else:
            s = None
            n = size
        if o + n > cap:
            if o:
                yield memoryview(out)[:o]
                sent = True
            o = 0
            if n > cap:  # (a CSV row longer than the buffer)
                yield s
                sent = True
                continue
        if csv:
            out[o:o + n] = s
        else:
            struct.pack_into(fmt, out, o, *row)
        o += n
    if o:
        yield memoryview(out)[:o]


def _select(store, p):
    # one list for every row, refilled (the stream uses a row before it asks for the next): a list made per row
    # grew to a 1 KB block for a feature row of 88 columns
    order = p.order
    row = [0] * len(order)
    for t, v in _Plan._opened(p, _rows(store, p)):
        if t is None:
            yield None
            continue
        for j in range(len(order)):
            i = order[j]
            row[j] = v[i] if i >= 0 else (t if i == -1 else _Plan._label(p, v[0]))
        yield row


def _buckets(store, p):
    """Min/max per bucket over the selected columns; empty buckets give n = 0."""
    idx = p.idx
    nc = len(idx)
    lo = [0] * nc
    hi = [0] * nc
    cur = 0
    n = 0
    w = p.width
    for t, v in _Plan._opened(p, _rows(store, p)):
        if t is None:
            yield None
            continue
        b = (t - p.t0) // w
        while b > cur:
            yield _Plan._bucket_row(p, cur, n, lo, hi)
            cur += 1
            n = 0
        for k in range(nc):
            x = v[idx[k]]
            if n == 0 or x < lo[k]:
                lo[k] = x
            if n == 0 or x > hi[k]:
                hi[k] = x
        n += 1
    while cur < p.buckets:
        yield _Plan._bucket_row(p, cur, n, lo, hi)
        cur += 1
        n = 0


def _text(store, p):
    """Events (JSON lines on flash) or labels as CSV or a JSON array, streamed."""
    import json

    csv = p.fmt == "csv"
    if csv:
        yield (",".join(p.cols) + "\n").encode()
    else:
        yield b"["
    first = True
    if p.kind == -1:
        from sensorbox.device import lazy

        rows = lazy.load("sensorbox.device.store.meta").label_rows
        lazy.unload("sensorbox.device.store.meta")
    else:
        rows = _event_rows
    for t, rest in _Plan._opened(p, rows(store, p)):
        if t is None:  # a step without a row
            yield b""
            continue
        if csv:
            if p.kind == -1:
                vals = (str(t), str(rest[0]), _csv_str(rest[1]))
                d = {"start": vals[0], "end": vals[1], "label": vals[2]}
            else:
                try:
                    ev = json.loads(rest)
                    typ = ev.get("type", "") if isinstance(ev, dict) else ""
                except ValueError:
                    typ = ""
                d = {"t": str(t), "type": _csv_str(str(typ)), "data": _csv_str(rest.decode())}
            s = ",".join(d[c] for c in p.cols) + "\n"
        else:
            if p.kind == -1:
                s = json.dumps({"start": t, "end": rest[0], "label": rest[1], "id": rest[2]})
            else:
                body = rest.decode()
                s = '{{"t":{}{}{}'.format(t, "," if len(body) > 2 else "", body[1:])
            if not first:
                s = "," + s
        first = False
        yield s.encode()
    if not csv:
        yield b"]"


def _csv_str(s):
    if "," in s or '"' in s or "\n" in s:
        return '"' + s.replace('"', '""') + '"'
    return s


def _event_rows(store, p):
    """Yield (t, the event's JSON bytes) of the events in range, and (None, None) after each block."""
    rd = _seg_reader(store, p)
    for name in _Plan._opened(p, _segments(store, p, rd)):
        if name is None:
            yield None, None
            continue
        while True:
            n = rd.next()
            if n == 0:
                break
            if n > 0:
                for row in reader.rows(rd):  # (t, the event's JSON bytes)
                    if p.start <= row[0] < p.end:
                        yield row
            yield None, None
