"""Opening the store after a (re)start or a crash: recount what is on flash, deal with torn tails, quarantine
what does not belong. Runs once per boot; ``Store.open`` loads it and unloads it again (see ``lazy``).

- A segment shorter than its header whose bytes start like a header: a crash while it was created; removed.
- A segment with a header and no rows: removed (nothing is lost).
- A partial last row (or line) of a segment: counted as ``torn``; readers ignore it; nothing appends after it.
- Anything else that is not a valid segment of that resource (wrong name, bad magic or checksum, another
  resource's code, a directory), an unknown entry in the store's root, an unreadable ``cursors.json``:
  moved to ``quarantine/`` (the newest 8 are kept), logged and counted in ``/api/status``.
"""

import json
import os
import struct

from sensorbox.device.store.core import HDR, RATE, TEXT_MAX, TIMED, _mkdir, _rm, read_header


def open_store(st):
    _mkdir(st.root)
    known = ("cursors.json", "labels.json", "quarantine")
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
