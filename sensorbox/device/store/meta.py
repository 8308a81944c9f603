"""The store's small tables and figures: labels (``labels.json``, rewritten atomically, at most 500) and the
resource listing of ``/api/resources``. Loaded per request and unloaded (see ``http/data_api``)."""

import json
import os

from sensorbox.device.store.core import RATE, TEXT, QueryError, columns_of, read_header

_T_MAX = 1 << 53
_MAX_LABELS = 500


def _labels_path(store):
    return store.root + "/labels.json"


def labels_load(store):
    try:
        with open(_labels_path(store)) as f:
            d = json.load(f)
        return d["next"], d["labels"]
    except OSError:
        return 1, []
    except (ValueError, KeyError, TypeError):
        store.quarantine(_labels_path(store), "labels", "unreadable labels")
        return 1, []


def _labels_save(store, nxt, labels):
    tmp = _labels_path(store) + ".tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps({"next": nxt, "labels": labels}))
    os.rename(tmp, _labels_path(store))


def label_rows(store, p):
    for lab in labels_load(store)[1]:
        if lab[1] > p.start and lab[0] < p.end:
            yield lab[0], (lab[1], lab[2], lab[3])


def label_add(store, body):
    """Validate and add {"start": ms, "end": ms, "label": name}; returns the stored label (with its id)."""
    if not isinstance(body, dict):
        raise QueryError("expected a JSON object with start, end, label", "(body)")
    for k in body:
        if k not in ("start", "end", "label"):
            raise QueryError("unknown field", k)
    for k in ("start", "end"):
        v = body.get(k)
        if v is True or v is False or not isinstance(v, int) or v < 0 or v > _T_MAX:
            raise QueryError("{} must be an integer time in epoch ms".format(k), k)
    if body["end"] <= body["start"]:
        raise QueryError("end must be after start", "end")
    name = body.get("label")
    if not isinstance(name, str) or not 1 <= len(name) <= 40 or any(ord(c) < 32 for c in name):
        raise QueryError("label must be a name of 1 to 40 printable characters", "label")
    nxt, labels = labels_load(store)
    if len(labels) >= _MAX_LABELS:
        raise QueryError("too many labels ({}); delete some first".format(_MAX_LABELS), "(body)")
    lab = [body["start"], body["end"], name, nxt]
    labels.append(lab)
    labels.sort()
    _labels_save(store, nxt + 1, labels)
    return {"id": nxt, "start": lab[0], "end": lab[1], "label": name}


def label_delete(store, ident):
    nxt, labels = labels_load(store)
    keep = [lab for lab in labels if lab[3] != ident]
    if len(keep) == len(labels):
        return False
    _labels_save(store, nxt, keep)
    return True


def resources(store, now):
    """What /api/resources lists: schemas, time coverage, bytes, budget, bytes per day, days until full."""
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
    nlab = len(labels_load(store)[1])
    out.append({"name": "labels", "columns": ["start", "end", "label"], "dtype": "json",
                "formats": ["json", "csv"], "count": nlab, "max": _MAX_LABELS})
    return out


def _first_time(r):
    if r.first is None:
        return None
    try:
        return read_header("{}/{}.seg".format(r.dir, r.first), bytearray(32))[5]
    except (OSError, ValueError):
        return r.first
