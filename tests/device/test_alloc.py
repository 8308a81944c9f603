"""No allocation in the per-sample hot paths, proven with ``micropython.heap_lock`` (any allocation then raises
MemoryError): the sample ring's write and read, and the microphone sampler + sound level service running live
between interval ends. Figures for the per-window pipeline are in bench/ (allocation is allowed there).

The unix port has 63-bit small ints, so these tests cannot see an int beyond 2**30 (a heap object on an ESP32);
tests/shared/test_soundlevel.py runs the meter locked on WebAssembly, which has 31-bit small ints like a board."""

import array
import gc

import asyncio
import micropython
import time

from devtest import StubConfig, quiet_log, renamed, until
from sensorbox.device.log import Bus
from sensorbox.device.sensors.ring import Batch, SampleRing
from sensorbox.device.sensors.sampler import Sensor
from sensorbox.device.sensors.sim_mic import SignalMicrophone
from sensorbox.device.analysis.soundmeter import SoundMeter


def _fill(b, seq, n):
    ch = b.channels
    for i in range(n):
        for c in range(ch):
            b.data[i * ch + c] = (seq + i) * (c + 1) - 20000
    b.n = n
    b.seq = seq
    b.t_ms = 1700000000000 + seq


def _ring_steps(ring, b, sizes, out, state, check):
    # One writer and one reader through the ring: batches of varying size (wrapping around), the reader taking
    # what is there. state = [write seq, read seq, frames checked]. Allocates nothing itself.
    ch = ring.channels
    for n in sizes:
        seq = state[0]
        for i in range(n):
            for c in range(ch):
                b.data[i * ch + c] = ((seq + i) * (c + 1)) % 30000
        b.n = n
        b.seq = seq
        ring.write(b)
        state[0] = seq + n
        while True:
            first = ring.next_held(state[1])
            k = ring.copy_out(first, out, 37, 3 * ch)  # at an offset, in pieces that do not divide the batches
            if k == 0:
                break
            if check:
                for i in range(k):
                    for c in range(ch):
                        if out[3 * ch + i * ch + c] != ((first + i) * (c + 1)) % 30000:
                            return first + i
            state[1] = first + k
            state[2] += k
    return -1


def test_ring_write_and_read_allocate_nothing():
    for ch in (1, 3):
        ring = SampleRing(ch, 100, 1000)
        b = Batch(ch, 64)
        out = array.array("h", bytes(2 * ch * 40))
        sizes = array.array("H", (64, 7, 33, 64, 1, 50, 64, 64, 29))
        state = array.array("i", (0, 0, 0))  # the reader's bookkeeping must not allocate either
        assert _ring_steps(ring, b, sizes, out, state, True) == -1  # warm up, and the copies are right
        # a gap (frames 600..611 lost): the one allocation is its record, before the lock
        state[0] += 12
        assert _ring_steps(ring, b, sizes, out, state, True) == -1
        assert ring.gaps and state[1] == state[0]
        got = state[2]
        micropython.heap_lock()
        try:
            bad = _ring_steps(ring, b, sizes, out, state, True)
            bad2 = _ring_steps(ring, b, sizes, out, state, True)
        finally:
            micropython.heap_unlock()
        assert bad == -1 and bad2 == -1, (bad, bad2)
        assert state[2] - got == 2 * sum(sizes) and state[1] == state[0]


def test_ring_read_skips_overwritten_frames_and_gaps():
    ring = SampleRing(1, 16, 1000)
    b = Batch(1, 16)
    out = array.array("h", bytes(2 * 16))
    _fill(b, 0, 10)
    ring.write(b)
    _fill(b, 14, 10)  # frames 10..13 lost
    ring.write(b)
    assert ring.next_held(0) == 8  # 0..7 overwritten (the ring holds 16: 8..23, with a hole at 10..13)
    assert ring.copy_out(8, out, 16) == 2  # stops before the gap
    assert ring.next_held(10) == 14 and ring.copy_out(14, out, 16, 5) == 10
    assert out[5] == 14 - 20000 and out[14] == 23 - 20000
    assert ring.copy_out(24, out, 16) == 0
    assert ring.read(0, out, 4) == (8, 2)  # read = next_held + copy_out


class _Device:
    def __init__(self):
        self.log = quiet_log()
        # interval 300 s: nothing is published while the heap is locked (a publish allocates, once per interval)
        self.config = StubConfig(sim__mic_signal="tone+noise", sound__interval_s=300)
        self.bus = Bus(self.log)
        self.clock = time.ticks_ms
        self.sensors = {"mic": Sensor("mic", lambda: SignalMicrophone(self.config, self.clock), self.log, 1, 1024)}


async def test_mic_sampling_and_sound_meter_run_without_allocating():
    # The real services on the simulated microphone (16 kHz, A-weighting, Fast): with the heap locked the event
    # loop keeps polling the driver into the ring and the meter keeps processing chunks until 100 blocks (0.8 s
    # of sound) went through. Any allocation would raise MemoryError inside a service and end its task.
    dev = _Device()
    sensor = dev.sensors["mic"]
    sm = SoundMeter(dev)
    tasks = [asyncio.create_task(sensor.run()), asyncio.create_task(sm.run())]
    await until(lambda: sm.meter is not None and sm.meter.level_cdb is not None, 30000)  # started, chunks through
    m = sm.meter
    nb = renamed("_nblocks")  # (looked up before the heap is locked)
    blocks = getattr(m, nb)
    received = sensor.received
    gc.collect()
    waited = 0
    micropython.heap_lock()
    try:
        while getattr(m, nb) - blocks < 100 and waited < 10000 and not tasks[1].done():
            await asyncio.sleep_ms(20)  # (a coroutine such as devtest.until would be an allocation)
            waited += 20
        locked_blocks = getattr(m, nb) - blocks
        locked_frames = sensor.received - received
    finally:
        micropython.heap_unlock()
    alive = [not t.done() for t in tasks]
    for t in tasks:
        t.cancel()
    await asyncio.sleep_ms(0)
    assert alive == [True, True], alive
    # (the meter reads the FIFO itself, a batch per chunk: it may have taken one or two before the lock)
    assert locked_blocks >= 100 and locked_frames >= 100 * 128 - 512, (locked_blocks, locked_frames)
    assert sm.meter is m and m.intervals == 0
    # tone -20 dBFS + noise -50 dBFS, sensitivity -26 dBFS: 100 dB SPL
    assert abs(m.level_cdb - 10000) <= 20, m.level_cdb


def test_ring_takes_a_batch_larger_than_itself():
    # Only the last `capacity` frames can be held; the copy (unchecked viper) must stay inside the ring.
    ring = SampleRing(2, 8, 1000)
    guard = array.array("h", [123] * 8)  # allocated right after the ring's buffer: would be overwritten
    b = Batch(2, 20)
    _fill(b, 0, 20)
    ring.write(b)
    out = array.array("h", bytes(2 * 2 * 20))
    assert ring.head == 20 and ring.next_held(0) == 12
    assert ring.copy_out(12, out, 20) == 8 and [out[2 * i] for i in range(8)] == [s - 20000 for s in range(12, 20)]
    assert ring.copy_out(0, out, 20) == 8  # a stale position copies at most the ring, never past it
    assert list(guard) == [123] * 8
