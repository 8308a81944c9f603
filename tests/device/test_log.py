"""The log: byte ring in RAM, batched writes to flash, rotation, counted loss, failing flash."""


from devtest import exists, tmpdir
from sensorbox.device.log import Log


def _log(path=None, **kw):
    t = [1000]

    def clock():
        t[0] += 1
        return t[0]

    return Log(clock, path, echo=False, **kw)


def test_entries_round_trip_with_multiline_messages():
    log = _log()
    log.info("store", "opened")
    log.warning("accel", "lost 3 frames")
    try:
        raise ValueError("boom")
    except ValueError as e:
        log.exception("sup", "mic failed", e)
    es = log.entries()
    assert [e["source"] for e in es] == ["store", "accel", "sup"]
    assert es[1]["level"] == "warning" and es[1]["msg"] == "lost 3 frames"
    assert es[2]["msg"].startswith("mic failed\nTraceback") and "ValueError: boom" in es[2]["msg"]
    assert es[0]["t"] < es[1]["t"]
    later = log.entries(since=es[1]["id"])
    assert [e["source"] for e in later] == ["accel", "sup"]
    assert [e["source"] for e in log.entries(min_level=30)] == ["accel", "sup"]


def test_level_filter():
    log = _log()
    log.set_level("warning")
    log.info("x", "hidden")
    log.error("x", "shown")
    assert [e["msg"] for e in log.entries()] == ["shown"]


def test_ring_is_bounded_and_keeps_whole_recent_entries():
    log = _log(ring_bytes=512)
    for i in range(200):
        log.info("src", "message number {}".format(i))
    es = log.entries()
    assert es[-1]["msg"] == "message number 199"
    assert 5 < len(es) < 30
    for e in es:  # never a torn entry
        assert e["msg"].startswith("message number ")
    nums = [int(e["msg"].split()[-1]) for e in es]
    assert nums == list(range(nums[0], 200))


def test_flush_appends_and_rotates():
    d = tmpdir()
    path = d + "/log.txt"
    log = _log(path, file_kb=1)
    for i in range(30):
        log.info("src", "entry {} {}".format(i, "x" * 40))
        if i % 5 == 4:
            assert log.flush() > 0
    assert log.pending() == 0
    assert exists(d + "/log.1.txt")
    with open(path) as f:
        current = f.read()
    with open(d + "/log.1.txt") as f:
        old = f.read()
    assert "entry 29" in current
    assert len(current) + len(old) <= 2 * 1024 + 600
    assert log.dropped == 0


def test_loss_before_flush_is_counted():
    d = tmpdir()
    log = _log(d + "/log.txt", ring_bytes=256)
    for i in range(50):
        log.info("src", "unflushed entry {}".format(i))
    assert log.dropped > 0
    log.flush()
    with open(d + "/log.txt") as f:
        text = f.read()
    assert "unflushed entry 49" in text


def test_unwritable_flash_keeps_entries_and_counts():
    log = _log("/nonexistent-dir/sub/log.txt")
    log.error("x", "still here")
    assert log.flush() == 0
    assert log.write_errors == 1
    assert log.entries()[-1]["msg"] == "still here"
    assert log.pending() > 0


def test_a_cursor_past_the_end_or_from_another_boot_reads_the_ring():
    # Issue 10.4: the Health page sends the "next" of the previous boot after a restart. Past the end it made the
    # ring read a negative size (MemoryError "allocating 18446744073709551562 bytes"), a huge one OverflowError;
    # now any cursor this boot did not give reads the entries the ring holds.
    log = _log()
    for i in range(5):
        log.info("src", "entry {}".format(i))
    everything = [e["msg"] for e in log.entries()]
    assert everything == ["entry {}".format(i) for i in range(5)]
    for since in (log.end() + 1, log.end() + 10 ** 6, 10 ** 23, 0, 1):
        assert [e["msg"] for e in log.entries(since)] == everything, since
    assert log.entries(log.end()) == []
    mid = log.entries()[2]["id"]
    assert [e["msg"] for e in log.entries(mid)] == everything[2:]
    assert [e["msg"] for e in log.entries(mid + 3)] == everything  # inside an entry: not a cursor of ours


def test_ids_of_two_boots_do_not_meet():
    # Each boot counts its ids from a random base, so a cursor from before a restart is recognised as foreign
    # (the chance that two bases lie within a boot's log of each other is tiny).
    a, b = _log(), _log()
    a.info("x", "one")
    b.info("x", "two")
    ia, ib = a.entries()[0]["id"], b.entries()[0]["id"]
    assert ia != ib and 0 <= ia < 2 ** 30 and 0 <= ib < 2 ** 30
    assert [e["msg"] for e in b.entries(a.end())] == ["two"]


def test_a_cursor_before_a_wrapped_ring_skips_the_torn_entry():
    log = _log(ring_bytes=256)
    for i in range(40):
        log.info("src", "wrapped entry {}".format(i))
    es = log.entries(log.end() + 5)
    assert es and es[-1]["msg"] == "wrapped entry 39"
    assert all(e["msg"].startswith("wrapped entry ") for e in es)


def test_streamed_entries_end_where_the_call_was_and_stop_at_an_overwritten_one():
    # GET /api/logs streams the entries one at a time (log_read.entries) while the device keeps logging: it gives
    # what was logged by the call (the "next" it answers), and an entry overwritten meanwhile ends the stream
    # rather than being read as garbage.
    from sensorbox.device import log_read

    log = _log(ring_bytes=512)
    for i in range(5):
        log.info("src", "entry {}".format(i))
    it = log_read.entries(log)
    log.info("src", "after the call")
    assert [e["msg"] for e in it] == ["entry {}".format(i) for i in range(5)]
    it = log_read.entries(log)
    assert next(it)["msg"].startswith("entry ")
    for i in range(40):  # the ring wraps over what the stream was to read
        log.info("src", "later entry {}".format(i))
    assert list(it) == []
