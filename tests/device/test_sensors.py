"""Sensor drivers, the sample ring and the sampling service, on MicroPython."""

import array
import math
import struct

import asyncio

from devtest import FakeClock, StubConfig, inner, quiet_log, until
from sensorbox.device.sensors.ring import Batch, SampleRing
from sensorbox.device.sensors.sampler import Sensor
from sensorbox.device.sensors.sim_accel import ReplayAccelerometer
from sensorbox.device.sensors.sim_mic import SignalMicrophone

REPLAY = "data/watch_excerpt.npy"


def _source_frames(first, n):
    """Frames first..first+n of the recording (x, y, z), read independently of the driver."""
    with open(REPLAY, "rb") as f:
        head = f.read(128)
        off = 10 + struct.unpack("<H", head[8:10])[0]
        ch = 6
        f.seek(off + first * ch * 2)
        raw = f.read(n * ch * 2)
    out = []
    for i in range(n):
        row = struct.unpack_from("<6h", raw, i * ch * 2)
        out.append(row[:3])
    return out


def _batch_frames(batch):
    return [tuple(batch.data[i * 3:i * 3 + 3]) for i in range(batch.n)]


def test_ring_wraps_and_readers_keep_their_place():
    ring = SampleRing(2, 8, 50)
    b = Batch(2, 5)
    seq = 0
    got = []
    pos = 0
    for k in range(6):
        for i in range(5):
            b.data[2 * i] = seq + i
            b.data[2 * i + 1] = -(seq + i)
        b.n, b.seq, b.t_ms = 5, seq, 1000 + seq * 20
        ring.write(b)
        seq += 5
        out = array.array("h", bytes(2 * 2 * 8))
        first, n = ring.read(pos, out, 8)
        assert first == pos
        got += [out[2 * i] for i in range(n)]
        pos = first + n
    assert got == list(range(30))
    assert ring.time_of(29) == 1000 + 29 * 20


def test_slow_reader_is_told_what_it_missed():
    ring = SampleRing(1, 8, 50)
    b = Batch(1, 4)
    for k in range(5):
        for i in range(4):
            b.data[i] = k * 4 + i
        b.n, b.seq, b.t_ms = 4, k * 4, 0
        ring.write(b)
    out = array.array("h", bytes(2 * 8))
    first, n = ring.read(0, out, 8)
    assert first == 12 and n == 8 and list(out) == list(range(12, 20))


def test_gaps_are_never_read_as_data():
    ring = SampleRing(1, 16, 50)
    b = Batch(1, 3)
    for seq in (0, 5):  # frames 3 and 4 were lost
        for i in range(3):
            b.data[i] = 100 + seq + i
        b.n, b.seq, b.t_ms = 3, seq, 0
        ring.write(b)
    out = array.array("h", bytes(2 * 16))
    first, n = ring.read(0, out, 16)
    assert (first, n) == (0, 3)
    first, n = ring.read(3, out, 16)
    assert (first, n) == (5, 3) and list(out[:3]) == [105, 106, 107]
    assert ring.gaps == [(3, 5)]


def test_replay_delivers_the_recording_exactly_at_its_rate():
    clock = FakeClock()
    drv = ReplayAccelerometer(REPLAY, StubConfig(), clock)
    drv.start()
    b = Batch(3, drv.batch_frames)
    assert drv.read(b) == 0
    clock.advance(1000)  # 1 s at 50 Hz
    frames = []
    n = drv.read(b)
    frames += _batch_frames(b)
    assert b.seq == 0 and n == 32 and b.t_ms == clock.t - 1000
    n = drv.read(b)
    assert b.seq == 32 and n == 18 and b.t_ms == clock.t - 1000 + 32 * 20
    frames += _batch_frames(b)
    assert frames == _source_frames(0, 50)
    drv.stop()


def test_replay_loops_at_the_end_of_the_recording():
    clock = FakeClock()
    drv = ReplayAccelerometer(REPLAY, StubConfig(), clock)
    drv.start()
    total = inner(drv, "_src_frames")
    drv._seq = total - 2  # fast-forward the sensor clock to just before the end
    clock.advance((total + 1) * 20)
    b = Batch(3, 32)
    drv.read(b)
    assert b.seq == total - 2 and b.n >= 3
    assert _batch_frames(b)[:3] == _source_frames(total - 2, 2) + _source_frames(0, 1)


def test_fifo_overflow_loses_oldest_frames_and_seq_jumps():
    clock = FakeClock()
    drv = ReplayAccelerometer(REPLAY, StubConfig(), clock)
    drv.start()
    clock.advance(20 * (drv.fifo_frames + 100))  # nobody read for 356 frames' time
    b = Batch(3, 32)
    drv.read(b)
    assert b.seq == 100  # frames 0..99 were overwritten in the FIFO
    assert _batch_frames(b) == _source_frames(100, 32)


