"""A stand-in for ``machine.I2C`` with an LSM6DS3 / LSM6DS3TR-C on it, modelled on the datasheets' register map.

Only hardware is faked: the driver under test talks to this object exactly as to ``machine.I2C``
(``readfrom_mem_into``, ``writeto_mem``, ``readfrom_mem``). What it models:

- a 128-byte register file; WHO_AM_I (0Fh) reads 69h or 6Ah (or whatever ``who`` says); CTRL3_C resets to 04h
  (IF_INC); every write is logged in ``writes`` as (register, value);
- register auto-increment in bursts (IF_INC), except at FIFO_DATA_OUT_L/H (3Eh/3Fh), where a burst keeps reading
  the FIFO;
- a FIFO that fills at the accelerometer's ODR from a clock (epoch ms, like the board's) once FIFO_CTRL5 selects
  continuous mode with an ODR and FIFO_CTRL3 puts the accelerometer in the FIFO; each frame is three words
  (X, Y, Z) whose values ``frame(i)`` gives; ``ppm`` makes the part's clock run fast or slow against the board's;
- the gyroscope in the FIFO too (FIFO_CTRL3's DEC_FIFO_GYRO = 001, CTRL2_G's ODR_G that of the accelerometer):
  a frame is then six words, the gyroscope's data set first (X, Y, Z: ``frame(i, 3..5)``), then the
  accelerometer's (the datasheet's FIFO pattern, LSM6DS3 DocID026899 8.4 / AN4650 "FIFO pattern": data sets in
  the order gyroscope, accelerometer, external sensors, step counter). Anything else with the gyroscope in the
  FIFO (another ODR, a decimation: other patterns) raises ``NotImplementedError``: the double does not model it;
- continuous mode overflow: beyond ``fifo_words`` the oldest words are overwritten one by one (so the next word
  may be Y or Z of a set); OVER_RUN is set until data is read, FIFO_FULL while full; DIFF_FIFO is 11 bits on the
  TR-C and 12 on the LSM6DS3, so a completely full FIFO reads 0 as on the part; FIFO_PATTERN is the next word;
- bypass mode empties the FIFO;
- a part at another address, or none (``present=False``), raises OSError(19) like ``machine.I2C`` on a NACK;
  ``fail_next = k`` makes the next k reads fail with OSError(5), a FIFO burst after taking half its words.

Buffers: register reads take bytes (``bytearray`` or memoryviews of one). FIFO reads from 3Eh take either a
``bytearray`` (two bytes per word) or an int16 buffer (``array('h')`` or a memoryview of one: one element per
word): a memoryview does not tell its item size on MicroPython, so memoryviews are taken as int16 — which the
driver's are. Reads allocate nothing (the driver's read path runs under ``heap_lock``).
"""

_WHO_AM_I = 0x0F
_FIFO_CTRL3 = 0x08
_FIFO_CTRL5 = 0x0A
_CTRL1_XL = 0x10
_CTRL2_G = 0x11
_CTRL3_C = 0x12
_FIFO_STATUS1 = 0x3A
_FIFO_STATUS2 = 0x3B
_FIFO_STATUS3 = 0x3C
_FIFO_STATUS4 = 0x3D
_FIFO_OUT_L = 0x3E
_FIFO_OUT_H = 0x3F

ODR_HZ = (0, 13, 26, 52, 104, 208, 416, 833, 1660, 3330, 6660)  # by ODR code (12.5 Hz counted as 13)


def frame(i, axis):
    """The value the fake part outputs for axis 0..2 (accelerometer) or 3..5 (gyroscope) of frame ``i``: distinct,
    signed, full int16 range."""
    return ((i * (37 + 64 * axis) + 11 * axis) % 65536) - 32768


