"""Labels: time ranges with a class name, at most 500, in ``labels.bin``. Loaded per request and unloaded (see
``http/data_api``; the resource listing is ``figures.py``).

The file never needs to be in RAM whole: an 8-byte header (``SBL2``, a floor for the next id, uint32) and then
one record per label, appended in the order the labels were made::

    status (1 byte: "L" live, "U" live and unpinned, "X" deleted, "C" a capture), name length (1), id (uint32),
    start, end (int64 epoch ms), name (UTF-8), CRC-32 (uint32) of the record but its status byte

Adding appends a record; deleting (or unpinning) overwrites its status byte in place. A live label pins the raw
data in its range (retention keeps it) until ``sensorbox pull`` has fetched it or the label is unpinned (``pins``:
the merged ranges the store keeps in RAM; ``retain.pinned``). A capture (``capture.py``) is a record of its own
status: pinned the same way, never listed or counted as a label, dropped at the next rewrite once pulled, at most
``capture._MAX_PINNED`` pinned (a new one releases the oldest: ``capture.record``). Every operation reads the file through
one 256-byte buffer, so 500 labels take the RAM of one. A record reads right when its status, name length, name
(printable UTF-8), id (above the one before), times (0..2^53) and CRC do; one that does not is skipped, and the
records after it are found again by searching for the next that reads right, so damage hides only the bytes it
hit. Files of the previous format (``SBL1``: records without the CRC) are read as they are and rewritten in this
one when the store opens. When deleted records are at least 32 and outnumber the live ones, or the file's tail is torn (a crash during
an append where writes are not atomic) or some of it is unreadable, the next add (and ``check``, when the store
opens) rewrites the readable records into ``labels.bin.tmp`` and renames it over the file (a file with
unreadable bytes is moved to ``quarantine/`` first: nothing is lost). Ids are never reused: the next id is one more than
any id ever written (the header keeps it across rewrites). Labels are listed in the order they were made. A
``labels.json`` of older versions is converted when the store opens (``recover.py``).
"""

import json
import os
import struct

from micropython import const

from sensorbox.device.store.core import QueryError, crc32

_T_MAX = 1 << 53
MAX_LABELS = 500
_PINS = const(8)  # pinned ranges kept in RAM (core._PINS)
_REC = "<BBIqq"  # 22 bytes: status, name bytes, id, start, end (then the name and the CRC)


def pack(ident, start, end, name, status=76):
    """A live label's record (``name``: str or bytes; ``status`` 85: unpinned)."""
    b = name.encode() if isinstance(name, str) else bytes(name)
    r = struct.pack(_REC, status, len(b), ident, start, end) + b
    return r + struct.pack("<I", crc32(memoryview(r)[1:]))


def header(n):
    return b"SBL2" + struct.pack("<I", n)


_REC_MAX = 22 + 160 + 4  # the longest record: its fields, a 160-byte name, its CRC (was 182: a long name after
# others read as a torn end, and the next label added rewrote the file without it)


def _ok(buf, o, n, p, v=2):
    """The length of the record at ``buf[o]`` when it reads right and is whole in ``buf[:n]``; 0 when it is not a
    record; -1 when it may be one that ``buf`` holds only part of. ``p``: the id of the record before it; ``v``
    the format (1: no CRC)."""
    if o + 22 > n:
        return -1
    ln = buf[o + 1]
    if (buf[o] != 76 and buf[o] != 88 and buf[o] != 85 and buf[o] != 67) or not 0 < ln <= 160 or buf[o + 5] >= 0x40:
        return 0
    if buf[o + 13] or buf[o + 12] >= 0x20 or buf[o + 21] or buf[o + 20] >= 0x20:  # times beyond 2^53
        return 0
    if (buf[o + 2] | buf[o + 3] << 8 | buf[o + 4] << 16 | buf[o + 5] << 24) <= p:
        return 0
    k = 22 + ln + (4 if v == 2 else 0)
    if o + k > n:
        return -1
    i = o + 22
    e = i + ln
    while i < e:  # printable UTF-8
        c = buf[i]
        k = 0 if 32 <= c < 0x80 else (1 if 0xC2 <= c < 0xE0 else (2 if 0xE0 <= c < 0xF0 else (3 if 0xF0 <= c < 0xF5
                                                                                                  else -1)))
        if k < 0 or i + k >= e + (k == 0):
            return 0
        for j in range(1, k + 1):
            if not 0x80 <= buf[i + j] < 0xC0:
                return 0
        i += k + 1
    if v == 2 and crc32(memoryview(buf)[o + 1:o + 22 + ln]) != struct.unpack_from("<I", buf, o + 22 + ln)[0]:
        return 0
    return 22 + ln + (4 if v == 2 else 0)


