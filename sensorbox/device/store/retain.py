"""Retention (``core.Store.retain`` loads it when a budget or the free floor is passed, or a write failed): delete
the oldest segments that are not pinned, per resource budget, then for the free floor (see ``core``: "Retention" and
"Pins"). Unread data of a reader cursor goes last for the floor and is counted (``forced``, the cursor's lost)
when a budget deletes it. Also what releases pins: ``POST /api/pulled`` (``pulled``, loaded for the request)."""

import os

from sensorbox.device.store.core import QueryError, seg_names


def released(st, r):
    """Time up to which resource ``r``'s rows have been pulled (``POST /api/pulled``); -1: none."""
    c = st.cursors.get("pull." + r.name)
    return c[1] if c is not None else -1


def pinned(st, r, a, b):
    """True when ``r``'s rows in [a, b) (a segment's span) hold rows of a pinned range not pulled yet (a label's, a
    capture's, an open recording's)."""
    if r.period:
        return False
    rel = released(st, r)
    if st.pin_open >= 0 and b > st.pin_open and b - 1 > rel:
        return True
    if st.cap is not None and st.cap.pinned(a, b):  # a capture open or not recorded yet (capture.py)
        return True
    if st.clip is not None and st.clip.pinned(a, b):  # a clip recording or not recorded yet (clips.py)
        return True
    p = st.pins
    for i in range(0, 2 * st.npins, 2):
        if p[i] < b and p[i + 1] > a and (p[i + 1] if p[i + 1] < b else b) - 1 > rel:
            return True
    return False


def oldest(st, r):
    """(name, next name, oldest name left after it) of the oldest segment retention may delete: closed (the
    open one is never deleted) and not pinned; None when there is none."""
    if r.nseg < 1:
        return None
    names = seg_names(r)
    n = len(names)
    for i in range(n):
        a = names[i]
        if r.f is not None and a == r.seg_name:
            return None
        b = names[i + 1] if i + 1 < n else None
        # (segment names are stored times: rows stored while the clock was unknown belong later, Store.real)
        if not pinned(st, r, st.real(a), st.real(b) if b is not None else (r.last_t or 0) + 1):
            return a, b, names[0] if i else b
    return None


def unread(st, r, end):
    """Cursors on ``r`` that have not consumed data before ``end``."""
    out = []
    for k in st.cursors:
        c = st.cursors[k]
        if c[0] == r.name and (end is None or c[1] < end - 1):
            out.append(c)
    return out


def drop(st, r, old):
    a, b, first = old
    path = "{}/{}.seg".format(r.dir, a)
    try:
        size = os.stat(path)[6]
        os.remove(path)
    except OSError as e:
        st.log.error("store", "{}: cannot delete {} ({})".format(r.name, path, e))
        return False
    r.bytes -= size
    r.nseg -= 1
    r.first = first
    r.ret_segs += 1
    r.ret_bytes += size
    cur = unread(st, r, st.real(b) if b is not None else (r.last_t or 0) + 2)
    if cur:
        r.forced += 1
        for c in cur:
            c[2] += 1
        st.log.warning("store", "{}: retention deleted unread segment {}".format(r.name, a))
        st.save_cursors()  # (their loss counts)
    return True


def run(st, full=False):
    """Delete the oldest segments: per-resource budgets, then the free floor (``full``: a write failed)."""
    was = st.held
    st.held = []
    for r in st.res:
        stuck = False
        while r.bytes > r.budget:
            old = oldest(st, r)
            if old is None:
                stuck = r.nseg > (r.f is not None) and r.budget > 0  # only pinned ones (and the open one) are left
                break
            if not drop(st, r, old):
                break
        if stuck:
            st.held.append(r.name)
            if r.name not in was:
                st.log.warning("store", "{}: pinned data fill its budget ({} KB); the newest rows are kept next "
                                        "to them until they are pulled or unpinned".format(r.name, r.budget // 1024))
    for i in range(64):
        free = st._free()
        if not full and (free is None or free >= st.min_free):
            st.pin_floor = False
            return
        best = None
        for r in st.res:
            old = oldest(st, r)
            if old is not None:
                key = (1 if unread(st, r, st.real(old[1]) if old[1] is not None else (r.last_t or 0) + 2) else 0,
                       old[0])
                if best is None or key < best[0]:
                    best = (key, r, old)
        if best is None:  # only open and pinned segments are left
            stuck = False
            for r in st.res:
                stuck = stuck or (r.nseg > (r.f is not None) and not r.period)
            if stuck and not st.pin_floor:
                st.log.error("store", "flash stuck of pinned data: new rows may be lost; pull or unpin labels")
            st.pin_floor = stuck
            return
        if not drop(st, best[1], best[2]):
            return
        if full and i >= 1:
            return


def pulled(store, body):
    """``POST /api/pulled`` ``{"<resource>": t, ...}``: ``sensorbox pull`` has every row of those resources up to
    time ``t`` (a time after its newest row counts as that row's: no later label is released). Moves each
    resource's ``pull.<name>`` cursor (a reader cursor: saved at once, and what it has not read yet goes last when
    the free floor needs room) and releases the labelled data it passed. Returns the labels still pinned and those
    released by this call."""
    from sensorbox.device.store.meta import _T_MAX, pins

    if not isinstance(body, dict) or not body:
        raise QueryError("expected a JSON object {\"<resource>\": time of the last row pulled, ...}", "(body)")
    for k in body:
        r = store.by_name.get(k)
        if r is None or r.period:
            raise QueryError("no full-resolution resource {}".format(k), k)
        v = body[k]
        if v is True or v is False or not isinstance(v, int) or not 0 <= v <= _T_MAX:
            raise QueryError("{} must be an integer: epoch ms".format(k), k)
    before = _pinned_ids(store)
    for k in body:  # (no further than the newest row stored: a later time would release labels not made yet)
        t = store.by_name[k].last_t
        if t is not None:
            t = body[k] if body[k] < t else t
            store.cursor("pull." + k, k, t)
            store.advance("pull." + k, t)
    store.save_cursors()
    pins(store)
    now = _pinned_ids(store)
    return {"pinned": now, "released": [i for i in before if i not in now]}


def _pinned_ids(store):
    from sensorbox.device.store.meta import _All, label_rows

    out = []
    for a, r in label_rows(store, _All):
        if a is not None and r[3]:
            out.append(r[2])
    return out
