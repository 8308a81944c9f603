"""The store's class table: a stable id for every class name any model has used, so that a stored prediction
(its class id) is named by the model that made it, whatever model runs later. Loaded only while it works: when a
model starts classifying (``ids``), for a name a reader does not find in the running model (``name_of``), for the
resource listing and exports (``names``); nothing of it stays in RAM.

``store/classes.txt``, one line per class: ``<id>\\t<name as a JSON string>\\t<CRC-32 of what is before this tab,
8 hex digits>\\n``. A name keeps its id for good
(two models with a class "walk" share it); ids are 0..``MAX_IDS - 1``. The first model the table meets gets ids
0, 1, ... in its own order, so predictions stored before the table existed (class indexes of the model that ran)
keep the names they had. Names are kept to ``NAME_MAX`` bytes. When every id is taken, the ids that no stored
prediction uses any more are freed first (retention deleted their rows). A line that does not read right (a
damaged file) is left out: the file as it was goes to ``quarantine/`` and the good lines are written again. The
file is only ever replaced whole (a ``.tmp`` and a rename), never appended to, so a power cut leaves either the
old table or the new one.
"""

import array
import json
import os

from micropython import const

from sensorbox.device.store.core import crc32

# the segment format's constants (as core.py defines them: no names to import)
_BLK = const(8)

MAX_IDS = const(256)
NAME_MAX = const(64)
_LINE = const(410)  # longest good line: "<id>\t", a name of NAME_MAX bytes as JSON (escapes: 6 bytes each), the CRC


def _path(st):
    return st.root + "/classes.txt"


def _short(name):
    """``name`` cut to NAME_MAX bytes of UTF-8 (on a character boundary)."""
    b = name.encode()
    if len(b) <= NAME_MAX:
        return name
    n = NAME_MAX
    while n and b[n] & 0xC0 == 0x80:
        n -= 1
    return b[:n].decode()


