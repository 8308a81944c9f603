"""The durable outbox over the real store: reads after the cursor, only durable rows, order and original times,
ack/resume across a restart, events text, retention loss counted, and its heap."""

import gc

from devtest import StubConfig, quiet_log, tmpdir
from sensorbox.device.integrations.outbox import Outbox
from sensorbox.device.store import core

T0 = 1700000000000


class Clock:
    def __init__(self):
        self.t = T0

    def __call__(self):
        return self.t


def make(root, clock, **cfg):
    st = core.Store(root, quiet_log(), clock, None)
    st.configure(StubConfig(**cfg))
    st.open()
    return st


def test_reads_only_flushed_rows_in_order_then_resumes_after_restart():
    root = tmpdir("store")
    clk = Clock()
    st = make(root, clk)
    ob = Outbox(st, "mqtt", "predictions", start=0)
    for i in range(30):
        st.on_bus("predictions", T0 + 100 * i, (i % 5, 500 + i))
    assert ob.read(10) == []  # still in the store's RAM buffer: not on flash yet
    st.flush()
    rows = ob.read(10)
    assert [r[0] for r in rows] == [T0 + 100 * i for i in range(10)]
    assert rows[3][1] == (3, 503)
    assert ob.read(10) == rows  # reading does not consume
    for t, v in rows[:7]:
        ob.ack(t)
    rows = ob.read(100)
    assert [r[0] for r in rows] == [T0 + 100 * i for i in range(7, 30)]
    assert [r[1][1] for r in rows] == [500 + i for i in range(7, 30)]
    ob.ack(rows[5][0])  # delivered up to row 12
    st.close()  # saves cursors
    st2 = make(root, clk)
    ob2 = Outbox(st2, "mqtt", "predictions")
    assert ob2.t == T0 + 1200
    assert ob2.pending()
    rows = ob2.read(100)
    assert [r[0] for r in rows] == [T0 + 100 * i for i in range(13, 30)]
    assert ob2.key("dev1", rows[0][0]) == "dev1-predictions-{}".format(T0 + 1300)


def test_unsynced_rows_of_the_open_segment_wait_for_the_flush_point():
    st = make(tmpdir("store"), Clock())
    ob = Outbox(st, "hook", "soundlevel", start=0)
    st.on_bus("soundlevel", T0, (6000, 5000, 7000, 6500, 6000, 5500))
    st.flush()
    assert len(ob.read(4)) == 1
    st.on_bus("soundlevel", T0 + 1000, (6100, 5000, 7000, 6500, 6000, 5500))
    st._drain(st.by_name["soundlevel"])  # written to the file, not yet synced
    assert st.by_name["soundlevel"].dirty
    assert len(ob.read(4)) == 0
    st.flush()
    rows = ob.read(4)
    assert [r[1][0] for r in rows] == [6000, 6100]


def test_events_text_and_non_ascii():
    st = make(tmpdir("store"), Clock())
    ob = Outbox(st, "mqtt", "events", start=0)
    for i in range(12):
        st.on_bus("events", T0 + i, {"type": "note", "i": i, "text": "25 \u00b0C \u00b5"})
    st.flush()
    got = []
    while True:
        rows = ob.read(5)
        if not rows:
            break
        for t, v in rows:
            got.append((t, v))
            ob.ack(t)
    import json

    assert [t for t, v in got] == [T0 + i for i in range(12)]
    evs = [json.loads(v) for t, v in got]
    assert [e["i"] for e in evs] == list(range(12))
    assert evs[0]["text"] == "25 \u00b0C \u00b5"


def test_retention_past_the_budget_counts_lost_segments():
    clk = Clock()
    st = make(tmpdir("store"), clk, store__predictions_kb=1, store__compress=False)  # 1 KB budget: 1 KB segments
    ob = Outbox(st, "mqtt", "predictions", start=0)
    t = T0
    for k in range(20):
        for i in range(20):
            st.on_bus("predictions", t, (1, 900))
            t += 10
        st.flush()
        st.retain()
    assert ob.lost() > 0
    rows = ob.read(1000)
    assert rows and rows[0][0] > T0  # continues from the oldest row still there
    assert [r[0] for r in rows] == sorted(r[0] for r in rows)


def test_heap_of_outbox():
    st = make(tmpdir("store"), Clock())
    for i in range(40):
        st.on_bus("predictions", T0 + 100 * i, (1, 700))
    st.flush()
    gc.collect()
    f0 = gc.mem_free()
    ob = Outbox(st, "mqtt", "predictions", start=0)
    gc.collect()
    f1 = gc.mem_free()
    rows = ob.read(8)
    del rows
    gc.collect()
    f2 = gc.mem_free()
    ob2 = Outbox(st, "mqtt", "events", start=0)  # the reader (and its 528-byte buffer) is shared
    gc.collect()
    f3 = gc.mem_free()
    print("HEAP outbox object {} B (with the shared reader), after a read {} B, another {} B".format(
        f0 - f1, f0 - f2, f2 - f3))
    assert f0 - f1 < 1536 and f2 - f3 < 512
    assert f0 - f2 < 2048
    assert ob2.read(1) == []
