"""An export's query (``GET /api/resources/<name>/data``, ``/api/events``, the store's own readers): its
parameters checked and made into a ``Plan`` (``plan``): the resource, format, time range, columns, resolution and
decimation; ``QueryError(reason, field)`` when one is wrong. What the parameters mean: ``export.py``, which reads
and streams what a plan says.

Loaded for the call and unloaded before the export is (``http/data_api``): the two were one module, whose code
was all in the heap while the rows streamed (~5 KB more at an export's peak from the file system). ``Plan`` has
no methods, so a plan keeps none of this module's code.
"""

from micropython import const

from sensorbox.device import lazy
from sensorbox.device.store.core import QueryError, columns_of

_RATE = const(0)
_TIMED = const(1)
_RES = const(" raw 1m 1h auto ")  # resolution's values (in one string: the device interns none of them)
_T_MAX = 1 << 53


class Plan:
    """What to read and how to send it: ``r`` (the resource; None for labels), ``kind``, ``numeric``, ``fmt``,
    ``start``, ``end``, ``since``, ``max_points``, ``res``, ``cols`` (the output's), ``order`` and ``idx`` (their
    places in a row), ``names`` (the class table's, for a CSV's ``label``); ``export.prepare`` adds ``rows``,
    ``last``, ``buckets`` (``t0``, ``width``); ``gens`` and ``rd`` are the export's (its open generators and
    its segment reader)."""


def _int(args, key, default, lo, hi, now):
    v = args.get(key)
    if v is None:
        return default
    try:
        # (v[:1], not v[0]: indexing a str interns the character as a name, for good: each a client sent)
        if not (v[1:] if v[:1] == "-" else v).isdigit():  # (int() takes "+1", " 1", "1_0": not the document's)
            raise ValueError
        v = int(v)
    except ValueError:
        raise QueryError("{} must be an integer (epoch ms, or negative: ms before now)".format(key), key)
    if v < 0 and key in ("start", "end"):
        v += now
    if v < lo or v > hi:
        raise QueryError("{} is out of range {}..{}".format(key, lo, hi), key)
    return v


def plan(store, name, args, now):
    """Validate a query; raises QueryError. ``args`` is a dict of strings. Numeric resources then need
    ``export.prepare(store, plan)`` before ``export.stream``."""
    for k in args:
        if k not in ("start", "end", "columns", "format", "max_points", "since", "resolution"):
            raise QueryError("unknown parameter", k)
        if not args[k] and k != "columns":  # (no documented value is empty; "columns=": every column)
            raise QueryError("{} has no value".format(k), k)
    p = Plan()
    p.gens = []
    p.rd = None
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
    p.numeric = p.kind in (_RATE, _TIMED)
    p.fmt = args.get("format") or ("npy" if p.numeric else "json")
    p.rate = 0  # (a WAV's: its first segment's; segments at another rate are left out)
    ok = ("npy", "csv", "wav") if p.kind == _RATE and p.r.raw else (("npy", "csv") if p.numeric else ("json", "csv"))
    if p.fmt not in ok:
        raise QueryError("format must be one of: {}".format(", ".join(ok)), "format")
    if p.fmt == "wav" and (args.get("columns") or args.get("max_points")):
        raise QueryError("a WAV holds the samples only: no columns or max_points", "columns" if args.get(
            "columns") else "max_points")
    # a text column, CSV only (predictions, their rollups, sound classes: the class table names them)
    text = ("label",) if (name[:11] == "predictions" or name == "soundclass") and p.fmt == "csv" else ()
    p.start = _int(args, "start", 0, 0, _T_MAX, now)
    p.end = _int(args, "end", _T_MAX, 0, _T_MAX, now)
    since = _int(args, "since", None, 0, _T_MAX, now)
    if since is not None and since + 1 > p.start:
        p.start = since + 1
    p.since = since
    if p.end <= p.start and since is None:
        raise QueryError("end must be after start", "end")
    p.max_points = _int(args, "max_points", 0, 2, 100000, now)
    if p.max_points and p.kind not in (_RATE, _TIMED):
        raise QueryError("max_points applies to numeric resources only", "max_points")
    return _columns(store, name, args, p, cols, text, now)


def _columns(store, name, args, p, cols, text, now):
    # plan's second half: the resolution and the columns (apart: a function's bytecode is one block, which a
    # cut-up heap lacks at ~760 bytes)
    p.res = "raw"
    res = args.get("resolution")
    if res:
        if name not in ("soundlevel", "predictions") or " " in res or _RES.find(" " + res + " ") < 0:
            raise QueryError("resolution is raw, 1m, 1h or auto, for soundlevel and predictions",
                                  "resolution")
        if res[0] == "a":  # auto
            res = _auto(store, name, p, now)
        if res[0] != "r":  # 1m, 1h
            p.r = store.by_name[name + "_" + res]
            cols = columns_of(p.r)
        p.res = res
    if p.r is not None and p.r.period:
        text = ()  # (a class rollup's row has a column per class)
    want = args.get("columns")
    allc = ("t",) + cols + text if p.kind >= 0 else cols
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
    p.names = None
    if p.kind in (_RATE, _TIMED):
        # (lists made at their size: a comprehension's of 88 feature columns grew to a 1 KB block)
        p.order = order = [0] * len(sel)
        for k in range(len(sel)):
            c = sel[k]
            order[k] = cols.index(c) if c in cols else (-1 if c == "t" else -2)
        p.idx = idx = [0] * (len(sel) - ("t" in sel) - ("label" in sel))
        k = 0
        for i in order:
            if i >= 0:
                idx[k] = i
                k += 1
        if "label" in sel:
            p.names = lazy.call("sensorbox.device.store.classes", "names", store)
    return p


def _auto(store, name, p, now):
    """The resolution ``resolution=auto`` reads: the coarsest no coarser than a ``max_points`` bucket (raw without
    max_points), then coarser while that one does not reach back to ``start`` and a coarser one does (with at least
    two of its periods in the range)."""
    span = (p.end if p.end < _T_MAX else now) - p.start
    rs = (store.by_name[name], store.by_name[name + "_" + _RES[5:7]], store.by_name[name + "_" + _RES[8:10]])
    i = 0
    if p.max_points:
        for k in (1, 2):
            if rs[k].period <= span // p.max_points and rs[k].last_t is not None:
                i = k
    while i < 2:
        t = _oldest(store, rs[i])
        if t is not None and t <= p.start:
            break
        t2 = _oldest(store, rs[i + 1])
        if t2 is None or 2 * rs[i + 1].period > span or (t is not None and t2 + rs[i + 1].period > t):
            break  # (the coarser one reaches back no more than one of its periods further)
        i += 1
    return _RES.split()[i]


def _oldest(store, r):
    """(About) the time of ``r``'s oldest row: its oldest segment's name (``Store.real``), or a rollup's stage."""
    if r.first is not None:
        return store.real(r.first)
    return r.bt0 if r.period and r.brows else None
