"""Time on a board (platform/esp32.py over the board doubles, the real store): an RTC that starts in 2000 is
"unknown" until NTP sets it; NTP moves the clock forward and what was stored meanwhile is placed where it belongs
(nothing rewritten: ``store/recover.resync``); after a power cut the RTC is back in 2000 (a step back of 26 years) and
the clock goes on from the newest stored row instead, so rows stay in order, a ``since`` cursor sees every new row
and retention still deletes the oldest segment first; an NTP time behind the clock is not taken."""

import os

from devtest import StubConfig, quiet_log, tmpdir
from sensorbox.device.store import core, export, recover

BOARD = True
HEAPSIZE = "128wK"  # (two stores at a time and the store's recovery module, imported here for good)
NTP_2026 = 1796472000000  # 2026-12-05 12:00 UTC


def _store(root, clock):
    st = core.Store(root, quiet_log(), clock)
    st.configure(StubConfig())
    st.open()
    return st


def _times(st, now, since=None, name="predictions"):
    params = {"format": "csv", "start": "0"}
    if since is not None:
        params["since"] = str(since)
    p = export.plan(st, name, params, now)
    text = b"".join(bytes(c) for c in export.stream(st, p)).decode()
    return [int(line.split(",")[0]) for line in text.strip().split("\n")[1:] if line]


def _add_row(st, plat, k):
    import time

    time.sleep_ms(5)  # (one row per ms at most: the store makes times strictly increasing)
    t = plat.epoch_ms()
    st.on_bus("predictions", t, (k, 900))
    st.flush()
    return t


def test_unknown_until_ntp_placed_when_known_and_a_step_back_across_a_power_cut():
    import machine

    from sensorbox.device.integrations.outbox import Outbox
    from sensorbox.device.platform import esp32
    from sensorbox.device.store import figures

    data = tmpdir("data")
    machine.power_cycle()  # first power-on: the RTC starts at 2000-01-01
    p = esp32.Platform(data)
    assert not p.clock().known and p.epoch_ms() < 946684800000 + 600000
    st = _store(data + "/store", p.epoch_ms)
    assert recover.floor(p.clock(), st, quiet_log()) == 0  # nothing stored yet
    t1 = _add_row(st, p, 1)
    st.on_bus("events", p.epoch_ms(), {"type": "boot"})
    t2 = _add_row(st, p, 2)
    te = _times(st, p.epoch_ms(), name="events")[0]
    st.cursor("hook", "predictions", t1)  # t1 was delivered
    ob = Outbox(st, "mq", "predictions", t1)
    # NTP: a jump forward of 26 years; the rows stored meanwhile are placed that much later, where they belong
    add = p.set_time(NTP_2026)
    assert p.clock().known and p.epoch_ms() >= NTP_2026 and NTP_2026 - t2 - 60000 <= add <= NTP_2026 - t2
    recover.resync(st, add)
    assert _times(st, p.epoch_ms()) == [t1 + add, t2 + add] and t2 + add <= NTP_2026
    assert _times(st, p.epoch_ms(), name="events") == [te + add]
    assert st.cursors["hook"][1] == t1 + add  # the cursor moved with them: nothing is sent twice
    t3 = _add_row(st, p, 3)
    assert t2 + add < NTP_2026 <= t3
    assert _times(st, p.epoch_ms()) == [t1 + add, t2 + add, t3]
    assert _times(st, p.epoch_ms(), since=t1 + add) == [t2 + add, t3]  # a since cursor misses nothing
    assert [r[0] for r in Outbox(st, "mq", "predictions").read(10)] == [t2 + add, t3]  # what MQTT would send
    assert ob.t == t1  # (a sink's own copy of its cursor is older: it may send t1 once more, never skip a row)
    st.save_cursors()
    st.close()
    st = ob = None  # (a store's buffers are big for this heap: only one at a time)
    __import__("gc").collect()

    machine.reset_cause()  # (a soft reset keeps the RTC: still known)
    p_soft = esp32.Platform(data)
    assert p_soft.clock().known and p_soft.epoch_ms() >= t3

    machine.power_cycle()  # a power cut: the RTC is back in 2000, the "synced" mark gone
    p2 = esp32.Platform(data)
    assert not p2.clock().known and p2.epoch_ms() < t1 + 600000
    st2 = _store(data + "/store", p2.epoch_ms)
    assert _times(st2, p2.epoch_ms()) == [t1 + add, t2 + add, t3]  # (the placement is kept on flash)
    log = quiet_log()
    moved = recover.floor(p2.clock(), st2, log)
    assert moved > 26 * 365 * 86400000 and "behind the newest stored row" in str(log.entries())
    assert p2.epoch_ms() > t3 and p2.clock().ahead_ms == moved
    t4 = _add_row(st2, p2, 4)
    t5 = _add_row(st2, p2, 5)
    assert t3 < t4 < t5
    now = p2.epoch_ms()
    assert _times(st2, now) == [t1 + add, t2 + add, t3, t4, t5]  # in order (t4, t5 not placed yet)
    assert _times(st2, now, since=t2 + add) == [t3, t4, t5]
    assert st2.cursors["hook"][1] == t1 + add
    # retention: the oldest segment (the 2000 rows) is the first to go
    names = sorted(int(n[:-4]) for n in os.listdir(st2.by_name["predictions"].dir) if n.endswith(".seg"))
    assert names[0] <= t1
    # the device was off for about an hour: NTP places t4 and t5 that much later
    add2 = p2.set_time(t5 + 3600000)
    assert 3600000 - 60000 <= add2 <= 3600000
    recover.resync(st2, add2)
    got = _times(st2, p2.epoch_ms())
    assert got == [t1 + add, t2 + add, t3, t4 + add2, t5 + add2] and got == sorted(got), got
    pred = [r for r in figures.resources(st2, p2.epoch_ms()) if r["name"] == "predictions"][0]
    assert pred["start"] == t1 + add, (pred["start"], t1 + add)
    # NTP again, now behind the clock: time stays monotonic, "ahead" is said, nothing moves
    assert p2.set_time(t5 + 3600000 - 5000) == 0
    assert p2.clock().known and p2.clock().ahead_ms >= 5000
    recover.resync(st2, 0)
    assert _times(st2, p2.epoch_ms()) == got
    st2.close()
    st2 = None
    __import__("gc").collect()
    # a timefix.json that does not read is set aside: the store opens, those rows keep the times they were stored with
    with open(data + "/store/timefix.json", "w") as f:
        f.write("[[1, 2]]")
    st3 = _store(data + "/store", p2.epoch_ms)
    assert st3.quarantined == 1 and "timefix.json" in str(st3.notes)
    assert _times(st3, p2.epoch_ms()) == [t1, t2, t3, t4, t5]
    st3.close()


