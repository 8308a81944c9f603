"""Labels: time ranges with a class name, at most 500, in ``labels.bin``. Loaded per request and unloaded (see
``http/data_api``; the resource listing is ``figures.py``).

The file never needs to be in RAM whole: an 8-byte header (``SBL1``, a floor for the next id, uint32) and then
one record per label, appended in the order the labels were made::

    status (1 byte: "L" live, "X" deleted), name length (1), id (uint32), start, end (int64 epoch ms), name (UTF-8)

Adding appends a record; deleting overwrites its status byte in place. Every operation reads the file through
one 256-byte buffer, so 500 labels take the RAM of one. When deleted records are at least 32 and outnumber the
live ones, or the file's tail is torn (a crash during an append where writes are not atomic) or unreadable, the
next add first rewrites the live records into ``labels.bin.tmp`` and renames it over the file (an unreadable
file is moved to ``quarantine/`` first: nothing is lost). Ids are never reused: the next id is one more than
any id ever written (the header keeps it across rewrites). Labels are listed in the order they were made. A
``labels.json`` of older versions is converted when the store opens (``recover.py``).
"""

import json
import os
import struct

from sensorbox.device.store.core import QueryError

_T_MAX = 1 << 53
MAX_LABELS = 500
_REC = "<BBIqq"  # 22 bytes: status, name bytes, id, start, end (then the name)


def pack(ident, start, end, name):
    b = name.encode()
    return struct.pack(_REC, 76, len(b), ident, start, end) + b


def header(nxt):
    return b"SBL1" + struct.pack("<I", nxt)


def _recs(store, info):
    """Yield (offset, status, id, start, end, name) of each whole record (``name``: a memoryview valid until the
    next one). ``info`` = [end of the last whole record, file size, header's next id, unreadable] afterwards."""
    try:
        f = open(store.root + "/labels.bin", "rb")
    except OSError:
        return
    with f:
        buf = bytearray(256)
        mv = memoryview(buf)
        n = f.readinto(buf) or 0
        size = info[1] = f.seek(0, 2)
        if n < 8 or bytes(buf[:4]) != b"SBL1":
            info[3] = n > 0
            return
        info[2] = struct.unpack_from("<I", buf, 4)[0]
        base = 0
        pos = info[0] = 8
        while pos < size:
            if pos + 182 > base + n and base + n < size:  # keep a whole record (22 + 160 bytes) in the buffer
                f.seek(pos)
                base = pos
                n = f.readinto(buf) or 0
            o = pos - base
            if o + 22 > n:
                return  # torn
            st, ln, ident, a, b = struct.unpack_from(_REC, buf, o)
            if st not in (76, 88) or not 0 < ln <= 160:
                info[3] = True
                return
            if o + 22 + ln > n:
                return  # torn
            yield pos, st, ident, a, b, mv[o + 22:o + 22 + ln]
            pos = info[0] = pos + 22 + ln


def _scan(store, find, info):
    """(live, deleted, next id, offset of live label ``find`` or -1) in one pass of plain loops (adding and
    deleting read every record: no generator, tuple or int64 per record); ``info`` as for ``_recs``."""
    live = dead = 0
    nxt = 1
    at = -1
    try:
        f = open(store.root + "/labels.bin", "rb")
    except OSError:
        return 0, 0, 1, -1
    with f:
        buf = bytearray(256)
        n = f.readinto(buf) or 0
        size = info[1] = f.seek(0, 2)
        if n < 8 or bytes(buf[:4]) != b"SBL1":
            info[3] = n > 0
            return 0, 0, 1, -1
        nxt = info[2] = struct.unpack_from("<I", buf, 4)[0] or 1
        base = 0
        pos = info[0] = 8
        while pos < size:
            o = pos - base
            if o + 22 > n and base + n < size:  # only a record's header is needed in the buffer
                f.seek(pos)
                base = pos
                n = f.readinto(buf) or 0
                o = 0
            if o + 22 > n:
                break  # torn
            st = buf[o]
            ln = buf[o + 1]
            if (st != 76 and st != 88) or not 0 < ln <= 160:
                info[3] = True
                break
            if pos + 22 + ln > size:
                break  # torn
            ident = struct.unpack_from("<I", buf, o + 2)[0]
            if st == 76:
                live += 1
                if ident == find:
                    at = pos
            else:
                dead += 1
            if ident >= nxt:
                nxt = ident + 1
            pos = info[0] = pos + 22 + ln
    return live, dead, nxt, at


def label_rows(store, p):
    """Yield (start, (end, name, id)) of the labels overlapping [p.start, p.end) in the order they were made,
    and (None, None) after every 32 records read (a step for a streaming caller to yield on). Closing it closes
    the file (MicroPython closes neither an abandoned generator nor the ones a closed one iterates)."""
    k = 0
    g = _recs(store, [0, 0, 0, False])
    try:
        for pos, st, ident, a, b, name in g:
            k += 1
            if st == 76 and b > p.start and a < p.end:
                yield a, (b, bytes(name).decode(), ident)
            elif k % 32 == 0:
                yield None, None
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
                yield sep + json.dumps({"id": r[2], "start": a, "end": r[0], "label": r[1]}).encode()
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
    for k in ("start", "end"):
        v = body.get(k)
        if v is True or v is False or not isinstance(v, int) or v < 0 or v > _T_MAX:
            raise QueryError("{} must be an integer time in epoch ms".format(k), k)
    if body["end"] <= body["start"]:
        raise QueryError("end must be after start", "end")
    name = body.get("label")
    if not isinstance(name, str) or not 0 < len(name) <= 40 or min(name.encode()) < 32:
        raise QueryError("label must be a name of 1 to 40 printable characters", "label")
    info = [0, 0, 1, False]
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
                g.close()  # its file: MicroPython does not close a generator left by raise
                raise QueryError("overlaps label {} \"{}\" ({}..{}); send \"overlap\": true to add it anyway".format(
                    r[2], r[1], a, r[0]), "overlap")
    if info[0] < 8 or info[0] < info[1] or (dead >= 32 and dead >= live):
        _rewrite(store, nxt, info)
    with open(store.root + "/labels.bin", "ab") as f:
        f.write(pack(nxt, body["start"], body["end"], name))
    return {"id": nxt, "start": body["start"], "end": body["end"], "label": name}


def _rewrite(store, nxt, info):
    path = store.root + "/labels.bin"
    g = _recs(store, info)
    with open(path + ".tmp", "wb") as out:
        try:
            out.write(header(nxt))
            for pos, st, ident, a, b, name in g:
                if st == 76:
                    out.write(struct.pack(_REC, st, len(name), ident, a, b))
                    out.write(name)
        finally:  # a failed write (full flash) leaves the generator, and its file, open
            g.close()
    if info[0] < info[1]:
        store.log.warning("store", "labels: {} bytes after {} unreadable".format(info[1] - info[0], info[0]))
        if info[3]:
            store.quarantine(path, "labels", "unreadable label records")
    os.rename(path + ".tmp", path)


def label_delete(store, ident):
    """Mark label ``ident`` deleted (its status byte, in place). False when there is no such label."""
    pos = _scan(store, ident, [0, 0, 1, False])[3]
    if pos < 0:
        return False
    with open(store.root + "/labels.bin", "r+b") as f:
        f.seek(pos)
        f.write(b"X")
    return True
