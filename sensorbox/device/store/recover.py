"""Opening the store after a (re)start, a crash or a power cut: recount what is on flash, deal with torn tails,
quarantine what does not belong. Runs once per boot; ``Store.open`` loads it and unloads it again (see ``lazy``).

- A segment shorter than its header whose bytes start like a header: a crash while it was created; removed.
- A segment with a header and no whole block (or no row): removed (nothing that was flushed is lost).
- The newest segment of each resource is read block by block (``reader``, every CRC checked) to find the time of
  its last row: a torn last block is counted as ``torn``; corrupt blocks are counted (``corrupt``) and skipped by
  every reader; a segment whose blocks are all corrupt is quarantined. Nothing appends to it again.
- Anything else that is not a valid segment of that resource (wrong name, bad magic or checksum, another
  resource's code, a directory), an unknown entry in the store's root, a file where a directory belongs or the
  other way round: moved to ``quarantine/`` (the newest 8 are kept), logged and counted in ``/api/status``.
- ``cursors.json``: the cursors that read right are kept; if any did not (or the file is not JSON), the file is
  quarantined and the good ones saved again.
- ``labels.bin``: read record by record (``meta.check``); unreadable stretches are quarantined, the labels
  around them kept. A ``labels.json`` (the label table of older versions: one JSON document) is converted to
  ``labels.bin`` reading a few hundred bytes at a time, whatever its size, and then removed (quarantined instead
  when some of it could not be read, so nothing is lost).
- ``classes.txt`` (the class table, ``classes.py``): lines that do not read right are left out, the file as it
  was is quarantined.
- ``timefix.json``: where rows stored while the clock was unknown belong (``resync``); read before the
  segments, quarantined when it does not read right (those rows then keep the times they were stored with).
"""

import json
import os
import struct
import time

from sensorbox.device.files import rmtree as _rmtree
from sensorbox.device.store.core import _ON_USE, HDR, RATE, RESOURCES, TIMED, Res, _i32, _mkdir, _rm
from sensorbox.device.store.reader import BLK, Reader, note_corrupt, read_header

_DIR = 0x4000
_FILES = ("cursors.json", "labels.json", "labels.bin", "classes.txt", "timefix.json")


def open_store(st):
    _mkdir(st.root)
    for e in list(os.ilistdir(st.root)):
        n = e[0]
        path = st.root + "/" + n
        if n == "quarantine":
            if e[1] != _DIR:
                _rmtree(path)
                note(st, "store: removed a file named quarantine")
        elif n.endswith(".tmp"):
            _rmtree(path)
        elif n in _ON_USE and e[1] == _DIR:  # a resource made on first use, which was used: made now
            make(st, n)
        elif n in st.by_name:
            if e[1] != _DIR:
                quarantine(st, path, "store", "a file where a resource's directory belongs")
        elif n in _FILES:
            if e[1] == _DIR:
                quarantine(st, path, "store", "a directory where a file belongs")
        else:
            quarantine(st, path, "store", "unknown entry")
    _load_times(st)
    rd = Reader()
    for r in st.res:
        _mkdir(r.dir)
        _scan(st, r, rd)
    rd = None
    try:
        os.stat(st.root + "/labels.json")
        _migrate_labels(st)
    except OSError:
        pass
    _check(st, "labels.bin", "sensorbox.device.store.meta")
    _check(st, "classes.txt", "sensorbox.device.store.classes")
    _load_cursors(st)


def make(st, name):
    """Add the resource ``name`` (of ``RESOURCES``) to the store ``st``, with its directory and its budget."""
    for s in RESOURCES:
        if s[0] == name:
            r = Res(s, st.root)
    st.res.append(r)
    st.by_name[name] = r
    _mkdir(r.dir)
    st._budget(r, st._later[_ON_USE.index(name)])
    return r


def _known(st, name):
    # a resource of the store's (one made on first use is made now: a sink reads it)
    if name not in st.by_name and name in _ON_USE:
        make(st, name)
    return name in st.by_name


