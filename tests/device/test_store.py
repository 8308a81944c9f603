"""The store on the MicroPython unix port: round trip, recovery of torn tails, quarantine, retention, cursors,
labels on a full littlefs file system (os.VfsLfs2 over a block device in RAM), and reading back through export
(a full flash of sampled data: test_store_full_flash.py)."""

# The store, its recovery and export code and this module's own bytecode share the test's heap: at 96wK (the
# device tests' default) the bigger modules of the checksummed format no longer fit beside each other
# (2026-12-05). The app's own heap is held by tests/host/test_heap_budget.py.
HEAPSIZE = "112wK"

import gc
import os

from ramflash import RamFlash
from devtest import StubConfig, inner, quiet_log, renamed, tmpdir
from sensorbox.device.store import core, export
from storetest import T0, count_labels, each_label, each_row, frames, last_row, make, meta_mod, read_all, \
    read_labels_csv, times

_CORE = "sensorbox.device.store.core"  # (the store's private names are looked up as the bundle renamed them)


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
    # readable while the store that wrote them runs (the width of features is learnt from the first value)
    assert read_all(st, "features") == (["t", "f0", "f1", "f2"], [[T0 + 1000, 1, -2, 32767]])
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



def test_six_channel_frames_and_frames_of_the_other_width():
    # accel.gyro on: the accel resource stores x y z gx gy gz (boot.py sets its columns from the ring's channels);
    # an export gives the frames of the current width, those stored before the change are left out
    root = tmpdir("g")
    st = make(root)
    st.append_frames(T0, 0, 1, 50, memoryview(frames(0, 100)), 100)
    st.close()
    st = make(root)
    st.accel.cols = ("x", "y", "z", "gx", "gy", "gz")
    st.accel.ncols = 6
    six = frames(0, 120)  # (read as 60 frames of 6 values)
    st.append_frames(T0 + 5000, 0, 1, 50, memoryview(six), 60)
    st.flush()
    cols, rows = read_all(st, "accel")
    assert cols == ["t", "x", "y", "z", "gx", "gy", "gz"], cols
    assert len(rows) == 60 and rows[0][0] == T0 + 5000, (len(rows), rows[0])
    for i in (0, 31, 59):
        assert rows[i][1:] == list(six[6 * i:6 * i + 6]), (i, rows[i])
    st.close()


def test_an_accel_export_reads_through_a_reader_of_612_bytes():
    # Issue 13: an export's 1 KB reader was what a cut-up heap at the core heap lacked most (120wK soaks). The
    # accelerometer's blocks fit 604 bytes: coded ones at most 302 (decoded in the reader's lower half), raw ones
    # (store.compress off) at most 100 frames of 3 channels, even when more frames come at once.
    for compress in (True, False):
        st = make(tmpdir("a{}".format(compress)), store__compress=compress)
        st.append_frames(T0, 0, 1, 50, memoryview(frames(0, 340)), 340)
        st.flush()
        b = st.spare
        assert len(b) == 612, len(b)
        p = export.plan(st, "accel", {}, T0)
        assert p.rd is None and st.spare is b  # (its count of the rows read through it, then gave it back)
        seen = None
        for c in export.stream(st, p):
            if seen is None and p.rd is not None:
                seen = p.rd.buf  # the store's spare buffer, lent to the export while no job runs
                assert st.spare is None
        assert seen is b and st.spare is b and p.rd is None  # and back at the end
        # While the store's jobs run (they read through it), an export reads through 612 bytes of its own
        setattr(st, renamed("_busy", _CORE), True)
        p = export.plan(st, "accel", {}, T0)
        g = export.stream(st, p)
        for c in g:
            if p.rd is not None:
                break
        assert p.rd.buf is not b and len(p.rd.buf) == 612 and st.spare is b
        g.close()
        assert st.spare is b  # (the store's kept)
        setattr(st, renamed("_busy", _CORE), False)
        want = frames(0, 340)
        i = -1
        for row in each_row(st, "accel"):
            assert i < 0 or row == [T0 + 20 * i, want[3 * i], want[3 * i + 1], want[3 * i + 2]], (compress, i, row)
            i += 1
        assert i == 340, (compress, i)
        st.close()
        st = p = want = None
        gc.collect()


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
    st = None  # (a device has one store)
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
    st2 = None  # (a device has one store)
    st3 = make(root)
    assert st3.quarantined == 0 and st3.accel.nseg == 2
    st3 = None
    # The quarantine keeps only the newest 8 files.
    for i in range(12):
        with open(root + "/accel/x{}".format(i), "w") as f:
            f.write("x")
    make(root)
    assert len(os.listdir(root + "/quarantine")) == 8


