"""The store on a microSD card (issue 16.6), with a double of machine.SDCard over FAT (``fake_sdcard.py``): mounted
at boot, internal flash when the card is missing or removed (in the middle of a write too), the card again when it
is back, with what was written to internal flash meanwhile moved onto it; nothing acknowledged is lost, nothing on
internal flash is deleted before its copy is on the card."""

import os

import fake_sdcard
from devtest import FakeClock, tmpdir
from storetest import T0, each_row, frames, make

HEAPSIZE = "512wK"  # (the card image, 512 KB, is in the heap too)

SPEC = "spi:18,23,19,5"


def _store(clock, **cfg):
    from sensorbox.device.store import sd

    sd.SDCard = fake_sdcard.SDCard  # (the firmware's machine.SDCard on a board)
    return make(tmpdir("s"), clock=clock, board__sdcard=SPEC, store__compress=False, **cfg)


def _write(st, clock, seq, n):
    """n frames from seq in 1 s batches, a prediction with each, each batch then a flush point (acknowledged)."""
    for _ in range(n // 50):
        st.append_frames(T0 + 20 * seq, seq, 1, 50, memoryview(frames(seq, 50)), 50)
        seq += 50
        st.on_bus("predictions", T0 + 20 * seq - 20, (seq % 7, seq % 1000))
        clock.t = T0 + 20 * seq
        st.flush()
        st.sd.tick(st)  # (as the store service does after each flush point)
    return seq


def _rows(st, name):
    """(rows, runs of sequence numbers) of accel or predictions (one with each 50 frames: its number), every value
    checked."""
    it = each_row(st, name)
    next(it)
    runs = []
    n = 0
    for r in it:
        if name == "accel":
            s = (r[0] - T0) // 20
            assert r[1:] == [s % 30000, -(s % 20000), (s * 7) % 32000], r  # every value as written
        else:
            s = (r[0] - T0 + 20) // 20 // 50
            assert r[1:] == [(50 * s) % 7, (50 * s) % 1000], r
        if runs and runs[-1][1] == s - 1:
            runs[-1][1] = s
        else:
            runs.append([s, s])
        n += 1
    st.reading = None
    return n, runs


def _runs(st):
    return _rows(st, "accel")[1]


def _all_there(st, seq):
    """Every frame and prediction acknowledged is stored, but those counted lost: written since the last flush
    point when the card went (at most one flush interval's, as at a power cut)."""
    for name, total in (("accel", seq), ("predictions", seq // 50)):
        r = st.by_name[name]
        n, runs = _rows(st, name)
        assert n + r.lost_rows == total, (name, n, r.lost_rows, total, runs)
        assert r.lost_rows <= (50 if name == "accel" else 1), (name, r.lost_rows)
        first, last = (0, total - 1) if name == "accel" else (1, total)
        assert runs[0][0] == first and runs[-1][1] == last, (name, runs)


def _segs(path):
    try:
        return sorted(n for n in os.listdir(path) if n.endswith(".seg"))
    except OSError:
        return []


def _moves(st):
    g = st.sd.run(st)
    if g is not None:
        for _ in g:
            pass


def test_the_store_on_the_card_survives_removal_mid_write_and_reinsertion():
    card = fake_sdcard.Card()
    card.format()
    fake_sdcard.insert(2, card)
    clock = FakeClock(T0)
    st = _store(clock)
    root = st.root
    assert st.sd.status()["state"] == "mounted" and st.accel.dir == "/sd/sensorbox/accel"
    seq = _write(st, clock, 0, 1000)
    assert _segs("/sd/sensorbox/accel") and not _segs(root + "/accel")  # on the card, none on flash
    assert st.status()["sd"]["segments_on"] == "sd"
    from sensorbox.device.store import meta

    meta.label_add(st, {"start": T0, "end": T0 + 20 * 500, "label": "walk"})  # labels: on internal flash
    # the card goes in the middle of a write: the next blocks fail, the store goes on on internal flash
    card.fail_after = 2
    seq = _write(st, clock, seq, 1000)
    s = st.status()["sd"]
    assert s["state"] == "removed" and s["segments_on"] == "flash" and s["removals"] == 1, s
    assert _segs(root + "/accel") and st.accel.dir == root + "/accel"
    flash_runs = _runs(st)  # what internal flash holds now: the frames since the removal
    assert flash_runs[-1][1] == seq - 1 and flash_runs[0][0] >= 1000, flash_runs
    # while it is out the card is tried every 5 s; nothing to mount
    clock.t += 6000
    st.sd.tick(st)
    assert st.sd.status()["state"] == "removed" and st.sd.status()["error"].startswith("OSError")
    seq = _write(st, clock, seq, 500)
    # back in: new segments on the card, those on internal flash moved onto it
    fake_sdcard.insert(2, card)
    clock.t += 6000
    seq = _write(st, clock, seq, 200)
    assert st.sd.status()["state"] == "mounted" and st.accel.dir == "/sd/sensorbox/accel"
    _moves(st)
    assert _segs(root + "/accel") == [] and _segs(root + "/predictions") == [], _segs(root + "/accel")
    assert st.sd.status()["moved_segments"] >= 2
    # every frame and prediction acknowledged is there: on the card before the removal, moved from flash, written
    # since (but what was written to the card since the flush point before it went: counted)
    _all_there(st, seq)
    assert [x["label"] for x in __import__("storetest").each_label(st)] == ["walk"]
    st.close()


def test_no_card_at_boot_stores_on_flash_then_moves_it_onto_a_card_put_in():
    clock = FakeClock(T0)
    st = _store(clock)
    s = st.status()["sd"]
    assert s["state"] == "missing" and s["segments_on"] == "flash" and s["error"].startswith("OSError"), s
    seq = _write(st, clock, 0, 1500)
    root = st.root
    before = _segs(root + "/accel")
    assert before
    card = fake_sdcard.Card()
    card.format()
    fake_sdcard.insert(2, card)
    clock.t += 6000
    st.sd.tick(st)
    assert st.sd.status()["state"] == "mounted"
    _moves(st)
    assert st.sd.run(st) is None  # (nothing left to move)
    runs = _runs(st)
    assert runs == [[0, seq - 1]], runs
    assert _segs(root + "/accel") == [] and len(_segs("/sd/sensorbox/accel")) >= len(before)
    st.close()


def test_a_card_removed_while_segments_move_keeps_them_on_flash():
    card = fake_sdcard.Card()
    card.format()
    clock = FakeClock(T0)
    st = _store(clock, seg=4096)  # no card: on flash (segments of 4 KB)
    root = st.root
    seq = _write(st, clock, 0, 3000)
    n_flash = len(_segs(root + "/accel"))
    assert n_flash >= 2
    fake_sdcard.insert(2, card)
    clock.t += 6000
    st.sd.tick(st)  # mounted: the moves are pending
    g = st.sd.run(st)
    for k, _ in enumerate(g):
        if k == 3:  # part of the first segment copied (1.5 KB of 4)
            card.remove()
    g = None
    s = st.status()["sd"]
    assert s["state"] == "removed" and s["move_errors"] == 1 and s["moved_segments"] == 0, s
    assert len(_segs(root + "/accel")) == n_flash, (n_flash, _segs(root + "/accel"), s)  # every segment still on internal flash
    assert _runs(st) == [[0, seq - 1]]  # and readable there
    fake_sdcard.insert(2, card)
    clock.t += 6000
    st.sd.tick(st)
    _moves(st)
    assert _segs(root + "/accel") == [] and _runs(st) == [[0, seq - 1]]
    assert not [n for n in os.listdir("/sd/sensorbox/accel") if n.endswith(".tmp")]
    st.close()


def test_a_card_at_boot_takes_the_segments_an_earlier_boot_left_on_flash():
    clock = FakeClock(T0)
    st = _store(clock)  # no card: on flash
    root = st.root
    seq = _write(st, clock, 0, 1000)
    st.close()
    card = fake_sdcard.Card()
    card.format()
    fake_sdcard.insert(2, card)
    from sensorbox.device.store import core

    st = core.Store(root, st.log, clock, None)  # the next boot, with the card in
    st.configure(__import__("devtest").StubConfig(board__sdcard=SPEC, store__compress=False))
    st.open()
    assert st.sd.status()["state"] == "mounted" and _segs(root + "/accel")
    _moves(st)
    assert _segs(root + "/accel") == [] and _runs(st) == [[0, seq - 1]]
    st.close()
