"""Time on a board (platform/esp32.py over the board doubles, the real store): an RTC that starts in 2000 is
"unknown" until NTP sets it; NTP moves the clock forward; after a power cut the RTC is back in 2000 (a step back
of 26 years) and the clock goes on from the newest stored row instead, so rows stay in order, a ``since`` cursor
sees every new row and retention still deletes the oldest segment first."""

from devtest import StubConfig, quiet_log, tmpdir
from sensorbox.device.store import core, export

BOARD = True
NTP_2026 = 1796472000000  # 2026-12-05 12:00 UTC


def _store(root, clock):
    st = core.Store(root, quiet_log(), clock)
    st.configure(StubConfig())
    st.open()
    return st


def _times(st, now, since=None):
    params = {"format": "csv", "start": "0"}
    if since is not None:
        params["since"] = str(since)
    p = export.plan(st, "predictions", params, now)
    text = b"".join(bytes(c) for c in export.stream(st, p)).decode()
    return [int(line.split(",")[0]) for line in text.strip().split("\n")[1:] if line]


def _add_row(st, plat, k):
    import time

    time.sleep_ms(5)  # (one row per ms at most: the store makes times strictly increasing)
    t = plat.epoch_ms()
    st.on_bus("predictions", t, (k, 900))
    st.flush()
    return t


def test_unknown_until_ntp_forward_jump_and_a_step_back_across_a_power_cut():
    import machine

    from sensorbox.device import boot
    from sensorbox.device.platform import esp32

    data = tmpdir("data")
    machine.power_cycle()  # first power-on: the RTC starts at 2000-01-01
    p = esp32.Platform(data)
    assert not p.clock().known and p.epoch_ms() < 946684800000 + 600000
    st = _store(data + "/store", p.epoch_ms)
    assert boot.floor(p.clock(), st, quiet_log()) == 0  # nothing stored yet
    t1 = _add_row(st, p, 1)
    t2 = _add_row(st, p, 2)
    st.cursor("hook", "predictions")
    st.advance("hook", t2)
    p.set_time(NTP_2026)  # NTP: a jump forward of 26 years
    assert p.clock().known and p.epoch_ms() >= NTP_2026
    t3 = _add_row(st, p, 3)
    assert t1 < t2 < NTP_2026 <= t3
    st.save_cursors()
    st.close()

    machine.reset_cause()  # (a soft reset keeps the RTC: still known)
    p_soft = esp32.Platform(data)
    assert p_soft.clock().known and p_soft.epoch_ms() >= t3

    machine.power_cycle()  # a power cut: the RTC is back in 2000, the "synced" mark gone
    p2 = esp32.Platform(data)
    assert not p2.clock().known and p2.epoch_ms() < t1 + 600000
    st2 = _store(data + "/store", p2.epoch_ms)
    log = quiet_log()
    moved = boot.floor(p2.clock(), st2, log)
    assert moved > 26 * 365 * 86400000 and "behind the newest stored row" in str(log.entries())
    assert p2.epoch_ms() > t3 and p2.clock().ahead_ms == moved
    t4 = _add_row(st2, p2, 4)
    t5 = _add_row(st2, p2, 5)
    assert t3 < t4 < t5
    now = p2.epoch_ms()
    got = _times(st2, now)
    assert got == [t1, t2, t3, t4, t5], (got, [t1, t2, t3, t4, t5])  # in order
    assert _times(st2, now, since=t2) == [t3, t4, t5]  # the cursor's reader misses nothing
    assert st2.cursors["hook"][1] == t2
    # retention: the oldest segment (the 2000 rows) is the first to go
    import os

    names = sorted(int(n[:-4]) for n in os.listdir(st2.by_name["predictions"].dir) if n.endswith(".seg"))
    assert names == sorted(names) and names[0] <= t1
    # NTP again, now behind the clock (it went on from the stored rows): time stays monotonic, "ahead" is said
    p2.set_time(t5 - 5000)
    assert p2.clock().known and p2.epoch_ms() >= t5 and p2.clock().ahead_ms >= 5000
    st2.close()