def test_retention_budget_keeps_newest_and_counts():
    root = tmpdir("s")
    st = make(root, store__accel_kb=16, store__compress=False)  # segments of 4 KB (a quarter of the budget)
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
    st = make(root, flash=flash, store__accel_kb=32, store__events_kb=32, store__min_free_kb=100,
              store__compress=False)  # (these frames would code into a few hundred bytes)
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
    # No room to save them (a cut-up heap at a request's peak): saved later, never the store service's failure
    st.advance("outbox", T0 + 20000)

    class NoRoom:
        def dumps(obj):
            raise MemoryError("memory allocation failed, allocating 464 bytes")

    real = core.json
    core.json = NoRoom
    try:
        st.save_cursors()  # (raised before)
    finally:
        core.json = real
    assert make(root).cursors["outbox"][1] == T0 + 10000  # the file as it was
    assert inner(st, "_cur_dirty", _CORE)
    st.save_cursors()
    assert make(root).cursors["outbox"][1] == T0 + 20000


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


class FakeSensor:
    """What the store reads of a Sensor: ``ring``, ``driver``, ``generation``, ``pump`` (sampler.py)."""

    def __init__(self, ring):
        self.ring = ring
        self.driver = object()
        self.generation = 1

    def pump(self, batches=0):
        return 0  # the test writes the ring itself


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
    assert st.accel.lost_rows == 0
    st.poll(sensor)
    assert st.accel.lost_rows == 128  # frames 102..229 were overwritten before the store read them: lost, counted
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


def test_features_export_in_the_same_boot_with_their_names():
    from sensorbox.shared import features

    names = features.names(3)
    st = make(tmpdir("s"))
    for i in range(3):
        st.on_bus("features", T0 + 1000 * i, tuple(range(i, i + len(names))))
    st.flush()  # no reopen: the store that wrote them exports them, named as the model input
    cols, rows = read_all(st, "features")
    assert cols == ["t"] + list(names), cols[:4]
    assert rows == [[T0 + 1000 * i] + list(range(i, i + len(names))) for i in range(3)], len(rows)
    cols, rows = read_all(st, "features", columns="t,am_mean,grav_z")
    assert rows[2] == [T0 + 2000, 2 + names.index("am_mean"), 2 + names.index("grav_z")], rows
    p = export.plan(st, "features", {"max_points": "2"}, T0)  # decimated: <name>_min/_max
    assert [c[0] for c in export.out_columns(p)][:4] == ["t", "n", names[0] + "_min", names[0] + "_max"]
    st.close()
    assert read_all(make(st.root), "features")[0][1:] == list(names)  # and after a restart the same


def test_resources_list_the_feature_names_one_at_a_time():
    # GET /api/resources held the ~90 feature names as a tuple while it streamed (~6 KB on the unix port, twice that
    # with the gyroscope's 6 axes, whose tuple was made after the 3-axis one), beside the DSP set-up code that
    # names them while the tuple was made: now one name is alive at a time (and that code while they are counted
    # and sent: from a ROMFS image, much less than the tuple).
    import gc

    from sensorbox.device.store import figures
    from sensorbox.shared import features

    for ch in (3, 6):
        names = features.names(ch)
        gc.collect()
        base = gc.mem_alloc()
        tup = features.names(ch)
        gc.collect()
        held = gc.mem_alloc() - base  # (what a tuple of them takes)
        del tup
        gen = features.iter_names(ch)
        next(gen)
        gc.collect()
        code = gc.mem_alloc() - base  # (what the code naming them takes while it runs)
        del gen
        st = make(tmpdir("s"), accel__gyro=ch == 6)
        st.on_bus("features", T0, tuple(range(len(names))))
        st.flush()
        e = [x for x in figures.resources(st, T0 + 1000) if x["name"] == "features"][0]
        cols = e["columns"]
        gc.collect()
        base = gc.mem_alloc()
        most = k = 0
        for c in cols:
            assert c == (names[k - 1] if k else "t"), (k, c)
            k += 1
            if k % 8 == 0:
                gc.collect()
                most = max(most, gc.mem_alloc() - base)
        assert k == len(names) + 1 and most < code + held // 4, (ch, k, most, code, held)
        st.close()


