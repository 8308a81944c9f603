# MicroPython script for tests/host/test_store_kill.py: writes to the store until it is killed.
#     micropython store_kill_writer.py ROOT SEED [dump]
# With STORE_LFS_IMAGE=path set, the store lives on littlefs (os.VfsLfs2) over that file as a block device
# (a kill then cuts littlefs mid-operation, like a power cut); ROOT is still where "dump" writes its files.
# Every value is a function of its time, so any row can be checked on its own:
#   accel frame seq (t = T0 + 20*seq): x = seq % 30000, y = -(seq % 20000), z = (seq * 7) % 32000;
#   seqs with seq % 997 < 3 are never written (in-run gaps); each run starts 3 frames after the last stored one.
#   predictions at t: (seq % 7, seq % 1000) with seq = (t - T0) // 20; events {"type": "tick", "seq": seq}.
# Prints "S <first seq>" once open, then after each flush point "A <accel seq end> <last prediction t>
# <predictions this run> <last event t> <events this run>": everything written before it is durable. "dump" writes export .npy files and exits.
import array
import os
import sys
import time

from sensorbox.device.log import Log
from sensorbox.device.store import core

T0 = 1700000000000
root = out_dir = sys.argv[1]
seed = int(sys.argv[2])
image = os.getenv("STORE_LFS_IMAGE")
if image:

    class FileBlocks:
        def __init__(self, path, n):
            try:
                self.f = open(path, "r+b")
                self.fresh = False
            except OSError:
                self.f = open(path, "w+b")
                blank = b"\xff" * 4096
                for i in range(n):
                    self.f.write(blank)
                self.fresh = True
            self.n = n

        def readblocks(self, b, buf, off=0):
            self.f.seek(b * 4096 + off)
            self.f.readinto(buf)

        def writeblocks(self, b, buf, off=0):
            self.f.seek(b * 4096 + off)
            self.f.write(buf)

        def ioctl(self, op, arg):
            if op == 4:
                return self.n
            if op == 5:
                return 4096
            if op == 6:
                return 0
            return None

    bd = FileBlocks(image, 1024)
    if bd.fresh:
        os.VfsLfs2.mkfs(bd)
    os.mount(os.VfsLfs2(bd), "/flash")
    root = "/flash/store"


class Cfg:
    def get(self, key):
        return {"store.flush_ms": 200, "store.min_free_kb": 0}.get(key, 1 << 20)


st = core.Store(root, Log(lambda: T0, None, echo=False), lambda: T0, None, 2048)
st.configure(Cfg())
st.open()

if len(sys.argv) > 3:
    from sensorbox.device.store import export

    for name in ("accel", "predictions", "events"):
        p = export.plan(st, name, {"format": "json"} if name == "events" else {}, T0)
        with open("{}/{}.out".format(out_dir, name), "wb") as f:
            for c in export.stream(st, p):
                f.write(c)
    print("D", st.torn, st.quarantined)
    sys.exit(0)

rng = seed * 2654435761 % 4294967296 or 1


def rand(n):
    global rng
    rng = (rng * 1103515245 + 12345) & 0x7FFFFFFF
    return (rng >> 8) % n


last = st.accel.last_t
seq = 0 if last is None else (last - T0) // 20 + 4
gen = seed
buf = array.array("h", bytes(6 * 64))
mv = memoryview(buf)
print("S", seq, st.torn, st.quarantined)
pred_t = ev_t = np = ne = 0
while True:
    n = 0
    s0 = seq
    want = 1 + rand(60)
    while n < want and seq % 997 >= 3:
        buf[3 * n] = seq % 30000
        buf[3 * n + 1] = -(seq % 20000)
        buf[3 * n + 2] = (seq * 7) % 32000
        n += 1
        seq += 1
    if n:
        st.append_frames(T0 + 20 * s0, s0, gen, 50, mv, n)
        t = T0 + 20 * (seq - 1)
        st.on_bus("predictions", t, ((seq - 1) % 7, (seq - 1) % 1000))
        pred_t = t
        np += 1
        if rand(4) == 0:
            st.on_bus("events", t, {"type": "tick", "seq": seq - 1})
            ev_t = t
            ne += 1
    while seq % 997 < 3:
        seq += 1
    if rand(3) == 0:
        st.flush()
        print("A", seq, pred_t, np, ev_t, ne)
    if image:
        time.sleep_ms(2)  # less data per run: the check after each kill reads it all back through littlefs
