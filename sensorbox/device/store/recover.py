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
- ``labels.bin``: read record by record (``_labels``); unreadable stretches are quarantined, the labels
  around them kept. A ``labels.json`` (the label table of older versions: one JSON document) is converted to
  ``labels.bin`` reading a few hundred bytes at a time, whatever its size, and then removed (quarantined instead
  when some of it could not be read, so nothing is lost).
- ``classes.txt`` (the class table, ``classes.py``): lines that do not read right are left out, the file as it
  was is quarantined.
- ``timefix.json``: where rows stored while the clock was unknown belong (``resync``); read before the
  segments, quarantined when it does not read right (those rows then keep the times they were stored with).
- A rollup's ``rollup-stage.seg`` (its rows not yet in a block, see ``rollup.py``): the rows newer than its segments' go
  into a segment (``rollup.flush``), the stage is removed.
- The pinned ranges are read from labels.bin (``meta.pins``), after the cursors (the pull cursors release them).
"""

import json
import os
import struct
import time

from micropython import const

from sensorbox.device.files import rmtree as _rmtree
from sensorbox.device.store.core import _ON_USE, Res, _mkdir, _rm
from sensorbox.device.store.reader import Reader, check_header, note_corrupt

# the segment format's constants (as core.py defines them: no names to import)
_HDR = const(32)
_BLK = const(8)
_RATE = const(0)
_TIMED = const(1)
_DENSE = const(3)  # (a rollup segment's generation: rollup.py)

_DIR = 0x4000
_CODEC = const(1)  # (core._CODEC)
_FILES = ("cursors.json", "labels.json", "labels.bin", "classes.txt", "timefix.json")
_TEXT = const(2)

# The store's resources (core.py says what each holds): name, code, kind, columns (None: from the first value), RAM
# buffer bytes and, for a rollup, the number of its columns (their names: ``core.columns_of``) and its period
# (ms). Budgets: store.<name>_kb (config_schema). Here, not in core: the table is needed only while the store is made
# (``resources``).
RESOURCES = (
    ("accel", 1, _RATE, ("x", "y", "z"), 0),
    # (buffers for a few rows at the slowest flush, 5 s: fuller ones are written early, at the next row)
    ("features", 2, _TIMED, None, 360),  # (two rows of 3 channels' features, one of 6)
    ("predictions", 3, _TIMED, ("class", "confidence"), 128),
    ("soundlevel", 4, _TIMED, ("leq", "lmin", "lmax", "l10", "l50", "l90"), 128),
    ("events", 5, _TEXT, ("type", "data"), 520),  # a line: time, tab, TEXT_MAX bytes of JSON, newline
    ("soundclass", 6, _TIMED, ("class", "confidence"), 128),  # as predictions, from the sound classifier
    ("soundlevel_1m", 7, _TIMED, None, 7, 60000),  # (rollup.py: codes 7, 8 sound, 9, 10 classes)
    ("soundlevel_1h", 8, _TIMED, None, 7, 3600000),
    ("predictions_1m", 9, _TIMED, None, 5, 60000),
    ("predictions_1h", 10, _TIMED, None, 5, 3600000),
    ("clips", 11, _RATE, ("pcm",), 0),  # audio clips, a segment each (clips.py)
)


def resources(root):
    """The store's resources (``Store.__init__``), their files under ``root``; not those made on first use
    (``core._ON_USE``: ``make``)."""
    return [Res(s, root) for s in RESOURCES if s[0] not in _ON_USE]


def configure(st, cfg):
    """The store's settings (``Store.configure``): flush interval, free floor, codec, budgets and segment sizes,
    the rollups' schedule, the SD card (``sd.py``, kept loaded: failed writes ask it), event capture
    (``capture.py``, kept loaded while it or clips are on) and audio clips (``clips.py``, kept while they are on)."""

    st.flush_ms = cfg.get("store.flush_ms")
    st.min_free = cfg.get("store.min_free_kb") * 1024
    codec = _CODEC if cfg.get("store.compress") else 0
    if codec != st.codec:  # blocks are coded as their segment's header says
        for r in st.res:
            st._close_seg(r)
    st.codec = codec
    # (the budgets of the resources made on first use, not the config: a store kept alive would keep a config of
    # its own alive too)
    st._later = tuple(cfg.get("store." + n + "_kb") * 1024 for n in _ON_USE)
    roll = False
    for r in st.res:
        b = cfg.get("store." + r.name + "_kb") * 1024
        _budget(st, r, b)
        roll = roll or (r.period and b)
    st.roll_at = (st.roll_at or 0) if roll else None  # the rollups run while one has a budget (the first at once)
    from sensorbox.device import lazy

    if cfg.get("board.sdcard") and st.sd is None:  # (at boot: board.* keys apply after a restart)
        st.sd = lazy.load("sensorbox.device.store.sd").start(cfg.get("board.sdcard"), st.flash_stats)
    # event capture and audio clips: capture.py's configure (loaded for it; kept while either is on)
    lazy.load("sensorbox.device.store.capture").configure(st, cfg)


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
        elif n in _ON_USE and e[1] == _DIR and n not in st.by_name:  # made on first use, which was: made now
            make(st, n)  # (unless a service asked for it before the store opened: it has it, and keeps it)
        elif n in st.by_name:
            if e[1] != _DIR:
                quarantine(st, path, "store", "a file where a resource's directory belongs")
        elif n in _FILES:
            if e[1] == _DIR:
                quarantine(st, path, "store", "a directory where a file belongs")
        else:
            quarantine(st, path, "store", "unknown entry")
    _load_times(st)  # (before the segments: their times)
    if st.sd is not None:  # the segments on the SD card when it mounts (sd.py)
        st.sd.boot(st)
    scan(st)
    try:
        os.stat(st.root + "/labels.json")
        _migrate_labels(st)
    except OSError:
        pass
    _check(st, "labels.bin", "sensorbox.device.store.meta", _labels)
    _check(st, "classes.txt", "sensorbox.device.store.classes")
    _load_cursors(st)
    _check(st, "labels.bin", "sensorbox.device.store.meta", "pins")  # (after the cursors: pulls release pins)


def scan(st):
    """Count every resource's segments where its directory is (at boot; ``sd.py`` when they move)."""
    rd = Reader()
    for r in st.res:
        _mkdir(r.dir)
        _scan_res(st, r, rd)
    from sensorbox.device import lazy

    for r in st.res:
        if r.period:
            try:
                os.stat(r.dir + "/rollup-stage.seg")
            except OSError:
                continue
            lazy.call("sensorbox.device.store.rollup", "flush", st, r, -1 if r.last_t is None else r.last_t)


