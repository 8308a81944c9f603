"""Running a benchmark script on the MicroPython unix port, for the bench/bench_*.py modules.

A script prints one figure per line: ``name value baseline unit``. ``run_script`` returns them as
{name: (value, baseline, unit)}.
"""

import os
import subprocess

from sensorbox.host import bundle

HERE = os.path.dirname(os.path.abspath(__file__))


def run_script(script, heap="64wK", args=(), path=(), timeout=900):
    out_dir = bundle.build("unix")
    res = subprocess.run([bundle.micropython_path(), "-X", "heapsize=" + heap, os.path.join(HERE, script)]
                         + list(args), env=bundle.micropython_env(out_dir, path=path), cwd=bundle.REPO,
                         capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0:
        raise RuntimeError("{} failed:\n{}{}".format(script, res.stdout, res.stderr))
    figures = {}
    for line in res.stdout.splitlines():
        p = line.split()
        if len(p) == 4:
            figures[p[0]] = (float(p[1]), float(p[2]), p[3])
    return figures
