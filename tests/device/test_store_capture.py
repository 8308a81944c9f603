"""Event capture (issue 16.3): raw accelerometer data around a class change into chosen classes or a sound level
over a threshold, from pre_s before to post_s after, pinned like labels until pulled; with capture.only the
accelerometer is stored only there, the pre-event frames taken from the sample ring."""

from devtest import tmpdir
from storetest import T0, each_label, each_row, frames, make

HEAPSIZE = "112wK"  # (see test_store.py)


class FakeSensor:
    def __init__(self, ring):
        self.ring = ring
        self.driver = object()
        self.generation = 1


def _pulled(st, body):
    """POST /api/pulled (``retain.pulled``)."""
    from sensorbox.device.store import retain

    return retain.pulled(st, body)


def _runs(st):
    """The stored accel frames as runs of sequence numbers [first, last] (times are T0 + 20 * seq)."""
    it = each_row(st, "accel", columns="t")
    next(it)
    runs = []
    for r in it:
        s = (r[0] - T0) // 20
        if runs and runs[-1][1] == s - 1:
            runs[-1][1] = s
        else:
            runs.append([s, s])
    st.reading = None
    return runs


def _has(runs, s):
    for a, b in runs:
        if a <= s <= b:
            return True
    return False


def _events(st):
    import json

    from sensorbox.device.store import export

    p = export.plan(st, "events", {}, T0)
    body = b"".join(bytes(c) for c in export.stream(st, p))
    st.reading = None
    return [e for e in json.loads(body) if e["type"] == "capture"]


def test_captures_around_a_class_change_and_a_loud_sound_survive_retention_until_pulled():
    st = make(tmpdir("s"), store__accel_kb=16, store__compress=False, capture__classes="walk, run",
              capture__sound_db=80, capture__pre_s=4, capture__post_s=6)
    assert list(st.class_ids(["sit", "walk"])) == [0, 1]  # (a capture names classes as the model does)
    seq = 0
    for k in range(120):  # 2 min at 50 Hz, a prediction every second, a sound level every second
        st.append_frames(T0 + 20 * seq, seq, 1, 50, memoryview(frames(seq, 50)), 50)
        seq += 50
        t = T0 + 20 * seq - 20
        st.on_bus("predictions", t, (1 if 60 <= k < 70 else 0, 800))  # walk from frame 3049 (t 60.98 s) on
        st.on_bus("soundlevel", t, (8100 if k == 100 else 6000, 5000, 9000, 7000, 6000, 5500))  # loud at 100
        st.flush()
    for _ in range(100):  # 100 s more: 5000 frames, 30 KB: retention deletes everything unpinned before
        st.append_frames(T0 + 20 * seq, seq, 1, 50, memoryview(frames(seq, 50)), 50)
        seq += 50
        st.on_bus("predictions", T0 + 20 * seq - 20, (0, 800))
        st.flush()
    runs = _runs(st)
    # 4 s before and 6 s after its first "walk" prediction (frame 3049), and around the loud sound (5049)
    assert all(_has(runs, s) for s in range(3049 - 200, 3049 + 301)), runs
    assert all(_has(runs, s) for s in range(5049 - 200, 5049 + 301)), runs
    assert not _has(runs, 1000) and not _has(runs, 4200) and _has(runs, seq - 1), runs  # (the rest: retention's)
    evs = _events(st)
    assert [(e["trigger"], e.get("class"), e.get("leq_db")) for e in evs] == [("class", "walk", None),
                                                                          ("sound", None, 81.0)], evs
    assert evs[0]["start"] == T0 + 20 * 3049 - 4000 and evs[0]["end"] == T0 + 20 * 3049 + 6000
    assert list(each_label(st)) == []  # a capture is not a label (training never sees it)
    cap = st.status()["capture"]
    assert cap["captures"] == 2 and cap["open"] is False and cap["classes"] == ["walk", "run"], cap
    # pulled: released, retention may have them

    _pulled(st, {r.name: T0 + 20 * seq for r in st.res if r.budget and not r.period})
    for _ in range(40):
        st.append_frames(T0 + 20 * seq, seq, 1, 50, memoryview(frames(seq, 50)), 50)
        seq += 50
        st.flush()
    st.retain()
    assert not _has(_runs(st), 3049)


