"""Every persisted file replaced by something else, each case a boot (proof suite): ``corrupt_run.py`` makes a
data directory holding every file the device keeps, then per case corrupts one (random bytes, cut short, bytes
that are not UTF-8, JSON of the wrong type or shape, nesting too deep, empty, a directory in its place), boots the
device over it (app.Device, the model, the files read per request or by a service), checks that it booted, that
what was not valid is reported (``/api/status`` -> ``files``, the config's boot error, the model error, the
store's quarantine and counters), that no stored row or label that was not written is read, that the labels and
tokens not hit are all there, and that it writes on. ``make test`` runs every 8th case; ``SENSORBOX_PROOF=full``
(``make proof``) every case with two seeds of random bytes (>= 500 boots)."""

import os
import subprocess

import pytest

from sensorbox.host import bundle

RUN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corrupt_run.py")
FULL = os.environ.get("SENSORBOX_PROOF") == "full"


@pytest.mark.proof
def test_every_persisted_file_corrupted_boots_with_a_report(tmp_path):
    env = bundle.micropython_env(bundle.build("unix"))
    cases = reported = 0
    files = set()
    for seed in ((1, 2) if FULL else (1,)):
        work = tmp_path / "s{}".format(seed)
        work.mkdir()
        r = subprocess.run([bundle.micropython_path(), "-X", "heapsize=4M", RUN, str(work), str(seed % 8),
                            "1" if FULL else "8", str(seed)], env=env, capture_output=True, text=True,
                           timeout=1800, cwd=bundle.REPO)
        lines = r.stdout.strip().split("\n")
        assert r.returncode == 0 and lines[-1].startswith("E "), r.stdout[-3000:] + r.stderr[-3000:]
        bad = [ln for ln in lines if ln.startswith("C ") and ln.split()[4] != "1"]
        assert not bad, "\n".join(bad)
        for ln in lines[:-1]:
            f = ln.split()
            cases += 1
            reported += f[5] == "1"
            files.add(f[2])
    assert cases >= (500 if FULL else 30) and len(files) >= 17
    print("proof corrupt files: {} boots over {} files, each corrupted one way, {} reported, 0 failed to boot".format(
        cases, len(files), reported))
