"""The store's figures: the resource listing of ``GET /api/resources`` (schemas, time coverage, bytes, budget, bytes
per day, days until full, the label count, and the names of the stored predictions' class ids: ``classes``, the
class table, by id; null where an id is free) and the summary in ``/api/status`` (``status``). Loaded per request
and unloaded (see ``http/data_api``, ``core.Store.status``)."""

import struct

from micropython import const

from sensorbox.device.store.core import columns_of, seg_names

# the segment format's constants (as core.py defines them: no names to import)
_HDR = const(32)
_BLK = const(8)
_BLOCK_MAX = const(1024)
_RATE = const(0)
_TEXT = const(2)

_MAX_LABELS = 500  # store/meta.MAX_LABELS
_KINDS = ("", "demand", "sound", "class")  # a clip's trigger (clips.py)
_CLIP = const(128)  # frames in a clip's blocks but its last (clips._BLOCK)


def resources(store, now):
    """A generator of the resources' dicts (one alive at a time while the response streams them)."""
    for r in store.res:
        e = {
            "name": r.name, "columns": _columns(r),
            "dtype": "int16" if r.kind != _TEXT else "json", "t_dtype": "int64 epoch ms",
            "rate_hz": r.seg_rate if r.kind == _RATE else None,
            "formats": (["npy", "csv", "wav"] if r.raw else ["npy", "csv"]) if r.kind != _TEXT else ["json", "csv"],
            "start": _first_time(store, r), "end": r.last_t, "segments": r.nseg,
            "bytes": r.bytes, "budget": r.budget, "stored": r.budget > 0,
            "bytes_per_day": per_day(store, r), "days_until_full": _days_left(store, r),
            "days_in_budget": round(r.budget / per_day(store, r), 5) if per_day(store, r) else None,
            "rows_since_boot": r.rows, "lost_rows": r.lost_rows, "gaps": r.gaps,
            "retention": {"deleted_segments": r.ret_segs, "deleted_bytes": r.ret_bytes, "forced": r.forced},
            "period_ms": r.period or None,
        }
        _coverage(store, r, e)
        if r.name == "predictions":
            e["classes"] = class_names(store)
        yield e
    yield {"name": "labels", "columns": ["start", "end", "label"], "dtype": "json",
           "formats": ["json", "csv"], "count": store.labels, "max": _MAX_LABELS}


def _columns(r):
    yield "t"
    if r.cols is None and not r.period:  # a feature vector's ~90 names one at a time, counted first: as a tuple
        from sensorbox.shared import features  # (resident) -- they held ~6 KB on the unix port at the answer's

        for ch in (3, 6):  # peak, ~17 KB with the gyroscope (the 3-axis names made first), columns_of's way
            n = 0
            for _ in features.iter_names(ch):
                n += 1
            if n == r.ncols:
                yield from features.iter_names(ch)
                return
    yield from columns_of(r)


def _coverage(store, r, out):
    """What the resource holds and what it costs, into ``out``: ``days_covered`` from its oldest row to its newest;
    ``bytes_per_row`` on flash (blocks, coding) and ``compression`` (row bytes / flash bytes) of the rows written
    since boot; ``pinned_bytes`` of segments labelled data keep from retention (not pulled yet); ``over_budget``
    when only those are left. (Keys of more than 10 characters: the device interns none of them.)"""
    start = _first_time(store, r)
    end = r.last_t
    out["days_covered"] = round((end - start) / 86400000, 3) if start is not None and end is not None else None
    out["bytes_per_row"] = round(r.added / r.rows, 2) if r.rows else None
    out["compression"] = None
    out["pinned_bytes"] = 0
    out["over_budget"] = r.name in store.held
    if r.rows and r.kind != _TEXT:
        out["compression"] = round(r.rows * (r.ncols * 2 + (4 if r.kind != _RATE else 0)) / r.added, 2)
    if not r.period and (store.npins or store.pin_open >= 0):
        import os

        from sensorbox.device import lazy

        names = seg_names(r)
        try:
            pinned = lazy.load("sensorbox.device.store.retain").pinned
            for i in range(len(names)):
                b = store.real(names[i + 1]) if i + 1 < len(names) else (end or 0) + 1
                if pinned(store, r, store.real(names[i]), b):
                    out["pinned_bytes"] += os.stat("{}/{}.seg".format(r.dir, names[i]))[6]
        except OSError:
            pass
        finally:
            pinned = None
            lazy.unload("sensorbox.device.store.retain")
    return out


def class_names(store):
    """The class table's names by id (store/classes.py, loaded for the call)."""
    from sensorbox.device import lazy

    return lazy.call("sensorbox.device.store.classes", "names", store)


def _first_time(store, r):
    """t0 of the oldest segment (bytes 12..19 of its header; the store checked the header when it opened), placed
    where it belongs when it was stored while the clock was unknown (``Store.real``)."""
    if r.first is None:
        return r.bt0 if r.period and r.brows else None  # (a rollup's rows may all be in its stage)
    try:
        with open("{}/{}.seg".format(r.dir, r.first), "rb") as f:
            f.seek(12)
            return struct.unpack("<q", f.read(8))[0] + store.real(r.first) - r.first
    except (OSError, ValueError):
        return store.real(r.first)