class _Clock:  # a clock the test moves (``recover.floor`` reads ``known`` and ``epoch_ms``)
    known = False
    ahead_ms = 0

    def __init__(self, t):
        self.t = t

    def epoch_ms(self):
        return self.t


def _sound_rows(st, clock, t0, n):
    for i in range(n):
        clock.t = t0 + 1000 * i
        st.on_bus("soundlevel", clock.t, (6000 + i, 5000, 7000, 6500, 6000, 5500))
        if i % 8 == 7:
            st.flush()
    st.flush()


def _roll(st):
    from sensorbox.device.store import rollup

    for _ in rollup.step(st, 0):
        pass


def test_rollups_and_pins_of_rows_stored_while_the_clock_was_unknown_move_with_them():
    # Issue 16's readers of stored times: the minute rollups summarise with the clock the rows were stored with,
    # then move with them when NTP places them (their staged rows too) and go on after them, never summarising a
    # row twice (the rest of the period cut by the resync is left out); a recording that began meanwhile keeps its
    # data from retention where the rows now are.
    from sensorbox.device.store import retain

    unknown = 946684800000  # 2000-01-01, a minute's start: an RTC after a power cut
    clock = _Clock(unknown)
    st = core.Store(tmpdir("roll") + "/store", quiet_log(), clock.epoch_ms, None, 1024)  # (segments of 1 KB)
    st.configure(StubConfig())
    st.open()
    recover.floor(clock, st, quiet_log())
    _sound_rows(st, clock, unknown, 150)
    st.pin_open = unknown + 1000  # a recording (MQTT, Home Assistant) began with that clock
    _roll(st)
    assert _times(st, clock.t, name="soundlevel_1m") == [unknown, unknown + 60000]  # (in the stage)
    add = NTP_2026 - clock.t
    clock.t = NTP_2026
    clock.known = True
    recover.resync(st, add)
    assert _times(st, clock.t, name="soundlevel_1m") == [unknown + add, unknown + 60000 + add]
    assert st.pin_open == unknown + 1000 + add
    sl = st.by_name["soundlevel"]
    assert sl.nseg >= 3 and retain.oldest(st, sl) is None  # (every closed segment holds rows of the recording)
    st.pin_open = -1
    assert retain.oldest(st, sl) is not None
    _sound_rows(st, clock, NTP_2026, 150)
    clock.t += 60000
    _roll(st)
    got = _times(st, clock.t, name="soundlevel_1m")
    assert got[:2] == [unknown + add, unknown + 60000 + add] and got == sorted(got), got
    assert len([t for t in got if t < unknown + 120000 + add]) == 2, got  # nothing summarised twice
    assert got[-1] == NTP_2026 + 180000 - (NTP_2026 + 180000) % 60000 - 60000 and len(got) >= 5, got
    st.close()
