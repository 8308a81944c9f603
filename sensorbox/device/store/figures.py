"""The resource listing of ``GET /api/resources``: schemas, time coverage, bytes, budget, bytes per day, days until
full, and the label count. Loaded per request and unloaded (see ``http/data_api``)."""

from sensorbox.device.store.core import RATE, TEXT, columns_of, read_header

_MAX_LABELS = 500  # store/meta.MAX_LABELS


def resources(store, now):
    """A generator of the resources' dicts (one alive at a time while the response streams them)."""
    for r in store.res:
        yield {
            "name": r.name, "columns": _columns(r),
            "dtype": "int16" if r.kind != TEXT else "json", "t_dtype": "int64 epoch ms",
            "rate_hz": r.seg_rate if r.kind == RATE else None,
            "formats": ["npy", "csv"] if r.kind != TEXT else ["json", "csv"],
            "start": _first_time(r), "end": r.last_t, "segments": r.nseg,
            "bytes": r.bytes, "budget": r.budget, "stored": r.budget > 0,
            "bytes_per_day": store.per_day(r), "days_until_full": store.days_until_full(r),
            "days_kept": round(r.budget / store.per_day(r), 2) if store.per_day(r) else None,
            "rows_since_boot": r.rows, "lost_rows": r.lost_rows, "gaps": r.gaps,
            "retention": {"deleted_segments": r.ret_segs, "deleted_bytes": r.ret_bytes, "forced": r.forced},
        }
    yield {"name": "labels", "columns": ["start", "end", "label"], "dtype": "json",
           "formats": ["json", "csv"], "count": _label_count(store), "max": _MAX_LABELS}


def _columns(r):
    yield "t"
    yield from columns_of(r)


def _label_count(store):
    """Live records of labels.bin (format: store/meta.py), read 256 bytes at a time."""
    n = 0
    buf = bytearray(256)
    try:
        with open(store.root + "/labels.bin", "rb") as f:
            size = f.seek(0, 2)
            pos = 8
            while pos + 22 <= size:
                f.seek(pos)
                k = f.readinto(buf)
                o = 0
                while o + 22 <= k:
                    end = pos + o + 22 + buf[o + 1]
                    if end > size or buf[o] not in (76, 88) or not buf[o + 1]:
                        return n  # torn or unreadable: what meta reads stops here too
                    n += buf[o] == 76
                    o += 22 + buf[o + 1]
                pos += o
    except OSError:
        pass
    return n


def _first_time(r):
    if r.first is None:
        return None
    try:
        return read_header("{}/{}.seg".format(r.dir, r.first), bytearray(32))[5]
    except (OSError, ValueError):
        return r.first