def test_export_chunks_are_at_most_512_bytes_and_a_longer_csv_row_goes_alone():
    # Issue 13: a numeric export's out buffer was 1 KB, a block a cut-up heap lacked (this module's features
    # test once failed allocating 1,024 bytes in export at 96wK); 512 bytes now. A .npy row fits it (87 feature
    # columns' minima and maxima: 360 bytes); a CSV row longer than it (and the header of 87 names) goes out as
    # one chunk of its own, the rows unchanged.
    from sensorbox.shared import features

    names = features.names(3)
    st = make(tmpdir("s"))
    for i in range(40):
        st.on_bus("features", T0 + 1000 * i, tuple(-30000 - i - k for k in range(len(names))))
    st.flush()
    long = 0
    for params in ({"format": "csv"}, {"format": "csv", "max_points": "4"}, {}, {"max_points": "4"}):
        p = export.plan(st, "features", params, T0)
        n = 0
        for c in export.stream(st, p):
            c = bytes(c)
            n += len(c)
            if len(c) > 512:
                assert params.get("format") == "csv" and c.count(b"\n") == 1 and c[-1:] == b"\n", (params, len(c))
                long += 1
        assert n > (4 if params.get("max_points") else 40) * len(names) * 2, (params, n)
        assert len(p.rd.buf) <= 1032  # (the features' reader: recoded blocks need the full size)
    assert long >= 40 + 4 + 2, long  # (every row, every bucket's, both headers)
    # a .npy export streams on a heap cut into 900-byte pieces once planned (its reader made): the out buffer
    # and a row's list (88 columns: one list refilled, where one made per row grew to a 1 KB block) fit them
    from devtest import cut_heap

    p = export.plan(st, "features", {}, T0)
    gc.collect()
    held = cut_heap(900)
    try:
        n = 0
        for c in export.stream(st, p):
            n += len(c)
    finally:
        held.clear()
    assert n > 40 * (8 + 2 * len(names)), n
    p = None
    rows = 0
    for row in each_row(st, "features"):
        rows += 1
        assert rows > 1 or row == ["t"] + list(names), row[:3]
    assert rows == 41 and row == [T0 + 39000] + [-30039 - k for k in range(len(names))], (rows, row[:3])


def _ticking(work):
    """Run coroutine ``work`` next to a task that counts its turns; returns (work's result, turns)."""
    import asyncio

    turns = [0]
    done = [False]

    async def tick():
        while not done[0]:
            turns[0] += 1
            await asyncio.sleep_ms(0)

    async def main():
        t = asyncio.create_task(tick())
        try:
            return await work
        finally:
            done[0] = True
            await t

    return asyncio.run(main()), turns[0]


async def _consume(st, name, params):
    """Drive an export as the HTTP server does (prepare with a yield per step, then await each chunk's write);
    returns (steps, bytes)."""
    import asyncio

    p = export.plan(st, name, params, T0, False)
    steps = nbytes = 0
    if p.numeric:
        for _ in export.prepare(st, p):
            steps += 1
            await asyncio.sleep_ms(0)
    for c in export.stream(st, p):
        steps += 1
        nbytes += len(c)
        await asyncio.sleep_ms(0)
    return steps, nbytes


