"""Store benchmarks on the MicroPython unix port, on littlefs (os.VfsLfs2, 4 KB blocks) over a RAM block device
that counts block operations, each against a baseline measured in the same run:

- append throughput (1 s batches of 50 Hz x 3 int16 with a flush point each) vs plain append + flush;
- bytes on flash per stored sample (littlefs blocks really used, one hour at 50 Hz) vs the 6-byte payload
  (target overhead <= 2 %);
- export throughput as .npy (t int64 + x, y, z) vs reading the same segment files raw in 1 KB chunks;
- event-loop latency of an export: the longest and the p99 stretch between two yields of a query decimated to 2
  points over the hour (180,000 rows) vs the plain .npy export's, and how many yields it makes vs one per 256
  rows (before the fix: one stretch of ~440 ms, 35 yields);
- flash block operations per minute at 50 Hz 3-axis (a wear proxy) vs a logger that syncs every sample;
- heap: the store while sampling, and the reader's extra while an export streams (fresh interpreter).
"""

import os

from bench.mp import run_script

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LABELS = {
    "append_samples_per_s": "append 50 Hz x3, 1 s batches: store vs plain file append (both flushed)",
    "flash_bytes_per_sample": "flash bytes per sample (littlefs blocks, 1 h) vs 6 B payload (target <= 1.02)",
    "export_npy_rows_per_s": "export .npy rows/s vs raw read of the segment files",
    "export_npy_kb_per_s": "export .npy KB/s (t int64 added) vs raw read KB/s",
    "export_decimated_max_step_us": "export max_points=2 over 1 h: longest stretch between yields vs plain .npy",
    "export_decimated_p99_step_us": "export max_points=2 over 1 h: p99 stretch between yields vs plain .npy",
    "export_decimated_steps": "export max_points=2 over 1 h: yields vs one per 256 rows (target >= 1)",
    "flash_ops_per_min_50hz": "flash block progs+erases per minute at 50 Hz: store vs sync per sample",
    "heap_store_sampling_bytes": "heap of the store while sampling (code + buffers) vs a 64wK heap",
    "heap_export_extra_bytes": "extra heap while an export streams vs a 64wK heap",
}


def _run(args):
    return run_script("mp_store.py", heap="4096wK", args=args, path=(os.path.join(REPO, "tests", "support"),))


def run():
    r = _run([])
    r.update(_run(["heap"]))
    rows = []
    v = r["flash_bytes_per_sample"][0]
    r["flash_overhead_pct"] = (round((v / 6 - 1) * 100, 3), 2.0, "%")
    LABELS["flash_overhead_pct"] = "flash overhead per raw sample vs the 2 % target"
    for key, label in LABELS.items():
        v, b, unit = r[key]
        ratio = v / b if b else None
        rows.append((label, round(v, 3), round(b, 3), round(ratio, 4) if ratio is not None else None, unit))
    return rows
