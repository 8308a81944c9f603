"""Labelled data is never aged out (issue 16.2): segments holding rows of a label's range (or of an open
recording) are pinned, retention deletes the unpinned ones around them, even past the budget (the resource then
keeps sampling into its newest segments and says so), never a pinned one; a pull (``POST /api/pulled``) or an
unpin releases them; the free floor never deletes them either."""

import os

from ramflash import RamFlash
from devtest import inner, renamed, tmpdir
from storetest import T0, each_row, frames, make

HEAPSIZE = "112wK"  # (see test_store.py)


def _pulled(st, body):
    """POST /api/pulled (``retain.pulled``)."""
    from sensorbox.device.store import retain

    return retain.pulled(st, body)


def _write(st, seq, n, batch=100):
    for k in range(n // batch):
        st.append_frames(T0 + 20 * seq, seq, 1, 50, memoryview(frames(seq, batch)), batch)
        seq += batch
        st.flush()
    return seq


class _Seqs:
    """The accel frames stored (their sequence numbers), as a bitmap: ``s in _Seqs(st)``."""

    def __init__(self, st):
        self.bits = bytearray(2048)
        it = each_row(st, "accel", columns="t")
        next(it)
        for r in it:
            s = (r[0] - T0) // 20
            self.bits[s >> 3] |= 1 << (s & 7)
        st.reading = None  # (an export holds routine retention off for 10 s: this clock stands still)

    def __contains__(self, s):
        return bool(self.bits[s >> 3] & (1 << (s & 7)))


def _meta():
    from sensorbox.device.store import meta

    return meta


def test_labelled_rows_survive_a_budget_that_would_delete_them_until_pulled_or_unpinned():
    st = make(tmpdir("s"), store__accel_kb=16, store__compress=False)  # segments of 4 KB: ~680 frames
    seq = _write(st, 0, 2000)
    meta = _meta()
    walk = meta.label_add(st, {"start": T0 + 20 * 300, "end": T0 + 20 * 500, "label": "walk"})
    sit = meta.label_add(st, {"start": T0 + 20 * 1500, "end": T0 + 20 * 1600, "label": "sit"})
    assert st.npins == 2
    _pulled(st, {"events": T0 + 10 ** 9})  # another resource pulled past them: accel still needs them
    assert st.npins == 2 and [x["pinned"] for x in _labels(st)] == [True, True]
    seq = _write(st, seq, 8000)  # 60 KB more: without the pins, everything before ~frame 7300 goes
    have = _Seqs(st)
    assert all(s in have for s in range(300, 500)) and all(s in have for s in range(1500, 1600))
    assert 0 in have and 1000 not in have and 5000 not in have and seq - 1 in have  # (0: in the segment of 300..500)
    r = st.accel
    assert r.ret_segs >= 8 and r.bytes <= 16 * 1024 + 3 * 4096 and st.held == [], (r.ret_segs, r.bytes, st.held)
    labs = {x["label"]: x for x in _labels(st)}
    assert labs["walk"]["pinned"] and labs["sit"]["pinned"]
    # sensorbox pull fetched the rows up to walk's end: walk is released, sit still pinned
    res = _pulled(st, {"accel": T0 + 20 * 1000})
    assert res == {"pinned": [sit["id"]], "released": [walk["id"]]}, res
    assert st.cursors["pull.accel"][1] == T0 + 20 * 1000
    seq = _write(st, seq, 200)
    st.retain()  # (as the store service does every 16 flush points and when a segment is opened)
    have = _Seqs(st)
    assert 300 not in have and all(s in have for s in range(1500, 1600))
    assert meta.label_delete(st, sit["id"], b"U") and not meta.label_delete(st, 999, b"U")  # (unpin)
    assert [x["pinned"] for x in _labels(st)] == [False, False]
    seq = _write(st, seq, 3000)  # over the budget again: the oldest unpinned segment now holds 1500..1600
    have = _Seqs(st)
    assert 1500 not in have and seq - 1 in have
    # a time past the newest row counts as the newest row's: a label made later is pinned (a fuzzed 2**53 released
    # every label to come, for good)
    assert _pulled(st, {"accel": 1 << 53}) == {"pinned": [], "released": []}
    assert st.cursors["pull.accel"][1] == st.accel.last_t
    late = meta.label_add(st, {"start": st.accel.last_t - 1000, "end": st.accel.last_t + 60000, "label": "late"})
    assert [x["pinned"] for x in _labels(st) if x["id"] == late["id"]] == [True]
    for bad, field in (({}, "(body)"), ({"nope": 1}, "nope"), ({"accel": "x"}, "accel"), ({"accel": -1}, "accel"),
                       ({"soundlevel_1m": 5}, "soundlevel_1m")):
        try:
            _pulled(st, bad)
            raise AssertionError("accepted {}".format(bad))
        except ValueError as e:
            assert e.field == field, (bad, e.field)


def _labels(st):
    from storetest import each_label

    return list(each_label(st))


def test_pinned_data_filling_the_budget_keep_sampling_newest_and_say_so():
    st = make(tmpdir("s"), store__accel_kb=16, store__compress=False)
    meta = _meta()
    meta.label_add(st, {"start": T0, "end": T0 + 20 * 4000, "label": "all"})  # more than the budget holds
    seq = _write(st, 0, 4000)
    seq = _write(st, seq, 3000)  # after the label: these may go, except the newest segment
    have = _Seqs(st)
    assert all(s in have for s in range(4000)) and seq - 1 in have and 4500 not in have, (seq, [s for s in range(4000) if s not in have][:3], 4500 in have)
    assert st.held == ["accel"] and st.status()["pins"]["over_budget"] == ["accel"]
    assert st.accel.lost_rows == 0
    _pulled(st, {"accel": T0 + 20 * 4000})  # pulled: back within the budget at the next segment
    seq = _write(st, seq, 800)
    assert st.held == [] and st.accel.bytes <= 16 * 1024 + 4096, (st.held, st.accel.bytes)
    assert 0 not in _Seqs(st)


def test_an_open_recording_is_pinned_and_the_floor_never_deletes_pinned_rows():
    bd = RamFlash(96, 512)  # 48 KB of flash
    os.VfsLfs2.mkfs(bd)
    os.mount(os.VfsLfs2(bd), "/flash")
    try:
        def stats():
            s = os.statvfs("/flash")
            return s[0] * s[2], s[0] * s[3]

        st = make("/flash/store", flash=stats, seg=4096, store__accel_kb=1000, store__min_free_kb=8,
                  store__compress=False, store__events_kb=0, store__soundlevel_1m_kb=0, store__soundlevel_1h_kb=0,
                  store__predictions_1m_kb=0, store__predictions_1h_kb=0)
        st.pin_open = T0 + 20 * 1000  # a recording opened at frame 1000 (mqtt: record_start)
        seq = _write(st, 0, 1000)
        seq = _write(st, seq, 7000)  # 42 KB: the flash fills; only the frames before the recording may go
        have = _Seqs(st)
        assert all(s in have for s in range(1000, 5000)), min(s for s in range(1000, 5000) if s not in have)
        assert 0 not in have
        assert st.pin_floor and st.status()["pins"]["fills_flash"]
        assert st.accel.lost_rows > 0  # what could not be written is counted; nothing pinned was deleted
        st.pin_open = -1  # record_stop: the range becomes a label (not here), so it is released
        st.changes += 1
        seq = _write(st, seq, 600)
        assert not st.pin_floor and seq - 1 in _Seqs(st), (st.pin_floor, seq)
    finally:
        os.umount("/flash")


def test_a_label_whose_pins_read_runs_short_after_it_is_written_is_pinned_and_answered():
    # The label is on flash once written: running out of memory after that (reading the pins again) answered 503
    # "retry" for a stored label (a retry: 409, it overlaps itself) and left its rows unpinned for retention, or
    # the ranges in force half rewritten. Its range is now pinned, and the answer made, before it is written; the
    # pins are read into an array of their own and put in place only when the read completes.
    st = make(tmpdir("s"), store__accel_kb=16, store__compress=False)
    _write(st, 0, 2000)
    meta = _meta()
    meta.label_add(st, {"start": T0 + 20 * 1500, "end": T0 + 20 * 1600, "label": "sit"})
    assert st.npins == 1
    recs, rel_all = inner(meta, "_recs"), inner(meta, "_rel_all")
    armed = []

    def rel(store):  # (pins starts with it: labels.bin is read after it for the pins only)
        armed.append(1)
        return rel_all(store)

    def short(store, info):  # the pins' read of labels.bin finds no memory at its second record
        g = recs(store, info)
        if not armed:
            yield from g
            return
        yield next(g)
        g.close()
        raise MemoryError

    setattr(meta, renamed("_recs", "store/meta.py"), short)
    setattr(meta, renamed("_rel_all", "store/meta.py"), rel)
    try:
        out = meta.label_add(st, {"start": T0 + 20 * 300, "end": T0 + 20 * 500, "label": "walk"})
    finally:
        setattr(meta, renamed("_recs", "store/meta.py"), recs)
        setattr(meta, renamed("_rel_all", "store/meta.py"), rel_all)
    assert armed and out["label"] == "walk" and out["start"] == T0 + 20 * 300, (armed, out)
    assert st.npins == 2 and list(st.pins[:4]) == [T0 + 20 * 300, T0 + 20 * 500, T0 + 20 * 1500, T0 + 20 * 1600]
    assert [x["label"] for x in _labels(st)] == ["sit", "walk"]
    before = list(st.pins[:4])  # a read of the pins cut short on its own (a delete's) leaves them as they were
    setattr(meta, renamed("_recs", "store/meta.py"), short)
    try:
        try:
            meta.pins(st)
            raise AssertionError("no MemoryError")
        except MemoryError:
            pass
    finally:
        setattr(meta, renamed("_recs", "store/meta.py"), recs)
    assert st.npins == 2 and list(st.pins[:4]) == before
    meta.pins(st)
    assert st.npins == 2 and list(st.pins[:4]) == before