def _recs(store, info):
    """Yield (offset, status, id, start, end, name) of each record that reads right (``name``: a memoryview valid
    until the next one). ``info`` = [end of the last good record, file size, header's next id (0: no header),
    bytes that do not read right, bytes of a torn last record, format] afterwards."""
    try:
        f = open(store.root + "/labels.bin", "rb")
    except OSError:
        return
    with f:
        buf = bytearray(256)
        mv = memoryview(buf)
        n = f.readinto(buf) or 0
        size = info[1] = f.seek(0, 2)
        v = 2 if n < 8 or bytes(buf[:4]) != b"SBL1" else 1
        if n >= 8 and bytes(buf[:3]) == b"SBL" and 49 <= buf[3] <= 50:
            info[2] = struct.unpack_from("<I", buf, 4)[0]
        else:
            info[3] += 8  # no header (or a damaged one): the records after it may still read
            v = 2 if _ok(buf, 8, n, 0) > 0 or _ok(buf, 8, n, 0, 1) <= 0 else 1
        info[5] = v
        base = 0
        pos = info[0] = min(8, size)
        prev = 0
        bad = -1  # where an unreadable stretch began
        while pos < size:
            if pos + _REC_MAX > base + n and base + n < size:  # keep a whole record in the buffer
                f.seek(pos)
                base = pos
                n = f.readinto(buf) or 0
            k = _ok(buf, pos - base, n, prev, v)
            if k < 0 and bad < 0:  # cut short at the end of the file
                info[4] = size - pos
                return
            if k <= 0:
                if bad < 0:
                    bad = pos
                pos += 1
                continue
            if bad >= 0:
                info[3] += pos - bad
                bad = -1
            o = pos - base
            st, ln, ident, a, b = struct.unpack_from(_REC, buf, o)
            prev = ident
            yield pos, st, ident, a, b, mv[o + 22:o + 22 + ln]
            pos = info[0] = pos + k
        if bad >= 0:
            info[3] += size - bad


def _info():
    return [0, 0, 0, 0, 0, 2]


def _scan(store, find, info):
    """(live, deleted, next id, offset of live label ``find`` or -1) in one pass; ``info`` as for ``_recs``."""
    live = dead = 0
    nxt = 1
    at = -1
    for pos, st, ident, a, b, name in _recs(store, info):  # (``store.labels``: the live count, as read now)
        if st == 88:
            dead += 1
        else:
            live += st != 67  # (a capture is not a label)
            if ident == find:
                at = pos
        if ident >= nxt:
            nxt = ident + 1
    store.labels = live
    return live, dead, max(nxt, info[2]), at


def label_rows(store, p):
    """Yield (start, (end, name, id, pinned)) of the labels overlapping [p.start, p.end) in the order they were
    made, and (None, None) after every 32 records read (a step for a streaming caller to yield on). ``pinned``:
    the label still keeps its raw data from retention (not unpinned, not pulled yet). Closing it closes the file
    (MicroPython closes neither an abandoned generator nor the ones a closed one iterates)."""
    k = live = 0
    rel = _released(store, store.accel)
    g = _recs(store, _info())
    try:
        for pos, st, ident, a, b, name in g:
            k += 1
            live += st != 88 and st != 67
            if st != 88 and st != 67 and b > p.start and a < p.end:
                yield a, (b, bytes(name).decode(), ident, st == 76 and b - 1 > rel)
            elif k % 32 == 0:
                yield None, None
        store.labels = live  # (what the resource listing says: as the file reads now)
    finally:
        g.close()


