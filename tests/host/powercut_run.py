# MicroPython script for tests/host/test_proof_powercut.py: simulated power cuts under the real store.
#     micropython powercut_run.py CUTS SEED
# The store (bundle .mpy) runs on a file system in RAM mounted at /pc that models flash which keeps only what was
# synced: each file's durable bytes change at flush() or close(); metadata (create, rename, remove) is durable at
# once, as littlefs commits it. A power cut comes after a randomly chosen write() (any write: a block's header or
# payload, a label record, a cursor file), in the middle of any operation. Each cut makes one image per byte offset
# of that last write: the unsynced bytes written to that file before it are kept, the last write up to the offset
# and then, by turns, nothing (truncated), 0xFF (erased flash) or random bytes (a page half programmed); every other
# file keeps only its durable bytes. Each image is opened by a fresh store (recovery) and checked row by row against
# what was acknowledged: accel frames, predictions and events whose flush point returned, labels whose add or
# delete returned, the saved cursor. Then the writer goes on from one of the images, as a device after a reboot.
# Every value is a function of its time (as in store_kill_writer.py), so no garbage can pass as a row. Segments are
# coded (issue 16.1) and labels cover the frames just written, so retention (a 3 KB budget) keeps their segments
# (pins, 16.2; a 2 KB budget): their acknowledged frames must survive every cut; after the newest label, every one.
# Prints "P <images> <cut points> <frames checked> <labels checked> <lost> <garbage>" at the end; "F <why>" on a
# failure (exit 1).
import os
import sys

from sensorbox.device.log import Log
from sensorbox.device.store import core, export, meta
from writer_frames import batch

sys.path.append(__file__.rpartition("/")[0] + "/../support")  # testrng: the tests' random numbers
from testrng import Rng, spread  # noqa: E402

T0 = 1700000000000
CUTS = int(sys.argv[1])
seed = int(sys.argv[2])
rand = Rng(spread(seed)).below


class Cut(Exception):
    pass


class File:
    def __init__(self, fs, path, mode):
        self.fs = fs
        self.path = path
        self.text = "b" not in mode
        if "w" in mode:
            fs.files[path] = [bytearray(), b"", []]
        elif path not in fs.files:
            raise OSError(2)
        self.e = fs.files[path]
        self.pos = len(self.e[0]) if "a" in mode else 0

    def write(self, b, off=0, n=-1):
        if isinstance(b, str):
            b = b.encode()
        b = bytes(b)
        e = self.e
        cur = e[0]
        end = self.pos + len(b)
        if end > len(cur):
            cur.extend(bytes(end - len(cur)))
        cur[self.pos:end] = b
        e[2].append((self.pos, b))
        self.pos = end
        self.fs.wrote(self.path)
        return len(b)

    def read(self, n=-1):
        cur = self.e[0]
        end = len(cur) if n is None or n < 0 else min(len(cur), self.pos + n)
        r = bytes(cur[self.pos:end])
        self.pos = end
        return r.decode() if self.text else r

    def readinto(self, buf, n=-1):
        cur = self.e[0]
        n = len(buf) if n < 0 else min(n, len(buf))
        end = min(len(cur), self.pos + n)
        k = end - self.pos
        if k > 0:
            buf[:k] = cur[self.pos:end]
        self.pos = end
        return k

    def seek(self, o, whence=0):
        self.pos = o if whence == 0 else (self.pos + o if whence == 1 else len(self.e[0]) + o)
        return self.pos

    def tell(self):
        return self.pos

    def flush(self):
        self.e[1] = bytes(self.e[0])
        self.e[2] = []

    def close(self):
        self.flush()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