def test_every_export_path_yields_every_few_hundred_rows():
    st = make(tmpdir("s"))
    n = 0
    while n < 20480:  # 20,480 accel rows (3 segments)
        st.append_frames(T0 + 20 * n, n, 1, 50, memoryview(frames(n, 256)), 256)
        n += 256
    for i in range(300):
        st.on_bus("features", T0 + 1000 * i, tuple(range(86)))
        st.on_bus("events", T0 + 1000 * i, {"type": "e", "i": i})
    st.flush()
    cases = (
        ("accel", {"max_points": "2"}, n),  # decimated: two rows of output for 20k rows read
        ("accel", {"max_points": "2", "columns": "t,z", "format": "csv"}, n),
        ("accel", {"format": "csv", "columns": "t"}, n),
        ("accel", {"start": str(T0 + 20 * (n - 10))}, 10),  # starts late in the last segment
        ("features", {"max_points": "3"}, 300),
        ("events", {"start": str(T0 + 299000)}, 300),  # one row out of 300 lines read
    )
    for name, params, rows in cases:
        (steps, nbytes), turns = _ticking(_consume(st, name, params))
        # at least one step (and one turn of the other task) per 256 rows read, whatever the output
        assert steps >= rows // 256 and turns >= rows // 256, (name, params, steps, turns)
        assert nbytes > 0
    (steps, nbytes), turns = _ticking(_consume(st, "accel", {"max_points": "2"}))
    assert steps >= 80, steps  # 20,480 rows in at most 170 rows per step: 121 steps


def test_labels_500_add_list_delete_compact_and_ids_never_reused():
    from sensorbox.device.store import meta

    st = make(tmpdir("s"))
    ids = []
    for i in range(500):
        lab = meta.label_add(st, {"start": T0 + 10 * i, "end": T0 + 10 * i + 5, "label": "wälk, \"{}\"".format(i % 7)})
        ids.append(lab["id"])
    assert ids == list(range(1, 501))
    try:
        meta.label_add(st, {"start": 1, "end": 2, "label": "x"})
        raise AssertionError("a 501st label was accepted")
    except core.QueryError as e:
        assert "500" in e.reason
    k = 0
    for lab in each_label(st):
        k += 1
        assert lab == {"id": k, "start": T0 + 10 * (k - 1), "end": T0 + 10 * (k - 1) + 5,
                       "label": "wälk, \"{}\"".format((k - 1) % 7), "pinned": True}, lab
    assert k == 500
    cols, rows = read_labels_csv(st, start=str(T0 + 4990), end=str(T0 + 5000))
    assert rows == ["{},{},\"wälk, \"\"2\"\"\"".format(T0 + 4990, T0 + 4995)], rows
    for i in ids[:-1]:
        assert meta.label_delete(st, i)
    assert not meta.label_delete(st, 1)  # gone already
    assert count_labels(st) == 1
    size = os.stat(st.root + "/labels.bin")[6]
    lab = meta.label_add(st, {"start": 5, "end": 6, "label": "rest"})  # compacts first: 499 deleted records go
    assert lab["id"] == 501 and os.stat(st.root + "/labels.bin")[6] < size // 100
    assert meta.label_delete(st, 501) and meta.label_delete(st, 500)
    for k in range(40):  # deleted ones only: a rewrite keeps the next id in the header
        meta.label_delete(st, meta.label_add(st, {"start": 5, "end": 6, "label": "x"})["id"])
    assert meta.label_add(st, {"start": 5, "end": 6, "label": "y"})["id"] == 542
    assert [x["id"] for x in each_label(st)] == [542]


def test_labels_json_of_older_versions_is_converted_at_open():
    import json

    def label(i):
        return [T0 + i, T0 + i + 1, ["a]b", "c\"d[", "e\\\\f", "über", "x"][i % 5] + str(i), 1000 + 2 * i]

    root = tmpdir("s")
    make(root).close()
    with open(root + "/labels.json", "w") as f:  # as json.dumps wrote it, keys in either order
        f.write('{"labels": [')
        for i in range(300):
            f.write((", " if i else "") + json.dumps(label(i)))
        f.write('], "next": 5000}')
    st = make(root)
    k = 0
    for x in each_label(st):
        assert [x["start"], x["end"], x["label"], x["id"]] == label(k), (k, x)
        k += 1
    assert k == 300
    assert "labels.json" not in os.listdir(root) and st.quarantined == 0
    assert meta_mod().label_add(st, {"start": 1, "end": 2, "label": "new"})["id"] == 5000  # "next" kept
    # An unreadable one: what parses is kept, the file goes to quarantine (nothing lost).
    root2 = tmpdir("s2")
    with open(root2 + "/labels.json", "w") as f:
        f.write('{"next": 9, "labels": [[1, 2, "ok", 7], [3, "four", "bad", 8], [5, 6, "cut')
    st2 = make(root2)
    assert [x["label"] for x in each_label(st2)] == ["ok"]
    assert st2.quarantined == 1 and "labels.json" not in os.listdir(root2)
    assert meta_mod().label_add(st2, {"start": 3, "end": 4, "label": "n"})["id"] == 9


