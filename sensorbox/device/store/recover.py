"""Opening the store after a (re)start or a crash: recount what is on flash, deal with torn tails, quarantine
what does not belong. Runs once per boot; ``Store.open`` loads it and unloads it again (see ``lazy``).

- A segment shorter than its header whose bytes start like a header: a crash while it was created; removed.
- A segment with a header and no rows: removed (nothing is lost).
- A partial last row (or line) of a segment: counted as ``torn``; readers ignore it; nothing appends after it.
- Anything else that is not a valid segment of that resource (wrong name, bad magic or checksum, another
  resource's code, a directory), an unknown entry in the store's root, an unreadable ``cursors.json``:
  moved to ``quarantine/`` (the newest 8 are kept), logged and counted in ``/api/status``.
- A ``labels.json`` (the label table of older versions: one JSON document) is converted to ``labels.bin``
  (``meta.py``) reading a few hundred bytes at a time, whatever its size, and then removed (quarantined instead
  when some of it could not be read, so nothing is lost).
"""

import json
import os
import struct

from sensorbox.device.store.core import HDR, RATE, TEXT_MAX, TIMED, _mkdir, _rm, read_header


def open_store(st):
    _mkdir(st.root)
    known = ("cursors.json", "labels.json", "labels.bin", "quarantine")
    for e in list(os.ilistdir(st.root)):
        n = e[0]
        if n.endswith(".tmp"):
            _rm(st.root + "/" + n)
        elif n not in known and n not in st.by_name:
            quarantine(st, st.root + "/" + n, "store", "unknown entry")
    for r in st.res:
        _mkdir(r.dir)
        _scan(st, r)
    try:
        os.stat(st.root + "/labels.json")
        _migrate_labels(st)
    except OSError:
        pass
    try:
        with open(st.root + "/cursors.json") as f:
            cur = json.load(f)
        for k in cur:
            if cur[k][0] not in st.by_name:
                raise ValueError("cursor on unknown resource")
            st.cursors[k] = [str(cur[k][0]), int(cur[k][1]), int(cur[k][2])]
    except OSError:
        pass
    except (ValueError, TypeError, IndexError, KeyError):
        st.cursors = {}
        quarantine(st, st.root + "/cursors.json", "store", "unreadable cursors")


def _scan(st, r):
    r.bytes = r.nseg = 0
    r.first = None
    newest = None
    buf = st._hdr
    for e in list(os.ilistdir(r.dir)):
        n = e[0]
        path = r.dir + "/" + n
        if e[1] != 0x8000 or not n.endswith(".seg") or not n[:-4].isdigit():
            quarantine(st, path, r.name, "unknown file")
            continue
        try:
            size, code, ncols, rate, rb, t0, seq0, gen = read_header(path, buf)
        except ValueError as ex:
            if ex.args[0] == "torn":
                note(st, "{}: removed torn new segment {}".format(r.name, n))
                st.torn += 1
                _rm(path)
            else:
                quarantine(st, path, r.name, ex.args[0])
            continue
        if code != r.code:
            quarantine(st, path, r.name, "segment of another resource")
            continue
        if size == HDR:
            _rm(path)  # created, never written: nothing lost
            continue
        if rb and (size - HDR) % rb:
            st.torn += 1
            note(st, "{}: torn row at the end of {} ignored".format(r.name, n))
        name = int(n[:-4])
        r.bytes += size
        r.nseg += 1
        if r.first is None or name < r.first:
            r.first = name
        if newest is None or name > newest[0]:
            newest = (name, path, size, rb, rate, t0)
        if r.kind == TIMED and r.cols is None:
            r.ncols = ncols
    if newest:
        r.newest = newest[0]
        r.last_t = _last_time(st, r, *newest[1:])


def _last_time(st, r, path, size, rb, rate, t0):
    rows = (size - HDR) // rb if rb else 0
    if r.kind == RATE:
        return t0 + (rows - 1) * 1000 // rate if rows else None
    with open(path, "rb") as f:
        if r.kind == TIMED:
            if not rows:
                return None
            f.seek(HDR + (rows - 1) * rb)
            b = f.read(4)
            return t0 + struct.unpack("<i", b)[0]
        f.seek(max(HDR, size - 2 * TEXT_MAX))
        tail = f.read()
    end = tail.rfind(b"\n")
    start = tail.rfind(b"\n", 0, end) + 1
    tab = tail.find(b"\t", start)
    try:
        return int(tail[start:tab]) if end > 0 and tab > start else None
    except ValueError:
        return None