class FS:
    """Files: path -> [what the process sees, the durable bytes, the writes since the last sync]."""

    def __init__(self):
        self.files = {}
        self.dirs = {""}
        self.countdown = -1
        self.last = None

    def wrote(self, path):
        self.last = path
        if self.countdown > 0:
            self.countdown -= 1
            if self.countdown == 0:
                raise Cut()

    def mount(self, readonly, mkfs):
        pass

    def umount(self):
        pass

    def _p(self, path):
        return path.strip("/")

    def open(self, path, mode):
        p = self._p(path)
        if p in self.dirs:
            raise OSError(21)
        if p.rpartition("/")[0] not in self.dirs:
            raise OSError(2)
        return File(self, p, mode)

    def stat(self, path):
        p = self._p(path)
        if p in self.dirs:
            return (0x4000, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        if p in self.files:
            return (0x8000, 0, 0, 0, 0, 0, len(self.files[p][0]), 0, 0, 0)
        raise OSError(2)

    def ilistdir(self, path):
        p = self._p(path)
        if p not in self.dirs:
            raise OSError(2)
        out = []
        for d in self.dirs:
            if d and d.rpartition("/")[0] == p:
                out.append((d.rpartition("/")[2], 0x4000, 0, 0))
        for f in self.files:
            if f.rpartition("/")[0] == p:
                out.append((f.rpartition("/")[2], 0x8000, 0, len(self.files[f][0])))
        return iter(out)

    def mkdir(self, path):
        p = self._p(path)
        if p in self.dirs or p in self.files:
            raise OSError(17)
        self.dirs.add(p)

    def rmdir(self, path):
        p = self._p(path)
        for x in list(self.dirs) + list(self.files):
            if x.startswith(p + "/"):
                raise OSError(39)
        self.dirs.remove(p)

    def remove(self, path):
        p = self._p(path)
        if p not in self.files:
            raise OSError(2)
        del self.files[p]

    def rename(self, a, b):
        a, b = self._p(a), self._p(b)
        if a in self.files:
            self.files[b] = self.files.pop(a)
            return
        if a not in self.dirs:
            raise OSError(2)
        for x in list(self.dirs):
            if x == a or x.startswith(a + "/"):
                self.dirs.remove(x)
                self.dirs.add(b + x[len(a):])
        for x in list(self.files):
            if x.startswith(a + "/"):
                self.files[b + x[len(a):]] = self.files.pop(x)

    def statvfs(self, path):
        return (4096, 4096, 4096, 2048, 2048, 0, 0, 0, 0, 255)

def image(files, last, k, fill):
    """The files after a power cut that tears the last write (to file ``last``) at byte ``k`` (``fill``: 0 nothing,
    1 0xFF, 2 random bytes after it): every file's durable bytes, and for ``last`` its writes since its last sync,
    the last one cut."""
    out = {}
    for p in files:
        e = files[p]
        b = bytearray(e[1])
        if p == last:
            w = e[2]
            for i in range(len(w)):
                off, data = w[i]
                if i == len(w) - 1:
                    data = data[:k] + (b"" if fill == 0 else bytes(
                        (255 if fill == 1 else rand(256)) for _ in range(len(data) - k)))
                if off + len(data) > len(b):
                    b.extend(bytes(off + len(data) - len(b)))
                b[off:off + len(data)] = data
        out[p] = [b, bytes(b), []]
    return out


def offsets(n, every):
    """Where to tear a write of ``n`` bytes: every offset, or (short runs) the first and last 12, and 12 between."""
    if every or n <= 36:
        return list(range(n + 1))
    return sorted(set(list(range(12)) + list(range(n - 11, n + 1)) + [12 + rand(n - 24) for _ in range(12)]))


class Cfg:
    def get(self, key):
        return {"store.flush_ms": 200, "store.min_free_kb": 0, "store.accel_kb": 2, "store.predictions_kb": 4,
                "store.events_kb": 4, "store.features_kb": 0, "store.soundlevel_kb": 0, "store.compress": True,
                "store.soundlevel_1m_kb": 0, "store.soundlevel_1h_kb": 0, "store.predictions_1m_kb": 0,
                "store.predictions_1h_kb": 0, "capture.classes": "", "capture.sound_db": 0, "board.sdcard": "",
                "store.soundclass_kb": 0, "store.clips_kb": 0, "clip.enabled": False}[key]


def fail(why):
    print("F", why)
    sys.exit(1)


def open_store():
    st = core.Store("/pc/store", Log(lambda: T0, None, echo=False), lambda: T0, None, 2048)
    st.configure(Cfg())
    st.open()
    return st


def rows(st, name):
    p = export.plan(st, name, {}, T0, False)
    for _ in export.prepare(st, p):
        pass
    out = []
    for t, v in export._rows(st, p):
        if t is not None:
            out.append((t, v))
    return out


def events(st):
    p = export.plan(st, "events", {}, T0)
    import json

    out = []
    for t, v in export._event_rows(st, p):
        if t is not None:
            if json.loads(v) != {"type": "tick", "seq": (t - T0) // 20}:
                stats["garbage"] += 1
                fail("event {} {} is not one that was written".format(t, v))
            out.append(t)
    return out


class State:
    """What was acknowledged: accel runs (first seq, end of the acknowledged seqs), prediction and event times,
    live labels {id: (start, end, name)}, the saved cursor; and what was in flight at the cut."""

    def __init__(self):
        self.runs = []
        self.preds = []
        self.evs = []
        self.labels = {}
        self.cursor = None
        self.inflight = None
        self.nlab = 0
        self.last_end = T0  # the end of the newest label added


S = State()
stats = {"images": 0, "cuts": 0, "frames": 0, "labels": 0, "lost": 0, "garbage": 0, "pinned": 0}


def check(st):
    acc = rows(st, "accel")
    prev = None
    have = set()
    pin_end = 0  # frames before the end of the newest label may have holes (pinned segments kept, others gone)
    for i in S.labels:
        pin_end = max(pin_end, (S.labels[i][1] - T0 + 19) // 20)
    for t, v in acc:
        s = (t - T0) // 20
        if (t - T0) % 20 or s % 997 < 3 or v != (s % 30000, -((s * 40503) % 20000), (s * 7) % 32000):
            stats["garbage"] += 1
            fail("accel row {} {} is not one that was written".format(t, v))
        if prev is not None and t <= prev:
            fail("accel times not increasing at {}".format(t))
        prev = t
        have.add(s)
    first = None  # the oldest frame after the labels: retention deletes the oldest unpinned segment first
    for t, v in acc:
        if (t - T0) // 20 >= pin_end:
            first = (t - T0) // 20
            break
    for start, end in S.runs:
        for s in range(max(start, first if first is not None else end), end):
            if s % 997 >= 3:
                stats["frames"] += 1
                if s not in have:
                    stats["lost"] += 1
                    fail("acknowledged frame {} lost (run {}..{})".format(s, start, end))
    for i in S.labels:  # labelled (pinned) frames: never deleted
        a, e, name = S.labels[i]
        for start, end in S.runs:
            for s in range(max(start, (a - T0 + 19) // 20), min(end, (e - T0 + 19) // 20)):
                if s % 997 >= 3:
                    stats["pinned"] += 1
                    if s not in have:
                        stats["lost"] += 1
                        fail("pinned frame {} of label {} lost".format(s, i))
    pr = rows(st, "predictions")
    pt = set()
    for t, v in pr:
        s = (t - T0) // 20
        if v != (s % 7, s % 1000):
            stats["garbage"] += 1
            fail("prediction row {} {} is not one that was written".format(t, v))
        pt.add(t)
    if S.preds and not pr:
        fail("acknowledged predictions lost: none stored")
    lo = pr[0][0] if pr else None
    for t in S.preds:
        if lo is not None and t >= lo and t not in pt:
            stats["lost"] += 1
            fail("acknowledged prediction {} lost".format(t))
    ev = events(st)
    lo = ev[0] if ev else None
    evs = set(ev)
    for t in S.evs:
        if lo is not None and t >= lo and t not in evs:
            stats["lost"] += 1
            fail("acknowledged event {} lost".format(t))
    got = {}
    for a, r in meta.label_rows(st, export.plan(st, "labels", {}, T0)):
        if a is not None:
            got[r[2]] = (a, r[0], r[1])
    for i in S.labels:
        stats["labels"] += 1
        if got.get(i) != S.labels[i]:
            fi = S.inflight
            if not (fi and fi[0] == "del" and fi[1] == i and i not in got):
                fail("acknowledged label {} {} is {}".format(i, S.labels[i], got.get(i)))
    for i in got:
        if i not in S.labels:
            fi = S.inflight
            if not (fi and fi[0] == "add" and got[i] == fi[1]):
                stats["garbage"] += 1
                fail("label {} {} was never acknowledged".format(i, got[i]))
    c = st.cursors.get("c")
    if S.cursor is not None and (c is None or c[1] < S.cursor):
        fail("acknowledged cursor {} is {}".format(S.cursor, c))


def resume(st):
    """After a reboot: what this image holds is what the device has (what was in flight may or may not be there,
    and check() accepted either); runs whose frames retention deleted are dropped, unless a label still pins some
    of their frames (check() looks for those in every run)."""
    got = {}
    for a, r in meta.label_rows(st, export.plan(st, "labels", {}, T0)):
        if a is not None:
            got[r[2]] = (a, r[0], r[1])
    S.labels = got
    S.inflight = None
    c = st.cursors.get("c")
    S.cursor = c[1] if c else None
    acc = rows(st, "accel")
    if acc:
        first = (acc[0][0] - T0) // 20
        keep = []
        for x in S.runs:
            pinned = False
            for i in S.labels:
                a, e, name = S.labels[i]
                pinned = pinned or (x[0] < (e - T0 + 19) // 20 and (a - T0 + 19) // 20 < x[1])
            if x[1] > first or pinned:
                keep.append(x)
        S.runs = keep
    st.reading = None  # (the check's export: with this frozen clock it would hold retention off for good)


def work(st, steps):
    """The writer: accel batches (with in-run gaps), a prediction per batch, events, flush points, labels added and
    deleted, a cursor advanced and saved."""
    last = st.accel.last_t
    seq = 0 if last is None else (last - T0) // 20 + 4
    S.runs.append([seq, seq])
    run = S.runs[-1]
    preds = []
    evs = []
    buf = __import__("array").array("h", bytes(6 * 40))
    mv = memoryview(buf)
    for _ in range(steps):
        want = 1 + rand(40)
        ev = rand(4) == 0
        seq, t = batch(st, buf, mv, seq, want, seed, ev)
        if t is not None:
            preds.append(t)
            if ev:
                evs.append(t)
        while seq % 997 < 3:
            seq += 1
        r = rand(12)
        if r < 4:
            st.flush()
            run[1] = seq
            S.preds.extend(preds)
            S.evs.extend(evs)
            preds = []
            evs = []
            S.preds = S.preds[-300:]
            S.evs = S.evs[-100:]
        elif r == 4 and T0 + 20 * seq > max(S.last_end, st.accel.seg_t0 if st.accel.f else 0) + 20:  # (no overlap)
            S.nlab += 1
            want = (max(S.last_end, T0 + 20 * (seq - 20 - rand(60)), st.accel.seg_t0 if st.accel.f else 0),
                    T0 + 20 * seq, "L{}".format(rand(100000)))  # (frames of the open segment: still stored)
            S.last_end = want[1]
            S.inflight = ("add", want)
            lab = meta.label_add(st, {"start": want[0], "end": want[1], "label": want[2]})
            S.labels[lab["id"]] = want
            S.inflight = None
        elif r == 5 and S.labels:
            i = list(S.labels)[rand(len(S.labels))]
            S.inflight = ("del", i)
            meta.label_delete(st, i)
            del S.labels[i]
            S.inflight = None
        elif r == 6:
            st.cursor("c", "predictions", T0)
            st.advance("c", T0 + 20 * seq)
            st.save_cursors()
            S.cursor = st.cursors["c"][1]


EVERY = len(sys.argv) > 3 and sys.argv[3] == "every"
fs = FS()
os.mount(fs, "/pc")
st = open_store()
while stats["images"] < CUTS:
    fs.countdown = 1 + rand(60)
    try:
        work(st, 1000)
        fs.countdown = -1
        continue  # (no cut came: write on)
    except Cut:
        pass
    fs.countdown = -1
    stats["cuts"] += 1
    base = fs.files
    last = fs.last
    w = base[last][2] if last in base else []
    n = len(w[-1][1]) if w else 0
    ks = offsets(n, EVERY)
    chosen = ks[rand(len(ks))]
    for k in ks:
        fs.files = image(base, last, k, k % 3)
        st = open_store()
        check(st)
        stats["images"] += 1
    fs.files = image(base, last, chosen, chosen % 3)  # a reboot after that cut: the writer goes on from it
    st = open_store()
    check(st)
    resume(st)
print("P", stats["images"], stats["cuts"], stats["frames"], stats["labels"], stats["lost"], stats["garbage"],
      stats["pinned"])
