"""Closed segments of the timed resources are recoded into coded blocks of many rows (issue 16.1: their blocks of
one row, written at each flush point, cannot be made smaller): the rows read back the same, the outbox keeps its
place, a recoding cut short leaves the segment as it was, a segment retention deleted meanwhile stays deleted."""

import os

from devtest import cut_heap, tmpdir
from sensorbox.device.store import rollup
from storetest import T0, make

HEAPSIZE = "112wK"  # (see test_store.py)


def _crc(st, name):
    """(rows, CRC-32 of the CSV export) of a resource: the same rows read back give the same (little RAM)."""
    import binascii

    from sensorbox.device.store import export

    q = {"format": "csv"}
    if name == "predictions":
        q["columns"] = "t,class,confidence"
    p = export.plan(st, name, q, T0)
    c = 0
    for chunk in export.stream(st, p):
        c = binascii.crc32(chunk, c)
    st.reading = None
    return p.rows, c


def _recode(st):
    g = rollup.step(st, 1)
    n = 0
    if g is not None:
        for _ in g:
            n += 1
    return n


def _fill(st, n, t=T0):
    for i in range(n):
        st.on_bus("predictions", t + 1280 * i, (i // 40 % 3, 500 + (i * 37) % 400))
        st.on_bus("soundlevel", t + 1280 * i + 7, (6000 + i % 50, 5900, 6100, 6050, 6000, 5950))
        st.flush()  # a block of one row each, as at a flush point every second
    return t + 1280 * n


def test_closed_segments_are_recoded_and_read_the_same():
    from sensorbox.device.integrations.outbox import Outbox

    st = make(tmpdir("s"), store__predictions_kb=8, store__soundlevel_kb=64)  # predictions: 2 KB segments
    ob = Outbox(st, "mqtt", "predictions", start=0)
    got = ob.read(7)  # (a position held in the first segment)
    assert len(got) == 0
    _fill(st, 300)
    pr = st.by_name["predictions"]
    assert pr.nseg >= 2
    before = _crc(st, "predictions"), _crc(st, "soundlevel")
    before_bytes = pr.bytes
    got = ob.read(7)
    for x in got:
        ob.ack(x[0])
    n = _recode(st)
    assert n > 3, n
    assert pr.bytes < before_bytes * 2 // 3, (pr.bytes, before_bytes)
    assert (_crc(st, "predictions"), _crc(st, "soundlevel")) == before and before[0][0] == 300
    names = sorted(os.listdir(pr.dir))
    with open(pr.dir + "/" + names[0], "rb") as f:
        h = f.read(32)
    assert h[7] == 1 and h[24] == 2  # coded, generation 2: not again
    assert _recode(st) == 0  # (nothing left to recode)
    # the outbox goes on after the rows it acknowledged, none twice, none skipped: the k-th row is the k-th _fill
    # wrote (read in batches of 50 as a sink does, compared row by row: the 300 rows read at once, ~20 KB of
    # tuples and a 2.4 KB list, needed blocks this test's small heap had or not by accident of layout)
    k = 0
    part = got
    while part:
        for x in part:
            assert x[0] == T0 + 1280 * k, (k, x[0])
            k += 1
        ob.ack(part[-1][0])
        part = ob.read(50)
    assert k == 300, k
    # a recoding cut short (a power cut) leaves a .tmp: removed when the store opens, the segment as it was
    with open(pr.dir + "/" + names[-1] + ".tmp", "wb") as f:
        f.write(b"SBS1 torn")
    st.close()
    root = st.root
    d = pr.dir
    st = ob = pr = got = part = None  # (a device has one store: room for the next one's recovery)
    import gc

    gc.collect()
    st = make(root)
    assert st.quarantined == 0 and not [n for n in os.listdir(d) if n.endswith(".tmp")]
    assert (_crc(st, "predictions"), _crc(st, "soundlevel")) == before


def test_a_segment_deleted_while_it_was_recoded_stays_deleted():
    st = make(tmpdir("s"), store__predictions_kb=8)
    _fill(st, 300)
    pr = st.by_name["predictions"]
    g = rollup.step(st, 1)
    next(g)  # the first segment is being recoded...
    first = sorted(os.listdir(pr.dir))[0]
    os.remove(pr.dir + "/" + first)  # ... when retention deletes it
    for _ in g:
        pass
    assert first not in os.listdir(pr.dir) and not [n for n in os.listdir(pr.dir) if n.endswith(".tmp")]


def test_the_recoding_runs_on_a_heap_cut_into_small_pieces():
    # Issue 13: the recoding read the levels' and predictions' segments through a 1 KB reader of its own, a block
    # the core soaks at 120wK lacked; it reads through the store's 528-byte buffer now (their blocks are at most
    # 520 bytes). Its other blocks: the rows (256 bytes) and their coded block (512).
    import gc

    st = make(tmpdir("s"), store__predictions_kb=8, store__soundlevel_kb=64)
    _fill(st, 300)
    pr = st.by_name["predictions"]
    before = _crc(st, "predictions"), _crc(st, "soundlevel")
    before_bytes = pr.bytes
    gc.collect()
    held = cut_heap(600)
    try:
        n = _recode(st)
    finally:
        held.clear()
        gc.collect()
    assert n > 3 and pr.bytes < before_bytes * 2 // 3 and st.quarantined == 0, (n, pr.bytes, before_bytes)
    assert (_crc(st, "predictions"), _crc(st, "soundlevel")) == before
