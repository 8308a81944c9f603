"""Reading the store: query parameters, rows by time range, min/max decimation, .npy/CSV/JSON streams.

Imported only when a request needs it (see ``http/data_api``). ``plan(store, name, params)`` validates the
parameters (``QueryError(reason, field)`` when wrong) and returns a ``Plan``; ``stream(store, plan)`` is a
generator of body chunks (at most ~512 B each, from one buffer reused) that never holds a segment in RAM.

Every path yields at least every ``_CHUNK`` bytes read (at most 85 accel rows, 2 feature rows), every segment
opened, every 8 directory entries listed and every 64 event lines or 32 labels, whatever the query: when such a
step produced no output (a decimated query, a time range that starts late in a segment) it yields an empty
chunk, so the HTTP server (which awaits each chunk's write) lets the samplers run. ``prepare`` yields once per
segment the same way.

Output: rows with ``t <= end`` ... precisely ``start <= t < end`` (epoch ms). ``since=T`` adds ``t > T``: pass
the ``X-Sensorbox-Next`` response header (the time of the last row sent) to fetch only what is new. Columns:
``t`` plus the resource's columns (``columns=t,x`` picks). ``.npy`` bodies are structured arrays (``t`` int64,
values int16), so ``numpy.load`` gives named columns and ``pandas.DataFrame(arr)`` a table. With
``max_points=N`` and more than N rows in range, the range is cut into N equal buckets and each bucket gives one
row: ``t`` (bucket start), ``n`` (rows in it, 0 = none), then ``<col>_min`` and ``<col>_max``.
"""

import json
import os
import struct

from sensorbox.device.store.core import RATE, TIMED, QueryError, check_header, columns_of
from sensorbox.shared import npy

_CHUNK = 512  # the two buffers of a stream: blocks of 1 KB were what a busy heap lacked (a dropped export)
_HDR = 32
_T_MAX = 1 << 53


class Plan:
    pass


def _int(params, key, default, low, high, now):
    v = params.get(key)
    if v is None or v == "":
        return default
    try:
        v = int(v)
    except ValueError:
        raise QueryError("{} must be an integer (epoch ms, or negative: ms before now)".format(key), key)
    if v < 0 and key in ("start", "end"):
        v += now
    if v < low or v > high:
        raise QueryError("{} is out of range {}..{}".format(key, low, high), key)
    return v


def plan(store, name, params, now, counted=True):
    """Validate a query; raises QueryError. ``params`` is a dict of strings. With ``counted=False`` the caller
    must run ``prepare(store, plan)`` before ``stream`` (numeric resources)."""
    for k in params:
        if k not in ("start", "end", "columns", "format", "max_points", "since"):
            raise QueryError("unknown parameter", k)
    p = Plan()
    if name == "labels":
        cols = ("start", "end", "label")
        p.r = None
        p.kind = -1
    else:
        r = store.by_name.get(name)
        if r is None:
            raise QueryError("no resource {}; see /api/resources".format(name), "name")
        p.r = r
        p.kind = r.kind
        cols = columns_of(r)
    p.numeric = p.kind in (RATE, TIMED)
    p.fmt = params.get("format") or ("npy" if p.numeric else "json")
    if p.fmt not in (("npy", "csv") if p.kind in (RATE, TIMED) else ("json", "csv")):
        raise QueryError("format must be one of: {}".format(
            "npy, csv" if p.kind in (RATE, TIMED) else "json, csv"), "format")
    p.start = _int(params, "start", 0, 0, _T_MAX, now)
    p.end = _int(params, "end", _T_MAX, 0, _T_MAX, now)
    since = _int(params, "since", None, 0, _T_MAX, now)
    if since is not None and since + 1 > p.start:
        p.start = since + 1
    p.since = since
    if p.end <= p.start and since is None:
        raise QueryError("end must be after start", "end")
    p.max_points = _int(params, "max_points", 0, 2, 100000, now)
    if p.max_points and p.kind not in (RATE, TIMED):
        raise QueryError("max_points applies to numeric resources only", "max_points")
    want = params.get("columns")
    allc = ("t",) + cols if p.kind >= 0 else cols
    if want:
        sel = []
        for c in want.split(","):
            if c not in allc or c in sel:
                raise QueryError("unknown or repeated column {}; columns are {}".format(c, ",".join(allc)),
                                 "columns")
            sel.append(c)
    else:
        sel = list(allc)
    p.cols = sel
    if p.kind in (RATE, TIMED):
        p.idx = [cols.index(c) for c in sel if c != "t"]
        p.order = [cols.index(c) if c != "t" else -1 for c in sel]
        if counted:
            for _ in prepare(store, p):
                pass
    return p


