# MicroPython script for tests/host/test_store_kill.py: writes to the store until it is killed.
#     micropython store_kill_writer.py ROOT SEED [dump]
# With STORE_LFS_IMAGE=path set, the store lives on littlefs (os.VfsLfs2) over that file as a block device
# (a kill then cuts littlefs mid-operation, like a power cut); ROOT is still where "dump" writes its files.
# Every value is a function of its time, so any row can be checked on its own:
#   accel frame seq (t = T0 + 20*seq): x = seq % 30000, y = -((seq * 40503) % 20000), z = (seq * 7) % 32000;
#   seqs with seq % 997 < 3 are never written (in-run gaps); each run starts 3 frames after the last stored one.
#   predictions at t: (seq % 7, seq % 1000) with seq = (t - T0) // 20; events {"type": "tick", "seq": seq}.
# Prints "S <first seq>" once open, then after each flush point "A <accel seq end> <last prediction t>
# <predictions this run> <last event t> <events this run>": everything written before it is durable. Also, with
# the device's own code, in ROOT (next to the store): labels (meta.label_add / label_delete: "L <id> <start> <end>
# <name>" and "D <id>" once they returned), the config (Config.update of device.name to "n<k>": "C <k>") and API
# tokens (the web API's save of tokens.json: "T <ids, comma separated>"); before each such call "l"/"d"/"c"/"t"
# say what is in flight. "dump" writes export .npy files and exits.
# With STORE_PINS=1 the accelerometer's budget is 4 KB (1 KB segments, coded: retention deletes all the time, and a
# kill lands in it) and each label covers the last 40-80 frames written (pinned: retention must keep them).
import array
import os
import sys
import time

from sensorbox.device.log import Log
from sensorbox.device.store import core
from writer_frames import batch

sys.path.append(__file__.rpartition("/")[0] + "/../support")  # testrng: the tests' random numbers
from testrng import Rng, spread  # noqa: E402

T0 = 1700000000000
out_dir = sys.argv[1]
root = out_dir + "/store"  # the store; the device files (config, auth, tokens) beside it in out_dir
try:
    os.mkdir(out_dir)
except OSError:
    pass
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


pins = os.getenv("STORE_PINS")


class Cfg:
    def get(self, key):
        return {"store.flush_ms": 200, "store.min_free_kb": 0, "store.accel_kb": 4 if pins else 1 << 20,
                "capture.classes": "", "capture.sound_db": 0, "board.sdcard": ""}.get(key, 1 << 20)


log = Log(lambda: T0, None, echo=False)
st = core.Store(root, log, lambda: T0, None, 2048)
st.configure(Cfg())
st.open()

if len(sys.argv) > 3:
    from sensorbox.device.store import export

    for name in ("accel", "predictions", "events"):
        p = export.plan(st, name, {"format": "json"} if name == "events" else {}, T0)
        with open("{}/{}.out".format(out_dir, name), "wb") as f:
            for c in export.stream(st, p):
                f.write(c)
    from sensorbox.device.store import meta

    data = out_dir if not image else "/flash"
    with open(out_dir + "/labels.out", "w") as f:  # [[id, start, end, name], ...]: what GET /api/labels shows
        f.write(repr([[r[2], a, r[0], r[1]] for a, r in meta.label_rows(st, type("All", (), {"start": -1, "end": 1 << 60}))
                      if a is not None]).replace("'", '"'))
    for name in ("config.json", "tokens.json"):
        try:
            with open(data + "/" + name, "rb") as f, open(out_dir + "/" + name + ".out", "wb") as g:
                g.write(f.read())
        except OSError:
            pass
    print("D", st.torn, st.quarantined)
    sys.exit(0)

rand = Rng(spread(seed)).below


from sensorbox.device.config import Config  # noqa: E402
from sensorbox.device.store import meta  # noqa: E402
from sensorbox.device.auth import Auth  # noqa: E402
from sensorbox.device.http import authz, admin  # noqa: E402

data = out_dir if not image else "/flash"
cfg = Config(data + "/config.json", log)
name = cfg.get("device.name")
k_cfg = int(name[1:]) if name.startswith("n") else 0
auth = Auth(data + "/auth.json", log, "pw")
toks = authz.tokens(auth)
labels = []
last_end = 0
for x in meta.label_rows(st, type("All", (), {"start": -1, "end": 1 << 60})):
    if x[0] is not None:
        labels.append(x[1][2])
        last_end = max(last_end, x[1][0])
last = st.accel.last_t
seq = 0 if last is None else (last - T0) // 20 + 4
gen = seed
buf = array.array("h", bytes(6 * 64))
mv = memoryview(buf)
print("S", seq, st.torn, st.quarantined)
pred_t = ev_t = np = ne = 0
while True:
    want = 1 + rand(60)
    ev = rand(4) == 0
    seq, t = batch(st, buf, mv, seq, want, gen, ev)
    if t is not None:
        pred_t = t
        np += 1
        if ev:
            ev_t = t
            ne += 1
    while seq % 997 < 3:
        seq += 1
    if rand(3) == 0:
        st.flush()
        print("A", seq, pred_t, np, ev_t, ne, st.accel.ret_segs)
    r = rand(64)
    if pins and r == 0 and len(labels) < 400:  # the frames just written (after the last label: no overlap), still
        # stored: in the open segment (pinned data may fill the budget, and the segment before may be gone already)
        a = max(last_end, T0 + 20 * (seq - 40 - rand(40)), st.accel.seg_t0 if st.accel.f is not None else 0)
        r = 0 if a < T0 + 20 * seq else -1
        lab = (a, T0 + 20 * seq, "l{}".format(seq))
    elif r == 0 and len(labels) < 400:
        a = T0 + 100000 * seq  # (never overlapping: seq grows by more than one between two labels)
        lab = (a, a + 1 + rand(50000), "l{}".format(seq))
    if r == 0 and len(labels) < 400:
        print("l", *lab)
        got = meta.label_add(st, {"start": lab[0], "end": lab[1], "label": lab[2]})
        labels.append(got["id"])
        last_end = lab[1]
        print("L", got["id"], *lab)
    elif r == 1 and labels:
        i = labels.pop(rand(len(labels)))
        print("d", i)
        meta.label_delete(st, i)
        print("D", i)
    elif r == 2:
        k_cfg += 1
        print("c", k_cfg)
        cfg.update({"device.name": "n{}".format(k_cfg)})
        print("C", k_cfg)
    elif r == 3:
        new = toks[-3:] + [{"id": max([t["id"] for t in toks] + [0]) + 1, "name": "k", "scope": "read",
                            "hash": "{:064x}".format(seq)}]
        print("t", ",".join(str(t["id"]) for t in new))
        admin._save(auth, new)
        toks = new
        print("T", ",".join(str(t["id"]) for t in toks))
    if image:
        time.sleep_ms(2)  # less data per run: the check after each kill reads it all back through littlefs
