"""I2S MEMS microphone (INMP441, ICS-43434) over ``machine.I2S`` in receive mode: 16-bit PCM batches.

The driver interface is the one in ``sensors/__init__.py``; ``sim_mic.py`` simulates a microphone on the host.

The part: 24-bit two's-complement samples, MSB first, left-justified in 32-bit slots (both datasheets: I2S
frame of 64 SCK cycles, 32 per channel; the L/R pin selects the slot the microphone drives: L/R low = left).
``machine.I2S`` is set up with ``bits=32`` at ``mic.rate_hz``; ``mic.channel`` "left" uses ``I2S.MONO`` (the
left slot only: half the bytes), "right" uses ``I2S.STEREO`` and keeps every second word. The top 16 bits of each
slot are the int16 sample (the lower 8 bits of 24 are below the part's noise floor).

Reading never blocks the event loop: ``I2S.irq`` puts ``readinto`` in non-blocking mode, so the I2S driver
fills one of two preallocated chunk buffers in the background and calls ``_done`` (scheduled, not a hard
interrupt) when it is full; the callback starts the next chunk into the other buffer if it is free. ``read``
converts a full chunk into the batch with ``pcm.s32_to_s16`` (viper; plain fallback here) and frees it.
Between polls the I2S ring buffer (``ibuf``) holds the samples: ``_IBUF`` bytes, 128 ms at 16 kHz mono.

Loss: the sample clock and ``ticks_ms`` run from the same crystal, so the frames made since ``start`` follow from
the board clock. When more are outstanding than the ring buffer and both chunks can hold (plus 20 ms of slack),
the excess was lost (a ring buffer overflow while the loop was stalled): the sequence number jumps by it, and the
sampler counts it as dropped. When ``read`` finds no full chunk while one is being filled, fewer than a chunk of
frames are buffered, so frames outstanding beyond a chunk plus 20 ms were lost too (counted to within half a
chunk). The gap is placed where it is detected, so the frames still buffered from before
it (at most ``fifo_frames``, 160 ms at 16 kHz) are timed up to that much late. Timestamps are the start time plus
sequence number / rate, as in the simulator.
"""

from micropython import const

try:
    from sensorbox.device.sensors.pcm import s32_to_s16 as _convert

    VARIANT = "viper"
except (ImportError, SyntaxError):  # no viper emitter: the plain kernel below
    _convert = None
    VARIANT = "python"

_CHUNK = const(256)  # frames per chunk and batch: 16 ms at 16 kHz
_IBUF = const(8192)  # bytes of the I2S ring buffer (machine.I2S ibuf)

CHANNELS = ("left", "right")


def s32_to_s16_py(src, stride, off, dst, n):
    """Plain version of ``pcm.s32_to_s16`` over a bytes-like ``src``: the same results, no allocation."""
    j = 4 * off
    step = 4 * stride
    for i in range(n):
        v = (src[j + 3] << 8) | src[j + 2]
        if v >= 32768:
            v -= 65536
        dst[i] = v
        j += step


if _convert is None:
    _convert = s32_to_s16_py


class I2SMicrophone:
    name = "mic"
    columns = ("pcm",)
    batch_frames = _CHUNK
    ibuf_bytes = _IBUF

    def __init__(self, make_i2s, config, clock, channel="left"):
        """``make_i2s(rate_hz, stereo, ibuf_bytes)`` returns a configured ``machine.I2S`` in RX mode with 32-bit
        samples (``platform/esp32.py`` passes one with the board's pins); ``clock``: epoch ms."""
        if channel not in CHANNELS:
            raise ValueError("mic.channel: {!r} is not one of left, right".format(channel))
        self.make_i2s = make_i2s
        self.clock = clock
        self.rate_hz = config.get("mic.rate_hz")
        self.poll_ms = config.get("mic.poll_ms")
        self.stereo = channel == "right"
        self._stride = 2 if self.stereo else 1
        self._off = 1 if self.stereo else 0
        frame_bytes = 8 if self.stereo else 4
        self._bufs = (bytearray(_CHUNK * frame_bytes), bytearray(_CHUNK * frame_bytes))
        self._full = bytearray(2)  # 1 when that chunk holds samples not yet read
        self._filling = -1  # chunk the I2S driver is filling, -1 when none (both full)
        self._next = 0  # chunk read() converts next
        self.fifo_frames = _IBUF // frame_bytes + 2 * _CHUNK
        self._slack = self.fifo_frames + self.rate_hz // 50
        self._near = _CHUNK + self.rate_hz // 50
        self._i2s = None
        self._cb = self._done  # bound once: the callback allocates nothing
        self.lost = 0
        self._seq = 0
        self._t0 = 0

    def start(self):
        self._i2s = self.make_i2s(self.rate_hz, self.stereo, _IBUF)
        self._full[0] = self._full[1] = 0
        self._next = 0
        self._seq = 0
        self._t0 = self.clock()
        self._i2s.irq(self._cb)  # non-blocking readinto from here on
        self._filling = 0
        self._i2s.readinto(self._bufs[0])

    def stop(self):
        i2s = self._i2s
        self._i2s = None
        self._filling = -1
        if i2s is not None:
            i2s.deinit()

    def _done(self, i2s):
        """I2S callback: chunk ``_filling`` is full; go on into the other one if it has been read."""
        k = self._filling
        if k < 0 or self._i2s is None:
            return
        self._full[k] = 1
        k ^= 1
        if self._full[k]:
            self._filling = -1  # both full: read() restarts the transfer after converting one
        else:
            self._filling = k
            i2s.readinto(self._bufs[k])

    def read(self, batch):
        k = self._next
        if not self._full[k]:
            if self._filling >= 0:  # waiting for a chunk: fewer than a chunk's frames are buffered
                now = self.clock()
                behind = (now - self._t0) * self.rate_hz // 1000 - self._seq
                # (the callback may have run meanwhile: then the chunk is full and nothing is concluded)
                if behind > self._near and not self._full[k] and self._filling >= 0:
                    lost = behind - _CHUNK // 2
                    self._seq += lost
                    self.lost += lost
            batch.n = 0
            return 0
        n = _CHUNK if _CHUNK <= batch.capacity else batch.capacity
        _convert(self._bufs[k], self._stride, self._off, batch.data, n)
        self._full[k] = 0
        self._next = k ^ 1
        if self._filling < 0 and self._i2s is not None:  # the transfer waited for a free chunk
            self._filling = k
            self._i2s.readinto(self._bufs[k])
        seq = self._seq
        rate = self.rate_hz
        made = (self.clock() - self._t0) * rate // 1000
        behind = made - seq  # frames made and not delivered before this batch: at most fifo_frames are held
        if behind > self._slack:  # more outstanding than the buffers hold: those frames were lost
            lost = behind - self.fifo_frames
            seq += lost
            self.lost += lost
        batch.n = n
        batch.seq = seq
        batch.t_ms = self._t0 + seq * 1000 // rate
        self._seq = seq + n
        return n
