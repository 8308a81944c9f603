"""The LSM6DS3 driver (sensors/lsm6ds3.py) against a datasheet model of the part on a fake I2C bus."""

import array

import asyncio
import micropython

from devtest import FakeClock, StubConfig, quiet_log, until
from fake_lsm6ds3 import FakeLSM6DS3, frame
from sensorbox.device.sensors.lsm6ds3 import LSM6DS3
from sensorbox.device.sensors.ring import Batch
from sensorbox.device.sensors.sampler import Sensor


def _driver(clock, rate=50, rng=8, who=0x6A, **kw):
    part = FakeLSM6DS3(clock, who=who, fifo_words=4096 if who == 0x69 else 2048, **kw)
    cfg = StubConfig(accel__rate_hz=rate, accel__range_g=rng, accel__poll_ms=5)
    return part, LSM6DS3(part, 0x6A, cfg, clock)


def _check_frames(batch, first):
    for i in range(batch.n):
        for a in range(3):
            got = batch.data[3 * i + a]
            want = frame(first + i, a)
            if got != want:
                raise AssertionError("frame {} axis {}: {} != {}".format(first + i, a, got, want))


def test_configuration_writes_the_datasheet_values():
    clock = FakeClock()
    for rate, rng, odr_hz, ctrl1, ctrl5 in ((50, 8, 52, 0x3C, 0x1E), (25, 2, 26, 0x20, 0x16),
                                            (100, 16, 104, 0x44, 0x26), (100, 4, 104, 0x48, 0x26)):
        part, drv = _driver(clock, rate, rng)
        assert drv.probe() == "LSM6DS3TR-C"
        drv.start()
        assert drv.rate_hz == odr_hz
        r = part.regs
        assert r[0x10] == ctrl1, hex(r[0x10])  # CTRL1_XL: ODR_XL | FS_XL
        assert r[0x0A] == ctrl5, hex(r[0x0A])  # FIFO_CTRL5: ODR_FIFO | continuous
        assert r[0x08] == 0x01  # FIFO_CTRL3: accelerometer, no decimation; no gyroscope
        assert r[0x11] == 0x00  # CTRL2_G: gyroscope off
        assert r[0x12] == 0x44  # CTRL3_C: BDU | IF_INC
        regs = [w[0] for w in part.writes]
        # The FIFO is put in bypass (emptied) before anything else is set, and started last.
        assert part.writes[regs.index(0x0A)] == (0x0A, 0x00)
        assert part.writes[-1] == (0x0A, ctrl5)
        drv.stop()
        assert r[0x10] == 0 and r[0x0A] == 0


def test_original_lsm6ds3_is_recognised():
    clock = FakeClock()
    part, drv = _driver(clock, who=0x69)
    assert drv.probe() == "LSM6DS3"
    assert drv.fifo_frames == 1365


def test_wrong_who_am_i_and_absent_part_give_clear_errors():
    clock = FakeClock()
    part, drv = _driver(clock, who=0x33)
    try:
        drv.start()
        raise AssertionError("a part with WHO_AM_I 0x33 was accepted")
    except OSError as e:
        msg = str(e)
    assert "WHO_AM_I" in msg and "0x33" in msg and "0x6a" in msg, msg
    assert part.writes == []  # nothing was configured on a foreign part
    part, drv = _driver(clock, present=False)
    try:
        drv.probe()
        raise AssertionError("an absent part was accepted")
    except OSError as e:
        msg = str(e)
    assert "no answer at I2C address 0x6a" in msg, msg


def test_unsupported_range_names_the_key():
    try:
        _driver(FakeClock(), rng=3)
        raise AssertionError("3 g accepted")
    except ValueError as e:
        assert "accel.range_g" in str(e) and "3 g" in str(e), str(e)


def test_frames_read_equal_what_the_part_made():
    clock = FakeClock()
    part, drv = _driver(clock, rate=100)
    drv.start()
    batch = Batch(3, drv.batch_frames)
    assert drv.read(batch) == 0
    seq = 0
    for step_ms in (10, 500, 37, 2000, 1, 333):
        clock.advance(step_ms)
        made = part.level() // 3
        got = 0
        while True:
            n = drv.read(batch)
            if n == 0:
                break
            assert batch.seq == seq, (batch.seq, seq)
            _check_frames(batch, seq)
            seq += n
            got += n
        assert got == made, (got, made)
    assert seq == 2881 * 104 // 1000
    assert drv.lost == 0 and drv.overruns == 0
    assert part.level() == 0


def test_overflow_is_detected_and_counted_as_a_sequence_jump():
    clock = FakeClock()
    part, drv = _driver(clock, rate=100)
    drv.start()
    batch = Batch(3, drv.batch_frames)
    clock.advance(10000)  # 1040 frames made; the 4 KB FIFO holds 682 (+2 words): the oldest are overwritten
    n = drv.read(batch)
    assert n == 32
    # Words 0..1071 were overwritten: frame 357 is incomplete, so 358 are lost and the driver realigns on 358.
    assert part.overwritten == 1072
    assert drv.overruns == 1
    assert batch.seq == 358, batch.seq
    assert drv.lost == 358
    _check_frames(batch, 358)
    seq = 358 + n
    while True:
        n = drv.read(batch)
        if not n:
            break
        assert batch.seq == seq
        _check_frames(batch, seq)
        seq += n
    assert seq == 1040 and drv.overruns == 1