def _load_cursors(st):
    path = st.root + "/cursors.json"
    try:
        with open(path, "rb") as f:
            text = f.read()
    except OSError:
        return
    bad = 0
    try:
        cur = json.loads(text)
        if not isinstance(cur, dict):
            raise ValueError("not an object")
        for k in cur:
            c = cur[k]
            if isinstance(c, list) and len(c) == 3 and _known(st, c[0]) and _int(c[1]) and _int(c[2]):
                st.cursors[k] = [c[0], c[1], c[2]]
            else:
                bad += 1
    except (ValueError, RuntimeError, MemoryError):  # not JSON, not UTF-8, nested too deep
        bad = -1
    if bad:
        quarantine(st, path, "store", "unreadable cursors" if bad < 0 else "{} unreadable cursors".format(bad))
        if st.cursors:
            st.save_cursors()


def _int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _load_times(st):
    path = st.root + "/timefix.json"
    try:
        with open(path, "rb") as f:
            v = json.loads(f.read())
        if not isinstance(v, list) or len(v) > 32 or not all(
                isinstance(e, list) and len(e) == 3 and all(_int(x) for x in e) and e[0] <= e[1] and e[2] > 0
                for e in v):
            raise ValueError("not a list of [first, last, add]")
        st._shifts = v
    except OSError:
        pass
    except (ValueError, RuntimeError, MemoryError) as e:
        quarantine(st, path, "store", "unreadable times of rows stored while the clock was unknown ({})".format(e))


def floor(clock, store, log):
    """Time never goes back, across reboots too: a clock (``platform/clock.Clock``) behind the newest row stored
    (an RTC that restarted in 2000, a host clock set back) goes on from just after it, so stored rows, ``since``
    cursors and retention keep their order; how far it moved is added to ``clock.ahead_ms``. While the clock is
    not known, what is stored from now on is placed when it is (``store/recover.resync``). Returns how far it
    moved (0: it was ahead already)."""
    last = 0
    for r in store.res:
        for t in (r.last_t, r.newest):
            if t is not None and t > last:
                last = t
    moved = 0
    now = clock.epoch_ms()
    if now <= last:  # (the clock's reference moved here, not in Clock: this runs once, at boot)
        moved = last + 1 - now
        clock._ref_ms = clock._last = last + 1
        clock._ref_ticks = time.ticks_ms()
        clock.ahead_ms += moved
        store.t_open = last + 1  # (bytes a day are counted from it)
        log.warning("time", "the clock was {} ms behind the newest stored row: going on from it".format(moved))
    if not clock.known:
        store._shifts = list(store._shifts) + [[clock.epoch_ms(), None, None]]
    return moved