def _first_at(f, hdr, rows, x):
    """First row index with time >= x in a segment (header tuple ``hdr``, file ``f`` open)."""
    size, code, ncols, rate, rb, t0 = hdr[:6]
    d = x - t0
    if d <= 0:
        return 0
    if rate:
        return min(rows, (d * rate + 999) // 1000)
    lo, hi = 0, rows
    b = bytearray(4)
    while lo < hi:
        mid = (lo + hi) // 2
        f.seek(_HDR + mid * rb)
        f.readinto(b)
        if struct.unpack("<i", b)[0] < d:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _segments(store, p):
    """Yield (path, header, first, stop, t first, t last) of the rows in [p.start, p.end) of each segment,
    opening each segment once; None for a segment opened that holds none of them."""
    r = p.r
    names = []
    for x in _names(r, names):
        yield x
    hb = bytearray(_HDR)
    b4 = bytearray(4)
    for i in range(len(names)):
        if i + 1 < len(names) and names[i + 1] <= p.start:
            continue
        if names[i] >= p.end:
            break
        path = "{}/{}.seg".format(r.dir, names[i])
        try:
            f = open(path, "rb")
        except OSError:
            continue  # deleted meanwhile
        with f:
            size = f.seek(0, 2)
            f.seek(0)
            try:
                h = check_header(hb, f.readinto(hb) or 0, size)
            except ValueError:
                yield None  # torn: open() deals with it at the next start
                continue
            if h[2] != r.ncols and r.kind == TIMED:
                yield None  # an older feature width
                continue
            rows = (h[0] - _HDR) // h[4]
            a = _first_at(f, h, rows, p.start)
            b = _first_at(f, h, rows, p.end)
            if b > a:
                yield path, h, a, b, _time_at(f, h, a, b4), _time_at(f, h, b - 1, b4)
            else:
                yield None  # opened for nothing: still a step


def _names(r, out):
    """Fill ``out`` with the segment names of ``r`` (ints, ascending), yielding None every 8 directory entries
    (listing a directory on flash is slow: ~0.1 ms an entry on the benchmark's littlefs)."""
    k = 0
    for e in os.ilistdir(r.dir):
        n = e[0]
        if n.endswith(".seg") and n[:-4].isdigit():
            out.append(int(n[:-4]))
        k += 1
        if k % 8 == 0:
            yield None
    out.sort()


def _time_at(f, h, i, b4):
    if h[3]:
        return h[5] + i * 1000 // h[3]
    f.seek(_HDR + i * h[4])
    f.readinto(b4)
    return h[5] + struct.unpack("<i", b4)[0]


def prepare(store, p):
    """Count the rows in range and note the last one's time (fixing p.end, so rows appended meanwhile are not
    sent: the .npy header says how many rows follow). A generator: it yields after each segment so the HTTP
    handler can let other tasks run (``plan`` runs it to the end when asked to)."""
    n = 0
    first = last = None
    for seg in _segments(store, p):
        if seg is None:
            yield
            continue
        n += seg[3] - seg[2]
        if first is None:
            first = seg[4]
        last = seg[5]
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
    if p.kind in (RATE, TIMED):
        h["X-Sensorbox-Rows"] = str(p.buckets or p.rows)
        h["X-Sensorbox-Next"] = str(p.last if p.last is not None else (p.since if p.since is not None else ""))
        if p.buckets:
            h["X-Sensorbox-Decimated"] = str(p.width)
    if p.fmt == "npy":
        h["Content-Type"] = "application/octet-stream"
    elif p.fmt == "csv":
        h["Content-Type"] = "text/csv"
    else:
        h["Content-Type"] = "application/json"
    return h


def out_columns(p):
    """(name, npy descr) of each output column."""
    out = []
    if p.buckets:
        out.append(("t", "<i8"))
        out.append(("n", "<i4"))
        for c in p.cols:
            if c != "t":
                out.append((c + "_min", "<i2"))
                out.append((c + "_max", "<i2"))
        return out
    for c in p.cols:
        out.append((c, "<i8" if c == "t" else "<i2"))
    return out


def _rows(store, p):
    """Yield (t, values tuple) of every row in range, reading ~1 KB at a time, and (None, None) after each read
    and each segment opened (a step for the caller to yield on)."""
    buf = bytearray(_CHUNK)
    for seg in _segments(store, p):
        if seg is None:
            yield None, None
            continue
        path, h, a, b, ta, tb = seg
        rb = h[4]
        timed = not h[3]
        fmt = "<{}h".format(h[2])
        voff = 4 if timed else 0
        per = _CHUNK // rb
        with open(path, "rb") as f:
            i = a
            while i < b:
                k = min(per, b - i)
                store.reading = store.clock()
                f.seek(_HDR + i * rb)
                f.readinto(buf)
                for j in range(k):
                    o = j * rb
                    if timed:
                        t = h[5] + struct.unpack_from("<i", buf, o)[0]
                    else:
                        t = h[5] + (i + j) * 1000 // h[3]
                    yield t, struct.unpack_from(fmt, buf, o + voff)
                i += k
                yield None, None


def stream(store, p):
    """The response body, chunk by chunk."""
    if not p.numeric:
        for c in _text(store, p):
            yield c
        return
    out = bytearray(_CHUNK)
    o = 0
    cols = out_columns(p)
    csv = p.fmt == "csv"
    if csv:
        line = ",".join(c[0] for c in cols) + "\n"
        out[0:len(line)] = line.encode()
        o = len(line)
    else:  # the header in pieces: with 87 named feature columns it is ~1.7 KB, more than the buffer
        for h in npy.header_pieces(cols, (p.buckets or p.rows,)):
            if o + len(h) > len(out):
                yield memoryview(out)[:o]
                o = 0
            out[o:o + len(h)] = h
            o += len(h)
    fmt = "<" + "".join("q" if c[1] == "<i8" else ("i" if c[1] == "<i4" else "h") for c in cols)
    size = struct.calcsize(fmt)
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
            if o + len(s) > cap:
                yield memoryview(out)[:o]
                sent = True
                o = 0
            out[o:o + len(s)] = s
            o += len(s)
        else:
            if o + size > cap:
                yield memoryview(out)[:o]
                sent = True
                o = 0
            struct.pack_into(fmt, out, o, *row)
            o += size
    if o:
        yield memoryview(out)[:o]


def _select(store, p):
    order = p.order
    for t, v in _rows(store, p):
        yield None if t is None else [t if i < 0 else v[i] for i in order]


def _buckets(store, p):
    """Min/max per bucket over the selected columns; empty buckets give n = 0."""
    idx = p.idx
    nc = len(idx)
    lo = [0] * nc
    hi = [0] * nc
    cur = 0
    n = 0
    w = p.width
    for t, v in _rows(store, p):
        if t is None:
            yield None
            continue
        b = (t - p.t0) // w
        while b > cur:
            yield _bucket_row(p, cur, n, lo, hi)
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
        yield _bucket_row(p, cur, n, lo, hi)
        cur += 1
        n = 0


def _bucket_row(p, b, n, lo, hi):
    row = [p.t0 + b * p.width, n]
    for k in range(len(lo)):
        row.append(lo[k] if n else 0)
        row.append(hi[k] if n else 0)
    return row


def _text(store, p):
    """Events (JSON lines on flash) or labels as CSV or a JSON array, streamed."""
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
    for t, rest in rows(store, p):
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
    r = p.r
    names = []
    for _ in _names(r, names):
        yield None, None
    for i in range(len(names)):
        if i + 1 < len(names) and names[i + 1] <= p.start:
            continue
        if names[i] >= p.end:
            break
        try:
            f = open("{}/{}.seg".format(r.dir, names[i]), "rb")
        except OSError:
            continue
        with f:
            f.seek(_HDR)
            k = 0
            while True:
                k += 1
                if k % 64 == 0:
                    yield None, None
                line = f.readline()
                if not line or line[-1:] != b"\n":
                    break  # the end, or a torn last line
                tab = line.find(b"\t")
                try:
                    t = int(line[:tab])
                except ValueError:
                    continue
                if p.start <= t < p.end:
                    yield t, line[tab + 1:-1]