def _budget(st, r, b):
    if b == 0:
        st._close_seg(r)
    r.budget = b
    # Retention deletes whole segments: keep each to a quarter of a small budget (at least 1 KB). (Set only when it
    # differs from Res's default: rollups are many, and their instance attributes few.)
    m = min(st.seg_bytes, max(b // 4, 1024))
    if m != r.seg_max:
        r.seg_max = m


def make(st, name):
    """Add the resource ``name`` (of ``RESOURCES``) to the store ``st``, with its directory and its budget."""
    for s in RESOURCES:
        if s[0] == name:
            r = Res(s, st.accel.base)  # (where the segments are: internal flash or the SD card, sd.place)
            r.raw = s[2] == _RATE  # (audio clips: stored uncoded, clips.py)
    st.res.append(r)
    st.by_name[name] = r
    _mkdir(r.dir)
    _budget(st, r, st._later[_ON_USE.index(name)])
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
            raise ValueError("not [[first, last, add], ...]")
        st._shifts = v
    except OSError:
        pass
    except (ValueError, RuntimeError, MemoryError) as e:
        quarantine(st, path, "store", str(e))


def floor(clock, store, log):
    """Time never goes back, across reboots too: a clock (``platform.Clock``) behind the newest row stored
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
        store.started = last + 1  # (bytes a day are counted from it)
        log.warning("time", "clock {} ms behind the newest stored row".format(moved))
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
    from sensorbox.device import lazy

    for r in st.res:
        if r.period and r.brows:  # a rollup's staged rows into its segment (a stage is read with no shift)
            lazy.call("sensorbox.device.store.rollup", "flush", st, r)
        st._close_seg(r)
    o[1] = st.clock() - add
    o[2] = add
    for k in st.cursors:
        c = st.cursors[k]
        if o[0] <= c[1] <= o[1]:
            c[1] += add
    for r in st.res:  # the newest rows' times as a restart would read them; a rollup's: the end of the period it
        t = r.last_t  # summarised last, placed (it goes on after it: the rest of that period on the new clock is
        if t is not None and o[0] <= t <= o[1]:  # left out, never summarised twice)
            p = r.period
            r.last_t = (t - t % p + p - 1 if p else t) + add
    if o[0] <= st.pin_open <= o[1]:
        st.pin_open += add
    while len(st._shifts) > 32:
        st._shifts.pop(0)
    tmp = st.root + "/timefix.json.tmp"
    try:
        with open(tmp, "w") as f:
            f.write(json.dumps([e for e in st._shifts if e[2]]))
        os.rename(tmp, st.root + "/timefix.json")
    except OSError as e:
        st.log.error("store", "timefix.json not saved ({})".format(e))
    st.save_cursors()
    st.started += add  # (bytes a day: the time since the store opened, on the clock now known)
    st.log.info("store", "rows since {} placed {} ms later".format(o[0], add))


def _check(st, name, module, fn="check"):
    """Let ``module``'s ``check`` (or ``fn``) read ``name`` (when there is one) and keep what reads right."""
    try:
        os.stat(st.root + "/" + name)
    except OSError:
        return
    from sensorbox.device import lazy

    try:
        m = lazy.load(module)
        fn(st, m) if callable(fn) else getattr(m, fn)(st)
    finally:
        m = None
        lazy.unload(module)


def _labels(st, m):
    """labels.bin with a torn tail or unreadable bytes, or of the previous format: rewritten with the records that
    read right (the file as it was goes to quarantine when some of it was unreadable; ``meta``)."""
    from sensorbox.device.store.meta import _info, _rewrite, _scan  # (loaded: ``m``)

    info = _info()
    nxt = _scan(st, -1, info)[2]
    if info[3] or info[4] or info[5] != 2:
        _rewrite(st, nxt)


def _scan_res(st, r, reader):
    if r.nseg:  # (instance attributes only where they differ from Res's defaults: rollups are many and light)
        r.bytes = r.nseg = 0
        r.first = None
    names = []
    try:
        ents = list(os.ilistdir(r.dir))
    except OSError:  # could not be made (a full flash): nothing stored yet; writing it will fail and be counted
        return
    for e in ents:
        n = e[0]
        path = r.dir + "/" + n
        if r.period and n == "rollup-stage.seg" and e[1] == 0x8000:
            continue  # a rollup's staged rows: after the scan (open_store)
        if n.endswith(".tmp"):  # <name>.seg.tmp: a recoding cut short (rollup.py): the segment is whole as it was
            _rm(path)
            continue
        if e[1] != 0x8000 or not n.endswith(".seg") or not n[:-4].isdigit():
            quarantine(st, path, r.name, "unknown file")
            continue
        try:  # the header tuple (reader.check_header)
            with open(path, "rb") as f:
                sz = f.seek(0, 2)
                f.seek(0)
                h = check_header(st._hdr, f.readinto(st._hdr, _HDR) or 0, sz)
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
        if h[0] == _HDR:
            _rm(path)  # created, never written: nothing lost
            continue
        r.bytes += h[0]
        r.nseg += 1
        names.append(int(n[:-4]))
    names.sort()
    while names:  # the newest segment with a row gives the time of the newest row
        name = names[-1]
        path = "{}/{}.seg".format(r.dir, name)
        t = _last_time(st, r, reader, path, name)
        if t is not None:
            r.newest = name
            r.last_t = t
            if r.kind == _TIMED and r.cols is None:
                r.ncols = reader.h[2]
            if r.kind == _RATE:
                r.seg_rate = reader.h[3]  # (the rate its bytes a day are figured at until a segment opens)
            break
        size = reader.h[0]
        names.pop()
        r.bytes -= size
        r.nseg -= 1
        if reader.bad:
            quarantine(st, path, r.name, "no block reads right")
        else:
            note(st, "{}: removed segment {} with no whole block".format(r.name, name))
            st.torn += 1
            _rm(path)
    if names:
        r.first = names[0]


def _last_time(st, r, reader, path, name):
    """The time of the last good row of segment ``path`` (every block checked), or None if it has none."""
    h = reader.open(path, st, name)
    t = None
    try:
        while True:
            n = reader.next()
            if n == 0:
                break
            if n < 0:
                continue
            if h[4] or h[7] == _DENSE:  # rate, timed and a rollup's dense rows: the last one's
                t = reader.time(reader.count() - 1)
            else:
                buf = reader.buf
                end = _BLK + n - 1  # the last line's "\n"
                start = end
                while start > _BLK and buf[start - 1] != 10:
                    start -= 1
                tab = start
                while tab < end and buf[tab] != 9:
                    tab += 1
                try:
                    t = int(bytes(buf[start:tab])) + reader.shift
                except ValueError:
                    pass
    finally:
        reader.close()
    if reader.torn:
        st.torn += 1
        note(st, "{}: torn end of {} ignored ({} bytes)".format(r.name, name, reader.torn))
    note_corrupt(st, r, name, reader)
    return t


def note(st, msg):
    st.log.warning("store", msg)
    if not st.notes:
        st.notes = []
    st.notes.append(msg)
    if len(st.notes) > 4:
        st.notes.pop(0)


def quarantine(st, path, name, reason):
    base = st.root  # (a segment on the SD card: its quarantine is on the card, sd.py)
    if not path.startswith(base + "/"):
        base = path[:path.rfind("/", 0, path.rfind("/"))]
    q = base + "/quarantine"
    _mkdir(q)
    names = [e[0] for e in os.ilistdir(q)]
    names.sort()
    while len(names) >= 8:
        _rmtree(q + "/" + names.pop(0))
    try:
        os.rename(path, "{}/{}-{}".format(q, st.clock(), path[len(base) + 1:].replace("/", "-")))
    except OSError:
        _rmtree(path)
    st.quarantined += 1
    note(st, "{}: quarantined {} ({})".format(name, path, reason))
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


def crc32_py(data, c=0):
    """CRC-32 (as zlib/binascii, ``c`` the CRC so far), for firmware built without ``binascii.crc32``."""
    c ^= 0xFFFFFFFF
    for b in data:
        c ^= b
        for _ in range(8):
            c = (c >> 1) ^ (0xEDB88320 if c & 1 else 0)
    return c ^ 0xFFFFFFFF
