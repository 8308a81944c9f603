# Store benchmarks on the MicroPython unix port (run by bench/bench_store.py). The store runs on littlefs
# (os.VfsLfs2, 4 KB blocks, as on an ESP32's flash) over a block device in RAM that counts its operations.
# Prints "key value baseline unit" lines.
import array
import gc
import os
import sys
import time

from ramflash import RamFlash  # tests/support

T0 = 1700000000000


_bd = None


def mount(n):
    """A fresh littlefs of ``n`` 4 KB blocks at /flash, on the RAM flash of the last mount when it is as big (a new
    2 MB bytearray each time did not always find room in the 8 MB heap: the old one may still look referenced)."""
    global _bd
    if _bd is None or len(_bd.data) != n * 4096:
        _bd = None
        gc.collect()
        _bd = RamFlash(n)
    bd = _bd
    os.VfsLfs2.mkfs(bd)
    os.mount(os.VfsLfs2(bd), "/flash")
    return bd


def used():
    s = os.statvfs("/flash")
    return (s[2] - s[3]) * s[0]


class Cfg:
    def get(self, key):  # (uncoded: these figures are about the blocks and littlefs; the codec's are below)
        return {"store.flush_ms": 1000, "store.min_free_kb": 0, "store.compress": False, "capture.classes": "",
                "capture.sound_db": 0, "board.sdcard": ""}.get(key, 8192)


class Quiet:
    def warning(self, *a):
        pass

    info = error = warning


def frames(n):
    a = array.array("h", bytes(6 * n))
    for i in range(3 * n):
        a[i] = (i * 37) % 4000 - 2000
    return a


def new_store():
    from sensorbox.device.store import core

    st = core.Store("/flash/store", Quiet(), lambda: T0, None)
    st.configure(Cfg())
    st.open()
    return st


def out(key, value, base, unit):
    print(key, value, base, unit)