def test_range_rescales_and_clips_like_the_part():
    clock = FakeClock()
    drv8 = ReplayAccelerometer(REPLAY, StubConfig(), clock)
    drv2 = ReplayAccelerometer(REPLAY, StubConfig(accel__range_g=2), clock)
    drv16 = ReplayAccelerometer(REPLAY, StubConfig(accel__range_g=16), clock)
    for d in (drv8, drv2, drv16):
        d.start()
    clock.advance(600)
    b8, b2, b16 = Batch(3, 32), Batch(3, 32), Batch(3, 32)
    drv8.read(b8)
    drv2.read(b2)
    drv16.read(b16)
    for i in range(b8.n * 3):
        v = b8.data[i]
        assert b2.data[i] == max(-32768, min(32767, v * 4))
        assert b16.data[i] == v // 2


async def test_sampler_counts_injected_gaps_as_dropped():
    cfg = StubConfig(sim__replay_gap_every_s=1, sim__replay_gap_ms=200, accel__poll_ms=10)
    import time

    clock = lambda: time.ticks_ms() + 1700000000000  # noqa: E731
    s = Sensor("accel", lambda: ReplayAccelerometer(REPLAY, cfg, clock), quiet_log(), 3, 500)
    task = asyncio.create_task(s.run())
    await until(lambda: s.gaps >= 2, 4000)
    task.cancel()
    st = s.status()
    # Each 200 ms stall at 50 Hz loses 10 frames.
    assert st["dropped"] == 10 * st["gaps"], st
    assert st["received"] > 50
    assert st["last_gap"]["frames"] == 10


async def test_sampler_without_stalls_loses_nothing():
    # The drivers run on a clock that moves only when the test says (100 ms at a time, well inside both FIFOs),
    # so a busy machine cannot stall the services past a FIFO: the services' own polls (on the timer grid) bring
    # every frame made, in order, and nothing is dropped.
    clock = FakeClock()
    cfg = StubConfig(accel__poll_ms=20, mic__poll_ms=20)
    acc = Sensor("accel", lambda: ReplayAccelerometer(REPLAY, cfg, clock), quiet_log(), 3, 500)
    mic = Sensor("mic", lambda: SignalMicrophone(cfg, clock), quiet_log(), 1, 1024)
    tasks = [asyncio.create_task(acc.run()), asyncio.create_task(mic.run())]
    await until(lambda: acc.generation == 1 and mic.generation == 1)
    for k in range(1, 11):
        clock.advance(100)
        await until(lambda: acc.received == 5 * k and mic.received == 1600 * k, 3000)
    for t in tasks:
        t.cancel()
    assert acc.dropped == 0 and mic.dropped == 0 and acc.gaps == 0 and mic.gaps == 0
    assert acc.generation == 1


def test_disabled_sensor_has_no_driver():
    s = Sensor("accel", lambda: None, quiet_log(), 3, 500)
    assert s.status()["enabled"] is False


def _rms_dbfs(samples):
    acc = 0
    for v in samples:
        acc += v * v
    return 20 * math.log10(math.sqrt(acc / len(samples)) / 32767)


def test_microphone_levels_match_the_config():
    clock = FakeClock()
    for signal, tone, noise, expect in (("tone", -20, -90, -20.0), ("noise", -90, -30, -30.0),
                                        ("tone+noise", -20, -20, -17.0)):
        mic = SignalMicrophone(StubConfig(sim__mic_signal=signal, sim__mic_tone_dbfs=tone,
                                          sim__mic_noise_dbfs=noise), clock)
        mic.start()
        clock.advance(100)
        b = Batch(1, 2048)
        n = mic.read(b)
        assert n == 1600
        level = _rms_dbfs(b.data[:n])
        assert abs(level - expect) < 0.6, (signal, level)


def test_simulated_microphone_viper_kernel_matches_the_plain_one():
    from sensorbox.device.sensors.sim_tone import tone_noise
    from sensorbox.device.sensors.sim_mic import tone_noise_py

    size = 800
    tone = array.array("h", [int(32767 * math.sin(2 * math.pi * i / size)) for i in range(size)])
    tone[3], tone[5] = -32768, 32767  # the extremes, which the noise pushes past int16 (clipped)
    for half, pos, n in ((0, 0, 256), (1, 799, 256), (3000, 650, 300), (32767, 10, 1000)):
        a = array.array("h", bytes(2 * n))
        b = array.array("h", bytes(2 * n))
        ra = tone_noise(tone, size, pos, a, n, half, 7)
        rb = tone_noise_py(tone, size, pos, b, n, half, 7)
        assert ra == rb and a == b, (half, pos)
        if half:
            assert ra != 7


def test_microphone_tone_frequency():
    clock = FakeClock()
    mic = SignalMicrophone(StubConfig(sim__mic_signal="tone", sim__mic_tone_hz=1000), clock)
    mic.start()
    clock.advance(100)
    b = Batch(1, 2048)
    n = mic.read(b)
    crossings = 0
    for i in range(1, n):
        if b.data[i - 1] < 0 <= b.data[i]:
            crossings += 1
    assert crossings in (99, 100, 101)  # 1 kHz over 0.1 s
