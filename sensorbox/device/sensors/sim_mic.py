"""Simulated microphone: a 16 kHz (or 8 kHz) PCM stream of a tone, noise, both, or silence at set levels.

It models an I2S microphone read through a DMA buffer of ``fifo_frames`` samples: samples arrive on the
microphone's clock; if the buffer is not read in time the oldest are overwritten (counted as dropped).
The tone comes from a 50 ms table made at start (a whole number of periods, since the tone is rounded to 20 Hz);
the noise is drawn per sample from an integer generator, so producing a batch does no float work and the noise
never repeats. A batch is made by a viper kernel (``sim_tone.py``; the plain one here where viper is missing).
Levels are dB full scale (RMS; a full-scale sine is -3 dBFS).
"""

import array
import math

from micropython import const

_TABLE_S_DIV = const(20)  # table length = rate / 20 (50 ms)
_table = None  # the tone table, kept from one start to the next (SignalMicrophone.start)


def tone_noise_py(tone, size, pos, out, n, half, rng):
    """Plain version of ``sim_tone.tone_noise``: the same samples and LCG state."""
    span = 2 * half + 1
    j = pos
    for i in range(n):
        v = tone[j]
        if half:
            rng = (rng * 1103515245 + 12345) & 0x7FFFFFFF
            v += (rng >> 4) % span - half
        if v > 32767:
            v = 32767
        elif v < -32768:
            v = -32768
        out[i] = v
        j += 1
        if j == size:
            j = 0
    return rng


try:
    from sensorbox.device.sensors.sim_tone import tone_noise as _fill
except (ImportError, SyntaxError):  # no viper emitter
    _fill = tone_noise_py


class SignalMicrophone:
    name = "mic"
    columns = ("pcm",)
    fifo_frames = 4096  # I2S DMA buffer: 256 ms at 16 kHz
    batch_frames = 256

    def __init__(self, config, clock):
        self.clock = clock
        self.rate_hz = config.get("mic.rate_hz")
        self.poll_ms = config.get("mic.poll_ms")
        self.signal = config.get("sim.mic_signal")
        self.tone_hz = (config.get("sim.mic_tone_hz") + 10) // 20 * 20
        if self.tone_hz >= self.rate_hz // 2:
            self.tone_hz = self.rate_hz // 2 - 20
        self.tone_dbfs = config.get("sim.mic_tone_dbfs")
        self.noise_dbfs = config.get("sim.mic_noise_dbfs")
        self._tone = None

    def start(self):
        global _table
        n = self.rate_hz // _TABLE_S_DIV
        tone = _table  # the last start's (a driver is made per start), refilled: 1.6 KB at 16 kHz in one block,
        if tone is None or len(tone) != n:  # which a heap cut into small pieces may lack after a while
            _table = tone = None
            tone = _table = array.array("h", bytes(2 * n))
        else:
            for i in range(n):
                tone[i] = 0
        if "tone" in self.signal:
            # dBFS is RMS relative to 32767, so the peak is sqrt(2) times the RMS (clipped at full scale).
            peak = 32767 * math.sqrt(2) * 10 ** (self.tone_dbfs / 20)
            peak = min(peak, 32767)
            w = 2 * math.pi * self.tone_hz / self.rate_hz
            for i in range(n):
                tone[i] = int(round(peak * math.sin(w * i)))
        if "noise" in self.signal:
            # Uniform white noise: RMS = half-width / sqrt(3).
            self._half = min(32767, int(32767 * math.sqrt(3) * 10 ** (self.noise_dbfs / 20)))
        else:
            self._half = 0
        self._tone = tone
        self._n = n
        self._t0 = self.clock()
        self._seq = 0
        self._rng = 7

    def stop(self):
        self._tone = None

    def read(self, batch):
        produced = (self.clock() - self._t0) * self.rate_hz // 1000
        seq = self._seq
        if produced - seq > self.fifo_frames:
            seq = produced - self.fifo_frames
        n = min(produced - seq, batch.capacity)
        if n <= 0:
            batch.n = 0
            return 0
        self._rng = _fill(self._tone, self._n, seq % self._n, batch.data, n, self._half, self._rng)
        batch.n = n
        batch.seq = seq
        batch.t_ms = self._t0 + seq * 1000 // self.rate_hz
        self._seq = seq + n
        return n
