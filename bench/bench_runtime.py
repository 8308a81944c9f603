"""Runtime benchmarks on the MicroPython unix port: the sampling path's cost per batch (against a bare copy of
the same samples into the ring) and event-loop lag with both sensors sampling (against the idle loop)."""

import os
import subprocess

from sensorbox.host import bundle

HERE = os.path.dirname(os.path.abspath(__file__))


def _mp(script, heap="64wK"):
    out = bundle.build("unix")
    res = subprocess.run([bundle.micropython_path(), "-X", "heapsize=" + heap, os.path.join(HERE, script)],
                         env=bundle.micropython_env(out), cwd=bundle.REPO, capture_output=True, text=True,
                         timeout=300)
    if res.returncode != 0:
        raise RuntimeError("{} failed:\n{}{}".format(script, res.stdout, res.stderr))
    rows = {}
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) == 4:
            rows[parts[0]] = (float(parts[1]), float(parts[2]), parts[3])
    return rows


def run():
    r = _mp("mp_runtime.py")
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
