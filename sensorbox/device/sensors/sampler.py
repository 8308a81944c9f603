"""The sampling service: polls a driver's FIFO, counts received and dropped frames, feeds the sample ring."""

import asyncio

from sensorbox.device.sensors.ring import Batch, SampleRing


class Sensor:
    """One sensor as the app sees it: its driver, ring and counters. ``run`` is the supervised service."""

    def __init__(self, name, make_driver, log, ring_seconds=10, max_ring_frames=4096):
        self.name = name
        self.make_driver = make_driver  # () -> driver, or None when the sensor is disabled/absent
        self.log = log
        self.ring_seconds = ring_seconds
        self.max_ring_frames = max_ring_frames
        self.driver = None
        self.ring = None
        self.generation = 0  # increments each time sampling (re)starts; readers re-sync on change
        self.received = 0
        self.dropped = 0
        self.gaps = 0
        self.last_gap = None  # (t_ms, frames) of the latest gap
        self.poll_ms = 20

    async def run(self):
        drv = self.make_driver()
        if drv is None:
            self.driver = None
            while True:  # disabled: idle until the config changes
                await asyncio.sleep_ms(1000)
        self.driver = drv
        ch = len(drv.columns)
        frames = min(self.max_ring_frames, max(64, drv.rate_hz * self.ring_seconds))
        if self.ring is None or self.ring.channels != ch or self.ring.capacity != frames \
                or self.ring.rate_hz != drv.rate_hz:
            self.ring = SampleRing(ch, frames, drv.rate_hz)
        batch = Batch(ch, drv.batch_frames)
        self.poll_ms = drv.poll_ms
        self.generation += 1
        expected = 0
        drv.start()
        self.log.info(self.name, "sampling {} Hz, {} channels".format(drv.rate_hz, ch))
        try:
            while True:
                n = drv.read(batch)
                while n:
                    if batch.seq != expected:
                        lost = batch.seq - expected
                        self.dropped += lost
                        self.gaps += 1
                        self.last_gap = (batch.t_ms, lost)
                        self.log.warning(self.name, "lost {} frames before seq {}".format(lost, batch.seq))
                    self.ring.write(batch)
                    self.received += n
                    expected = batch.seq + n
                    n = drv.read(batch) if n == batch.capacity else 0
                await asyncio.sleep_ms(self.poll_ms)
        finally:
            drv.stop()

    def status(self):
        d = self.driver
        return {
            "enabled": d is not None,
            "rate_hz": d.rate_hz if d else None,
            "columns": list(d.columns) if d else [],
            "received": self.received,
            "dropped": self.dropped,
            "gaps": self.gaps,
            "last_gap": ({"t_ms": self.last_gap[0], "frames": self.last_gap[1]} if self.last_gap else None),
        }
