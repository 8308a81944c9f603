"""Runtime benchmarks on the MicroPython unix port: the sampling path's cost per batch (against a bare copy of
the same samples into the ring) and event-loop lag with both sensors sampling (against the idle loop)."""

from bench.mp import run_script


def run():
    r = run_script("mp_runtime.py")
    out = []
    for key, label in (("mic_batch_us", "mic batch (256 samples): read+check+ring vs bare copy"),
                       ("accel_batch_us", "accel batch (2 frames): read+check+ring vs bare copy"),
                       ("loop_lag_p99_us", "loop lag p99: both sensors sampling vs idle loop"),
                       ("loop_lag_max_us", "loop lag max: both sensors sampling vs idle loop")):
        v, b, unit = r[key]
        out.append((label, round(v, 1), round(b, 1), round(v / b, 1) if b else None, unit))
    out.append(("samples received in 3 s (dropped: {:.0f})".format(r["samples_dropped"][0]),
                int(r["samples_received"][0]), None, None, "samples"))
    return out
