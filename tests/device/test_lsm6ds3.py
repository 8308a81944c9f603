"""The LSM6DS3 driver (sensors/lsm6ds3.py) against a datasheet model of the part on a fake I2C bus."""

import array

import asyncio
import micropython

from devtest import FakeClock, StubConfig, quiet_log, until
from fake_lsm6ds3 import FakeLSM6DS3, frame
from sensorbox.device.sensors import lsm6ds3
from sensorbox.device.sensors.lsm6ds3 import LSM6DS3
from sensorbox.device.sensors.ring import Batch
from sensorbox.device.sensors.sampler import Sensor


def _driver(clock, rate=50, rng=8, who=0x6A, gyro=False, **kw):
    part = FakeLSM6DS3(clock, who=who, fifo_words=4096 if who == 0x69 else 2048, **kw)
    cfg = StubConfig(accel__rate_hz=rate, accel__range_g=rng, accel__poll_ms=5, accel__gyro=gyro)
    return part, LSM6DS3(part, 0x6A, cfg, clock)


def _gyro16(v):
    # the part's 70 mdps counts as the device's 16.4 per dps, written out the long way (not the driver's formula)
    dps = v * 70 / 1000
    c = dps * 16.4
    return max(-32768, min(32767, int(c + 0.5) if c >= 0 else -int(-c + 0.5)))


def _drain(drv, batch, seq):
    """Read the FIFO empty, checking that the frames follow ``seq`` and are the part's; the next seq."""
    while True:
        n = drv.read(batch)
        if n == 0:
            return seq
        assert batch.seq == seq, (batch.seq, seq)
        _check_frames(batch, seq)
        seq += n


def _read_in_steps(clock, part, drv, batch):
    """Reads at uneven intervals, each taking every frame the part made since; the frames read."""
    seq = 0
    for step_ms in (10, 500, 37, 2000, 1, 333):
        clock.advance(step_ms)
        made = part.level() // batch.channels
        got = _drain(drv, batch, seq) - seq
        assert got == made, (got, made)
        seq += got
    return seq


def _check_frames(batch, first):
    ch = batch.channels
    for i in range(batch.n):
        for a in range(ch):
            got = batch.data[ch * i + a]
            want = frame(first + i, a) if a < 3 else _gyro16(frame(first + i, a))
            if got != want and not (a >= 3 and abs(got - want) <= 1):  # (rounding: within one count)
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


def test_gyroscope_configuration_writes_the_datasheet_values():
    # CTRL2_G (11h): ODR_G[7:4] = the accelerometer's ODR code, FS_G[3:2] = 11 (2000 dps); FIFO_CTRL3 (08h):
    # DEC_FIFO_GYRO[5:3] = 001 and DEC_FIFO_XL[2:0] = 001 (both in the FIFO, no decimation): 0x09
    clock = FakeClock()
    for rate, ctrl2 in ((25, 0x2C), (50, 0x3C), (100, 0x4C)):
        part, drv = _driver(clock, rate, gyro=True)
        drv.start()
        r = part.regs
        assert r[0x11] == ctrl2, hex(r[0x11])
        assert r[0x08] == 0x09, hex(r[0x08])
        assert drv.columns == ("x", "y", "z", "gx", "gy", "gz")
        assert drv.fifo_frames == 2048 // 6 and part.set_words == 6
        drv.stop()
        assert r[0x11] == 0 and r[0x10] == 0 and r[0x0A] == 0  # both sensors powered down


