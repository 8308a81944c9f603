"""The resource listing of ``GET /api/resources``: schemas, time coverage, bytes, budget, bytes per day, days until
full, and the label count. Loaded per request and unloaded (see ``http/data_api``)."""

from sensorbox.device.store.core import RATE, TEXT, columns_of
from sensorbox.device.store.reader import read_header


def resources(store, now):
    out = []
    for r in store.res:
        out.append({
            "name": r.name, "columns": ["t"] + list(columns_of(r)),
            "dtype": "int16" if r.kind != TEXT else "json", "t_dtype": "int64 epoch ms",
            "rate_hz": r.seg_rate if r.kind == RATE else None,
            "formats": ["npy", "csv"] if r.kind != TEXT else ["json", "csv"],
            "start": _first_time(r), "end": r.last_t, "segments": r.nseg,
            "bytes": r.bytes, "budget": r.budget, "stored": r.budget > 0,
            "bytes_per_day": store.per_day(r), "days_until_full": store.days_until_full(r),
            "days_kept": round(r.budget / store.per_day(r), 2) if store.per_day(r) else None,
            "rows_since_boot": r.rows, "lost_rows": r.lost_rows, "gaps": r.gaps,
            "retention": {"deleted_segments": r.ret_segs, "deleted_bytes": r.ret_bytes, "forced": r.forced},
        })
    count, most = _label_count(store)
    out.append({"name": "labels", "columns": ["start", "end", "label"], "dtype": "json",
                "formats": ["json", "csv"], "count": count, "max": most})
    return out


def _label_count(store):
    """(live labels, the most there may be), read as GET /api/labels reads them (``meta``, loaded for the call)."""
    from sensorbox.device import lazy

    try:
        m = lazy.load("sensorbox.device.store.meta")
        return m._scan(store, -1, m._info())[0], m.MAX_LABELS
    finally:
        m = None
        lazy.unload("sensorbox.device.store.meta")


def _first_time(r):
    if r.first is None:
        return None
    try:
        return read_header("{}/{}.seg".format(r.dir, r.first), bytearray(32))[5]
    except (OSError, ValueError):
        return r.first
