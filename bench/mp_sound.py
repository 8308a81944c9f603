# Sound feature and classification benchmarks on the MicroPython unix port (run by bench/bench_sound.py). Prints
# "name value baseline unit". argv[1]: a sound model directory (sensorbox train --sensor sound).
import array
import gc
import json
import sys
import time

from sensorbox.shared import kernels_sound as VS
from sensorbox.device.analysis import trees as device_trees
from sensorbox.device.analysis.models import make
from sensorbox.device.analysis.pipeline import classify
from sensorbox.shared import kernels as K
from sensorbox.shared import kernels_py as P
from sensorbox.shared import model as model_fmt
from sensorbox.shared import soundfeatures as sf

RATE = 16000


def _signal(n, seed=3):
    # a tone with noise and a click every 100 ms
    import math

    out = array.array("h", bytes(2 * n))
    for i in range(n):
        seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
        v = int(3000 * math.sin(2 * math.pi * 440 * i / RATE)) + (seed >> 8) % 2001 - 1000
        if i % 1600 < 40:
            v += (seed >> 4) % 30001 - 15000
        out[i] = max(-32768, min(32767, v))
    return out


_PLAIN = ("fft_q15", "copy_i16", "moments", "gather", "sumsq_dev", "isqrt")


def _kernels(plain):
    # the features' kernels: viper (the device's) or the plain ones (the browser's), swapped in place
    src = P if plain else _saved
    for name in _PLAIN:
        setattr(K, name, getattr(src, name))
    sf._ks = P if plain else VS


_saved = type("S", (), {n: getattr(K, n) for n in _PLAIN})


def _features_us(x, plain, rounds):
    _kernels(plain)
    best = 1e18
    try:
        for _ in range(rounds):
            f = sf.SoundFeatures(RATE)
            chunk = array.array("h", bytes(512))
            gc.collect()
            t0 = time.ticks_us()
            i = 0
            while i < len(x):
                k = min(256, len(x) - i)
                K.copy_i16(x, i, chunk, 0, k)
                f.process(chunk, k)
                i += k
            t = time.ticks_diff(time.ticks_us(), t0)
            best = min(best, t)
    finally:
        _kernels(False)
    return best, f


def main():
    x = _signal(RATE)  # 1 s
    frames = (RATE - 512) // 256 + 1
    v, f = _features_us(x, False, 8)
    p, _ = _features_us(x, True, 2)
    print("frame_us", v / frames, p / frames, "us")
    # allocation while a second of sound is processed (windows included, no model)
    f = sf.SoundFeatures(RATE)
    chunk = array.array("h", bytes(512))
    gc.collect()
    a0 = gc.mem_alloc()
    i = 0
    while i < len(x):
        K.copy_i16(x, i, chunk, 0, 256)
        f.process(chunk, 256)
        i += 256
    print("alloc_1s", gc.mem_alloc() - a0, 0, "bytes")
    # the classifier's step per window: the model's trees, smoothing, decision
    with open(sys.argv[1] + "/meta.json") as fh:
        meta = json.load(fh)
    ev = device_trees.new(meta["trees"], meta["nodes"], meta["leaves"])
    with open(sys.argv[1] + "/model.csv") as fh:
        model_fmt.load(fh, meta, ev)
    m = make(meta, ev, "bench")
    hist = array.array("H", bytes(2 * 3 * len(m.classes)))
    out = f.out
    best = 1e18
    for _ in range(20):
        t0 = time.ticks_us()
        for j in range(100):
            classify(m, out, hist, j % 3, 3, 500)
        best = min(best, time.ticks_diff(time.ticks_us(), t0) / 100)
    print("classify_us", best, 0, "us")
    per_s = RATE / (sf.WINDOW_HOP * 256)  # windows per second
    total = v + per_s * best  # us of CPU per second of sound
    print("cpu_16k_percent", total / 1e4, v / 1e4, "%")
    _clips(x)


class _Cfg:
    # the config keys the store and its clips read (defaults, clips on, 0.5 s of pre-trigger audio)
    def __init__(self):
        from sensorbox.shared import config_schema

        self.v = config_schema.defaults()
        self.v.update({"clip.enabled": True, "clip.length_ms": 3000, "clip.pre_ms": 500, "board.clip_ring_ms": 500})

    def get(self, k):
        return self.v[k]


def _clips(x):
    # Audio clips (store/clips.py): 3 s clips of 16 kHz written by the sound meter's hook, a 256-sample chunk at a
    # time, as fast as this process can: bytes a second to the store against the microphone's 32,000 (the ratio is
    # how many times real time the writer keeps up), and the time per chunk while a clip records (a chunk is 16 ms
    # of sound).
    import os

    from sensorbox.device.log import Log
    from sensorbox.device.sensors.ring import SampleRing
    from sensorbox.device.store import core

    root = "/tmp/sensorbox-bench-clips"
    try:
        os.mkdir(root)
    except OSError:
        pass
    st = core.Store(root + "/s{}".format(time.ticks_ms()), Log(lambda: 1700000000000, echo=False), lambda: 1700000000000, None)
    st.configure(_Cfg())
    st.open()
    ring = SampleRing(1, 512, RATE)
    chunk = array.array("h", bytes(512))
    c = st.clip
    seq = 0
    busy = 0
    made = 0
    for _ in range(8):  # 8 clips of 3 s
        c.trigger(1, 0)
        while True:
            K.copy_i16(x, (seq * 256) % (RATE - 256), chunk, 0, 256)
            t0 = time.ticks_us()
            c.feed(chunk, 256, seq + 255, ring)
            busy += time.ticks_diff(time.ticks_us(), t0)
            seq += 256
            if c.a < 0 and not c.want:
                break
        st.flush()
        made += 1
    r = st.by_name["clips"]
    written = r.added
    print("clip_write_Bps", written * 1e6 / busy, RATE * 2, "B/s")
    print("clip_chunk_us", busy / (seq // 256), 16000, "us")
    print("clips_made", made, c.made, "clips")


main()