class FakeLSM6DS3:
    def __init__(self, clock, addr=0x6A, who=0x6A, fifo_words=2048, ppm=0, present=True):
        self.clock = clock
        self.addr = addr
        self.present = present
        self.regs = bytearray(128)
        self.regs[_WHO_AM_I] = who
        self.regs[_CTRL3_C] = 0x04
        self.fifo_words = fifo_words
        self.diff_mask = 0x7FF if fifo_words == 2048 else 0xFFF
        self.ppm = ppm
        self.writes = []
        self.bursts = 0  # FIFO data bursts (transactions reading 3Eh)
        self._t_start = None  # clock when the FIFO started collecting
        self._written = 0  # words the part has put into the FIFO since then
        self._rd = 0  # words read or overwritten
        self._overrun = False
        self.overwritten = 0  # words lost to overflow
        self.fail_next = 0  # this many reads fail (EIO) from now on
        self.set_words = 3  # words a frame (FIFO data sets of it: 1 or 2) since the FIFO started collecting

    # -- the part

    def _collecting(self):
        r = self.regs
        return (r[_FIFO_CTRL5] & 0x07) == 6 and (r[_FIFO_CTRL5] >> 3) & 0x0F and (r[_CTRL1_XL] >> 4) \
            and (r[_FIFO_CTRL3] & 0x07) == 1

    def _set_words(self):
        """Words per frame the FIFO collects: 3 (the accelerometer's data set), 6 (the gyroscope's, then it)."""
        r = self.regs
        dec_g = (r[_FIFO_CTRL3] >> 3) & 0x07
        if dec_g == 0:
            return 3
        if dec_g != 1 or (r[_CTRL2_G] >> 4) != (r[_CTRL1_XL] >> 4):
            raise NotImplementedError("the double models the gyroscope in the FIFO only at the accelerometer's ODR, "
                                      "undecimated (FIFO_CTRL3 0x{:02x}, CTRL2_G 0x{:02x}, CTRL1_XL 0x{:02x})"
                                      .format(r[_FIFO_CTRL3], r[_CTRL2_G], r[_CTRL1_XL]))
        return 6

    def odr_hz(self):
        return ODR_HZ[self.regs[_CTRL1_XL] >> 4]

    def _sync(self):
        """Bring the FIFO up to the clock: frames made since the start, overwrite beyond its depth."""
        if self._t_start is None:
            return
        elapsed = self.clock() - self._t_start
        frames = elapsed * self.odr_hz() * (1000000 + self.ppm) // 1000000000
        self._written = self.set_words * frames
        over = self._written - self._rd - self.fifo_words
        if over > 0:
            self._rd += over
            self.overwritten += over
            self._overrun = True

    def level(self):
        self._sync()
        return self._written - self._rd

    def _status(self, reg):
        level = self._written - self._rd
        diff = level & self.diff_mask
        if reg == _FIFO_STATUS1:
            return diff & 0xFF
        if reg == _FIFO_STATUS2:
            v = diff >> 8
            if level == 0:
                v |= 0x10
            if level >= self.fifo_words:
                v |= 0x20
            if self._overrun:
                v |= 0x40
            return v
        if reg == _FIFO_STATUS3:
            return self._rd % self.set_words if level else 0
        return 0  # FIFO_STATUS4: FIFO_PATTERN[9:8]

    def _pop(self):
        """The next FIFO word (signed), or 0 when empty."""
        if self._written - self._rd <= 0:
            return 0
        w = self._rd
        self._rd = w + 1
        self._overrun = False
        k = self.set_words
        if k == 3:
            return frame(w // 3, w % 3)
        return frame(w // 6, (w % 6 + 3) % 6)  # gyroscope (3..5) first, then the accelerometer (0..2)

    def _get(self, reg):
        if _FIFO_STATUS1 <= reg <= _FIFO_STATUS4:
            return self._status(reg)
        return self.regs[reg]

    def _set(self, reg, value):
        self.writes.append((reg, value))
        self.regs[reg] = value
        if reg in (_FIFO_CTRL5, _CTRL1_XL, _FIFO_CTRL3, _CTRL2_G):
            if not self._collecting():
                self._t_start = None  # bypass (or no ODR): the FIFO is emptied
                self._written = self._rd = 0
                self._overrun = False
            elif self._t_start is None:
                self.set_words = self._set_words()
                self._t_start = self.clock()
                self._written = self._rd = 0
            elif self._set_words() != self.set_words:
                raise NotImplementedError("the FIFO's pattern changed while it collects")

    # -- machine.I2C

    def _check(self, addr):
        if not self.present or addr != self.addr:
            raise OSError(19)  # ENODEV: no ACK

    def readfrom_mem_into(self, addr, memaddr, buf, addrsize=8):
        self._check(addr)
        self._sync()
        if self.fail_next:  # a bus glitch: a FIFO burst has taken half its words before it fails
            self.fail_next -= 1
            if memaddr == _FIFO_OUT_L:
                for _ in range(len(buf) // 2):
                    self._pop()
            raise OSError(5)  # EIO
        if memaddr == _FIFO_OUT_L:
            self.bursts += 1
            if isinstance(buf, bytearray):
                i = 0
                while i + 1 < len(buf):
                    w = self._pop() & 0xFFFF
                    buf[i] = w & 0xFF
                    buf[i + 1] = w >> 8
                    i += 2
            else:
                for i in range(len(buf)):
                    buf[i] = self._pop()
            return
        reg = memaddr
        inc = self.regs[_CTRL3_C] & 0x04
        for i in range(len(buf)):
            buf[i] = self._get(reg)
            if inc:
                reg += 1

    def readfrom_mem(self, addr, memaddr, n, addrsize=8):
        b = bytearray(n)
        self.readfrom_mem_into(addr, memaddr, b)
        return bytes(b)

    def writeto_mem(self, addr, memaddr, buf, addrsize=8):
        self._check(addr)
        self._sync()
        reg = memaddr
        for i in range(len(buf)):
            self._set(reg, buf[i])
            reg += 1

    def scan(self):
        return [self.addr] if self.present else []