def test_capture_only_stores_just_the_frames_around_events_from_the_ring():
    from sensorbox.device.sensors.ring import Batch, SampleRing

    st = make(tmpdir("s"), capture__classes="walk", capture__sound_db=90, capture__pre_s=4,
              capture__post_s=6, capture__only=True)
    st.class_ids(["sit", "walk"])
    ring = SampleRing(3, 500, 50)
    ring.reset(50)
    sensor = FakeSensor(ring)
    batch = Batch(3, 25)
    seq = 0
    while seq < 4000:  # 80 s in half-second batches, read as the store service does (every batch here)
        batch.data[:] = frames(seq, 25)
        batch.n = 25
        batch.seq = seq
        batch.t_ms = T0 + 20 * seq
        ring.write(batch)
        seq += 25
        t = T0 + 20 * (seq - 1)
        if seq % 50 == 0:  # a prediction a second: walk at frame 999; a loud sound at 1199 (inside: extends)
            st.on_bus("predictions", t, (1 if seq in (1000, 2500) else 0, 700))
            st.on_bus("soundlevel", t, (9200 if seq == 1200 else 6000, 5000, 9500, 7000, 6000, 5500))
        st.poll(sensor)
        if seq % 50 == 0:
            st.flush()
    st.flush()
    runs = _runs(st)
    assert runs == [[999 - 200, 1199 + 300], [2499 - 200, 2499 + 300]], runs
    assert st.accel.nseg == 2 and st.accel.lost_rows == 0  # two captures, a gap between: two segments
    assert st.accel.gaps == 0  # (the time between captures is no sensor gap)
    evs = _events(st)
    assert [(e["start"], e["end"]) for e in evs] == [(T0 + 20 * 999 - 4000, T0 + 20 * 1199 + 6000),
                                                     (T0 + 20 * 2499 - 4000, T0 + 20 * 2499 + 6000)], evs
    assert st.status()["capture"]["only"] is True


def test_captures_past_the_limit_release_the_oldest_and_unpin_forgets_one():
    from sensorbox.device.store import capture, meta

    st = make(tmpdir("s"))
    ids = [meta.label_add(st, {"start": T0, "end": T0 + 1000, "label": "walk"})["id"]]
    for i in range(64 + 2):  # (capture._MAX_PINNED)
        capture.record(st, T0 + 10000 * (i + 1), T0 + 10000 * (i + 1) + 5000, "capture walk")
    st_pins = st.npins
    assert st_pins >= 1
    labs = list(each_label(st))
    assert [x["id"] for x in labs] == ids and labs[0]["pinned"]  # captures are never listed as labels
    n = sum(1 for s, ident in _records(st) if s == 67)
    assert n == 64, n  # two of the oldest were released
    # unpinning a capture by its id forgets its record (a label's stays, unpinned)
    last = max(ident for s, ident in _records(st))
    assert meta.label_delete(st, last, b"U") and meta.label_delete(st, ids[0], b"U")  # (unpin)
    k = [s for s, ident in _records(st) if ident in (last, ids[0])]
    assert k == [85, 88], k
    assert st.labels == 1


def _records(st):
    """(status, id) of every record of labels.bin, read as its format says (store/meta.py)."""
    import struct

    data = open(st.root + "/labels.bin", "rb").read()
    out = []
    o = 8
    while o + 22 <= len(data):
        s, ln, ident = struct.unpack_from("<BBI", data, o)
        out.append((s, ident))
        o += 22 + ln + 4
    return out