def note(st, msg):
    st.log.warning("store", msg)
    st.notes.append(msg)
    if len(st.notes) > 4:
        st.notes.pop(0)


def quarantine(st, path, rname, reason):
    q = st.root + "/quarantine"
    _mkdir(q)
    names = [e[0] for e in os.ilistdir(q)]
    names.sort()
    while len(names) >= 8:
        _rm(q + "/" + names.pop(0))
    try:
        os.rename(path, "{}/{}-{}".format(q, st.clock(), path[len(st.root) + 1:].replace("/", "-")))
    except OSError:
        _rm(path)
    st.quarantined += 1
    note(st, "{}: quarantined {} ({})".format(rname, path, reason))


def _migrate_labels(st):
    """labels.json ``{"next": n, "labels": [[start, end, "name", id], ...]}`` (keys in any order) -> labels.bin,
    one element at a time (never the whole document in RAM)."""
    from sensorbox.device import lazy

    src = st.root + "/labels.json"
    dst = st.root + "/labels.bin"
    try:
        os.stat(dst)
        quarantine(st, src, "labels", "labels.json already converted")
        return
    except OSError:
        pass
    meta = lazy.load("sensorbox.device.store.meta")
    try:
        n, bad, nxt = _convert(src, dst + ".tmp", meta)
    finally:
        meta = None
        lazy.unload("sensorbox.device.store.meta")
    os.rename(dst + ".tmp", dst)
    if bad:
        quarantine(st, src, "labels", "{} unreadable entries in labels.json".format(bad))
    else:
        _rm(src)
    note(st, "labels: {} converted from labels.json{}".format(n, ", {} unreadable".format(bad) if bad else ""))


def _next_of(text):
    i = text.find(b'"next"')
    if i < 0:
        return 0
    i = text.find(b":", i) + 1
    j = i
    while j < len(text) and (text[j] == 32 or 48 <= text[j] <= 57):
        j += 1
    try:
        return int(text[i:j])
    except ValueError:
        return 0


def _convert(src, tmp, meta):
    n = bad = 0
    nxt = 1
    with open(src, "rb") as f, open(tmp, "wb") as out:
        out.write(meta.header(0))
        pend = f.read(256)
        eof = not pend
        state = 0  # 0: before the array, 1: in it, 2: after it
        while True:
            if state == 0:
                i = pend.find(b'"labels"')
                j = pend.find(b"[", i) if i >= 0 else -1
                if j >= 0:
                    nxt = max(nxt, _next_of(pend[:i]))
                    pend = pend[j + 1:]
                    state = 1
                    continue
                if len(pend) > 1024:  # not the format: nothing to convert
                    bad += 1
                    break
            elif state == 1:
                k = 0
                while k < len(pend) and pend[k] in (32, 44, 10, 13, 9):
                    k += 1
                pend = pend[k:]
                if pend[:1] == b"]":
                    pend = pend[1:]
                    state = 2
                    continue
                end = _element_end(pend)
                if end > 0:
                    try:
                        s, e, name, ident = json.loads(pend[:end].decode())
                        if not (isinstance(s, int) and isinstance(e, int) and isinstance(name, str)
                                and isinstance(ident, int) and 0 < len(name.encode()) <= 160
                                and 0 <= ident < 1 << 32):
                            raise ValueError
                        out.write(meta.pack(ident, s, e, name))
                        n += 1
                        nxt = max(nxt, ident + 1)
                    except (ValueError, TypeError):
                        bad += 1
                    pend = pend[end:]
                    continue
                if end < 0 or len(pend) > 1024:
                    bad += 1
                    break
            else:  # after the array only "next" may follow
                nxt = max(nxt, _next_of(pend))
                if eof:
                    break
                pend = pend[-32:]
            more = f.read(256)
            if not more:
                if eof:
                    if state != 2:
                        bad += 1
                    break
                eof = True
            pend += more
        out.seek(4)
        out.write(struct.pack("<I", nxt))
    return n, bad, nxt


def _element_end(b):
    """End of the JSON array element [..., "string", ...] at the start of ``b``; 0: not all there; -1: not one."""
    if b[:1] != b"[":
        return -1 if b else 0
    i = 1
    while i < len(b):
        c = b[i]
        if c == 0x22:  # a string: skip it, escapes included
            i += 1
            while i < len(b) and b[i] != 0x22:
                i += 2 if b[i] == 0x5C else 1
            if i >= len(b):
                return 0
        elif c == 0x5D:
            return i + 1
        elif c == 0x5B:
            return -1
        i += 1
    return 0
