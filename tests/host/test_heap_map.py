"""bench/bench_heap.py's heap map: the GC's block map that MicroPython prints (``micropython.mem_info(1)``) read
back as objects by kind and size, checked against objects of known kind and size made on the real unix port."""

import os
import subprocess
import sys

from sensorbox.host import bundle

sys.path.insert(0, os.path.join(bundle.REPO, "bench"))

import bench_heap  # noqa: E402

_SCRIPT = """
import gc, micropython
keep = [bytearray(3000), bytearray(3000), (1, 2, 3, 4, 5, 6, 7, 8, 9), {"a": 1}, 1.5]
gc.collect()
micropython.mem_info(1)
"""


def test_the_heap_map_finds_the_objects_made_by_kind_and_size():
    r = subprocess.run([bundle.micropython_path(), "-X", "heapsize=64wK", "-c", _SCRIPT], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    kinds, sizes = bench_heap.heap_map(r.stdout.splitlines())
    # each bytearray: its object ("A") and its 3,000 bytes in blocks of 32 ("h": 3,008 bytes)
    assert sizes.get(("h", 3008), 0) >= 2, sorted(sizes.items(), key=lambda x: -x[0][1])[:5]
    for k in "ATDF":
        assert kinds.get(k, [0, 0])[1] >= 1, (k, kinds)
    # and an object of the ROMFS image's size or more is left out (the image is flash on a board)
    kinds2, sizes2 = bench_heap.heap_map(r.stdout.splitlines(), image=3000)
    assert ("h", 3008) not in sizes2 and kinds2["h"][0] == kinds["h"][0] - sizes[("h", 3008)] * 3008
