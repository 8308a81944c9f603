"""Sound level service: reads the microphone, runs the shared sound level meter, publishes levels.

Each interval (config ``sound.interval_s``) it publishes on the bus
``("soundlevel", t_ms, (leq, lmin, lmax, l10, l50, l90))``: ints in centi-dB SPL (10000 = 100.00 dB), ``t_ms``
the epoch ms of the last sample of the chunk that closed the interval (within one chunk, 16 ms, of its end).
``status()`` gives the latest values for /api/status. Calibration: ``sound.sensitivity_dbfs`` (what the
microphone reads, RMS dBFS, for 94 dB SPL at 1 kHz); weighting ``sound.weighting`` (A or Z) and
``sound.time_weighting`` (fast or slow). Work is cut into chunks of 256 samples (~0.1 ms each on the unix
port) with a yield after every ``_PER_TURN`` of them, so a backlog never blocks the loop for long, and the meter
still catches up when other tasks hold the loop for up to 64 ms a round. The meter reads the microphone's FIFO
itself (``Sensor.pump``), one batch into the sample ring per chunk it processes, every ``mic.poll_ms`` (on the
device's timer grid) until the FIFO is empty: the ring only ever holds a chunk or two, and the device wakes for
the microphone 20 times a second rather than every few ms. When sampling restarts (the sensor's ``generation``
changes) the meter starts over; frames lost to a slow reader are counted in ``lost``.
Per chunk nothing is allocated (tests/device/test_alloc.py): the ring is read with ``next_held``/``copy_out``
and the epoch time, a heap int on a 32-bit board, is computed only when an interval is published.
With ``sound.classify`` on, each chunk goes to the sound classifier first (``soundclass.py``, imported only then),
and with ``clip.enabled`` on to the store's audio clips (``store/clips.py``: ``Store.clip``), before the meter
weights it in place.
"""

import array
import time

import asyncio
from micropython import const

from sensorbox.device import lazy
from sensorbox.device.supervisor import grid_ms

_CHUNK = const(256)
_SOUND = const("sensorbox.device.analysis.soundclass")
_PER_TURN = const(4)  # chunks between yields: 64 ms of sound at 16 kHz, ~0.4 ms of work here (~15 ms on an ESP32)


class SoundMeter:
    _kept = None  # the meters' level histogram (SoundLevelMeter's _hist), kept across restarts
    clip = None  # (as Store.clip, for a device without a store: run)

    def __init__(self, device):
        self.device = device
        self._buf = array.array("h", bytes(2 * _CHUNK))  # allocated once, reused across restarts
        self.meter = None
        self.latest = None  # (t_ms, result tuple)
        self.lost = 0
        self._ring = None
        self._last = 0  # sequence number of the last sample processed
        # soundclass.SoundClassifier while sound.classify is on (set here only: the bundle renames it short,
        # host/names.py; soundclass.running reads it for the tests)
        self._classifier = None

    def _publish(self, result):
        # Called from meter.process, right after the chunk was read: the ring's time reference is that chunk's.
        # The epoch ms (a heap int on a 32-bit board) is made here, once per interval, not per chunk.
        t = self._ring.time_of(self._last)
        self.latest = (t, result)
        self.device.bus.publish("soundlevel", t, result)

    async def run(self):
        from sensorbox.shared.soundlevel import SoundLevelMeter

        d = self.device
        cfg = d.config
        sensor = d.sensors["mic"]
        store = getattr(d, "store", None) or self  # (its clips; a device without a store: this meter's, None)
        buf = self._buf
        if cfg.get("sound.classify") or self._classifier is not None:  # its module: only while it is on
            self._classifier = await lazy.load(_SOUND).configure(self)
        cls = self._classifier
        while True:
            while sensor.driver is None or sensor.generation == 0:
                await asyncio.sleep_ms(grid_ms(1000))
            gen = sensor.generation
            ring = sensor.ring
            self.meter = None  # let the old meter's buffers go before the new one allocates (its histogram: kept)
            meter = SoundLevelMeter(ring.rate_hz, cfg.get("sound.weighting"), cfg.get("sound.time_weighting"),
                                    cfg.get("sound.sensitivity_dbfs"), cfg.get("sound.interval_s") * 1000,
                                    self._kept)
            self._kept = meter._hist  # (the level histogram, 1.3 KB: taken once, reused by every restart)
            meter.on_interval = self._publish
            self.meter = meter
            self._ring = ring
            if cls is not None:
                cls.start(ring)
            seq = ring.head
            lag = sensor.lag
            sensor.pulled = True  # the meter reads the FIFO, a batch per chunk: the ring never overflows under it
            k = 0  # chunks since the last yield
            try:
                while sensor.generation == gen:
                    sensor.pump(1)
                    # next_held + copy_out: ring.read's tuple would be an allocation per chunk
                    first = ring.next_held(seq)
                    n = ring.copy_out(first, buf, _CHUNK)
                    if n == 0:  # the FIFO is empty: until the next poll, on the device's timer grid
                        k = 0
                        ms = grid_ms(sensor.poll_ms)
                        t0 = time.ticks_us()
                        await asyncio.sleep_ms(ms)
                        if lag is not None:
                            lag.woke(t0, ms)
                        continue
                    if first != seq:
                        self.lost += first - seq
                        if cls is not None:
                            cls.start(ring)  # samples lost: no window across the gap
                    seq = first + n
                    self._last = seq - 1
                    if cls is not None:
                        cls.feed(buf, n, seq - 1)  # before the meter weights buf in place
                    if store.clip is not None:  # audio clips (store/clips.py), while clip.enabled is on
                        store.clip.feed(buf, n, seq - 1, ring)
                    meter.process(buf, n)
                    k += 1
                    if k == _PER_TURN:  # a poll's worth (50 ms) in one turn; a backlog in turns of 64 ms of sound
                        k = 0
                        await asyncio.sleep_ms(0)
            finally:
                sensor.pulled = False

    def status(self):
        m = self.meter
        if m is None:
            return None
        last = self.latest
        c = self._classifier
        return {"level_cdb": m.level_cdb, "weighting": m.weighting, "time_weighting": m.time_weighting,
                "interval_ms": m.interval_ms, "t_ms": last[0] if last else None,
                "interval": list(last[1]) if last else None, "lost": self.lost,
                "classes": c.status() if c is not None else None}
