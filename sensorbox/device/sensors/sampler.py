"""The sampling service: reads a driver's FIFO into the sample ring, counts received and dropped frames.

A FIFO is read when a reader wants fresh frames (``pump``: the sound meter per chunk, the pipeline and the store
when they wake, a live stream) and, whatever the readers do, by the service at least every ``poll_ms``: the
configured poll, bounded by half the time the driver's FIFO takes to fill, on the shared timer grid
(``supervisor.grid_ms``). So the device wakes for its sensors about as often as the FIFOs require, not on fixed
short intervals.
"""

import time

import asyncio

from sensorbox.device.sensors.ring import Batch, SampleRing
from sensorbox.device.supervisor import grid_ms


class Sensor:
    """One sensor as the app sees it: its driver, ring and counters. ``run`` is the supervised service.

    The ring is allocated once, here, for ``channels`` x ``frames``: a config change (another rate) reuses it
    rather than asking a fragmented heap for a new large block.
    """

    lag = None  # the device's LagMonitor: each poll's wake-up is a loop-lag sample
    pulled = False  # a reader reads the FIFO itself as fast as it consumes (the sound meter): the service does not

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
        self._batch = None  # while sampling
        self._spare = None  # the batch, kept across restarts
        self._expected = 0  # sequence number of the next frame

    def pump(self, batches=0):
        """Move what the driver's FIFO holds into the ring now (at most ``batches`` batches; 0: all of it).
        Returns the frames moved; 0 when the sensor is not sampling. Allocates nothing unless frames were lost."""
        batch = self._batch
        if batch is None:
            return 0
        drv = self.driver
        ring = self.ring
        moved = 0
        n = drv.read(batch)
        while n:
            if batch.seq != self._expected:
                lost = batch.seq - self._expected
                self.dropped += lost
                self.gaps += 1
                self.last_gap = (batch.t_ms, lost)
                self.log.warning(self.name, "lost {} frames before seq {}".format(lost, batch.seq))
            ring.write(batch)
            self.received += n
            self._expected = batch.seq + n
            moved += n
            batches -= 1
            if batches == 0 or n < batch.capacity:
                break
            n = drv.read(batch)
        return moved

    async def run(self):
        drv = self.make_driver()
        if drv is None:
            self.driver = None
            while True:  # disabled: idle until the config changes (the supervisor restarts the service then)
                await asyncio.sleep_ms(60000)
        ch = len(drv.columns)
        if ch != self.ring.channels:
            raise ValueError("{} driver has {} channels, the ring {}".format(self.name, ch, self.ring.channels))
        self.driver = drv
        self.ring.reset(drv.rate_hz)
        batch = self._spare  # the last start's, when the driver reads batches of the same size: a restart asks
        if batch is None or batch.capacity != drv.batch_frames:  # a heap cut into small pieces for no new block
            self._spare = batch = None
            batch = self._spare = Batch(ch, drv.batch_frames)
        self.generation += 1
        self._expected = 0
        drv.start()
        # At least twice per FIFO span (its size is known once started: the LSM6DS3's depends on the part).
        poll = min(drv.poll_ms, max(drv.fifo_frames * 500 // drv.rate_hz, 1))
        self.poll_ms = poll
        self._batch = batch
        self.log.info(self.name, "sampling {} Hz, {} channels".format(drv.rate_hz, ch))
        try:
            while True:
                if not self.pulled:
                    self.pump()
                ms = grid_ms(poll)
                t0 = time.ticks_us()
                await asyncio.sleep_ms(ms)
                if self.lag is not None:
                    self.lag.woke(t0, ms)
        finally:
            self._batch = None
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
