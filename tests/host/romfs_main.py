# main.py of a simulated board whose bundle is in a ROMFS partition (tests/host/soak.py, bench/bench_heap.py):
# the image ($SENSORBOX_ROMFS) is read into one bytearray first (on a board: memory-mapped flash, not heap; the
# caller adds its size to the heap), mounted at /rom with /rom/lib first on sys.path, as MicroPython >= 1.25
# does on a board with a romfs partition; then the app starts as main.py starts it.
import os
import sys

import vfs

img = os.getenv("SENSORBOX_ROMFS")
buf = bytearray(os.stat(img)[6])
with open(img, "rb") as f:
    f.readinto(buf)
vfs.mount(vfs.VfsRom(buf), "/rom")
sys.path.insert(0, "/rom/lib")
import sensorbox.device.app  # noqa: E402

sensorbox.device.app.main()
