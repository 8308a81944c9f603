# Fills a device's data directory with minutes of stored accelerometer data, features, predictions and events in
# seconds: the device's own sampler, pipeline and store code (from the bundle) on the MicroPython unix port, with a
# clock that runs as fast as the code does. For tests and benchmarks that need a long stored range.
#
#     micropython tests/support/fast_store.py DATA_DIR MINUTES T0_MS [gap_at_s] [restart_at_s]
#
# MICROPYPATH: the unix bundle's lib and tests/support. The replayed recording is $SENSORBOX_REPLAY
# (data/watch_excerpt.npy); models/default comes from the bundle ($SENSORBOX_WWW/..). T0_MS: epoch ms of the first
# frame (keep the range in the past: a device started on the directory afterwards stores after it).
# gap_at_s: a sampling gap there (the sensor FIFO overflows: ~3 s of frames lost, a new segment).
# restart_at_s: the analysis service restarts there (as after an ml.* config change: its smoothing starts afresh).
# Prints "windows N gaps G" when done.

import os
import sys

import asyncio

from devtest import FakeClock, StubConfig, quiet_log
from sensorbox.device.analysis import pipeline as pipeline_mod
from sensorbox.device.log import Bus
from sensorbox.device.analysis.pipeline import Pipeline
from sensorbox.device.sensors import sampler as sampler_mod
from sensorbox.device.sensors.sampler import Sensor
from sensorbox.device.sensors.sim_accel import ReplayAccelerometer
from sensorbox.device.store.core import Store


class _NoWait:
    # The device modules' asyncio, except that their sleeps only yield: the clock below decides what is "later".
    def __getattr__(self, name):
        return getattr(asyncio, name)

    @staticmethod
    def sleep_ms(ms):
        return asyncio.sleep_ms(0)


class Plat:
    def __init__(self, data_dir):
        self.data_dir = data_dir
        self.www_dir = os.getenv("SENSORBOX_WWW")


class Dev:
    def __init__(self, data_dir, clock):
        self.log = quiet_log()
        self.config = StubConfig()
        self.bus = Bus(self.log)
        self.platform = Plat(data_dir)
        self.ml = pipeline_mod.ModelSlot()
        replay = os.getenv("SENSORBOX_REPLAY") or "data/watch_excerpt.npy"
        self.sensors = {"accel": Sensor("accel", lambda: ReplayAccelerometer(replay, self.config, clock),
                                        self.log, 3, 500)}


async def main(data_dir, minutes, t0, gap_at_s, restart_at_s):
    clock = FakeClock(t0)
    dev = Dev(data_dir, clock)
    try:
        os.mkdir(data_dir)
    except OSError:
        pass
    store = Store(data_dir + "/store", dev.log, clock)
    store.configure(dev.config)
    store.open()
    dev.store = store  # the model loader maps a model's classes to the store's class table
    for topic in ("features", "predictions", "events"):
        dev.bus.subscribe(topic, store.on_bus)
    pipeline_mod.asyncio = sampler_mod.asyncio = _NoWait()
    sensor = dev.sensors["accel"]
    tasks = [asyncio.create_task(sensor.run())]
    pipe = Pipeline(dev)
    tasks.append(asyncio.create_task(pipe.run()))
    while dev.ml.model is None or sensor.driver is None:
        await asyncio.sleep_ms(1)
    end = t0 + minutes * 60000
    flushed = t0
    step = 100  # ms of sensor time per turn: 5 frames at 50 Hz
    while clock.t < end:
        if gap_at_s is not None and clock.t >= t0 + gap_at_s * 1000:
            gap_at_s = None
            clock.advance(8000)  # nobody reads for 8 s: the 256-frame FIFO (5.1 s) overflows
        if restart_at_s is not None and clock.t >= t0 + restart_at_s * 1000:
            restart_at_s = None
            tasks[1].cancel()  # as the supervisor restarts the service (same Pipeline object)
            await asyncio.sleep_ms(0)
            tasks[1] = asyncio.create_task(pipe.run())
        clock.advance(step)
        for _ in range(4):  # the sampler reads, the pipeline takes what is new (a window, at most)
            await asyncio.sleep_ms(0)
        store.poll(sensor)
        if clock.t - flushed >= 1000:
            store.flush()
            flushed = clock.t
    for _ in range(4):
        await asyncio.sleep_ms(0)
    store.poll(sensor)
    for t in tasks:
        t.cancel()
    await asyncio.sleep_ms(0)
    store.close()
    print("windows", pipe.windows, "gaps", pipe.gaps)


def _arg(i):
    return int(sys.argv[i]) if len(sys.argv) > i and sys.argv[i] != "-" else None


asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), _arg(4), _arg(5)))