def test_full_fifo_reads_as_full_not_empty():
    # DIFF_FIFO is 11 bits on the TR-C: 2048 words read as 0. With FIFO_FULL set the driver reads it all.
    clock = FakeClock()
    part, drv = _driver(clock, rate=100)
    drv.start()
    clock.advance(6568)  # 683 frames = 2049 words: 2048 kept, one overwritten
    assert part.level() == 2048
    batch = Batch(3, drv.batch_frames)
    assert drv.read(batch) == 32
    assert batch.seq == 1 and drv.lost == 1


def test_read_path_allocates_nothing():
    clock = FakeClock()
    part, drv = _driver(clock, rate=100)
    drv.start()
    batch = Batch(3, drv.batch_frames)
    total = 0
    for step in (300, 20, 7000, 40):  # normal reads of 31 and 2 frames (chunks of 16..1), then an overflow
        clock.advance(step)
        micropython.heap_lock()
        try:
            n = drv.read(batch)
            while n:
                total += n
                n = drv.read(batch)
        finally:
            micropython.heap_unlock()
    assert total > 700 and drv.overruns == 1


def test_timestamps_follow_the_board_clock_without_jumps():
    # The part's clock runs 0.3 % fast against the board's: timestamps follow the board, one batch to the
    # next never moves more than 1 ms off the nominal period (no spurious store segments), no loss is reported.
    clock = FakeClock()
    part, drv = _driver(clock, rate=50, ppm=3000)
    t_start = clock()
    drv.start()
    batch = Batch(3, drv.batch_frames)
    prev = None
    worst = 0
    for i in range(1500):  # 60 s in 40 ms polls
        clock.advance(40)
        n = drv.read(batch)
        while n:
            if prev is not None:
                expect = prev[0] + (batch.seq - prev[1]) * 1000 // 52
                assert abs(batch.t_ms - expect) <= 2, (batch.t_ms, expect)
            prev = (batch.t_ms, batch.seq)
            # The board-clock time of the frame, from the fake part's own clock.
            true_t = t_start + (batch.seq + 1) * 1000000000 // (52 * 1003000)
            err = abs(batch.t_ms - true_t)
            worst = max(worst, err) if i > 100 else worst
            n = drv.read(batch)
    assert drv.lost == 0
    assert worst <= 20, worst  # within one sample period (19 ms) once settled


def test_bus_errors_lose_counted_frames_and_persistent_ones_raise():
    clock = FakeClock()
    part, drv = _driver(clock, rate=100)
    drv.start()
    batch = Batch(3, drv.batch_frames)
    clock.advance(1000)  # 104 frames
    assert drv.read(batch) == 32
    part.fail_next = 1  # the status read fails: nothing is lost
    assert drv.read(batch) == 0 and drv.bus_errors == 1
    # The status read passes and the FIFO burst fails after taking half its words.
    first_after = None
    drv.i2c = _FailSecond(part)
    assert drv.read(batch) == 0 and drv.bus_errors == 2
    drv.i2c = part
    got = 0
    while True:
        n = drv.read(batch)
        if not n:
            break
        if first_after is None:
            first_after = batch.seq
        _check_frames(batch, batch.seq)
        got += n
    # The failed burst took 16 frames' worth of words (32 frames asked, half taken): counted as lost, so
    # every frame made is either delivered or counted.
    assert first_after == 32 + 16, first_after
    assert drv.lost == 16 and 32 + got + drv.lost == 104
    part.fail_next = 100
    for i in range(9):
        assert drv.read(batch) == 0
    try:
        drv.read(batch)
        raise AssertionError("ten failed reads in a row did not raise")
    except OSError:
        pass


class _FailSecond:
    """Passes the first transaction through, fails the second (a FIFO data burst) after it took half its words."""

    def __init__(self, part):
        self.part = part
        self.n = 0

    def readfrom_mem_into(self, addr, reg, buf):
        self.n += 1
        if self.n == 2:
            self.part.fail_next = 1
        return self.part.readfrom_mem_into(addr, reg, buf)


async def test_sampler_counts_overflow_from_the_driver():
    clock = FakeClock()
    part, drv = _driver(clock, rate=100)
    sensor = Sensor("accel", lambda: drv, quiet_log(), 3, 500)
    task = asyncio.create_task(sensor.run())
    try:
        await until(lambda: sensor.driver is not None)
        clock.advance(1000)
        await until(lambda: sensor.received == 104)
        clock.advance(10000)  # 1040 more frames into a FIFO of 682
        await until(lambda: sensor.received + sensor.dropped == 1144)
        assert sensor.dropped == 1040 - 682 and sensor.gaps == 1
        assert sensor.last_gap[1] == 358
        first, n = sensor.ring.read(sensor.ring.oldest(), array.array("h", bytes(6)), 1)
        assert first == 1144 - 500
    finally:
        task.cancel()
        await asyncio.sleep_ms(0)
