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


def mount(n):
    bd = RamFlash(n)
    os.VfsLfs2.mkfs(bd)
    os.mount(os.VfsLfs2(bd), "/flash")
    return bd


def used():
    s = os.statvfs("/flash")
    return (s[2] - s[3]) * s[0]


class Cfg:
    def get(self, key):
        return {"store.flush_ms": 1000, "store.min_free_kb": 0}.get(key, 8192)


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


if len(sys.argv) > 1:
    heap()
else:
    main()
