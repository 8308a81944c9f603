"""The store on a full littlefs file system (os.VfsLfs2 over a 48 KB block device in RAM): sampling goes on into the
newest segments, and the store reopens from what is on flash."""

# The flash double is a 48 KB bytearray in this test's heap, which a device's flash is not: 112wK (the store's
# tests, tests/device/test_store.py) plus 24wK (48 KB on this 64-bit port). At 112wK the recovery module's import
# failed for want of one 640-byte contiguous block with 79 KB free (2026-12-05), depending on what the test
# helpers had imported before.
HEAPSIZE = "136wK"

import os

from ramflash import RamFlash
from storetest import T0, frames, last_row, make


def test_full_littlefs_keeps_sampling_newest():
    bd = RamFlash(96, 512)  # 48 KB of flash
    os.VfsLfs2.mkfs(bd)
    os.mount(os.VfsLfs2(bd), "/flash")
    try:
        def stats():
            s = os.statvfs("/flash")
            return s[0] * s[2], s[0] * s[3]

        # Budgets far larger than the flash: only the free floor and full-flash handling can save it.
        st = make("/flash/store", flash=stats, seg=4096, store__accel_kb=1000, store__min_free_kb=0,
                  store__events_kb=1000, store__compress=False)
        seq = 0
        for k in range(120):  # 120 x 60 frames x 6 B = 43 KB of accel, plus events
            st.append_frames(T0 + seq * 20, seq, 1, 50, memoryview(frames(seq, 60)), 60)
            seq += 60
            st.on_bus("events", T0 + seq * 20, {"type": "tick", "k": k})
            st.flush()
        r = st.accel
        assert st.errors >= 1 or r.ret_segs >= 1
        assert r.ret_segs >= 3, (r.ret_segs, st.errors)
        def check(row):
            s = (row[0] - T0) // 20
            assert row[1:] == [s % 30000, -(s % 20000), (s * 7) % 32000], row

        n, first, last = last_row(st, "accel", check)
        assert last[0] == T0 + (seq - 1) * 20, "the newest frame must be stored"
        st.close()
        st = None  # a device has one store: room for the second one's recovery (48 KB of this heap is the flash)
        import gc

        gc.collect()
        st2 = make("/flash/store", flash=stats, seg=4096)
        assert st2.quarantined == 0
        assert last_row(st2, "accel", check)[0] == n
    finally:
        os.umount("/flash")
