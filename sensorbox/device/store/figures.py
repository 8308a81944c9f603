"""The resource listing of ``GET /api/resources``: schemas, time coverage, bytes, budget, bytes per day, days until
full, the label count, and the names of the stored predictions' class ids (``classes``: the class table, by id;
null where an id is free). Loaded per request and unloaded (see ``http/data_api``)."""

import struct

from sensorbox.device.store.core import RATE, TEXT, columns_of

_MAX_LABELS = 500  # store/meta.MAX_LABELS


def resources(store, now):
    """A generator of the resources' dicts (one alive at a time while the response streams them)."""
    for r in store.res:
        e = {
            "name": r.name, "columns": _columns(r),
            "dtype": "int16" if r.kind != TEXT else "json", "t_dtype": "int64 epoch ms",
            "rate_hz": r.seg_rate if r.kind == RATE else None,
            "formats": ["npy", "csv"] if r.kind != TEXT else ["json", "csv"],
            "start": _first_time(store, r), "end": r.last_t, "segments": r.nseg,
            "bytes": r.bytes, "budget": r.budget, "stored": r.budget > 0,
            "bytes_per_day": store.per_day(r), "days_until_full": store.days_until_full(r),
            "days_kept": round(r.budget / store.per_day(r), 2) if store.per_day(r) else None,
            "rows_since_boot": r.rows, "lost_rows": r.lost_rows, "gaps": r.gaps,
            "retention": {"deleted_segments": r.ret_segs, "deleted_bytes": r.ret_bytes, "forced": r.forced},
        }
        if r.name == "predictions":
            e["classes"] = class_names(store)
        yield e
    yield {"name": "labels", "columns": ["start", "end", "label"], "dtype": "json",
           "formats": ["json", "csv"], "count": store.labels, "max": _MAX_LABELS}


def _columns(r):
    yield "t"
    yield from columns_of(r)


def class_names(store):
    """The class table's names by id (store/classes.py, loaded for the call)."""
    from sensorbox.device import lazy

    try:
        return lazy.load("sensorbox.device.store.classes").names(store)
    finally:
        lazy.unload("sensorbox.device.store.classes")


def _first_time(store, r):
    """t0 of the oldest segment (bytes 12..19 of its header; the store checked the header when it opened), placed
    where it belongs when it was stored while the clock was unknown (``Store.real``)."""
    if r.first is None:
        return None
    try:
        with open("{}/{}.seg".format(r.dir, r.first), "rb") as f:
            f.seek(12)
            return struct.unpack("<q", f.read(8))[0] + store.real(r.first) - r.first
    except (OSError, ValueError):
        return store.real(r.first)
