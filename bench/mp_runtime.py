# Runtime benchmarks on the MicroPython unix port (run by bench/bench_runtime.py). Prints "name value baseline unit".
import time

import asyncio

from sensorbox.device.log import Log
from sensorbox.device.sensors.ring import Batch, SampleRing
from sensorbox.device.sensors.sampler import Sensor
from sensorbox.device.sensors.sim_accel import ReplayAccelerometer
from sensorbox.device.sensors.sim_mic import SignalMicrophone
from sensorbox.device.status import percentile
from sensorbox.device.supervisor import LagMonitor
from sensorbox.shared import config_schema


class Cfg:
    def __init__(self):
        self.values = config_schema.defaults()

    def get(self, k):
        return self.values[k]


def _batch_cost(name, drv, ring, batch, t, step_ms, frames, n_iter=2000):
    # One batch through the sampling path (driver read, sequence check in the ring write), against the bare
    # copy of the same samples into the ring's buffer: the least any sampling path must do.
    drv.start()
    t0 = time.ticks_us()
    for _ in range(n_iter):
        t[0] += step_ms
        drv.read(batch)
        ring.write(batch)
    full = time.ticks_diff(time.ticks_us(), t0) / n_iter
    n = frames * ring.channels
    dst = memoryview(ring.buf)
    src = memoryview(batch.data)
    t0 = time.ticks_us()
    for _ in range(n_iter):
        dst[0:n] = src[0:n]
    base = time.ticks_diff(time.ticks_us(), t0) / n_iter
    print(name, full, base, "us")


def per_batch_overhead():
    cfg = Cfg()
    t = [1700000000000]
    clock = lambda: t[0]  # noqa: E731
    _batch_cost("mic_batch_us", SignalMicrophone(cfg, clock), SampleRing(1, 1024, 16000), Batch(1, 256), t, 16, 256)
    _batch_cost("accel_batch_us", ReplayAccelerometer("data/watch_excerpt.npy", cfg, clock), SampleRing(3, 500, 50),
                Batch(3, 32), t, 40, 2)


async def lag_under_load(sampling):
    log = Log(lambda: 0, None, echo=False)
    lag = LagMonitor(period_ms=5)
    tasks = [asyncio.create_task(lag.run())]
    sensors = []
    if sampling:
        cfg = Cfg()
        clock = lambda: time.ticks_ms() + 1700000000000  # noqa: E731
        sensors = [Sensor("accel", lambda: ReplayAccelerometer("data/watch_excerpt.npy", cfg, clock), log, 3, 500),
                   Sensor("mic", lambda: SignalMicrophone(cfg, clock), log, 1, 1024)]
        tasks += [asyncio.create_task(s.run()) for s in sensors]
    await asyncio.sleep_ms(3000)
    for t in tasks:
        t.cancel()
    await asyncio.sleep_ms(0)
    return lag, sensors


def main():
    per_batch_overhead()
    idle, _ = asyncio.run(lag_under_load(False))
    busy, sensors = asyncio.run(lag_under_load(True))
    print("loop_lag_p99_us", percentile(busy, 99), percentile(idle, 99), "us")
    print("loop_lag_max_us", busy.max_us, idle.max_us, "us")
    print("samples_received", sensors[0].received + sensors[1].received, 0, "samples")
    print("samples_dropped", sensors[0].dropped + sensors[1].dropped, 0, "samples")


main()
