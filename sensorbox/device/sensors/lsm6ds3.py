"""ST LSM6DS3 / LSM6DS3TR-C accelerometer over ``machine.I2C``, read through its hardware FIFO.

The driver interface is the one in ``sensors/__init__.py`` (``start``/``read``/``stop``, batches of int16 frames
with the sequence number and epoch time of the first frame); ``sim_accel.py`` models the same part on the host.

What it does with the part (register facts from ST's datasheets: LSM6DS3 DocID026899 and LSM6DS3TR-C
DocID030071, section 9 "Register description"; FIFO behaviour from section 5.5 / 8 "FIFO"):

- ``probe()``: WHO_AM_I (0Fh) must read 69h (LSM6DS3) or 6Ah (LSM6DS3TR-C); anything else, or no ACK on the
  bus, raises ``OSError`` naming the bus address and what was read.
- ``start()``: CTRL3_C (12h) = BDU | IF_INC; FIFO_CTRL5 (0Ah) = bypass (empties the FIFO); CTRL2_G (11h) = 0
  (gyroscope off), or with ``accel.gyro`` ODR_G[7:4] (the accelerometer's rate) | FS_G[3:2] = 11 (2000 dps);
  CTRL1_XL (10h) = ODR_XL[7:4] | FS_XL[3:2]; FIFO_CTRL3 (08h) = accelerometer in the FIFO without decimation
  (DEC_FIFO_XL = 001) and the gyroscope not (DEC_FIFO_GYRO = 000), or with ``accel.gyro`` without decimation too
  (001); FIFO_CTRL5 = ODR_FIFO[6:3] (the same rate) | FIFO_MODE[2:0] = 110 (continuous: when full, the oldest
  data is overwritten).
- ``read(batch)``: one 4-byte burst of FIFO_STATUS1..4 (3Ah..3Dh): DIFF_FIFO (unread 16-bit words), OVER_RUN,
  FIFO_FULL, FIFO_PATTERN (which word comes next: 0 = the first of a frame); then bursts of whole frames from
  FIFO_DATA_OUT_L (3Eh) into a preallocated buffer. A frame is the accelerometer's data set (X, Y, Z
  little-endian int16 = 6 bytes), or with the gyroscope both data sets, the gyroscope's first (the datasheet's
  FIFO pattern: the first data set is the gyroscope's, the second the accelerometer's): 12 bytes, which
  ``pcm.imu_frames`` (viper; ``imu_frames_py`` here without it) turns into the frame x y z gx gy gz.

Gyroscope scale: the device's gyroscope counts are 16.4 per dps (``shared/features.py``, ``host/importer.py``:
the scale the models are trained on). The part at 2000 dps gives 70 mdps per count (its datasheet's G_So: 14.29
per dps), so the driver multiplies by 37618/32768 (1.14801; 16.4 x 0.070 = 1.148), rounds and clamps: the part's 2293 dps
full scale is cut at 1998 dps, which the importer clips imported data to as well (2000 dps).

Rates: ODR_XL codes 2..7 are 26, 52, 104, 208, 416, 833 Hz; ``accel.rate_hz`` takes the nearest, and
``rate_hz`` is the part's real rate (50 -> 52 Hz), so timestamps and the store's segments follow the part.
Full scale: 2, 4, 8, 16 g (FS_XL = 00, 10, 11, 01); at 8 g one g is ~4098 counts, like the simulator's 4096.

Loss: in continuous mode a full FIFO overwrites its oldest data and sets OVER_RUN. The driver then estimates
how many frames the part made since the FIFO was last emptied (board clock x rate) and advances the sequence
number by those it no longer holds, so the sampler counts them as dropped and records the gap. DIFF_FIFO is
one bit too narrow for a completely full FIFO (4096 words on the LSM6DS3, 2048 on the TR-C) and reads 0 then:
with FIFO_FULL or OVER_RUN set, 0 means full. After an overwrite the next word may be Y or Z of a data set:
FIFO_PATTERN says which, and the driver reads away the rest of that set so frames stay aligned.

Bus errors: a read that fails on the bus returns no frames; since a failed burst may have taken frames from the
FIFO, the next good read counts the frames missing by the clock as lost. Ten failed reads in a row raise.

Timestamps come from the board clock, as the simulator's: the newest frame in the FIFO was made within one
sample period before the status read. The time of the first frame follows a line (anchor + seq / rate) that is
slewed by at most 1 ms per read towards what the clock says, so clock jitter never starts a new store segment,
and re-anchored after a loss or when it is off by more than 4 sample periods.

Allocation: everything is allocated in ``__init__``/``start``; ``read`` uses ``readfrom_mem_into`` with
memoryviews made once (whole frames in power-of-two chunk sizes) and ``kernels.copy_i16``. Only the epoch
times are ints beyond 2**30 on a 32-bit board (as in every driver: see ring.py).
"""

