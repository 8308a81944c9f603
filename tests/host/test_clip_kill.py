"""Audio clips under power loss (issue 18.1; part of the proof suite): a MicroPython process writes clip after clip
through the real store from a deterministic microphone and is killed (SIGKILL) at random moments, mid-clip or
between clips. After each kill an independent reader (here: the segment format read with zlib's CRC-32) finds
every clip acknowledged before the kill whole, every sample the microphone's, and at most the one clip that was
being written cut short (only its tail: every whole block holds the right samples); then the store opens again
(recovery) in the next run, which lists and exports every clip through the device's own code."""

import os
import random
import struct
import subprocess
import time
import zlib

import pytest

from sensorbox.host import bundle

T0 = 1700000000000
WRITER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "clip_kill_writer.py")
KILLS = 40 if os.environ.get("SENSORBOX_PROOF") == "full" else 8


def _sample(s):
    return (s * 7919) % 65536 - 32768


def _clips(root):
    """{start: frames} of every clip segment, each checked block by block: CRC-32, raw int16 rows, the samples
    the microphone made (frame a = (start - T0) * 16: clips start at a chunk without pre-trigger audio)."""
    d = os.path.join(root, "clips")
    out = {}
    if not os.path.isdir(d):
        return out
    for name in sorted(os.listdir(d), key=lambda n: int(n[:-4])):
        b = open(os.path.join(d, name), "rb").read()
        if len(b) < 32:
            continue  # a header cut short: recovery removes it
        magic, ver, code, ncols, codec, rate, rb, t0, seq0, gen, crc = struct.unpack_from("<4sBBBBHHqIII", b, 0)
        assert magic == b"SBS1" and code == 11 and ncols == 1 and codec == 0 and rate == 16000 and rb == 2, name
        assert crc == zlib.crc32(b[:28]) and gen >> 30 == 1, name
        a = (t0 - T0) * 16
        pos, n = 32, 0
        while pos + 8 <= len(b):
            c, size, first = struct.unpack_from("<IHH", b, pos)
            if pos + 8 + size > len(b):
                break  # torn tail
            payload = b[pos + 8:pos + 8 + size]
            assert c == zlib.crc32(payload, zlib.crc32(b[pos + 4:pos + 8])), (name, pos)
            assert first == n % 65536 and size % 2 == 0, (name, pos)
            rows = struct.unpack("<{}h".format(size // 2), payload)
            assert list(rows) == [_sample(a + n + i) for i in range(len(rows))], (name, pos)
            n += len(rows)
            pos += 8 + size
        out[int(name[:-4])] = n
    return out


@pytest.mark.proof
def test_sigkill_mid_clip_keeps_earlier_clips_and_the_store_readable(tmp_path):
    env = bundle.micropython_env(bundle.build("unix"))
    root = str(tmp_path / "store")
    rnd = random.Random(18)
    acked = {}
    was_cut = set()
    seq = 0
    for i in range(KILLS):
        p = subprocess.Popen([bundle.micropython_path(), "-X", "heapsize=" + bundle.APP_HEAP, WRITER, root,
                              str(seq)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=bundle.REPO)
        head = p.stdout.readline()
        assert head.startswith(b"S "), head + p.stderr.read()
        time.sleep(rnd.uniform(0.1, 1.2))
        p.kill()
        out, err = p.communicate(timeout=30)
        assert b"Traceback" not in err, err.decode()
        for line in out.decode().split("\n")[:-1]:
            f = line.split()
            if f and f[0] == "K":
                acked[int(f[1])] = (int(f[2]) - int(f[1])) * 16
        have = _clips(root)
        for start, frames in acked.items():  # every acknowledged clip: whole, its samples the microphone's
            assert have.get(start) == frames, (start, frames, have.get(start))
        cut = [s for s in have if have[s] != 16000 and s not in was_cut]  # (this run's: the one being written)
        assert len(cut) <= 1 and all(s not in acked for s in cut), (cut, have)
        was_cut.update(cut)
        # the next run starts 10 s of sound after the newest clip (its clock is its microphone's)
        seq = max([(s - T0) * 16 + n for s, n in have.items()] + [seq]) + 160000
    assert len(acked) >= KILLS // 2, acked
    # the store opens again and the device's own code lists every clip and exports each as a WAV
    check = tmp_path / "check.py"
    check.write_text(_CHECK)
    r = subprocess.run([bundle.micropython_path(), "-X", "heapsize=" + bundle.APP_HEAP, str(check), root],
                       env=env, capture_output=True, text=True, timeout=120, cwd=bundle.REPO)
    assert r.returncode == 0, r.stdout + r.stderr
    listed = {int(x.split()[1]): int(x.split()[2]) for x in r.stdout.splitlines() if x.startswith("C ")}
    have = _clips(root)
    assert listed == {s: n for s, n in have.items() if n}, (listed, have)
    print("proof kill -9 mid-clip: {} kills, {} clips acknowledged and whole, {} in all".format(
        KILLS, len(acked), len(have)))


_CHECK = """
import sys
from sensorbox.device.log import Log
from sensorbox.device.store import core, export, figures
from sensorbox.shared import config_schema, wav

class Cfg:
    def __init__(self):
        self.v = config_schema.defaults()
        self.v.update({"store.clips_kb": 4096})
    def get(self, k):
        return self.v[k]

st = core.Store(sys.argv[1], Log(lambda: 0, echo=False), lambda: 1800000000000, None)
st.configure(Cfg())
st.open()
for c in figures.clips(st, 0, 1 << 53):
    p = export.plan(st, "clips", {"format": "wav", "start": str(c["start"]), "end": str(c["end"])}, 0)
    body = export.stream(st, p)
    head = bytes(next(body))
    n = sum(len(x) for x in body)
    assert wav.parse(head)[4] == n == 2 * c["frames"], (c, n)
    print("C", c["start"], c["frames"])
"""
