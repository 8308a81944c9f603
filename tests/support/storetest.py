"""Helpers for the store's device tests (tests/device/test_store*.py): deterministic frames, a store in a
directory, and reading it back through export's CSV stream chunk by chunk (little RAM)."""

from devtest import StubConfig, quiet_log
from sensorbox.device.store import core, export

T0 = 1700000000000


def rand_bytes(n, seed):
    """``n`` pseudo-random bytes (tests/support/testrng.py, loaded only here: some store tests run near their heap's
    end, and every module a test loads takes its share)."""
    from testrng import rand_bytes

    return rand_bytes(n, seed)


def frames(seq, n):
    """Deterministic accelerometer frames: every value is a function of its sequence number."""
    import array

    a = array.array("h", bytes(6 * n))
    for i in range(n):
        s = seq + i
        a[3 * i] = s % 30000
        a[3 * i + 1] = -(s % 20000)
        a[3 * i + 2] = (s * 7) % 32000
    return a


_warm = [True]


def warm():
    """Intern the names of the store's modules and of the .npy writer now, while the heap is whole, as a device's
    boot does (``boot.warm``); once per test process, at its first store. MicroPython's name pool grows by
    doubling, one block each time: a test that first loaded one of them late on a cut-up heap made the pool grow
    there (test_store's export chunks at 113wK: "allocating 640 bytes", a pool of 640 names, ~7 KB in one piece,
    with 90 KB free and 3 KB the largest piece)."""
    from sensorbox.device import lazy

    if _warm[0]:
        _warm[0] = False
        boot = lazy.load("sensorbox.device.boot")
        try:
            boot.warm_package("sensorbox.device.store", boot.WARM_SKIP)
            lazy.load("sensorbox.shared.npy")
            lazy.unload("sensorbox.shared.npy")
        finally:
            boot = None
            lazy.unload("sensorbox.device.boot")


def make(root, clock=None, flash=None, seg=core.SEG_BYTES, **cfg):
    warm()
    log = quiet_log()
    st = core.Store(root, log, clock or (lambda: T0), flash, seg)
    st.configure(StubConfig(**cfg))
    st.open()
    return st


def each_row(st, name, **params):
    """Rows of a resource through export's CSV stream, parsed chunk by chunk (little RAM): yields the column
    names, then each row as a list of ints (predictions: without the text column ``label``)."""
    if name == "predictions" and "columns" not in params and "max_points" not in params:
        params = dict(params, columns="t,class,confidence")
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
    st.reading = None  # (the export is over: with a clock that stands still it would hold retention off for good)


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


def each_label(st):
    """The labels of GET /api/labels one by one, from its chunks (the whole body would not fit a small heap)."""
    import json

    chunks = meta_mod().labels_json(st)
    assert next(chunks) == b'{"labels": ['
    for c in chunks:
        if c == b"]}":
            return
        if c:
            yield json.loads(c[1:] if c[:1] == b"," else c)
    raise AssertionError("no end")


def count_labels(st):
    from sensorbox.device.store import figures

    k = len(list(each_label(st)))
    n = [r for r in figures.resources(st, T0) if r["name"] == "labels"][0]["count"]
    assert n == k, (n, k)
    return n


def meta_mod():
    from sensorbox.device.store import meta

    return meta


def read_labels_csv(st, **params):
    p = export.plan(st, "labels", dict(params, format="csv"), T0)
    lines = b"".join(bytes(c) for c in export.stream(st, p)).decode().split("\n")
    assert lines[-1] == ""
    return lines[0], lines[1:-1]



