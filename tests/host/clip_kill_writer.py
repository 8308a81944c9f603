# Audio clips under SIGKILL (tests/host/test_clip_kill.py): writes clips through the real store (bundle .mpy) with
# the sound meter's hook (``Store.clip.feed``) from a deterministic microphone, clip after clip, a flush point every
# four chunks (64 ms of sound), at four times real time, and prints "K <start> <end>" once a flush point has recorded a clip (acknowledged: its pin in
# labels.bin, its event). argv: the store's directory, the first frame's sequence number (each run starts later).
# Sample ``s`` of the microphone is ``(s * 7919) % 65536 - 32768`` at T0 + s / 16 ms.
import array
import sys
import time

from sensorbox.device.log import Log
from sensorbox.device.store import core
from sensorbox.shared import config_schema

T0 = 1700000000000


class Cfg:
    def __init__(self):
        self.v = config_schema.defaults()
        self.v.update({"clip.enabled": True, "clip.length_ms": 1000, "store.clips_kb": 4096, "store.flush_ms": 250})

    def get(self, k):
        return self.v[k]


class Mic:  # (the microphone ring's times: sample s at T0 + s / 16 ms)
    rate_hz = 16000

    def time_of(self, s):
        return T0 + s // 16


seq = int(sys.argv[2])
ring = Mic()
st = core.Store(sys.argv[1], Log(lambda: T0, echo=False), lambda: T0 + seq // 16, None)
st.configure(Cfg())
st.open()
print("S", seq)
c = st.clip
chunk = array.array("h", bytes(512))
k = 0
while True:
    c.trigger(1, 0)  # (refused, counted, while one records or is about to)
    for i in range(256):
        chunk[i] = (seq + i) * 7919 % 65536 - 32768
    c.feed(chunk, 256, seq + 255, ring)
    seq += 256
    k += 1
    time.sleep_ms(4)  # (4x real time: a run of the test's makes a few clips, fewer than the 64 pins kept at once)
    if k % 4 == 0:
        d = c.done
        st.flush()
        if d is not None and c.done is None:
            print("K", d[0], d[1])
