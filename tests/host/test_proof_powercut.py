"""Simulated power cuts under the real store (proof suite): a flash that keeps only what was synced, cut after a
random write, the last write torn at every byte offset (truncated, or followed by 0xFF or random bytes), then
recovery and a row-by-row check of everything acknowledged, coded segments and pinned labelled frames included
(``powercut_run.py`` says how). The short size runs in
``make test``; ``SENSORBOX_PROOF=full`` (``make proof``) tears every byte offset of every cut's last write, for at
least 6,000 images."""

import os
import subprocess

import pytest

from sensorbox.host import bundle

RUN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "powercut_run.py")
FULL = os.environ.get("SENSORBOX_PROOF") == "full"


@pytest.mark.proof
@pytest.mark.parametrize("seed", [1, 2] if not FULL else [1, 2, 3, 4])
def test_power_cuts_at_every_byte_of_the_last_write_lose_nothing_acknowledged(seed):
    env = bundle.micropython_env(bundle.build("unix"))
    cuts = 1500 if FULL else 250
    args = [bundle.micropython_path(), "-X", "heapsize=16M", RUN, str(cuts), str(seed)] + (["every"] if FULL else [])
    r = subprocess.run(args, env=env, capture_output=True, text=True, timeout=1800, cwd=bundle.REPO)
    assert r.returncode == 0 and r.stdout.startswith("P "), r.stdout[-3000:] + r.stderr[-3000:]
    images, cuts_made, frames, labels, lost, garbage, pinned = (int(x) for x in r.stdout.split()[1:8])
    assert images >= cuts and cuts_made >= 3 and frames > 1000 and labels > 0 and pinned > 1000
    assert lost == 0 and garbage == 0
    print("proof power cuts (seed {}): {} images from {} cut points, {} acknowledged frames, {} pinned frames and "
          "{} labels checked, {} lost, {} garbage rows".format(seed, images, cuts_made, frames, pinned, labels, lost,
                                                               garbage))