def _lines(st, info):
    """Yield (id, name) of every line that reads right, read 128 bytes at a time (a damaged file never comes
    into RAM whole). ``info[0]`` counts the lines that do not read right."""
    try:
        f = open(_path(st), "rb")
    except OSError:
        return
    seen = bytearray(MAX_IDS // 8)
    with f:
        pend = b""
        while True:
            more = f.read(128)
            pend += more
            while True:
                nl = pend.find(b"\n")
                if nl < 0:
                    break
                line = pend[:nl]
                pend = pend[nl + 1:]
                v = _parse(line, seen)
                if v is None:
                    info[0] += 1
                else:
                    yield v
            if len(pend) > _LINE:  # no line end in sight: not a line of this table
                info[0] += 1
                pend = b""
                while True:  # skip to the next line end
                    more = f.read(128)
                    nl = more.find(b"\n")
                    if not more or nl >= 0:
                        pend = more[nl + 1:] if nl >= 0 else b""
                        break
            if not more:
                if pend:
                    info[0] += 1  # a last line without its end
                return


def _line(k, name):
    b = "{}\t{}".format(k, json.dumps(name)).encode()
    return b + "\t{:08x}\n".format(crc32(b)).encode()


def _parse(line, seen):
    tab = line.find(b"\t")
    end = line.rfind(b"\t")
    try:
        if len(line) - end != 9 or int(line[end + 1:], 16) != crc32(line[:end]):
            return None
        k = int(line[:tab]) if 0 < tab <= 3 else -1
        name = json.loads(line[tab + 1:end]) if 0 <= k < MAX_IDS else None
    except ValueError:  # not a number, not JSON, not UTF-8
        return None
    if not isinstance(name, str) or not 0 < len(name) or len(name.encode()) > NAME_MAX or seen[k >> 3] & (1 << (k & 7)):
        return None
    seen[k >> 3] |= 1 << (k & 7)
    return k, name


def ids(st, names):
    """The ids of class ``names`` (a model's classes, in order) as an ``array('h')``; names the table does not
    have yet get new ids (the table is written again). Raises OSError when the table cannot be written."""
    out = array.array("h", [-1] * len(names))
    want = {}
    for i in range(len(names)):
        want[_short(names[i])] = i
    used = bytearray(MAX_IDS // 8)
    info = [0]
    for k, name in _lines(st, info):
        used[k >> 3] |= 1 << (k & 7)
        i = want.get(name)
        if i is not None:
            out[i] = k
    new = [i for i in range(len(names)) if out[i] < 0]
    if not new and not info[0]:
        return out
    if len(new) > MAX_IDS - _count(used):
        _unref(st, used, out)
    kept = bytearray(used)  # the lines to write again
    k = 0
    for i in new:
        while k < MAX_IDS and used[k >> 3] & (1 << (k & 7)):
            k += 1
        if k >= MAX_IDS:
            raise OSError("the class table is full ({} names)".format(MAX_IDS))
        out[i] = k
        used[k >> 3] |= 1 << (k & 7)
    _put_table(st, kept, info, [(out[i], _short(names[i])) for i in new])
    return out


def _count(bits):
    n = 0
    for b in bits:
        while b:
            n += b & 1
            b >>= 1
    return n


def _unref(st, used, old):
    """Clear in ``used`` the ids no stored prediction, sound class or rollup row refers to (except ``old``'s):
    retention deleted their rows. Reads every such segment once (rare: only when all ids are taken), after writing
    the rows the RAM buffer holds (the running model's)."""
    from sensorbox.device import lazy

    st.flush()
    reader = lazy.load("sensorbox.device.store.reader")
    lazy.unload("sensorbox.device.store.reader")  # (this function holds it until it returns)
    ref = bytearray(MAX_IDS // 8)
    for k in old:
        if k >= 0:
            ref[k >> 3] |= 1 << (k & 7)
    rd = reader.Reader()
    for r in st.res:  # the resources of class ids (the class rollups: their stage is a segment file there too)
        if r.name != "predictions" and r.name != "soundclass" and r.name[:12] != "predictions_":
            continue
        for e in list(os.ilistdir(r.dir)):
            try:
                h = rd.open(r.dir + "/" + e[0], None, 0)  # (class ids only: no times)
            except (OSError, ValueError):
                continue
            while True:
                n = rd.next()
                if n == 0:
                    break
                for o in range(_BLK + 4, _BLK + n, h[4]):
                    k = rd.buf[o] | rd.buf[o + 1] << 8
                    if k < MAX_IDS:
                        ref[k >> 3] |= 1 << (k & 7)
            rd.close()
    for i in range(len(used)):
        used[i] &= ref[i]


def _put_table(st, used, info, new):
    """The table again: the good lines whose ids are ``used``, then ``new`` [(id, name)]."""
    path = _path(st)
    with open(path + ".tmp", "wb") as out:
        for k, name in _lines(st, [0]):
            if used[k >> 3] & (1 << (k & 7)):
                out.write(_line(k, name))
        for k, name in new:
            out.write(_line(k, name))
    if info[0]:
        st.quarantine(path, "classes", "{} unreadable lines in classes.txt".format(info[0]))
    os.rename(path + ".tmp", path)


def name_of(st, k):
    """The name of class id ``k``, or None."""
    for i, name in _lines(st, [0]):
        if i == k:
            return name
    return None


def names(st):
    """Every name by id (None where an id is free), as the resource listing and exports show them."""
    # Two readings of the file: the first only finds the highest id, so the list is made once at its size before
    # any name is kept (grown name by name, it needed a larger block each time between the names kept so far,
    # which a fragmented heap did not have: 2 KB for 256 ids).
    n = 0
    for k, name in _lines(st, [0]):
        n = max(n, k + 1)
    out = [None] * n
    for k, name in _lines(st, [0]):
        if k < n:
            out[k] = name
    return out


def check(st):
    """When the store opens: a table with lines that do not read right is written again without them."""
    info = [0]
    used = bytearray(MAX_IDS // 8)
    for k, name in _lines(st, info):
        used[k >> 3] |= 1 << (k & 7)
    if info[0]:
        _put_table(st, used, info, ())
