"""The store on the MicroPython unix port: round trip, recovery of torn tails, quarantine, retention, cursors,
a full littlefs file system (os.VfsLfs2 over a block device in RAM), and reading back through export."""

import array
import os
import struct

from ramflash import RamFlash
from devtest import StubConfig, quiet_log, tmpdir
from sensorbox.device.store import core, export

T0 = 1700000000000


def frames(seq, n):
    """Deterministic accelerometer frames: every value is a function of its sequence number."""
    a = array.array("h", bytes(6 * n))
    for i in range(n):
        s = seq + i
        a[3 * i] = s % 30000
        a[3 * i + 1] = -(s % 20000)
        a[3 * i + 2] = (s * 7) % 32000
    return a


def make(root, clock=None, flash=None, seg=core.SEG_BYTES, **cfg):
    log = quiet_log()
    st = core.Store(root, log, clock or (lambda: T0), flash, seg)
    st.configure(StubConfig(**cfg))
    st.open()
    return st


def each_row(st, name, **params):
    """Rows of a resource through export's CSV stream, parsed chunk by chunk (little RAM): yields the column
    names, then each row as a list of ints."""
    p = export.plan(st, name, dict(params, format="csv"), T0)
    rest = b""
    head = True
    for c in export.stream(st, p):
        lines = (rest + bytes(c)).split(b"\n")
        rest = lines.pop()
        for ln in lines:
            if head:
                head = False
                yield ln.decode().split(",")
            else:
                yield [int(x) for x in ln.split(b",")]
    assert rest == b""


def read_all(st, name, **params):
    it = each_row(st, name, **params)
    return next(it), list(it)


def times(st, name="accel"):
    it = each_row(st, name)
    next(it)
    return [row[0] for row in it]


def last_row(st, name, check=None):
    """(number of rows, first row, last row), calling check(row) on each."""
    it = each_row(st, name)
    next(it)
    n = 0
    first = last = None
    for row in it:
        if check:
            check(row)
        if first is None:
            first = row
        last = row
        n += 1
    return n, first, last


def test_round_trip_and_reopen():
    root = tmpdir("s")
    st = make(root)
    st.append_frames(T0, 0, 1, 50, memoryview(frames(0, 100)), 100)
    st.append_frames(T0 + 2000, 100, 1, 50, memoryview(frames(100, 50)), 50)
    st.append_frames(T0 + 4000, 200, 1, 50, memoryview(frames(200, 10)), 10)  # a gap: 50 frames lost
    st.on_bus("predictions", T0 + 500, (3, 870))
    st.on_bus("predictions", T0 + 500, (4, 990))  # same ms: stored 1 ms later, order kept
    st.on_bus("soundlevel", T0 + 1000, (6000, 5000, 7000, 6500, 5900, 5100))
    st.on_bus("features", T0 + 1000, (1, -2, 40000))  # out of int16: clamped
    st.on_bus("events", T0 + 1200, {"type": "boot", "why": "test, \"quoted\""})
    st.flush()
    assert st.accel.gaps == 1 and st.accel.nseg == 2
    st.close()
    st = make(root)
    r = st.accel
    assert r.nseg == 2 and r.last_t == T0 + 4000 + 9 * 20, r.last_t
    cols, rows = read_all(st, "accel")
    assert cols == ["t", "x", "y", "z"]
    assert len(rows) == 160
    want = frames(0, 150)
    for i in range(150):
        assert rows[i] == [T0 + 20 * i, want[3 * i], want[3 * i + 1], want[3 * i + 2]], (i, rows[i])
    assert rows[150][0] == T0 + 4000 and rows[150][1] == 200
    cols, rows = read_all(st, "predictions")
    assert rows == [[T0 + 500, 3, 870], [T0 + 501, 4, 990]], rows
    cols, rows = read_all(st, "features")
    assert cols == ["t", "f0", "f1", "f2"] and rows == [[T0 + 1000, 1, -2, 32767]], (cols, rows)
    p = export.plan(st, "events", {}, T0)
    import json

    ev = json.loads(b"".join(bytes(c) for c in export.stream(st, p)))
    assert ev == [{"t": T0 + 1200, "type": "boot", "why": "test, \"quoted\""}], ev
    # time range, column choice and since
    cols, rows = read_all(st, "accel", start=str(T0 + 100), end=str(T0 + 200), columns="z,t")
    assert cols == ["z", "t"] and [x[1] for x in rows] == [T0 + 100 + 20 * i for i in range(5)]
    cols, rows = read_all(st, "accel", since=str(T0 + 2980))
    assert rows[0][0] == T0 + 4000 and len(rows) == 10


