# MicroPython script for host tests that need a store with history: writes hours of it, then exits.
#     micropython store_seed.py DATA_DIR NOW_MS
# Into DATA_DIR/store, with the budgets of DATA_DIR/config.json (the device's own Store code): sound levels every
# second and predictions every 1.28 s (classes walk, run, sit, jump for minutes each) from NOW - 3 h to NOW - 1 min,
# with the rollups computed as the store service does (once a minute) and retention run after each; accelerometer
# frames at 50 Hz from NOW - 10 min to NOW - 5 min and a label "walk" over them (pinned: not pulled yet).
# Prints "seeded <sound rows> <prediction rows> <frames>".
import array
import json
import os
import sys

from sensorbox.device.store import core, meta, rollup
from sensorbox.shared import config_schema

sys.path.append(__file__.rpartition("/")[0] + "/../support")  # testrng: the tests' random numbers
from testrng import Rng  # noqa: E402

data = sys.argv[1]
now = int(sys.argv[2])
cfg = config_schema.defaults()
try:
    with open(data + "/config.json") as f:
        cfg.update(json.load(f))
except OSError:
    pass


class Cfg:
    def get(self, key):
        return cfg[key]


class Log:
    def info(self, *a):
        pass

    warning = error = info


clock = [now - 3 * 3600000]
try:
    os.mkdir(data + "/store")
except OSError:
    pass
st = core.Store(data + "/store", Log(), lambda: clock[0])
st.configure(Cfg())
st.open()
ids = st.class_ids(["walk", "run", "sit", "jump"])


def jobs():
    for g in (rollup.step(st, 0), rollup.step(st, 1)):
        if g is not None:
            for _ in g:
                pass
    st.retain()


rng = Rng(7)
t = clock[0]
tp = t
end = now - 60000
sound = preds = 0
cls = 0
while t < end:
    x = rng.next()
    lev = 5500 + (x >> 8) % 600
    st.on_bus("soundlevel", t, (lev, lev - 300, lev + 400, lev + 200, lev, lev - 250))
    sound += 1
    while tp <= t:
        if (tp // 1000) % 420 == 0:  # a class for 7 minutes
            cls = (tp // 420000) % 4
        st.on_bus("predictions", tp, (ids[cls], 600 + (x >> 4) % 400))
        preds += 1
        tp += 1280
    t += 1000
    clock[0] = t
    sec = (t - now) // 1000
    if sec % 10 == 0:
        st.flush()
    if sec % 60 == 0:
        jobs()
st.flush()
jobs()
a0 = now - 600000
meta.label_add(st, {"start": a0, "end": a0 + 300000, "label": "walk"})  # (before its frames: retention runs)
frames = array.array("h", bytes(300))
n = 0
for b in range(300):  # 5 minutes, in 1 s batches
    for i in range(150):  # (noise: the codec cannot make it much smaller)
        x = rng.next()
        frames[i] = (x >> 12) % 4000 - 2000
    clock[0] = a0 + 1000 * b + 1000
    st.append_frames(a0 + 1000 * b, b * 50, 1, 50, memoryview(frames), 50)
    st.flush()
    n += 50
st.retain()
st.close()
print("seeded", sound, preds, n)
