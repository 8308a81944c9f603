"""A stand-in for ``machine.I2S`` in RX mode with an I2S MEMS microphone (INMP441 / ICS-43434) on the bus.

Only hardware is faked. The microphone makes a 24-bit sample per frame at the sample rate, given by ``sample24(i)``,
left-justified in a 32-bit slot (the low 8 bits are 0); in STEREO the right slot carries ``-sample24(i)`` so a wrong
channel choice shows. Frames arrive from a clock (epoch ms, like the board's) into a ring buffer of ``ibuf``
bytes; when it is full new frames are dropped (``dropped`` counts them; kept frames are numbered in the order
kept, so a drop is invisible in the data, as on the board). As in MicroPython, ``irq(handler)``
makes ``readinto`` non-blocking: the buffer is filled in the background and ``handler(i2s)`` is called when it is
full. The background is ``service()``: tests call it where the board's I2S task and scheduler would run.
``readinto`` and ``service`` allocate nothing.
"""

MONO = 0
STEREO = 1


def sample24(i):
    """The 24-bit sample of frame ``i``: distinct, signed, over the full 24-bit range."""
    return ((i * 48271 + 12345) % 16777216) - 8388608


class FakeI2S:
    def __init__(self, clock, rate, fmt=MONO, bits=32, ibuf=8192):
        if bits != 32:
            raise ValueError("the fake models 32-bit slots")
        self.clock = clock
        self.rate = rate
        self.fmt = fmt
        self.frame_bytes = 8 if fmt == STEREO else 4
        self.capacity = ibuf // self.frame_bytes  # frames the ring buffer holds
        self._t0 = clock()
        self._made = 0  # frames made since the start
        self._head = 0  # frames made and kept (in the ring or handed out)
        self._rd = 0  # frames handed out
        self.dropped = 0
        self._handler = None
        self._pending = None
        self.deinited = False

    def irq(self, handler):
        self._handler = handler

    def readinto(self, buf):
        if self._handler is None:
            raise OSError("the fake I2S models non-blocking mode only (set irq first)")
        self._pending = buf
        return len(buf)

    def service(self):
        """The background: frames up to the clock go into the ring buffer (what does not fit is dropped) and
        from it into pending buffers, calling back for each one filled, as the board does continuously."""
        made = (self.clock() - self._t0) * self.rate // 1000
        new = made - self._made
        self._made = made
        while True:
            room = self.capacity - (self._head - self._rd)
            take = new if new < room else room
            self._head += take
            new -= take
            if not self._fill():
                break
        if new > 0:
            self.dropped += new

    def _fill(self):
        buf = self._pending
        if buf is None:
            return False
        n = len(buf) // self.frame_bytes
        if self._head - self._rd < n:
            return False
        st = self.fmt == STEREO
        j = 0
        for i in range(n):
            v = sample24(self._rd + i) << 8
            buf[j] = v & 0xFF
            buf[j + 1] = (v >> 8) & 0xFF
            buf[j + 2] = (v >> 16) & 0xFF
            buf[j + 3] = (v >> 24) & 0xFF
            j += 4
            if st:
                v = (-sample24(self._rd + i)) << 8
                buf[j] = v & 0xFF
                buf[j + 1] = (v >> 8) & 0xFF
                buf[j + 2] = (v >> 16) & 0xFF
                buf[j + 3] = (v >> 24) & 0xFF
                j += 4
        self._rd += n
        self._pending = None
        self._handler(self)
        return True

    def deinit(self):
        self.deinited = True
        self._pending = None