def test_recovery_torn_tails_and_quarantine():
    root = tmpdir("s")
    st = make(root)
    st.append_frames(T0, 0, 1, 50, memoryview(frames(0, 100)), 100)
    st.on_bus("events", T0 + 5, {"type": "a"})
    st.on_bus("predictions", T0 + 5, (1, 2))
    st.flush()
    seg = "{}/accel/{}.seg".format(root, T0)
    # A crash mid-write: half a frame at the end of accel, a partial line in events, half a prediction row.
    with open(seg, "ab") as f:
        f.write(b"\x01\x02\x03")
    with open("{}/events/{}.seg".format(root, T0 + 5), "ab") as f:
        f.write(b"1700000000009\t{\"type\": \"tor")
    with open("{}/predictions/{}.seg".format(root, T0 + 5), "ab") as f:
        f.write(b"\x10\x00\x00")
    # A segment whose creation was cut short, a foreign file, a corrupt header, a stray directory.
    with open("{}/accel/{}.seg".format(root, T0 + 9000), "wb") as f:
        f.write(b"SBS")
    with open(root + "/accel/notes.txt", "w") as f:
        f.write("hello")
    with open("{}/features/{}.seg".format(root, T0), "wb") as f:
        f.write(b"SBS1" + bytes(28) + bytes(40))
    os.mkdir(root + "/predictions/junk")
    with open(root + "/cursors.json", "w") as f:
        f.write("{not json")
    st2 = make(root)  # the writer never closed: this is the restart after a crash
    assert st2.quarantined == 4, st2.notes
    assert st2.torn >= 2
    q = os.listdir(root + "/quarantine")
    assert len(q) == 4, q
    assert "notes.txt" not in os.listdir(root + "/accel") and len(os.listdir(root + "/accel")) == 1
    cols, rows = read_all(st2, "accel")
    assert len(rows) == 100 and rows[-1][1] == 99
    p = export.plan(st2, "events", {}, T0)
    assert b"".join(bytes(c) for c in export.stream(st2, p)) == b'[{"t":1700000000005,"type": "a"}]'
    assert read_all(st2, "predictions")[1] == [[T0 + 5, 1, 2]]
    # Writing resumes in new segments; the torn one is never appended to.
    st2.append_frames(T0 + 10000, 0, 2, 50, memoryview(frames(0, 5)), 5)
    st2.flush()
    assert len(read_all(st2, "accel")[1]) == 105
    st3 = make(root)
    assert st3.quarantined == 0 and st3.accel.nseg == 2
    # The quarantine keeps only the newest 8 files.
    for i in range(12):
        with open(root + "/accel/x{}".format(i), "w") as f:
            f.write("x")
    make(root)
    assert len(os.listdir(root + "/quarantine")) == 8


def test_retention_budget_keeps_newest_and_counts():
    root = tmpdir("s")
    st = make(root, store__accel_kb=16)  # segments of 4 KB (a quarter of the budget)
    seq = 0
    for k in range(60):  # 60 x 100 frames x 6 B = 36 KB
        st.append_frames(T0 + seq * 20, seq, 1, 50, memoryview(frames(seq, 100)), 100)
        seq += 100
        st.flush()
    r = st.accel
    assert r.bytes <= 16 * 1024, r.bytes
    assert r.ret_segs >= 4 and r.forced == 0
    assert st.status()["retention_deleted_segments"] == r.ret_segs
    total = 0
    for n in os.listdir(r.dir):
        total += os.stat(r.dir + "/" + n)[6]
    assert total == r.bytes
    n, first, last = last_row(st, "accel")
    assert last[1] == (seq - 1) % 30000  # the newest frame is there
    assert last[0] - first[0] == (n - 1) * 20  # contiguous: no hole inside what is kept


def test_cursor_holds_within_floor_and_counts_forced_loss():
    root = tmpdir("s")
    cap = [10 ** 9]

    def flash():  # a file system of cap[0] bytes holding only the store
        used = 0
        for r in st.res:
            used += r.bytes
        return cap[0], cap[0] - used

    st = None
    st = make(root, flash=flash, store__accel_kb=32, store__events_kb=32, store__min_free_kb=100)
    for i in range(100):
        st.on_bus("events", T0 + i * 1000, {"type": "e", "i": i, "pad": "x" * 200})
        if i % 4 == 0:
            st.flush()
    seq = 0
    for k in range(20):
        st.append_frames(T0 + seq * 20, seq, 1, 50, memoryview(frames(seq, 200)), 200)
        seq += 200
        st.flush()
    ev = st.by_name["events"]
    assert ev.nseg >= 3 and st.accel.nseg >= 3, (ev.nseg, st.accel.nseg)
    assert st.cursor("outbox", "events", T0) == T0
    ev_first = ev.first
    used = st.status()["bytes"]
    cap[0] = used + 100 * 1024 - 12000  # 12 KB short of the floor: old accel data can cover it
    st.retain()
    assert flash()[1] >= 100 * 1024
    assert ev.first == ev_first and ev.ret_segs == 0, "unread events must be held back"
    assert st.accel.ret_segs >= 1 and st.accel.forced == 0
    # Shorter still: accel has only its open segment left, so held events go, counted against the cursor.
    st.advance("outbox", T0 + 10000)
    cap[0] -= 12000
    st.retain()
    assert flash()[1] >= 100 * 1024
    assert ev.forced >= 1 and st.cursors["outbox"][2] == ev.forced, (ev.forced, st.cursors)
    assert st.accel.nseg == 1
    st.save_cursors()
    st2 = make(root)
    assert st2.cursors["outbox"][1] == T0 + 10000 and st2.cursors["outbox"][2] == ev.forced