class _All:
    start = -1
    end = _T_MAX + 1


def labels_json(store):
    """GET /api/labels, ``{"labels": [{"id", "start", "end", "label"}, ...]}``, as a stream of small chunks."""
    yield b'{"labels": ['
    sep = b""
    g = label_rows(store, _All)
    try:
        for a, r in g:
            if a is None:
                yield b""
            else:
                yield sep + json.dumps({"id": r[2], "start": a, "end": r[0], "label": r[1], "pinned": r[3]}).encode()
                sep = b","
    finally:
        g.close()
    yield b"]}"


def label_add(store, body):
    """Validate and add {"start": ms, "end": ms, "label": name}; returns the stored label (with its id). A range
    that overlaps a live label is refused (QueryError, field "overlap": the API answers 409) unless the body says
    ``"overlap": true``."""
    if not isinstance(body, dict):
        raise QueryError("expected a JSON object with start, end, label", "(body)")
    for k in body:
        if k not in ("start", "end", "label", "overlap"):
            raise QueryError("unknown field", k)
    v = body.get("overlap", False)
    if v is not True and v is not False:  # (not a truthy number: the document says boolean)
        raise QueryError("overlap must be true or false", "overlap")
    for k in ("start", "end"):
        v = body.get(k)
        if v is True or v is False or not isinstance(v, int) or v < 0 or v > _T_MAX:
            raise QueryError("{} must be an integer: epoch ms".format(k), k)
    if body["end"] <= body["start"]:
        raise QueryError("end must be after start", "end")
    name = body.get("label")
    if not isinstance(name, str) or not 0 < len(name) <= 40 or min(name.encode()) < 32:
        raise QueryError("label must be a name of 1 to 40 printable characters", "label")
    info = _info()
    live, dead, nxt, pos = _scan(store, -1, info)
    if live >= MAX_LABELS:
        raise QueryError("too many labels ({}); delete some first".format(MAX_LABELS), "(body)")
    if body.get("overlap") is not True:  # a window inside two labels would train two classes: ask first
        p = _All()  # (no class of its own: every name is interned at boot)
        p.start = body["start"]
        p.end = body["end"]
        g = label_rows(store, p)
        for a, r in g:
            if a is not None:
                g.close()  # closes labels.bin now (MicroPython does not close an abandoned generator)
                raise QueryError("overlaps label {} \"{}\" ({}..{}); send \"overlap\": true to add it anyway".format(
                    r[2], r[1], a, r[0]), "overlap")
    if not info[2] or info[3] or info[4] or info[5] != 2 or (dead >= 32 and dead >= live):  # (no header: new)
        _rewrite(store, nxt)
    # what the answer needs and the new range's pin are made before the label is written: after it, running out of
    # memory would answer 503 "retry" for a stored label, and leave its rows unpinned for retention
    out = {"id": nxt, "start": body["start"], "end": body["end"], "label": name}
    p = store.pins
    if p is None:
        import array

        p = array.array("q", bytes(16 * _PINS))
    rec = pack(nxt, body["start"], body["end"], name)
    with open(store.root + "/labels.bin", "ab") as f:
        f.write(rec)
    store.labels = live + 1
    store.pins = p
    store.npins = _pin(p, store.npins, body["start"], body["end"])  # (pins more, never less)
    store.changes += 1
    try:
        pins(store)  # (read again: the pulls that released a range; merged as they are)
    except MemoryError:
        pass
    return out