def main():
    # 1. Append throughput: 1 s batches of 50 Hz x 3 int16 with a flush point each, vs plain append + flush.
    N = 50 * 600  # ten minutes of samples
    buf = frames(50)
    mv = memoryview(buf)
    bd = mount(512)
    t = time.ticks_us()
    f = open("/flash/plain.bin", "ab")
    for k in range(N // 50):
        f.write(buf)
        f.flush()
    f.close()
    base_us = time.ticks_diff(time.ticks_us(), t)
    os.remove("/flash/plain.bin")
    st = new_store()
    t = time.ticks_us()
    for k in range(N // 50):
        st.append_frames(T0 + k * 1000, k * 50, 1, 50, mv, 50)
        st.flush()
    store_us = time.ticks_diff(time.ticks_us(), t)
    out("append_samples_per_s", N * 1000000 // store_us, N * 1000000 // base_us, "samples/s")

    # 2. Bytes on flash per sample (littlefs blocks really used) vs the 6-byte payload: one hour at 50 Hz.
    st.close()
    os.umount("/flash")
    bd = st = None
    gc.collect()
    bd = mount(512)
    st = new_store()
    before = used()
    H = 50 * 3600
    for k in range(H // 50):
        st.append_frames(T0 + k * 1000, k * 50, 1, 50, mv, 50)
        if k % 10 == 9:
            st.flush()
    st.close()
    on_flash = used() - before
    out("flash_bytes_per_sample", on_flash / H, 6, "bytes")

    # 3. Export throughput: the whole hour as .npy (t int64 + x, y, z) vs reading the same files raw.
    from sensorbox.device.store import export

    st = new_store()
    gc.collect()
    t = time.ticks_us()
    p = export.plan(st, "accel", {}, T0)
    nb = 0
    for c in export.stream(st, p):
        nb += len(c)
    exp_us = time.ticks_diff(time.ticks_us(), t)
    rows = p.rows
    t = time.ticks_us()
    rb = bytearray(1024)
    raw = 0
    for n in os.listdir("/flash/store/accel"):
        with open("/flash/store/accel/" + n, "rb") as f:
            while True:
                k = f.readinto(rb)
                if not k:
                    break
                raw += k
    raw_us = time.ticks_diff(time.ticks_us(), t)
    out("export_npy_rows_per_s", rows * 1000000 // exp_us, rows * 1000000 // raw_us if raw_us else 0, "rows/s")
    out("export_npy_kb_per_s", nb * 1000 // exp_us, raw * 1000 // raw_us if raw_us else 0, "KB/s")
    # Event-loop latency: the stretches between two yields of an export (each yield lets the samplers run),
    # decimated to 2 points over the hour vs the plain .npy export of the same rows. The longest stretch is the
    # one a sampler waits; p99 as well, as one preemption of this process on a busy host inflates the longest.
    plain = _steps(export, st, {})
    dec = _steps(export, st, {"max_points": "2"})
    out("export_decimated_max_step_us", dec[-1], plain[-1], "us")
    out("export_decimated_p99_step_us", dec[len(dec) * 99 // 100], plain[len(plain) * 99 // 100], "us")
    out("export_decimated_steps", len(dec), rows // 256, "steps")
    os.umount("/flash")

    # 4. Flash operations per minute at 50 Hz 3-axis (wear proxy): store (1 s flush points) vs a naive logger
    # that appends and syncs every sample.
    bd = mount(512)
    st = new_store()
    p0, e0 = bd.progs, bd.erases
    for k in range(60):
        st.append_frames(T0 + k * 1000, k * 50, 1, 50, mv, 50)
        st.flush()
    store_ops = bd.progs - p0 + bd.erases - e0
    os.umount("/flash")
    bd = st = None
    gc.collect()
    bd = mount(512)
    f = open("/flash/naive.bin", "ab")
    one = memoryview(buf)[:3]
    p0, e0 = bd.progs, bd.erases
    for k in range(60 * 50):
        f.write(one)
        f.flush()
    naive_ops = bd.progs - p0 + bd.erases - e0
    f.close()
    os.umount("/flash")
    out("flash_ops_per_min_50hz", store_ops, naive_ops, "block_ops")



def _steps(export, st, params):
    """The stretches in us between two yields (sorted) of an export driven as the server drives it."""
    gc.collect()
    p = export.plan(st, "accel", params, T0, False)
    d = array.array("i")
    t = time.ticks_us()
    for _ in export.prepare(st, p):
        now = time.ticks_us()
        d.append(time.ticks_diff(now, t))
        t = now
    for _ in export.stream(st, p):
        now = time.ticks_us()
        d.append(time.ticks_diff(now, t))
        t = now
    return sorted(d)


def heap():
    # 5. Heap (a fresh interpreter): the store's code and buffers while sampling; the reader during an export.
    mount(64)
    gc.collect()
    f0 = gc.mem_free()
    st = new_store()
    gc.collect()
    f1 = gc.mem_free()
    out("heap_store_sampling_bytes", f0 - f1, 131072, "bytes_of_64wK")
    st.append_frames(T0, 0, 1, 50, memoryview(frames(50)), 50)
    st.flush()
    from sensorbox.device.store import export

    p = export.plan(st, "accel", {}, T0)
    g = export.stream(st, p)
    next(g)
    gc.collect()
    f2 = gc.mem_free()
    out("heap_export_extra_bytes", f1 - f2, 131072, "bytes_of_64wK")


if len(sys.argv) > 1 and sys.argv[1] == "heap":
    heap()
elif len(sys.argv) == 1:
    main()


def codec():
    # 6. The block codec (issue 16.1): ratios on the replayed recording, per column (blocks of 50 rows: a 1 s flush
    # at 50 Hz) and as the accel resource stores it (x, y, z together, with the 8-byte block headers), and on white
    # noise (the worst case); encode and decode speed (viper encoder vs the plain reference; decoder).
    from sensorbox.device.store import core as viper  # the store's viper encoder and decoder
    from sensorbox.shared import codec as dec, codec_enc, npy

    with open("data/watch_excerpt.npy", "rb") as f:
        f.seek(npy.header_length(f.read(128)))
        a = array.array("h", f.read())
    rows = len(a) // 6
    out = bytearray(1100)
    col = array.array("h", bytes(100))
    names = ("x", "y", "z", "gx", "gy", "gz")
    for c in range(6):
        raw = coded = 0
        for s in range(0, rows - 49, 50):
            for i in range(50):
                col[i] = a[6 * (s + i) + c]
            m = viper.encode(col, 50, 1, out, 1100, col, 255)
            coded += m if m > 0 else 101
            raw += 100
        out_line("codec_ratio_" + names[c], raw / coded, 2.5, "x")
    blk = array.array("h", bytes(6 * 85))
    for k in (50, 85):
        raw = coded = 0
        for s in range(0, rows - k + 1, k):
            for i in range(k):
                for c in range(3):
                    blk[3 * i + c] = a[6 * (s + i) + c]
            m = viper.encode(blk, k, 3, out, 1100, blk, 255)
            coded += (m if m > 0 else 6 * k + 1) + 8
            raw += 6 * k + 8
        out_line("codec_ratio_xyz_{}rows".format(k), raw / coded, 2.5, "x")
    x = 12345
    raw = coded = 0
    for s in range(200):
        for i in range(150):
            x = (x * 1103515245 + 12345) & 0x7FFFFFFF
            blk[i] = ((x >> 8) & 0xFFFF) - 32768
        m = viper.encode(blk, 50, 3, out, 1100, blk, 255)
        coded += (m if m > 0 else 301) + 8
        raw += 300 + 8
    out_line("codec_ratio_white_noise", raw / coded, 1.0, "x")
    # speeds: 50-row blocks of the recording's x, y, z
    for i in range(50):
        for c in range(3):
            blk[3 * i + c] = a[6 * (1000 + i) + c]
    src = bytes(memoryview(blk)[:150])
    n = 400
    t = time.ticks_us()
    for _ in range(n):
        m = viper.encode(blk, 50, 3, out, 1100, blk, 255)
    tv = time.ticks_diff(time.ticks_us(), t)
    t = time.ticks_us()
    for _ in range(20):
        codec_enc.encode(src, 50, 3, out, 1100)
    tp = time.ticks_diff(time.ticks_us(), t)
    out_line("codec_encode_rows_per_s", 50 * n * 1000000 // tv, 50 * 20 * 1000000 // tp, "rows/s")
    d = bytearray(300)
    t = time.ticks_us()
    for _ in range(n):
        viper.decode(out, 0, m, 3, d, 0, 300)
    tdv = time.ticks_diff(time.ticks_us(), t)
    t = time.ticks_us()
    for _ in range(100):
        dec.decode(out, 0, m, 3, d, 0, 300)
    td = time.ticks_diff(time.ticks_us(), t)
    out_line("codec_decode_rows_per_s", 50 * n * 1000000 // tdv, 50 * 100 * 1000000 // td, "rows/s")
    out_line("codec_encode_block_us", tv // n, 2000, "us")


def plan():
    # 7. Bytes a day per resource at the default settings, coded (and uncoded: the baseline): ten minutes of the
    # simulated device (the recording at 50 Hz in 1 s batches; features and a prediction every 1.28 s, the class
    # that of the recording's part; a sound level a second, steady as the simulator's tone; an event per class
    # change), times 144. Then the rollups of a day of a steady and of a busy sound level and classes changing as
    # the recording does.
    import json

    from sensorbox.shared import config_schema, features, npy

    with open("data/watch_excerpt.npy", "rb") as f:
        f.seek(npy.header_length(f.read(128)))
        rec = array.array("h", f.read())
    nrec = len(rec) // 6
    with open("data/watch_excerpt.json") as f:
        segs = json.load(f)["segments"]
    cls = {}
    part = []
    for s in segs:
        part.append((s["start"], s["start"] + s["frames"], cls.setdefault(s["label"], len(cls))))

    def klass(i):
        i %= nrec
        for a, b, k in part:
            if a <= i < b:
                return k
        return -1

    class Cfg:
        def __init__(self, compress):
            self.v = config_schema.defaults()
            self.v["store.compress"] = compress
            for k in ("accel", "features", "predictions", "soundlevel", "events"):
                self.v["store.{}_kb".format(k)] = 16384  # (nothing deleted in the ten minutes)

        def get(self, key):
            return self.v[key]

    from sensorbox.device.store import core, rollup

    ext = features.Extractor(3)
    feats = array.array("h", bytes(2 * ext.n_features))
    win = array.array("h", bytes(2 * 3 * 128))
    batch = array.array("h", bytes(2 * 3 * 50))
    res = {}
    for compress in (True, False):
        mount(512)
        st = core.Store("/flash/store", Quiet(), lambda: T0, None)
        st.configure(Cfg(compress))
        st.open()
        prev = None
        nxt = 128  # the frame a window ends at next (a window of 128 every 64 frames)
        for sec in range(600):
            for i in range(50):
                j = (sec * 50 + i) % nrec
                for c in range(3):
                    batch[3 * i + c] = rec[6 * j + c]
            st.append_frames(T0 + sec * 1000, sec * 50, 1, 50, memoryview(batch), 50)
            t = T0 + sec * 1000
            st.on_bus("soundlevel", t + 999, (7412 + (sec * 7) % 5 - 2, 7380, 7445, 7431, 7412, 7392))
            while nxt <= sec * 50 + 50:  # the windows that end in this second
                end = nxt
                nxt += 64
                for i in range(128):
                    for c in range(3):
                        win[3 * i + c] = rec[6 * ((end - 128 + i) % nrec) + c]
                ext.extract(win, feats)
                tw = T0 + end * 20
                st.on_bus("features", tw, feats)
                k = klass(end - 1)
                st.on_bus("predictions", tw, (k, 600 + (end * 37) % 400))
                if k != prev:
                    st.on_bus("events", tw, {"type": "class_change", "from": prev, "to": k, "confidence": 812})
                    prev = k
            st.flush()
            g = rollup.step(st, 1)  # (as the store service does after a flush point, when a segment was closed)
            if g is not None:
                for _ in g:
                    pass
        st.close()
        g = rollup.step(st, 1)  # (the open segments, closed now: as they will be)
        if g is not None:
            for _ in g:
                pass
        for r in st.res:
            if not r.period:
                res.setdefault(r.name, []).append(r.bytes * 144)
        os.umount("/flash")
        st = None
        gc.collect()
    for name in res:
        out_line("perday_" + name, res[name][0], res[name][1], "bytes")
    # rollups: three days of sound levels and classes, summarised every hour as time passes, then the four rollups'
    # bytes a day: the hours' blocks as a device that runs on fills them (36 rows of sound, 21 of classes; one day
    # made a block of 24 rows, or 21 and 3, whose headers and first values cost a row as much again). (More days
    # once crashed the unix port, SIGSEGV, in the recoding job at random minutes: not seen since.)
    days = 3
    for kind in ("steady", "busy"):
        mount(1024)  # (4 MB: the full-resolution rows of three days fit, no retention)

        class R:
            def get(self, key):
                v = config_schema.defaults()
                v["store.soundlevel_kb"] = v["store.predictions_kb"] = 16384
                return v[key]

        now = [T0]
        st = core.Store("/flash/store", Quiet(), lambda: now[0], None)
        st.configure(R())
        st.open()
        lev = 5500
        x = 99
        for s in range(86400 * days):
            t = T0 + s * 1000
            if kind == "steady":
                v = 7412 + (s * 7) % 5 - 2
                st.on_bus("soundlevel", t, (v, v - 30, v + 30, v + 20, v, v - 20))
            else:  # a day: quieter at night, wandering, with loud moments
                x = (x * 1103515245 + 12345) & 0x7FFFFFFF
                lev += (x >> 8) % 41 - 20 + (4500 + 1500 * (1 if 25200 <= s % 86400 < 79200 else 0) - lev) // 200
                loud = 1500 if (x >> 4) % 50 == 0 else 0
                st.on_bus("soundlevel", t, (lev + loud, lev - 400, lev + loud + 600, lev + 300, lev, lev - 300))
            j = (s * 50 // 64) * 64  # (a prediction every 1.28 s: of 64 seconds, the 50 in which a window ends)
            if (s * 50) % 64 < 50:
                st.on_bus("predictions", T0 + s * 1000 + 500, (klass(j), 600 + (j * 37) % 400))
            if s % 60 == 59:
                now[0] = t
                st.flush()
                for k in ((0, 1) if s % 3600 == 3599 else (1,)):
                    g = rollup.step(st, k)
                    if g is not None:
                        for _ in g:
                            pass
        st.flush()
        now[0] = T0 + 86400000 * days + 30000
        g = rollup.step(st, 0)
        for _ in g:
            pass
        for r in st.res:
            if r.period:
                made = r.rows + r.brows
                if r.brows:
                    rollup.flush(st, r)  # (as when its stage fills: the bytes a row costs for good)
                out_line("rollup_perday_{}_{}".format(kind, r.name), (r.bytes - 32 * r.nseg) // days, made // days,
                         "bytes/rows")
        st.close()
        os.umount("/flash")
        st = None
        gc.collect()


def out_line(key, value, base, unit):
    print(key, value, base, unit)


if len(sys.argv) > 1 and sys.argv[1] == "codec":
    codec()
elif len(sys.argv) > 1 and sys.argv[1] == "plan":
    plan()