import array

from micropython import const

from sensorbox.shared import kernels

try:
    from sensorbox.device.sensors.pcm import imu_frames as _imu
except (ImportError, SyntaxError):  # no viper emitter: the plain kernel below
    _imu = None

_WHO_AM_I = const(0x0F)
_FIFO_CTRL3 = const(0x08)
_FIFO_CTRL5 = const(0x0A)
_CTRL1_XL = const(0x10)
_CTRL2_G = const(0x11)
_CTRL3_C = const(0x12)
_FIFO_STATUS1 = const(0x3A)  # ..FIFO_STATUS4 (3Dh), read in one burst
_FIFO_DATA_OUT_L = const(0x3E)

_ID_LSM6DS3 = const(0x69)
_ID_LSM6DS3TRC = const(0x6A)

_CTRL3_BDU_IF_INC = const(0x44)  # BDU (bit 6) | IF_INC (bit 2)
_FIFO_XL_NO_DEC = const(0x01)  # DEC_FIFO_XL[2:0] = 001, DEC_FIFO_GYRO[5:3] = 000
_FIFO_XLG_NO_DEC = const(0x09)  # DEC_FIFO_XL[2:0] = 001, DEC_FIFO_GYRO[5:3] = 001
_FS_G_2000 = const(0x0C)  # CTRL2_G FS_G[1:0] (bits 3:2) = 11: 2000 dps
_FIFO_MODE_STREAM = const(0x06)  # FIFO_MODE[2:0] = 110: continuous
_FIFO_MODE_BYPASS = const(0x00)

_ST2_OVER_RUN = const(0x40)  # FIFO_STATUS2 bit 6
_ST2_FULL = const(0x20)  # bit 5: FIFO_FULL (LSM6DS3) / FIFO_FULL_SMART (TR-C)

_CHUNK = const(32)  # frames per batch and largest burst
_SLEW_MS = const(1)
_MAX_ERRORS = const(10)  # consecutive failed reads before the driver gives up (raises)

#: Accelerometer full scales (g) and their FS_XL[1:0] codes (CTRL1_XL bits 3:2).
RANGES = (2, 4, 8, 16)
_FS_CODES = b"\x00\x02\x03\x01"
#: Rates the driver offers (Hz, as ints) for ODR_XL / ODR_FIFO codes 2..7.
RATES = (26, 52, 104, 208, 416, 833)


def imu_frames_py(src, dst, doff, n):
    """Plain version of ``pcm.imu_frames``: the same results, no allocation."""
    o = doff
    for i in range(0, n * 6, 6):
        dst[o] = src[i + 3]
        dst[o + 1] = src[i + 4]
        dst[o + 2] = src[i + 5]
        for k in range(3):
            v = src[i + k]
            v += (v * 4850 + 16384) >> 15
            dst[o + 3 + k] = 32767 if v > 32767 else (-32768 if v < -32768 else v)
        o += 6


if _imu is None:
    _imu = imu_frames_py


def nearest_rate(hz):
    """(rate in Hz, ODR code) of the supported rate nearest ``hz``."""
    best = 0
    for i in range(1, len(RATES)):
        if abs(RATES[i] - hz) < abs(RATES[best] - hz):
            best = i
    return RATES[best], best + 2


def range_code(g):
    """FS_XL code of a full scale of ``g``; ValueError naming the key for any other."""
    for i in range(len(RANGES)):
        if RANGES[i] == g:
            return _FS_CODES[i]
    raise ValueError("accel.range_g: {} g is not a range of the LSM6DS3 (2, 4, 8 or 16)".format(g))