def _rewrite(store, n):
    path = store.root + "/labels.bin"
    info = _info()
    rel = _rel_all(store)
    g = _recs(store, info)
    with open(path + ".tmp", "wb") as out:
        try:
            out.write(header(n))
            for pos, st, ident, a, b, name in g:
                if st != 88 and (st != 67 or b - 1 > rel):  # (a pulled capture has done its work)
                    out.write(pack(ident, a, b, name, st))
        finally:  # a failed write (full flash) leaves the generator, and its file, open
            g.close()
    if info[3]:
        store.quarantine(path, "labels", "{} bytes of labels.bin unreadable".format(info[3]))
    elif info[4]:
        store.log.warning("store", "labels: torn last record ({} bytes) dropped".format(info[4]))
    os.rename(path + ".tmp", path)


def label_delete(store, ident, status=b"X"):
    """Mark label ``ident`` deleted (its status byte, in place), or with ``status`` b"U" unpinned: its raw data
    released to retention before it was pulled. False when there is no such label."""
    pos = _scan(store, ident, _info())[3]
    if pos < 0:
        return False
    with open(store.root + "/labels.bin", "r+b") as f:
        f.seek(pos)
        if f.read(1) == b"C":
            status = b"X"  # a capture unpinned is forgotten (its rows stay until retention needs them)
        elif status == b"X":
            store.labels -= 1
        f.seek(pos)
        f.write(status)
    pins(store)
    return True


def pins(store):
    """The ranges of the pinned labels (not unpinned, not pulled yet by every resource stored) into
    ``store.pins`` (start, end, ... sorted), merged (``_pin``). One record at a time: no list. Read into an array of
    their own and put in place at the end: a read cut short (no memory for a record, a failing flash) leaves the
    ranges in force as they were."""
    rel = _rel_all(store)
    p = None
    n = 0
    for pos, st, ident, a, b, name in _recs(store, _info()):
        if (st != 76 and st != 67) or b - 1 <= rel:
            continue
        if p is None:  # (made for the first pinned range; the store holds none while nothing is pinned)
            import array

            p = array.array("q", bytes(16 * _PINS))
        n = _pin(p, n, a, b)
    store.pins = p
    store.npins = n
    store.changes += 1  # (retention looks again)


def _pin(p, n, a, b):
    """Range ``a``..``b`` into the ``n`` merged ranges of ``p`` (start, end, ... sorted); returns their count:
    overlapping ones merged into one, and at ``_PINS`` the two nearest into one (a wider range pins more, never
    less). Allocates nothing."""
    i = 0
    while i < n and p[2 * i] < a:
        i += 1
    for j in range(n, i, -1):  # make room at i (the array has one pair to spare: see below)
        p[2 * j] = p[2 * j - 2]
        p[2 * j + 1] = p[2 * j - 1]
    p[2 * i] = a
    p[2 * i + 1] = b
    n += 1
    j = 0
    while j + 1 < n:  # overlapping neighbours: one range
        if p[2 * j + 2] <= p[2 * j + 1]:
            if p[2 * j + 3] > p[2 * j + 1]:
                p[2 * j + 1] = p[2 * j + 3]
            for k in range(j + 1, n - 1):
                p[2 * k] = p[2 * k + 2]
                p[2 * k + 1] = p[2 * k + 3]
            n -= 1
        else:
            j += 1
    if n == _PINS:  # full: the nearest two become one
        best = 0
        for j in range(1, n - 1):
            if p[2 * j + 2] - p[2 * j + 1] < p[2 * best + 2] - p[2 * best + 1]:
                best = j
        p[2 * best + 1] = p[2 * best + 3]
        for k in range(best + 1, n - 1):
            p[2 * k] = p[2 * k + 2]
            p[2 * k + 1] = p[2 * k + 3]
        n -= 1
    return n


def _rel_all(store):
    """Time up to which every full-resolution resource stored has been pulled; -1: not all of them."""
    rel = None
    for r in store.res:
        if r.budget and not r.period:
            x = _released(store, r)
            rel = x if rel is None or x < rel else rel
    return -1 if rel is None else rel


def _released(store, r):
    """Time up to which resource ``r``'s rows have been pulled (``POST /api/pulled``; retain.released); -1: none."""
    c = store.cursors.get("pull." + r.name)
    return c[1] if c is not None else -1
