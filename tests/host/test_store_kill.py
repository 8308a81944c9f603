"""The store's power-loss contract, proven by SIGKILL: a MicroPython process writes accel frames, predictions
and events through the real store (bundle .mpy) and is killed at random moments, 210 times in 10 series. After
each kill the data directory is checked by an independent reader written here with numpy: every file is a valid
segment, every row holds exactly the values the writer derives from its time, and every row acknowledged after a
flush point (the writer prints "A ..." once ``flush()`` returned) is present. The next run reopens the store
(recovery) and writes on; each series ends with an export through the store's own reader, compared with the
independent reading. A second test does 20 more kills with the store on littlefs (os.VfsLfs2 over a file as the
block device), where a kill cuts littlefs itself mid-operation, as a power cut would.
"""

import binascii
import json
import os
import random
import struct
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from sensorbox.host import bundle

T0 = 1700000000000
WRITER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "store_kill_writer.py")
SERIES = 10
KILLS_PER_SERIES = 21


def _segments(d):
    """(header tuple, [payload of each block]) of each segment of a resource directory, in name order. Every
    whole block must pass its CRC-32 (a kill never corrupts); only the end of a segment may be torn."""
    out = []
    if not os.path.exists(d):
        return out  # killed before the store made it
    names = sorted(os.listdir(d), key=lambda n: int(n[:-4]))
    for n in names:
        assert n.endswith(".seg") and n[:-4].isdigit(), n
        with open(os.path.join(d, n), "rb") as f:
            b = f.read()
        if len(b) < 32:
            # A header torn by the kill: only possible in the newest segment (the next open() removes it).
            assert n == names[-1] and b == b"SBS1\x02"[:len(b)] or len(b) == 0 or b[:4] == b"SBS1", (n, b)
            assert n == names[-1], (n, names[-1])
            continue
        h = struct.unpack_from("<4sBBBBHHqII", b)
        assert h[:2] == (b"SBS1", 2) and h[4] == 0 and struct.unpack_from("<I", b, 28)[0] == binascii.crc32(b[:28])
        assert int(n[:-4]) >= h[7]
        blocks = []
        o = 32
        rows = 0
        while o + 8 <= len(b):
            crc, size, first = struct.unpack_from("<IHH", b, o)
            if o + 8 + size > len(b):
                break  # the torn end
            assert crc == binascii.crc32(b[o + 4:o + 8 + size]), (n, o)
            assert size and (h[6] == 0 or size % h[6] == 0), (n, o, size)
            if h[5]:  # rate rows: the first row's index
                assert first == rows % 65536, (n, o, first, rows)
                rows += size // h[6]
            blocks.append(b[o + 8:o + 8 + size])
            o += 8 + size
        out.append((h[:2] + h[2:4] + h[5:], blocks))
    return out


def read_store(root):
    """Independent reading of the store: accel (t, x, y, z), predictions (t, class, conf), events [(t, obj)]."""
    acc = []
    for h, blocks in _segments(os.path.join(root, "accel")):
        _, _, code, ncols, rate, rb, t0, seq0, gen = h
        assert (code, ncols, rate, rb) == (1, 3, 50, 6)
        body = b"".join(blocks)
        rows = len(body) // 6
        v = np.frombuffer(body, "<i2", count=rows * 3).reshape(rows, 3).astype(np.int64)
        t = t0 + np.arange(rows, dtype=np.int64) * 20
        acc.append(np.column_stack([t, v]))
    acc = np.concatenate(acc) if acc else np.zeros((0, 4), np.int64)
    pred = []
    for h, blocks in _segments(os.path.join(root, "predictions")):
        assert h[2:6] == (3, 2, 0, 8)
        body = b"".join(blocks)
        rows = len(body) // 8
        a = np.frombuffer(body, np.dtype([("dt", "<i4"), ("c", "<i2"), ("p", "<i2")]), count=rows)
        pred.append(np.column_stack([h[6] + a["dt"].astype(np.int64), a["c"], a["p"]]))
    pred = np.concatenate(pred) if pred else np.zeros((0, 3), np.int64)
    events = []
    for h, blocks in _segments(os.path.join(root, "events")):
        for body in blocks:
            lines = body.split(b"\n")
            assert lines[-1] == b""  # a block holds whole lines
            for ln in lines[:-1]:
                t, js = ln.split(b"\t", 1)
                events.append((int(t), json.loads(js)))
    return acc, pred, events


def check(root, runs):
    """Every stored value is right; everything acknowledged is there. ``runs``: (start seq, last ack) pairs."""
    return check_rows(*read_store(root), runs)