def test_full_littlefs_keeps_sampling_newest():
    bd = RamFlash(96, 512)  # 48 KB of flash
    os.VfsLfs2.mkfs(bd)
    os.mount(os.VfsLfs2(bd), "/flash")
    try:
        def stats():
            s = os.statvfs("/flash")
            return s[0] * s[2], s[0] * s[3]

        # Budgets far larger than the flash: only the free floor and full-flash handling can save it.
        st = make("/flash/store", flash=stats, seg=4096, store__accel_kb=1000, store__min_free_kb=0,
                  store__events_kb=1000)
        seq = 0
        for k in range(120):  # 120 x 60 frames x 6 B = 43 KB of accel, plus events
            st.append_frames(T0 + seq * 20, seq, 1, 50, memoryview(frames(seq, 60)), 60)
            seq += 60
            st.on_bus("events", T0 + seq * 20, {"type": "tick", "k": k})
            st.flush()
        r = st.accel
        assert r.errors >= 1 or r.ret_segs >= 1
        assert r.ret_segs >= 3, (r.ret_segs, r.errors)
        def check(row):
            s = (row[0] - T0) // 20
            assert row[1:] == [s % 30000, -(s % 20000), (s * 7) % 32000], row

        n, first, last = last_row(st, "accel", check)
        assert last[0] == T0 + (seq - 1) * 20, "the newest frame must be stored"
        st.close()
        st2 = make("/flash/store", flash=stats, seg=4096)
        assert st2.quarantined == 0
        assert last_row(st2, "accel", check)[0] == n
    finally:
        os.umount("/flash")


def test_bus_buffer_full_is_written_early_and_bad_rows_counted():
    st = make(tmpdir("s"))
    for i in range(100):
        st.on_bus("predictions", T0 + i, (1, i))
    r = st.by_name["predictions"]
    assert r.lost_rows == 0 and r.rows >= 100 - 256 // 14  # written in batches as the buffer filled
    st.on_bus("predictions", T0 + 1000, (1, 2, 3))  # wrong width: refused, counted
    st.on_bus("events", T0 + 1000, {"type": "big", "x": "y" * 600})  # too big: refused, counted
    assert r.lost_rows == 1 and st.by_name["events"].lost_rows == 1
    st.flush()
    assert [row[2] for row in read_all(st, "predictions")[1]] == list(range(100))


def test_header_layout():
    st = make(tmpdir("s"))
    st.append_frames(T0, 7, 3, 50, memoryview(frames(7, 2)), 2)
    st.flush()
    with open("{}/accel/{}.seg".format(st.root, T0), "rb") as f:
        b = f.read()
    assert len(b) == 32 + 12
    assert struct.unpack_from("<4sBBHHHqII", b) == (b"SBS1", 1, 1, 3, 50, 6, T0, 7, 3)


class FakeSensor:
    """What the store reads of a Sensor: ``ring``, ``driver``, ``generation`` (sampler.py)."""

    def __init__(self, ring):
        self.ring = ring
        self.driver = object()
        self.generation = 1


def test_poll_from_ring_gaps_and_restart():
    from sensorbox.device.sensors.ring import Batch, SampleRing

    st = make(tmpdir("s"))
    ring = SampleRing(3, 256, 50)
    ring.reset(50)
    sensor = FakeSensor(ring)
    batch = Batch(3, 32)

    def feed(seq, n, t0=T0):
        batch.data[:] = frames(seq, 32)
        batch.n = n
        batch.seq = seq
        batch.t_ms = t0 + seq * 20
        ring.write(batch)

    feed(0, 32)
    feed(32, 32)
    st.poll(sensor)
    feed(70, 32)  # frames 64..69 lost in the sensor: a gap
    st.poll(sensor)
    st.flush()
    assert times(st) == [T0 + 20 * s for s in list(range(64)) + list(range(70, 102))]
    assert st.accel.gaps == 1 and st.accel.nseg == 2
    # The reader falls behind more than the ring holds: what was overwritten is a gap, not a crash.
    for k in range(12):
        feed(102 + 32 * k, 32)
    st.poll(sensor)
    # Sampling restarts (config change): seq starts again at 0 with a new clock; nothing old is re-stored.
    sensor.generation = 2
    ring.reset(50)
    st.poll(sensor)
    feed(0, 10, T0 + 100000)
    st.poll(sensor)
    st.flush()
    t = times(st)
    assert t == sorted(t) and len(set(t)) == len(t)
    assert t[-10:] == [T0 + 100000 + 20 * s for s in range(10)]
    assert t[-11] == T0 + (102 + 32 * 12 - 1) * 20  # the newest frame before the restart
    assert st.accel.nseg == 4


def test_crc32_fallback_matches_binascii():
    import binascii

    for data in (b"", b"SBS1" + bytes(24), bytes(range(28)), b"\xff" * 28):
        assert core.crc32_py(data) == binascii.crc32(data) & 0xFFFFFFFF
