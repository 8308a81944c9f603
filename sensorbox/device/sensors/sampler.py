"""The sampling service: polls a driver's FIFO, counts received and dropped frames, feeds the sample ring."""

import asyncio

from sensorbox.device.sensors.ring import Batch, SampleRing


class Sensor:
    """One sensor as the app sees it: its driver, ring and counters. ``run`` is the supervised service.

    The ring is allocated once, here, for ``channels`` x ``frames``: a config change (another rate) reuses it
    rather than asking a fragmented heap for a new large block.
    """

    def __init__(self, name, make_driver, log, channels, frames):
        self.name = name
        self.make_driver = make_driver  # () -> driver, or None when the sensor is disabled/absent
        self.log = log
        self.driver = None
        self.ring = SampleRing(channels, frames, 1)
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
        ch = len(drv.columns)
        if ch != self.ring.channels:
            raise ValueError("{} driver has {} channels, the ring {}".format(self.name, ch, self.ring.channels))
        self.driver = drv
        self.ring.reset(drv.rate_hz)
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