def check_rows(acc, pred, events, runs):
    t = acc[:, 0]
    assert np.all(np.diff(t) > 0), "accel times must strictly increase"
    seq = (t - T0) // 20
    assert np.all((t - T0) % 20 == 0)
    assert np.all(seq % 997 >= 3), "a gap frame appeared"
    assert np.array_equal(acc[:, 1], seq % 30000) and np.array_equal(acc[:, 2], -(seq % 20000))
    assert np.array_equal(acc[:, 3], (seq * 7) % 32000)
    have = set(seq.tolist())
    pt = pred[:, 0]
    assert np.all(np.diff(pt) > 0) and np.all((pt - T0) % 20 == 0)
    ps = (pt - T0) // 20
    assert np.array_equal(pred[:, 1], ps % 7) and np.array_equal(pred[:, 2], ps % 1000)
    et = np.array([e[0] for e in events], np.int64)
    for tt, ev in events:
        assert ev == {"type": "tick", "seq": (tt - T0) // 20}, (tt, ev)
    for start, ack in runs:
        if ack is None:
            continue
        end, pred_t, npred, ev_t, nev = ack
        want = [s for s in range(start, end) if s % 997 >= 3]
        missing = [s for s in want if s not in have]
        assert not missing, "acknowledged frames lost: {} of {} (first {})".format(len(missing), len(want),
                                                                                 missing[:3])
        lo = T0 + 20 * start
        if npred:
            assert np.count_nonzero((pt >= lo) & (pt <= pred_t)) == npred, "acknowledged predictions lost"
        if nev:
            assert np.count_nonzero((et >= lo) & (et <= ev_t)) == nev, "acknowledged events lost"
    return acc, pred, events


def _spawn(env, root, seed, *extra):
    return subprocess.Popen([bundle.micropython_path(), WRITER, root, str(seed)] + list(extra), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=bundle.REPO)


def _parse(out, err, stats):
    """(start, last ack) of a killed run from its output, or None if it never opened the store."""
    assert b"Traceback" not in err and b"Traceback" not in out, err.decode() + out.decode()
    start = ack = None
    for line in out.decode().split("\n")[:-1]:  # the last piece may be a line cut by the kill
        f = line.split()
        if not f:  # (a blank line: nothing of the writer's)
            continue
        if f[0] == "S":
            start = int(f[1])
            stats["torn"] += int(f[2])
            assert f[3] == "0", "the store quarantined one of its own files"
        elif f[0] == "A":
            ack = tuple(int(x) for x in f[1:])
    if start is None:
        return None
    stats["acked_runs"] += ack is not None
    return start, ack


def _dump(env, root):
    """Export through the store's own reader (in MicroPython) and load it here."""
    p = _spawn(env, root, 0, "dump")
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0 and out.startswith(b"D ") and out.split()[2] == b"0", out + err
    a = np.load(os.path.join(root, "accel.out"))
    assert a.dtype.names == ("t", "x", "y", "z")
    acc = np.column_stack([a[n].astype(np.int64) for n in a.dtype.names])
    b = np.load(os.path.join(root, "predictions.out"))
    pred = np.column_stack([b[n].astype(np.int64) for n in b.dtype.names]) if len(b) else np.zeros((0, 3))
    with open(os.path.join(root, "events.out")) as f:
        events = [(e.pop("t"), e) for e in json.load(f)]
    return acc, pred, events


def test_sigkill_on_littlefs_image(tmp_path):
    """The same on littlefs (os.VfsLfs2 over a file as the block device): a kill is a power cut in the middle of
    littlefs's own operations. Checked after every kill through the store's export."""
    env = dict(bundle.micropython_env(bundle.build("unix")), STORE_LFS_IMAGE=str(tmp_path / "flash.img"))
    root = str(tmp_path)
    _dump(env, root)  # formats the image (not killed)
    rnd = random.Random(7)
    runs = []
    stats = {"torn": 0, "acked_runs": 0}
    for i in range(20):
        p = _spawn(env, root, 5000 + i)
        head = p.stdout.readline()
        time.sleep(rnd.uniform(0.0, 0.4))
        p.kill()
        out, err = p.communicate()
        run = _parse(head + out, err, stats)
        if run:
            runs.append(run)
        check_rows(*_dump(env, root), runs)
    assert stats["acked_runs"] >= 8
    assert len(_dump(env, root)[0]) > 2000


def run_series(k, env, root, kills):
    rnd = random.Random(k)
    runs = []
    stats = {"torn": 0, "acked_runs": 0}
    for i in range(kills):
        p = _spawn(env, root, k * 1000 + i)
        head = b""
        if rnd.random() < 0.25:
            time.sleep(rnd.uniform(0.0, 0.3))  # any moment: start-up, recovery in open(), writing
        else:
            head = p.stdout.readline()  # the store is open ("S ..."): kill while it writes
            time.sleep(rnd.uniform(0.0, 0.12))
        p.kill()
        out, err = p.communicate()
        run = _parse(head + out, err, stats)
        if run:
            runs.append(run)
        check(root, runs)
    # The store's own reader, through export, agrees with the independent one.
    acc, pred, events = check(root, runs)
    acc2, pred2, events2 = _dump(env, root)
    assert np.array_equal(acc2, acc) and np.array_equal(pred2, pred) and events2 == events
    stats["rows"] = len(acc)
    return stats


def test_sigkill_at_random_moments_loses_no_flushed_record(tmp_path):
    out = bundle.build("unix")
    env = bundle.micropython_env(out)
    with ThreadPoolExecutor(max_workers=3) as ex:
        futs = [ex.submit(run_series, k, env, str(tmp_path / "s{}".format(k)), KILLS_PER_SERIES)
                for k in range(SERIES)]
        stats = [f.result() for f in futs]
    assert SERIES * KILLS_PER_SERIES >= 200
    # The kills really landed while writing: most runs acknowledged flushes, and data accumulated.
    assert sum(s["acked_runs"] for s in stats) >= SERIES * KILLS_PER_SERIES // 2
    assert all(s["rows"] > 10000 for s in stats)
