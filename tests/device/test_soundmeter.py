"""The sound meter service on the simulated microphone: a 1 kHz tone at a set dBFS reads the expected dB SPL,
levels are published on the bus in centi-dB and kept for /api/status; a config change restarts it."""

import asyncio

import time

from devtest import FakeClock, StubConfig, quiet_log, until
from sensorbox.device.log import Bus
from sensorbox.device.sensors.sampler import Sensor
from sensorbox.device.sensors.sim_mic import SignalMicrophone
from sensorbox.device.analysis.soundmeter import SoundMeter
from sensorbox.shared import config_schema


class _Device:
    def __init__(self, **cfg):
        self.log = quiet_log()
        self.config = StubConfig(**cfg)
        self.bus = Bus(self.log)
        self.clock = time.ticks_ms  # real time: the meter must keep up with the microphone's real rate
        self.sensors = {"mic": Sensor("mic", lambda: SignalMicrophone(self.config, self.clock), self.log, 1, 1024)}


async def _run(dev, seconds):
    got = []
    dev.bus.subscribe("soundlevel", lambda topic, t, v: got.append((t, v)))
    sm = SoundMeter(dev)
    tasks = [asyncio.create_task(dev.sensors["mic"].run()), asyncio.create_task(sm.run())]
    await asyncio.sleep_ms(seconds * 1000)
    await until(lambda: len(got) >= seconds - 1, 3000)
    for t in tasks:
        t.cancel()
    await asyncio.sleep_ms(0)
    return sm, got


async def test_tone_level_published_and_in_status():
    dev = _Device(sim__mic_signal="tone", sim__mic_tone_hz=1000, sim__mic_tone_dbfs=-30,
                  sound__sensitivity_dbfs=-26.0, sound__interval_s=1)
    sm, got = await _run(dev, 4)
    assert len(got) >= 3, got
    t, (leq, lmin, lmax, l10, l50, l90) = got[-1]
    # -30 dBFS + 26 + 94 = 90.00 dB SPL (A-weighting is 0 dB at 1 kHz)
    assert abs(leq - 9000) <= 10, got[-1]
    assert abs(lmin - 9000) <= 15 and abs(lmax - 9000) <= 15 and l10 >= l50 >= l90
    assert got[-1][0] > got[-2][0]
    st = sm.status()
    assert st["interval"] == [leq, lmin, lmax, l10, l50, l90] and st["weighting"] == "A"
    # The meter runs in real time here; on a loaded machine it may fall behind the mic ring, which it must
    # count (not hide). The level stays right either way.
    assert abs(st["level_cdb"] - 9000) <= 15, st
    assert isinstance(st["lost"], int) and st["lost"] >= 0


async def test_noise_and_z_weighting():
    dev = _Device(sim__mic_signal="noise", sim__mic_noise_dbfs=-40, sound__sensitivity_dbfs=-40.0,
                  sound__weighting="Z", sound__time_weighting="slow")
    sm, got = await _run(dev, 3)
    assert abs(got[-1][1][0] - 9400) <= 30, got  # white noise at -40 dBFS, calibrated 94 dB at -40 dBFS
    assert sm.status()["time_weighting"] == "slow"


async def test_meter_reads_the_fifo_a_chunk_at_a_time_and_loses_nothing():
    # At the longest poll the schema allows (250 ms), 200 ms of sound (3200 frames) arrive in the simulated FIFO
    # (4096 frames) between reads: six times what the app's 512-frame ring holds. The meter reads the FIFO itself,
    # one batch per chunk it processes, so the ring never overflows under it; the sampler, while the meter reads,
    # leaves the FIFO alone, and bounds its poll by half the FIFO's span. The simulated clock moves only when the
    # test says, so a slow machine cannot make frames pile up.
    clock = FakeClock()
    dev = _Device(mic__poll_ms=250)
    sensor = Sensor("mic", lambda: SignalMicrophone(dev.config, clock), dev.log, 1, config_schema.MIC_RING_FRAMES)
    dev.sensors["mic"] = sensor
    sm = SoundMeter(dev)
    tasks = [asyncio.create_task(sensor.run()), asyncio.create_task(sm.run())]
    await until(lambda: sm.meter is not None and sensor.pulled)
    assert sensor.poll_ms == 4096 * 500 // 16000  # 128 ms, not 250
    for k in range(1, 11):
        clock.advance(200)
        await until(lambda: sm._last + 1 == 3200 * k, 3000)  # processed up to the last frame made
    for t in tasks:
        t.cancel()
    await asyncio.sleep_ms(0)
    assert sm.lost == 0 and sensor.dropped == 0 and sensor.received == 32000, (sm.lost, sensor.dropped)
    assert not sensor.pulled  # the meter stopped: the sampler reads the FIFO again