def resync(st, add):
    """The clock became known (NTP: ``net/station.py``), ``add`` ms ahead of what the store ran on. What this boot
    stored since it began with an unknown clock (the open entry of ``st._shifts``, which ``floor`` made) is
    placed ``add`` ms later: the entry gets its last time and ``add``, which every reader applies (``Store.real``:
    segment names, t0 in ``Reader.open``, text rows), and is kept in ``timefix.json``. No row is rewritten. The open
    segments are closed first (rows from now on go to segments of their own), and the cursors in that stretch move
    with it, so nothing is sent twice. Nothing to do when the time was known already (an NTP correction)."""
    o = st._shifts[-1] if st._shifts else None
    if o is None or o[2] is not None or add <= 0:
        return
    st.flush()
    for r in st.res:
        st._close_seg(r)
    o[1] = st.clock() - add
    o[2] = add
    moved = 0
    for k in st.cursors:
        c = st.cursors[k]
        if o[0] <= c[1] <= o[1]:
            c[1] += add
            moved += 1
    while len(st._shifts) > 32:
        st._shifts.pop(0)
    tmp = st.root + "/timefix.json.tmp"
    try:
        with open(tmp, "w") as f:
            f.write(json.dumps([e for e in st._shifts if e[2]]))
        os.rename(tmp, st.root + "/timefix.json")
    except OSError as e:
        st.log.error("store", "cannot save the times of rows stored while the clock was unknown ({})".format(e))
    if moved:
        st.save_cursors()
    st.t_open = st.clock()  # bytes a day: counted again from now (the time before was another clock's)
    for r in st.res:
        r.added = 0
    st.log.info("store", "the time is known: what was stored since {} (clock unknown) placed {} s later".format(
        o[0], add // 1000))


def _check(st, name, module):
    """Let ``module``'s ``check`` read ``name`` (when there is one) and keep what reads right."""
    try:
        os.stat(st.root + "/" + name)
    except OSError:
        return
    from sensorbox.device import lazy

    try:
        lazy.load(module).check(st)
    finally:
        lazy.unload(module)


def _scan(st, r, rd):
    r.bytes = r.nseg = 0
    r.first = None
    names = []
    for e in list(os.ilistdir(r.dir)):
        n = e[0]
        path = r.dir + "/" + n
        if e[1] != 0x8000 or not n.endswith(".seg") or not n[:-4].isdigit():
            quarantine(st, path, r.name, "unknown file")
            continue
        try:
            h = read_header(path, st._hdr)
        except OSError as ex:
            quarantine(st, path, r.name, "unreadable ({})".format(ex))
            continue
        except ValueError as ex:
            if ex.args[0] == "torn":
                note(st, "{}: removed torn new segment {}".format(r.name, n))
                st.torn += 1
                _rm(path)
            else:
                quarantine(st, path, r.name, ex.args[0])
            continue
        if h[1] != r.code:
            quarantine(st, path, r.name, "segment of another resource")
            continue
        if h[0] == HDR:
            _rm(path)  # created, never written: nothing lost
            continue
        r.bytes += h[0]
        r.nseg += 1
        names.append(int(n[:-4]))
    names.sort()
    while names:  # the newest segment with a row gives the time of the newest row
        name = names[-1]
        path = "{}/{}.seg".format(r.dir, name)
        t = _last_time(st, r, rd, path, name)
        if t is not None:
            r.newest = name
            r.last_t = t
            if r.kind == TIMED and r.cols is None:
                r.ncols = rd.h[2]
            break
        size = rd.h[0]
        names.pop()
        r.bytes -= size
        r.nseg -= 1
        if rd.bad:
            quarantine(st, path, r.name, "no block reads right")
        else:
            note(st, "{}: removed segment {} with no whole block".format(r.name, name))
            st.torn += 1
            _rm(path)
    if names:
        r.first = names[0]


def _last_time(st, r, rd, path, name):
    """The time of the last good row of segment ``path`` (every block checked), or None if it has none."""
    h = rd.open(path, st, name)
    t = None
    try:
        while True:
            n = rd.next()
            if n == 0:
                break
            if n < 0:
                continue
            buf = rd.buf
            if r.kind == RATE:
                t = h[5] + (rd.first + n // h[4] - 1) * 1000 // h[3]
            elif r.kind == TIMED:
                t = h[5] + _i32(buf, BLK + n - h[4])
            else:
                end = BLK + n - 1  # the last line's "\n"
                start = end
                while start > BLK and buf[start - 1] != 10:
                    start -= 1
                tab = start
                while tab < end and buf[tab] != 9:
                    tab += 1
                try:
                    t = int(bytes(buf[start:tab])) + rd.shift
                except ValueError:
                    pass
    finally:
        rd.close()
    if rd.torn:
        st.torn += 1
        note(st, "{}: torn end of {} ignored ({} bytes)".format(r.name, name, rd.torn))
    note_corrupt(st, r, name, rd)
    return t


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
        _rmtree(q + "/" + names.pop(0))
    try:
        os.rename(path, "{}/{}-{}".format(q, st.clock(), path[len(st.root) + 1:].replace("/", "-")))
    except OSError:
        _rmtree(path)
    st.quarantined += 1
    note(st, "{}: quarantined {} ({})".format(rname, path, reason))
    fl = getattr(st.log, "files", None)  # also in /api/status -> files, with the other files set aside
    if fl is not None:
        fl.append("{}: {}; kept in {}/quarantine".format(path, reason, st.root))
        if len(fl) > 8:
            fl.pop(0)


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
