"""Simulated accelerometer: replays a real recording (int16 .npy, frames x channels) at its true rate.

It models a FIFO accelerometer such as the LSM6DS3 in stream mode: frames arrive on the sensor's own clock
whether or not anyone reads them; the FIFO holds ``fifo_frames``; on overflow the oldest frames are lost (the
sequence number jumps, as the real part's overflow flag tells). The recording is 50 Hz at ±8 g (4096 LSB/g):
other ranges rescale and clip as the real part would; other rates take the nearest source frame. With
``accel.gyro`` on it is a 6-channel sensor (x y z gx gy gz, the LSM6DS3 driver's frames): the recording's columns
4..6 are its gyroscope (16.4 counts per dps, as the driver delivers them; not rescaled by the range), or 0 when the
recording has only 3 columns.
Injected faults (config ``sim.*``): periodic stalls that lose frames, and noise.
"""

import array

from micropython import const

_SOURCE_RATE = const(50)
_SOURCE_RANGE_G = const(8)
_CHUNK = const(64)  # source frames read from the file at a time


def _npy_int16_shape(head):
    # Just enough of the .npy format for a replay file (shared/npy.py is the full reader; loading it here would
    # cost heap for one call): (shape, data offset) of a C-order '<i2' array, or (None, 0).
    if head[:8] != b"\x93NUMPY\x01\x00" or len(head) < 12:
        return None, 0
    offset = 10 + head[8] + 256 * head[9]
    text = head[10:offset]
    if b"'descr': '<i2'" not in text or b"'fortran_order': False" not in text:
        return None, 0
    i = text.find(b"'shape': (")
    j = text.find(b")", i)
    if i < 0 or j < 0:
        return None, 0
    return tuple(int(p) for p in text[i + 10:j].split(b",") if p.strip()), offset


class ReplayAccelerometer:
    name = "accel"
    columns = ("x", "y", "z")
    fifo_frames = 256
    batch_frames = 32

    def __init__(self, path, config, clock):
        self.path = path
        self.clock = clock
        self.rate_hz = config.get("accel.rate_hz")
        self.poll_ms = config.get("accel.poll_ms")
        self.range_g = config.get("accel.range_g")
        self.gap_every_ms = config.get("sim.replay_gap_every_s") * 1000
        self.gap_ms = config.get("sim.replay_gap_ms")
        self.noise = config.get("sim.replay_noise")
        if config.get("accel.gyro"):
            self.columns = ("x", "y", "z", "gx", "gy", "gz")
        self._f = None
        self._chunk = None

    def start(self):
        f = open(self.path, "rb")
        shape, offset = _npy_int16_shape(f.read(128))
        if shape is None or len(shape) != 2 or shape[1] < 3:
            f.close()
            raise ValueError("{}: expected a .npy of int16 frames x >=3 channels".format(self.path))
        self._f = f
        self._offset = offset
        self._src_frames = shape[0]
        self._src_ch = shape[1]
        self._chunk = array.array("h", bytes(2 * _CHUNK * self._src_ch))
        self._chunk_first = -1  # source frame index held in _chunk[0]
        self._chunk_rows = 0
        self._t0 = self.clock()
        self._seq = 0  # next frame the sensor will produce... as read by us
        self._rng = 12345

    def stop(self):
        if self._f:
            self._f.close()
            self._f = None

    def source_index(self, seq):
        """Which recording frame the sensor outputs as frame ``seq`` (the replay loops)."""
        return (seq * _SOURCE_RATE // self.rate_hz) % self._src_frames

    def _in_gap(self, t_rel_ms):
        return self.gap_every_ms > 0 and (t_rel_ms % self.gap_every_ms) >= self.gap_every_ms - self.gap_ms

    def read(self, batch):
        now_rel = self.clock() - self._t0
        produced = now_rel * self.rate_hz // 1000  # frames the sensor clock has produced so far
        seq = self._seq
        if produced - seq > self.fifo_frames:  # overflow: the oldest frames are gone
            seq = produced - self.fifo_frames
        # Frames made during an injected stall never reach the FIFO.
        while seq < produced and self._in_gap(seq * 1000 // self.rate_hz):
            seq += 1
        first = seq
        out = batch.data
        n = 0
        cap = batch.capacity
        num = 8 // self.range_g if self.range_g <= 8 else 1
        den = self.range_g // 8 if self.range_g > 8 else 1
        noise = self.noise
        ch = len(self.columns)
        gyro = self._src_ch >= 6
        while seq < produced and n < cap:
            if self._in_gap(seq * 1000 // self.rate_hz):
                break  # the stall starts: the batch ends here, the next read sees the jump
            src = self._row(self.source_index(seq))
            chunk = self._chunk
            o = n * ch
            for c in range(ch):
                if c < 3:
                    v = chunk[src + c] * num // den
                else:
                    v = chunk[src + c] if gyro else 0
                if noise:
                    self._rng = (self._rng * 1103515245 + 12345) & 0x7FFFFFFF
                    v += (self._rng >> 8) % (2 * noise + 1) - noise
                if v > 32767:
                    v = 32767
                elif v < -32768:
                    v = -32768
                out[o + c] = v
            n += 1
            seq += 1
        self._seq = seq
        batch.n = n
        batch.seq = first
        batch.t_ms = self._t0 + first * 1000 // self.rate_hz
        return n

    def _row(self, index):
        """Offset in _chunk of source frame ``index``, reading the file when it is not held."""
        first = self._chunk_first
        if first < 0 or index < first or index >= first + self._chunk_rows:
            self._f.seek(self._offset + index * self._src_ch * 2)
            got = self._f.readinto(self._chunk)
            if got is None or got < self._src_ch * 2:
                raise OSError("replay file {} ended early".format(self.path))
            self._chunk_first = first = index
            self._chunk_rows = got // (self._src_ch * 2)
        return (index - first) * self._src_ch
