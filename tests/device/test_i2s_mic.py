"""The I2S microphone driver (sensors/i2s_mic.py) against a fake I2S bus with an INMP441-like microphone."""

import array

import asyncio
import micropython

import fake_i2s
from devtest import FakeClock, StubConfig, inner, quiet_log, until
from fake_i2s import FakeI2S, sample24
from sensorbox.device.sensors import i2s_mic
from sensorbox.device.sensors.i2s_mic import I2SMicrophone
from sensorbox.device.sensors.ring import Batch
from sensorbox.device.sensors.sampler import Sensor


def _driver(clock, rate=16000, channel="left"):
    made = []

    def make(rate_hz, stereo, ibuf):
        i2s = FakeI2S(clock, rate_hz, fake_i2s.STEREO if stereo else fake_i2s.MONO, 32, ibuf)
        made.append(i2s)
        return i2s

    def board_clock():
        # On the board the I2S background runs all the time; here whenever the driver looks at the clock.
        for i2s in made:
            i2s.service()
        return clock()

    cfg = StubConfig(mic__rate_hz=rate, mic__poll_ms=5)
    return made, I2SMicrophone(make, cfg, board_clock, channel)


def _expect(i, sign=1):
    return (sign * sample24(i)) >> 8  # the top 16 of 24 bits, arithmetic shift


def _drain(drv, i2s, batch, first, sign=1):
    """Read everything buffered; check the samples; returns the next expected frame index."""
    k = first
    while True:
        i2s.service()
        n = drv.read(batch)
        if not n:
            return k
        for i in range(n):
            want = _expect(k + i, sign)
            if batch.data[i] != want:
                raise AssertionError("frame {}: {} != {}".format(k + i, batch.data[i], want))
        k += n


def test_kernels_agree_on_edge_values():
    words = (0, 1 << 8, -(1 << 8), 0x7FFFFF << 8, -(0x800000 << 8), 0x7FFF0000, -0x80000000, 0x12345600, -0x123400)
    src = bytearray(4 * len(words))
    for i in range(len(words)):
        w = words[i] & 0xFFFFFFFF
        for b in range(4):
            src[4 * i + b] = (w >> (8 * b)) & 0xFF
    want = [w >> 16 for w in words]
    for conv in (inner(i2s_mic, "_convert"), i2s_mic.s32_to_s16_py):
        out = array.array("h", bytes(2 * len(words)))
        conv(src, 1, 0, out, len(words))
        assert list(out) == want, (conv, list(out), want)
        out2 = array.array("h", bytes(2 * 4))
        conv(src, 2, 1, out2, 4)  # the right slot of stereo frames
        assert list(out2) == want[1::2][:4]
    assert i2s_mic.VARIANT == "viper"  # the unix port, like the ESP32, has the viper emitter


def test_samples_read_equal_what_the_microphone_made():
    clock = FakeClock()
    made, drv = _driver(clock)
    drv.start()
    i2s = made[0]
    assert i2s.fmt == fake_i2s.MONO and i2s.rate == 16000
    batch = Batch(1, drv.batch_frames)
    k = 0
    for step in (5, 20, 20, 37, 100, 3):
        clock.advance(step)
        k = _drain(drv, i2s, batch, k)
    # Everything but the part of a chunk still being filled has come through, gap-free and in order.
    assert 185 * 16 - 256 <= k <= 185 * 16, k
    assert drv.lost == 0 and i2s.dropped == 0
    drv.stop()
    assert i2s.deinited


def test_right_channel_is_selected_in_stereo():
    clock = FakeClock()
    made, drv = _driver(clock, rate=8000, channel="right")
    drv.start()
    assert made[0].fmt == fake_i2s.STEREO
    clock.advance(500)
    batch = Batch(1, drv.batch_frames)
    # 4000 frames made while nobody read: 1024 fit the ring buffer and 2 x 256 the chunks, 2464 are dropped and
    # found from the clock (to within half a chunk).
    got = _drain(drv, made[0], batch, 0, sign=-1)
    assert made[0].dropped == 2464, made[0].dropped
    assert got == 1536, got
    assert drv.lost > 0 and abs(drv.lost - 2464) <= 128, drv.lost
    assert batch.t_ms == drv._t0 + batch.seq * 1000 // 8000


def test_bad_channel_names_the_key():
    try:
        _driver(FakeClock(), channel="middle")
        raise AssertionError("accepted")
    except ValueError as e:
        assert "mic.channel" in str(e)


def test_read_path_allocates_nothing():
    clock = FakeClock()
    made, drv = _driver(clock)
    drv.start()
    i2s = made[0]
    batch = Batch(1, drv.batch_frames)
    total = 0
    for step in (20, 20, 40, 400):
        clock.advance(step)
        micropython.heap_lock()
        try:
            i2s.service()  # the I2S background and the driver's callback, then the reads
            n = drv.read(batch)
            while n:
                total += n
                i2s.service()
                n = drv.read(batch)
        finally:
            micropython.heap_unlock()
    assert total >= 3000, total  # 80 ms + the 2048 + 512 frames buffered of the last 400 ms


async def test_stalled_loop_loses_frames_and_the_sampler_counts_them():
    clock = FakeClock()
    made, drv = _driver(clock)
    sensor = Sensor("mic", lambda: drv, quiet_log(), 1, 1024)
    task = asyncio.create_task(sensor.run())
    try:
        await until(lambda: sensor.driver is not None)
        i2s = made[0]
        for _ in range(10):  # 200 ms in 20 ms steps, with the I2S background running
            clock.advance(20)
            i2s.service()
            await asyncio.sleep_ms(10)
        await until(lambda: sensor.received >= 3200 - 256)
        assert sensor.dropped == 0
        clock.advance(1000)  # the loop stalls for a second: 16000 frames into 2048 + 2 x 256 of buffers
        i2s.service()
        for _ in range(20):
            clock.advance(10)
            i2s.service()
            await asyncio.sleep_ms(10)
        await until(lambda: sensor.dropped > 0)
        assert i2s.dropped > 12000
        # What was lost, as counted, is what the fake dropped, to within the 20 ms of slack.
        assert abs(sensor.dropped - i2s.dropped) <= 320, (sensor.dropped, i2s.dropped)
        assert sensor.gaps == 1
    finally:
        task.cancel()
        await asyncio.sleep_ms(0)