def per_day(st, r):
    """Bytes per day at the current settings, as stored (compressed): for the rate resource the rate times the
    bytes a row took since boot (until 500 rows are written: the size uncompressed); for a rollup the rows a
    day of its period makes times their bytes; for the others observed since boot."""
    if r.budget == 0:
        return 0
    if r.kind == _RATE and not r.raw:  # (audio clips: observed, as the bus resources)
        if r.seg_rate:  # a block per ring read (every flush point, at most _FRAMES rows), a header per segment
            if r.rows >= 500:
                return (r.added * r.seg_rate * 86400 // r.rows) * (r.seg_max + _HDR) // r.seg_max
            rb = 2 * r.ncols
            k = max(1, min(r.seg_rate * st.flush_ms // 1000, _BLOCK_MAX // rb, 50))  # (core._FRAMES)
            return (r.seg_rate * 86400 * (k * rb + _BLK) // k) * (r.seg_max + _HDR) // r.seg_max
        return 0
    el = st.clock() - st.started
    if r.period:  # its rows a day (at least one a period; observed) times the bytes a row took coded
        made = max((r.rows + r.brows) * 86400000 // el if el >= 2 * r.period else 0, 86400000 // r.period)
        return r.added * made // r.rows if r.rows else (2 + r.ncols) * made  # (a guess until a block is written)
    return r.added * 86400000 // el if el > 60000 else 0


def _days_left(st, r):
    """Days until the resource's budget (or the free-flash floor) is reached and retention starts."""
    d = per_day(st, r)
    if not d:
        return None
    room = max(r.budget - r.bytes, 0)
    free = st._free()
    if free is not None:
        room = min(room, max(free - st.min_free, 0))
    return round(room / d, 5)


def status(st):
    """The store's summary for /api/status."""
    used = budget = segs = forced = lost = 0
    days = None
    for r in st.res:
        used += r.bytes
        budget += r.budget
        segs += r.ret_segs
        forced += r.forced
        lost += r.lost_rows
        d = _days_left(st, r)
        if d is not None and (days is None or d < days):
            days = d
    out = {"bytes": used, "budget": budget, "days_until_full": days, "retention_deleted_segments": segs,
           "forced_loss_segments": forced, "lost_rows": lost, "quarantined": st.quarantined,
           "torn_tails": st.torn, "corrupt_blocks": st.corrupt, "corrupt_segments": st.bad_segs,
           "notes": st.notes,
           # labelled (pinned) data not pulled yet: ranges kept; resources whose budget it fills; the flash
           "pins": {"pinned_ranges": st.npins, "recording": st.pin_open >= 0, "over_budget": st.held,
                    "fills_flash": st.pin_floor}, "write_errors": st.errors,
           "sd": st.sd.status() if st.sd is not None else None}
    if st.cap is not None:
        st.cap.status(out)  # "capture": while capture.* has it on (capture.py)
    c = st.clip  # audio clips (clips.py), while clip.enabled is on
    if c is not None:
        out["clips"] = {"length_ms": c.n * 1000 // c.rate, "pre_ms": c._pre_n * 1000 // c.rate, "rate_hz": c.rate,
                        "recording": c.a >= 0, "clips": c.made, "skipped_triggers": c.skipped,
                        "lost_frames": c.lost, "ring_error": c.ring_error}
    return out


def clips(st, start, end):
    """The audio clips (``clips.py``: a segment each) in [start, end) (epoch ms), oldest first: a generator of dicts
    (``GET /api/clips``). A clip's frames follow from its segment's size (whole blocks of 128 frames, the last one
    shorter: ``clips._BLOCK``); its header's generation says why it was made."""
    import os

    from sensorbox.device import lazy

    r = st.by_name.get("clips")
    if r is None:
        return
    pinned = lazy.load("sensorbox.device.store.retain").pinned  # (kept by this generator while it runs)
    lazy.unload("sensorbox.device.store.retain")
    h = bytearray(_HDR)
    for name in seg_names(r):
        path = "{}/{}.seg".format(r.dir, name)
        try:
            with open(path, "rb") as f:
                f.readinto(h)
            size = os.stat(path)[6] - _HDR
        except OSError:
            continue
        rate = struct.unpack_from("<H", h, 8)[0]
        g = struct.unpack_from("<I", h, 24)[0]
        n = size // (_BLK + 2 * _CLIP) * _CLIP + ((size % (_BLK + 2 * _CLIP) - _BLK) // 2 if size % (
            _BLK + 2 * _CLIP) > _BLK else 0)
        t0 = st.real(name)
        if not rate or not n or t0 >= end:
            continue
        t1 = t0 + n * 1000 // rate
        if t1 > start:
            yield {"start": t0, "end": t1, "rate_hz": rate, "frames": n, "trigger": _KINDS[g >> 30 & 3],
                   "pre_ms": g >> 16 & 0x3FFF, "value": g & 0xFFFF,
                   "recording": r.f is not None and name == r.seg_name, "pinned": pinned(st, r, t0, t1)}
