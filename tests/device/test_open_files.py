"""No file stays open when a reader stops early (MicroPython does not close an abandoned generator, and closing
one does not close the generators it iterates): a refused label, an export or a label list closed after its
first chunks, an export stopped while it lists a resource's segments. Counted as the process's open file
descriptors on the unix port, with the garbage collector (which would close them late) off."""

import array
import gc
import os

from devtest import StubConfig, quiet_log, tmpdir
from sensorbox.device.store import core, export, meta
from sensorbox.device.store.core import QueryError

T0 = 1700000000000
HEAPSIZE = "256wK"  # with the collector off, three CSV chunks of an export allocate ~150 KB here


def fds():
    return len(os.listdir("/proc/self/fd"))


def store(seg=core.SEG_BYTES, compress=True):
    st = core.Store(tmpdir("s"), quiet_log(), lambda: T0, None, seg)
    st.configure(StubConfig(store__compress=compress))
    st.open()
    return st


def filled(seg=core.SEG_BYTES, n=4096, compress=True):
    st = store(seg, compress)
    a = array.array("h", bytes(6 * 256))
    for k in range(0, n, 256):
        st.append_frames(T0 + 20 * k, k, 1, 50, memoryview(a), 256)
    for i in range(100):
        st.on_bus("events", T0 + 1000 * i, {"type": "e", "i": i})
        st.on_bus("predictions", T0 + 1000 * i, (1, 500))
    st.flush()
    for i in range(40):
        meta.label_add(st, {"start": T0 + 100 * i, "end": T0 + 100 * i + 50, "label": "l{}".format(i)})
    return st


class NoGC:
    """Counts open files around a block with the collector off (a collection would close leaked ones)."""

    def __enter__(self):
        gc.collect()
        gc.disable()
        self.n = fds()
        return self

    def __exit__(self, *exc):
        gc.enable()

    def check(self, what):
        assert fds() == self.n, (what, "open files", self.n, "->", fds())


def test_a_refused_overlapping_label_leaves_no_file_open():
    st = filled()
    with NoGC() as c:
        for i in range(5):
            try:
                meta.label_add(st, {"start": T0 + 10, "end": T0 + 20, "label": "x"})
                raise AssertionError("an overlapping label was accepted")
            except QueryError as e:
                assert e.field == "overlap", e.field
        c.check("5 refused labels")
        meta.label_add(st, {"start": T0 + 10, "end": T0 + 20, "label": "x", "overlap": True})
        c.check("an added label")


def _readers(st):
    """(what, a fresh generator) for every reader a response streams or the API drives step by step."""
    for name, params in (("accel", {}), ("accel", {"format": "csv"}), ("accel", {"max_points": "3"}),
                         ("predictions", {"format": "csv"}), ("events", {}), ("events", {"format": "csv"}),
                         ("labels", {}), ("labels", {"format": "csv"})):
        p = export.plan(st, name, params, T0 + 10 ** 7)
        yield "{} {} stream".format(name, params), export.stream(st, p)
        if p.numeric:
            yield "{} {} prepare".format(name, params), export.prepare(st, export.plan(st, name, params, T0, False))
    yield "labels_json", meta.labels_json(st)


def test_every_reader_closed_early_closes_its_files():
    st = filled()
    for steps in (1, 2, 3):
        for what, g in _readers(st):
            with NoGC() as c:
                for _ in range(steps):
                    try:
                        next(g)
                    except StopIteration:
                        break
                g.close()
                c.check("{} closed after {} steps".format(what, steps))


def test_a_reader_stopped_while_listing_segments_closes_the_directory():
    # ~48 accel segments: the listing yields every 8 entries (uncoded: these zero frames would code into a few)
    st = filled(seg=1024, n=8192, compress=False)
    assert len(os.listdir(st.root + "/accel")) > 24
    with NoGC() as c:
        for steps in (1, 2, 3):
            g = export.prepare(st, export.plan(st, "accel", {}, T0, False))
            for _ in range(steps):
                next(g)
            g.close()
            c.check("prepare closed while listing, after {} steps".format(steps))
