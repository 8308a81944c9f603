"""Simulated microphone that replays a folder of WAV files (config ``sim.mic_wav``), as the simulated accelerometer
replays its recording: the files in name order, one after the other, looping, on the microphone's clock.

Files must be 16-bit PCM, mono, at ``mic.rate_hz`` (``sensorbox import --sensor sound`` writes .npy; a WAV of any
other kind is skipped and counted in ``skipped``); the DMA buffer model is ``SignalMicrophone``'s: samples not read
within ``fifo_frames`` are lost (the sequence number jumps). A batch is read from the file into a preallocated
buffer and copied into the batch without allocating; opening the next file allocates (once per file).
"""

import array
import os

from sensorbox.shared import kernels, wav

_BUF = 256  # samples read from a file at a time


def _files(folder, rate_hz):
    """(paths of the replayable files in name order, other .wav files); ValueError when there is none."""
    files = []
    skipped = 0
    try:
        names = sorted(os.listdir(folder))
    except (OSError, TypeError):
        raise ValueError("no such folder on the device: {}".format(folder))
    for name in names:
        if not name.lower().endswith(".wav"):
            continue
        path = folder.rstrip("/") + "/" + name
        try:
            with open(path, "rb") as f:
                rate, ch, _, _, _ = wav.parse(f.read(wav.HEAD))
        except (OSError, ValueError):
            rate = ch = 0
        if rate == rate_hz and ch == 1:
            files.append(path)
        else:
            skipped += 1
    if not files:
        raise ValueError("no 16-bit mono WAV file at {} Hz in {} ({} other .wav files)".format(
            rate_hz, folder, skipped))
    return files, skipped


def check(folder, rate_hz):
    """Raise ValueError (the reason) unless ``folder`` holds a file the microphone can replay at ``rate_hz``:
    config_file refuses ``sim.mic_wav`` (and ``mic.rate_hz`` while it is set) with it."""
    _files(folder, rate_hz)


def make(folder, config, clock):
    """The simulated microphone for ``sim.mic_wav`` (what the unix platform calls: no name of this module in
    its code, so none interned at boot)."""
    return WavMicrophone(folder, config, clock)


class WavMicrophone:
    name = "mic"
    columns = ("pcm",)
    fifo_frames = 4096  # as SignalMicrophone: 256 ms at 16 kHz
    batch_frames = 256

    def __init__(self, folder, config, clock):
        self.folder = folder.rstrip("/")
        self.clock = clock
        self.rate_hz = config.get("mic.rate_hz")
        self.poll_ms = config.get("mic.poll_ms")
        self.files = []
        self.skipped = 0
        self.loops = 0
        self._f = None
        self._buf = array.array("h", bytes(2 * _BUF))

    def start(self):
        files, skipped = _files(self.folder, self.rate_hz)
        self.files = files
        self.skipped = skipped
        self._next = 0
        self._open()
        self._t0 = self.clock()
        self._seq = 0

    def _open(self):
        if self._f is not None:
            self._f.close()
        path = self.files[self._next]
        self._next += 1
        if self._next == len(self.files):
            self._next = 0
            self.loops += 1
        f = open(path, "rb")
        _, _, _, off, nbytes = wav.parse(f.read(wav.HEAD))
        f.seek(off)
        self._f = f
        self._left = nbytes >> 1  # samples left in this file
        self._have = 0  # samples in _buf
        self._pos = 0

    def stop(self):
        if self._f is not None:
            self._f.close()
            self._f = None

    def _fill(self, out, off, n):
        # n samples of the replay into out[off:off + n]
        buf = self._buf
        while n > 0:
            if self._pos == self._have:
                k = self._f.readinto(buf) >> 1 if self._left > 0 else 0
                if k > self._left:
                    k = self._left
                if k <= 0:
                    self._open()  # the next file (the first again after the last)
                    continue
                self._left -= k
                self._have = k
                self._pos = 0
            k = self._have - self._pos
            if k > n:
                k = n
            kernels.copy_i16(buf, self._pos, out, off, k)
            self._pos += k
            off += k
            n -= k

    def read(self, batch):
        produced = (self.clock() - self._t0) * self.rate_hz // 1000
        seq = self._seq
        if produced - seq > self.fifo_frames:  # overwritten before it was read: lost, and skipped in the files
            lost = produced - self.fifo_frames - seq
            while lost > 0:
                k = lost if lost < self.batch_frames else self.batch_frames
                self._fill(batch.data, 0, k)
                lost -= k
            seq = produced - self.fifo_frames
        n = min(produced - seq, batch.capacity)
        if n <= 0:
            batch.n = 0
            return 0
        self._fill(batch.data, 0, n)
        batch.n = n
        batch.seq = seq
        batch.t_ms = self._t0 + seq * 1000 // self.rate_hz
        self._seq = seq + n
        return n