class LSM6DS3:
    name = "accel"
    columns = ("x", "y", "z")
    batch_frames = _CHUNK

    def __init__(self, i2c, addr, config, clock):
        """``i2c``: a ``machine.I2C`` (or anything with ``readfrom_mem_into``/``writeto_mem``); ``addr``: the
        part's 7-bit address (SA0 to GND: 0x6A, to VDDIO: 0x6B); ``clock``: epoch ms. Checks the config; touches the bus only in ``probe``/``start``."""
        self.i2c = i2c
        self.addr = addr
        self.clock = clock
        self.requested_hz = config.get("accel.rate_hz")
        self.rate_hz, self._odr = nearest_rate(self.requested_hz)
        self.range_g = config.get("accel.range_g")
        self._fs = range_code(self.range_g)
        self.poll_ms = config.get("accel.poll_ms")
        fw = 6 if config.get("accel.gyro") else 3  # words (channels) per frame
        self._fw = fw
        if fw == 6:
            self.columns = ("x", "y", "z", "gx", "gy", "gz")
        self.part = None
        self.fifo_frames = 0
        self._fifo_words = 0
        self._b1 = bytearray(1)
        self._st = bytearray(4)
        skip = memoryview(array.array("h", bytes(2 * fw - 2)))
        self._skip_views = tuple(skip[:k] if k else None for k in range(fw))  # 1 .. fw - 1 words to read away
        buf = array.array("h", bytes(2 * fw * _CHUNK))
        self._buf = buf
        mv = memoryview(buf)
        self._views = tuple(mv[:fw * k] for k in (32, 16, 8, 4, 2, 1))  # 32, 16, 8, 4, 2, 1 frames
        self.overruns = 0  # OVER_RUN seen
        self.bus_errors = 0  # I2C errors while reading (each read that failed)
        self._errors = 0  # consecutive ones
        self._suspect = False  # a burst failed: count what is missing at the next read
        self._got = 0  # frames delivered since _t_empty, less those the FIFO held then
        self.lost = 0  # frames counted as lost (sequence jumps)
        self._seq = 0
        self._t_empty = 0
        self._t_anchor = 0
        self._seq_anchor = 0

    def _write(self, reg, value):
        b = self._b1
        b[0] = value
        self.i2c.writeto_mem(self.addr, reg, b)

    def _read(self, reg):
        self.i2c.readfrom_mem_into(self.addr, reg, self._b1)
        return self._b1[0]

    def probe(self):
        """Check that an LSM6DS3 answers at ``addr``; returns its name. OSError saying what was found if not."""
        try:
            who = self._read(_WHO_AM_I)
        except OSError as e:
            raise OSError("LSM6DS3: no answer at I2C address 0x{:02x} (wiring, board.i2c_*, accel.i2c_addr): {}"
                          .format(self.addr, e))
        if who == _ID_LSM6DS3:
            self.part = "LSM6DS3"
            self._fifo_words = 4096  # 8 KB FIFO
        elif who == _ID_LSM6DS3TRC:
            self.part = "LSM6DS3TR-C"
            self._fifo_words = 2048  # 4 KB FIFO
        else:
            raise OSError("LSM6DS3: WHO_AM_I at I2C address 0x{:02x} reads 0x{:02x}, expected 0x69 (LSM6DS3) or "
                          "0x6a (LSM6DS3TR-C): another part answers there".format(self.addr, who))
        self.fifo_frames = self._fifo_words // self._fw
        return self.part

    def start(self):
        if self.part is None:
            self.probe()
        w = self._write
        w(_CTRL3_C, _CTRL3_BDU_IF_INC)
        w(_FIFO_CTRL5, _FIFO_MODE_BYPASS)  # bypass empties the FIFO
        g = self._fw == 6
        w(_CTRL2_G, ((self._odr << 4) | _FS_G_2000) if g else 0)
        w(_CTRL1_XL, (self._odr << 4) | (self._fs << 2))
        w(_FIFO_CTRL3, _FIFO_XLG_NO_DEC if g else _FIFO_XL_NO_DEC)
        w(_FIFO_CTRL5, (self._odr << 3) | _FIFO_MODE_STREAM)
        now = self.clock()
        self._seq = 0
        self._got = 0
        self._t_empty = now
        self._t_anchor = now + 1000 // self.rate_hz  # the first frame comes one period after the start
        self._seq_anchor = 0

    def stop(self):
        try:
            self._write(_FIFO_CTRL5, _FIFO_MODE_BYPASS)
            self._write(_CTRL1_XL, 0)  # power-down
            self._write(_CTRL2_G, 0)
        except OSError:
            pass  # the part went away: nothing to stop

    def read(self, batch):
        try:
            n = self._read_fifo(batch)
        except OSError:
            # A bus error (a glitch on the wires): frames a failed burst took from the FIFO are unknown, so the
            # next good read counts what is missing from the clock. Ten in a row: the part is gone; the service
            # fails and is restarted by the supervisor (which probes the part again).
            self.bus_errors += 1
            self._errors += 1
            if self._errors >= _MAX_ERRORS:
                raise
            self._suspect = True
            batch.n = 0
            return 0
        self._errors = 0
        return n

    def _read_fifo(self, batch):
        i2c = self.i2c
        addr = self.addr
        st = self._st
        i2c.readfrom_mem_into(addr, _FIFO_STATUS1, st)
        now = self.clock()
        s2 = st[1]
        words = st[0] | ((s2 & (0x0F if self._fifo_words == 4096 else 0x07)) << 8)
        if words == 0 and s2 & (_ST2_OVER_RUN | _ST2_FULL):
            words = self._fifo_words  # DIFF_FIFO wraps to 0 when the FIFO is completely full
        pattern = st[2] | ((st[3] & 0x03) << 8)
        fw = self._fw
        if pattern and words:  # the next word is not a frame's first (it was overwritten): read the rest away
            skip = fw - pattern if pattern < fw else 0
            if skip > words:
                skip = words
            if skip:
                i2c.readfrom_mem_into(addr, _FIFO_DATA_OUT_L, self._skip_views[skip])
                words -= skip
        avail = words // fw
        rate = self.rate_hz
        seq = self._seq
        over = s2 & _ST2_OVER_RUN
        if over or self._suspect:
            # Frames made since the FIFO was last emptied, less those delivered since and those still held.
            lost = (now - self._t_empty) * rate // 1000 - self._got - avail
            if over:
                self.overruns += 1
                if lost < 1:
                    lost = 1  # OVER_RUN says at least one was overwritten
            if lost > 0:
                seq += lost
                self.lost += lost
            self._suspect = False
            self._t_empty = now  # a new reference: the frames still held were made before it
            self._got = -avail
        n = avail if avail < batch.capacity else batch.capacity
        if n <= 0:
            batch.n = 0
            return 0
        # Frames in bursts of 32, 16, ... 1 into the scratch buffer, then into the batch at their offset.
        views = self._views
        buf = self._buf
        out = batch.data
        done = 0
        size = _CHUNK
        k = 0
        while done < n:
            if n - done >= size:
                i2c.readfrom_mem_into(addr, _FIFO_DATA_OUT_L, views[k])
                if fw == 3:
                    kernels.copy_i16(buf, 0, out, done * 3, size * 3)
                else:
                    _imu(buf, out, done * 6, size)
                done += size
            else:
                size >>= 1
                k += 1
        # Time of the first frame: the newest of `avail` was made within a period before `now` (half of one on
        # average).
        seen = now - (2 * avail - 1) * 500 // rate
        if seq != self._seq:
            self._t_anchor = seen
            self._seq_anchor = seq
            t = seen
        else:
            t = self._t_anchor + (seq - self._seq_anchor) * 1000 // rate
            err = seen - t
            if err > 4000 // rate or err < -4000 // rate:
                self._t_anchor = seen
                self._seq_anchor = seq
                t = seen
            elif err > 0:
                self._t_anchor += _SLEW_MS
                t += _SLEW_MS
            elif err < 0:
                self._t_anchor -= _SLEW_MS
                t -= _SLEW_MS
        if n == avail:
            self._t_empty = now
            self._got = 0
        else:
            self._got += n
        batch.n = n
        batch.seq = seq
        batch.t_ms = t
        self._seq = seq + n
        return n