def test_labels_on_a_full_littlefs_answer_507_and_keep_what_is_stored():
    import asyncio
    import json

    from sensorbox.device.http import labels

    bd = RamFlash(16, 512)  # 8 KB of flash
    os.VfsLfs2.mkfs(bd)
    os.mount(os.VfsLfs2(bd), "/flash")
    try:
        st = make("/flash/store", store__accel_kb=0)
        dev = type("D", (), {"store": st})()

        class Auth:
            async def check_basic(self, a, peer=None):
                return "admin"

        app = type("A", (), {"auth": Auth()})()

        class Req:  # what labels.handle reads of a request (server.Request)
            def __init__(self, method, body=None):
                self.method = method
                self.path = "/api/labels"
                self.args = {}
                self.headers = {"Authorization": "Basic eA=="}
                self.body = json.dumps(body).encode() if body is not None else b""
                self.app = app
                self.client_addr = "127.0.0.1"

        def call(method, body=None):
            return asyncio.run(labels.handle(dev, app, Req(method, body)))

        res = call("POST", {"start": 1, "end": 2, "label": "kept"})
        assert res[1] == 201, res
        try:  # fill the flash
            with open("/flash/fill", "wb") as f:
                while True:
                    f.write(bytes(512))
                    f.flush()
        except OSError:
            pass
        codes = []
        for i in range(8):
            lab = {"start": 10 + 20 * i, "end": 20 + 20 * i, "label": "x" * 40}  # (not overlapping: see 409)
            res = call("POST", lab)
            codes.append(res.status_code if hasattr(res, "status_code") else res[1])
        assert 507 in codes and 500 not in codes, codes
        body = json.loads(b"".join(call("GET")[0]))
        assert body["labels"][0]["label"] == "kept"
    finally:
        os.umount("/flash")


async def test_store_service_reads_the_ring_before_it_is_overwritten():
    """accel.rate_hz=100 with store.flush_ms=5000 (both allowed): flush points are 5 s apart but a 100-frame ring
    at 100 Hz holds 1 s, so the service must read it more often than it flushes."""
    import asyncio

    from sensorbox.device.sensors.ring import Batch, SampleRing

    st = make(tmpdir("s"), store__flush_ms=5000)
    ring = SampleRing(3, 100, 100)
    ring.reset(100)
    sensor = FakeSensor(ring)
    dev = type("D", (), {"config": StubConfig(store__flush_ms=5000), "sensors": {"accel": sensor}})()
    batch = Batch(3, 10)
    task = asyncio.create_task(st.run(dev))
    for k in range(20):  # 2 s of sampling, 10 frames per 100 ms
        batch.data[:] = frames(10 * k, 10)
        batch.n = 10
        batch.seq = 10 * k
        batch.t_ms = T0 + 100 * k
        ring.write(batch)
        await asyncio.sleep_ms(100)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    st.poll(sensor)
    st.flush()
    assert st.accel.lost_rows == 0 and st.accel.gaps == 0, (st.accel.lost_rows, st.accel.gaps)
    assert times(st) == [T0 + 10 * s for s in range(200)]


def test_a_resource_made_on_first_use_before_the_store_opens_is_not_made_again():
    # (clips18's finding) a resource made on first use (the sound classifier's, the audio clips') that a service
    # asks for before Store.open: open finds its directory from an earlier boot and must keep the one made
    root = tmpdir()
    st = make(root)
    st.resource("soundclass")
    st.close()
    log = quiet_log()
    st = core.Store(root, log, lambda: T0, None, core.SEG_BYTES)
    st.configure(StubConfig())
    r = st.resource("soundclass")
    st.open()
    assert st.by_name["soundclass"] is r, "the resource was made again"
    assert [x.name for x in st.res].count("soundclass") == 1, [x.name for x in st.res]
