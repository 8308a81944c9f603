"""The platform layer on the unix port: wall clock, device id, flash figures."""

import os
import time

from devtest import quiet_log, tmpdir
from sensorbox.device.platform import Clock


def test_clock_counts_from_its_reference_and_never_goes_back():
    c = Clock(1700000000.5)
    t0 = c.epoch_ms()
    assert 1700000000500 <= t0 < 1700000000500 + 1000
    time.sleep_ms(30)
    t1 = c.epoch_ms()
    assert t1 >= t0 + 25
    c.resync(t1 - 60000)  # an older reading is ignored
    assert c.epoch_ms() >= t1
    c.resync(t1 + 3600000)  # a newer one is adopted
    assert c.epoch_ms() >= t1 + 3600000
    last = c.epoch_ms()
    c._ref_ms -= 10000  # even if the reference moved back, readings do not
    assert c.epoch_ms() >= last


def test_clock_reanchors_before_ticks_wrap():
    c = Clock(1000)
    c._ref_ticks = time.ticks_add(time.ticks_ms(), -86400001)  # pretend a day passed since the reference
    t = c.epoch_ms()
    assert t >= 1000000 + 86400000
    assert abs(time.ticks_diff(time.ticks_ms(), c._ref_ticks)) < 1000 and c._ref_ms == t


def test_unix_platform_id_is_kept_with_the_data():
    d = tmpdir()
    os.putenv("SENSORBOX_DATA", d)
    from sensorbox.device.platform.unix import Platform

    a = Platform().unique_id(quiet_log())
    b = Platform().unique_id(quiet_log())
    assert a == b and len(a) == 12
    with open(d + "/device-id") as f:
        assert f.read() == a
    total, free = Platform().flash_stats()
    assert total > free > 0
