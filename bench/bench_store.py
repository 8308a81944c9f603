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
- heap: the store while sampling, and the reader's extra while an export streams (fresh interpreter);
- the block codec (issue 16): its ratio on the replayed recording per column and as the accel resource stores it
  vs the 2.5x target (and the recording's entropy bound: the ratio no coder of residuals could beat), on white
  noise (the worst case), encode (viper) and decode speed on the unix port;
- bytes a day per resource at the default settings, stored (coded) vs uncoded, and the rollups' bytes a day for a
  steady and a busy day, with the days (or years) the default
  budgets hold.
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


def _run(args, heap="4096wK"):
    return run_script("mp_store.py", heap=heap, args=args, path=(os.path.join(REPO, "tests", "support"),),
                      timeout=1800)  # (plan: six simulated days of rollups, on a flash of 4 MB in RAM)


def _bound():
    """The recording's lossless bound per column: 16 bits over the zero-order entropy of an order-8 least-squares
    prediction's residual (a coder of residuals one by one cannot do better)."""
    import numpy as np

    a = np.load(os.path.join(REPO, "data", "watch_excerpt.npy")).astype(np.float64)
    out = {}
    for c, name in enumerate(("x", "y", "z")):
        x = a[:, c]
        X = np.column_stack([x[7 - k:len(x) - k - 1] for k in range(8)])
        w, *_ = np.linalg.lstsq(X, x[8:], rcond=None)
        res = np.round(x[8:] - X @ w)
        _, cnt = np.unique(res, return_counts=True)
        p = cnt / cnt.sum()
        out[name] = 16 / float(-(p * np.log2(p)).sum())
    return out


def run():
    r = _run([])
    r.update(_run(["heap"]))
    r.update(_run(["codec"]))
    r.update(_run(["plan"], "16384wK"))
    bound = _bound()
    for c in ("x", "y", "z"):
        LABELS["codec_ratio_" + c] = "codec ratio, recording column {} (50-row blocks) vs the 2.5x target".format(c)
        r["codec_bound_" + c] = (round(bound[c], 3), 2.5, "x")
        LABELS["codec_bound_" + c] = "entropy bound, recording column {} (order-8 prediction) vs 2.5x".format(c)
    for c in ("gx", "gy", "gz"):
        LABELS["codec_ratio_" + c] = "codec ratio, recording gyro {} (not stored: for comparison) vs 2.5x".format(c)
    LABELS.update({
        "codec_ratio_xyz_50rows": "codec ratio as accel is stored at 50 Hz, 1 s flush (x,y,z, block headers) vs 2.5x",
        "codec_ratio_xyz_85rows": "codec ratio, accel blocks of 85 rows (longer flush or 100 Hz) vs 2.5x",
        "codec_ratio_white_noise": "codec ratio on white noise (worst case: stored raw) vs 1.0",
        "codec_encode_rows_per_s": "encode rows/s (x,y,z; viper) vs the plain reference encoder",
        "codec_decode_rows_per_s": "decode rows/s (viper: exports, outbox) vs the plain shared decoder",
        "codec_encode_block_us": "encode a 50-row block (us) vs the 2 ms loop budget",
    })
    from sensorbox.shared import config_schema

    d = config_schema.defaults()
    for name in ("accel", "features", "predictions", "soundlevel", "events"):
        LABELS["perday_" + name] = "{} bytes/day at the defaults, stored vs uncoded".format(name)
        v = r["perday_" + name][0]
        r["days_" + name] = (round(d["store.{}_kb".format(name)] * 1024 / v, 3) if v else 0, 1.0, "days")
        LABELS["days_" + name] = "{}: days the default budget ({} KB) holds".format(name, d["store.{}_kb".format(name)])
    for kind in ("steady", "busy"):
        for name, target in (("soundlevel_1m", 30), ("predictions_1m", 30), ("soundlevel_1h", 5 * 365),
                             ("predictions_1h", 5 * 365)):
            key = "rollup_perday_{}_{}".format(kind, name)
            b, rows, _ = r.pop(key)
            per_day = max(b, 1)  # (a day of rows, coded, with their blocks' headers; segment headers left out)
            kb = d["store.{}_kb".format(name)]
            r["rollup_{}_{}".format(kind, name)] = (round(kb * 1024 / per_day, 1), target, "days")
            LABELS["rollup_{}_{}".format(kind, name)] = "{} day: {} ({:.0f} rows, {:.0f} B a day), days {} KB holds " \
                "vs target".format(kind, name, rows, per_day, kb)
    # coverage per board profile (boards.plan): the profile's data space, the rollups at their defaults, the rest
    # of it for the full-resolution budgets in proportion; days each holds at the bytes a day measured above (the
    # rollups' of the busier of the two days)
    from sensorbox.host import boards

    per_day = {n: r["perday_" + n][0] for n in ("accel", "features", "predictions", "soundlevel", "events")}
    for n in ("soundlevel_1m", "soundlevel_1h", "predictions_1m", "predictions_1h"):
        per_day[n] = max(d["store.{}_kb".format(n)] * 1024 / r["rollup_{}_{}".format(k, n)][0]
                         for k in ("steady", "busy"))
    for prof in sorted(boards.PROFILES):
        plan = boards.plan(boards.PROFILES[prof], per_day, d)
        if plan is None:
            continue
        for n in boards.STORED:
            kb, days = plan[n]
            key = "profile_{}_{}".format(prof, n)
            r[key] = (round(days, 3), 1.0, "days")
            LABELS[key] = "board {}: {} budget {} KB holds (days)".format(prof, n, kb)
    rows = []
    v = r["flash_bytes_per_sample"][0]
    r["flash_overhead_pct"] = (round((v / 6 - 1) * 100, 3), 2.0, "%")
    LABELS["flash_overhead_pct"] = "flash overhead per raw sample vs the 2 % target"
    for key, label in LABELS.items():
        v, b, unit = r[key]
        ratio = v / b if b else None
        rows.append((label, round(v, 3), round(b, 3), round(ratio, 4) if ratio is not None else None, unit))
    return rows