def test_the_double_orders_its_fifo_as_the_datasheet_says():
    # The double against the datasheet, through the bus alone (no driver): with both sensors in the FIFO at one
    # ODR, the FIFO pattern is gyroscope X, Y, Z then accelerometer X, Y, Z (DocID026899 8.4; AN4650 "FIFO
    # pattern"); FIFO_PATTERN (3Ch/3Dh) is the index of the next word in it (0..5); DIFF_FIFO counts words.
    clock = FakeClock()
    part = FakeLSM6DS3(clock)
    for reg, v in ((0x12, 0x44), (0x11, 0x3C), (0x10, 0x3C), (0x08, 0x09), (0x0A, 0x1E)):
        part.writeto_mem(0x6A, reg, bytes([v]))
    clock.advance(100)  # 5 frames at 52 Hz
    st = part.readfrom_mem(0x6A, 0x3A, 4)
    assert st[0] == 30 and st[2] == 0, st  # 5 sets of 6 words, the next one a gyroscope X
    words = bytearray(2 * 8)
    part.readfrom_mem_into(0x6A, 0x3E, words)
    got = [int.from_bytes(words[i:i + 2], "little") for i in range(0, 16, 2)]
    got = [v - 65536 if v >= 32768 else v for v in got]
    want = [frame(0, 3), frame(0, 4), frame(0, 5), frame(0, 0), frame(0, 1), frame(0, 2), frame(1, 3), frame(1, 4)]
    assert got == want, (got, want)
    assert part.readfrom_mem(0x6A, 0x3C, 1)[0] == 2  # next: gyroscope Z of frame 1
    # a gyroscope at another rate than the accelerometer's makes another pattern: not modelled, said so
    try:
        part.writeto_mem(0x6A, 0x0A, b"\x00")
        part.writeto_mem(0x6A, 0x11, b"\x4C")
        part.writeto_mem(0x6A, 0x0A, b"\x1E")
        raise AssertionError("a gyroscope ODR unlike the accelerometer's was modelled")
    except NotImplementedError as e:
        assert "ODR" in str(e)


def test_gyroscope_frames_read_equal_what_the_part_made_at_the_device_scale():
    # 6-channel frames (x y z gx gy gz): the accelerometer's words as they are, the gyroscope's 70 mdps counts as
    # 16.4 per dps (2293 dps full scale clamped at 1998); the plain kernel gives what the viper one does
    clock = FakeClock()
    part, drv = _driver(clock, rate=100, gyro=True)
    drv.start()
    batch = Batch(6, drv.batch_frames)
    assert _read_in_steps(clock, part, drv, batch) == 2881 * 104 // 1000 and drv.lost == 0
    src = array.array("h", [32767, -32768, 0, 1, 2, 3, 100, -100, 28539, 4, 5, 6])
    a = array.array("h", bytes(24))
    b = array.array("h", bytes(24))
    assert lsm6ds3._imu is not lsm6ds3.imu_frames_py  # (the viper kernel: the unix port has the emitter)
    lsm6ds3._imu(src, a, 0, 2)
    lsm6ds3.imu_frames_py(src, b, 0, 2)
    assert a == b and list(a[:6]) == [1, 2, 3, 32767, -32768, 0], list(a)
    assert list(a[9:12]) == [115, -115, 32763], list(a)  # 7 dps, -7 dps, 1997.7 dps
    micropython.heap_lock()
    try:
        lsm6ds3._imu(src, a, 0, 2)
    finally:
        micropython.heap_unlock()


def test_gyroscope_overflow_realigns_on_a_whole_frame():
    # Overwritten words leave the FIFO's head inside a frame (FIFO_PATTERN 1..5): the driver reads the rest of
    # that frame away and counts the frames lost, so every frame it delivers is whole and in its place.
    clock = FakeClock()
    part, drv = _driver(clock, rate=100, gyro=True)
    drv.start()
    batch = Batch(6, drv.batch_frames)
    clock.advance(10000)  # 1040 frames = 6240 words into 2048
    n = drv.read(batch)
    assert n == 32 and drv.overruns == 1
    over = part.overwritten
    assert over % 6 != 0, over  # the head is inside a frame
    first = over // 6 + 1
    assert batch.seq == first and drv.lost == first, (batch.seq, first)
    _check_frames(batch, first)
    assert _drain(drv, batch, first + n) == 1040


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
    assert _read_in_steps(clock, part, drv, batch) == 2881 * 104 // 1000
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
    assert _drain(drv, batch, 358 + n) == 1040 and drv.overruns == 1


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
    for gyro in (False, True):
        _read_without_allocating(gyro)


def _read_without_allocating(gyro):
    clock = FakeClock()
    part, drv = _driver(clock, rate=100, gyro=gyro)
    drv.start()
    batch = Batch(6 if gyro else 3, drv.batch_frames)
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
    assert total > (350 if gyro else 700) and drv.overruns == 1


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
