"""The power-loss contract, proven by SIGKILL (part of the proof suite: ``@pytest.mark.proof``; ``make test`` runs
the short size, ``SENSORBOX_PROOF=full`` / ``make proof`` the full one, >= 1,000 kills). A MicroPython process
writes accel frames, predictions and events through the real store (bundle .mpy), and with the device's own code
labels, the config and API tokens, and is killed at random moments. After each kill the data directory is checked
by an independent reader written here (numpy for the segments: every whole block passes its CRC-32, every row
holds exactly the values the writer derives from its time, and every row acknowledged after a flush point (the
writer prints "A ..." once ``flush()`` returned) is present; labels.bin, config.json and tokens.json parsed here:
every label, config value and token list whose write returned is there, and nothing else but what was in flight).
The next run reopens the store (recovery) and writes on; each series ends with an export through the store's own
reader, compared with the independent reading. A second test kills the writer with the store and the device files
on littlefs (os.VfsLfs2 over a file as the block device), where a kill cuts littlefs itself mid-operation, as a
power cut would; it checks through the device's own readers. A third keeps the accelerometer's budget tiny, so
retention deletes segments all the time, with labels over the frames just written: no kill may lose a pinned frame
(issue 16.2). The segments are coded (the default): the independent reader decodes them with the shared codec.
"""

import json
import os
import random
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import segfiles
from sensorbox.host import bundle

T0 = 1700000000000
WRITER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "store_kill_writer.py")
FULL = os.environ.get("SENSORBOX_PROOF") == "full"
SERIES = 20 if FULL else 6
KILLS_PER_SERIES = 50 if FULL else 12
LFS_KILLS = 100 if FULL else 10
PIN_SERIES = 4 if FULL else 2
PIN_KILLS = 50 if FULL else 10


def _segments(d):
    """(header tuple, [payload of each block]) of each segment of a resource directory, in name order, read by the
    independent reader (``segfiles``: every whole block must pass its CRC-32; only the end may be torn)."""
    out = []
    if not os.path.exists(d):
        return out  # killed before the store made it
    names = sorted(os.listdir(d), key=lambda n: int(n[:-4]))
    for n in names:
        assert n.endswith(".seg") and n[:-4].isdigit(), n
        with open(os.path.join(d, n), "rb") as f:
            b = f.read()
        seg = segfiles.parse(b)
        if seg is None:
            # A header torn by the kill: only possible in the newest segment (the next open() removes it).
            assert b == b"SBS1\x02"[:len(b)] or b[:4] == b"SBS1", (n, b)
            assert n == names[-1], (n, names[-1])
            continue
        h, blocks = seg
        assert int(n[:-4]) >= h[6]
        out.append((h, [body for first, body in blocks]))
    return out


def read_store(root):
    """Independent reading of the store: accel (t, x, y, z), predictions (t, class, conf), events [(t, obj)]."""
    root = os.path.join(root, "store")
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


def check(root, runs, dev):
    """Every stored value is right; everything acknowledged is there. ``runs``: (start seq, last ack) pairs;
    ``dev``: the labels, config and tokens acknowledged and in flight."""
    check_device_files(read_labels(os.path.join(root, "store", "labels.bin")), _text(root, "config.json"),
                       _text(root, "tokens.json"), dev)
    return check_rows(*read_store(root), runs)


def _text(root, name):
    try:
        with open(os.path.join(root, name), "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def read_labels(path):
    """{id: (start, end, name)} of the live labels in labels.bin (format: sensorbox/device/store/meta.py), read
    here: every whole record's CRC-32 must hold; a kill can only cut the last record short."""
    import binascii
    import struct

    try:
        b = open(path, "rb").read()
    except FileNotFoundError:
        return {}
    assert b[:4] == b"SBL2", b[:8]
    out = {}
    o = 8
    prev = 0
    while o + 22 <= len(b):
        st, ln, ident, a, e = struct.unpack_from("<BBIqq", b, o)
        if o + 26 + ln > len(b):
            break
        assert st in (76, 85, 88) and 0 < ln <= 160 and ident > prev, (o, st, ln, ident)
        assert struct.unpack_from("<I", b, o + 22 + ln)[0] == binascii.crc32(b[o + 1:o + 22 + ln]), (o, ident)
        prev = ident
        if st != 88:
            out[ident] = (a, e, b[o + 22:o + 22 + ln].decode())
        o += 26 + ln
    return out


def check_device_files(labels, config, tokens, dev):
    for i, want in dev["labels"].items():
        assert labels.get(i) == want or dev["del"] == i, ("acknowledged label lost or changed", i, want, labels.get(i))
    for i, got in labels.items():
        assert i in dev["labels"] or dev["add"] == got, ("a label that was never written", i, got, dev)
    if dev["config"] is not None:
        name = json.loads(config).get("device.name")
        assert name in ("n{}".format(dev["config"]), "n{}".format(dev["config_next"])), (name, dev)
    if dev["tokens"] is not None:
        ids = ",".join(str(t["id"]) for t in json.loads(tokens))
        assert ids in (dev["tokens"], dev["tokens_next"]), (ids, dev)
    # What was in flight at the kill is now what the files say (the next run starts from it).
    if dev["del"] is not None and dev["del"] not in labels:
        dev["labels"].pop(dev["del"], None)
    if dev["add"] is not None:
        for i, got in labels.items():
            if got == dev["add"]:
                dev["labels"][i] = got
    dev["add"] = dev["del"] = None
    if config is not None and dev["config"] is not None:
        dev["config"] = int(json.loads(config)["device.name"][1:])
    if tokens is not None and dev["tokens"] is not None:
        dev["tokens"] = ",".join(str(t["id"]) for t in json.loads(tokens))


def check_rows(acc, pred, events, runs):
    t = acc[:, 0]
    assert np.all(np.diff(t) > 0), "accel times must strictly increase"
    seq = (t - T0) // 20
    assert np.all((t - T0) % 20 == 0)
    assert np.all(seq % 997 >= 3), "a gap frame appeared"
    assert np.array_equal(acc[:, 1], seq % 30000) and np.array_equal(acc[:, 2], -((seq * 40503) % 20000))
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
        end, pred_t, npred, ev_t, nev = ack[:5]
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


def check_pins(acc, runs, dev):
    """STORE_PINS: retention deletes old frames all the time, never an acknowledged frame inside a live label's range
    (pinned), never the newest one (at least as new as the last acknowledged); every stored value is right
    (``check_rows``'s first part). Returns the pinned frames checked."""
    t = acc[:, 0]
    assert np.all(np.diff(t) > 0) and np.all((t - T0) % 20 == 0)
    seq = (t - T0) // 20
    assert np.all(seq % 997 >= 3) and np.array_equal(acc[:, 1], seq % 30000)
    assert np.array_equal(acc[:, 2], -((seq * 40503) % 20000)) and np.array_equal(acc[:, 3], (seq * 7) % 32000)
    have = set(seq.tolist())
    n = 0
    for i, (a, e, name) in dev["labels"].items():
        lo, hi = (a - T0 + 19) // 20, (e - T0 + 19) // 20
        for start, ack in runs:
            if ack is None:
                continue
            want = [s for s in range(max(start, lo), min(ack[0], hi)) if s % 997 >= 3]
            missing = [s for s in want if s not in have]
            assert not missing, "pinned frames of label {} lost: {} (first {})".format(i, len(missing), missing[:3])
            n += len(want)
    last = [ack for start, ack in runs if ack is not None]
    if last:  # the newest data is kept (when pinned data fill the budget, only the newest segments besides them)
        assert len(seq) and seq[-1] >= last[-1][0] - 1 - 3, "the newest acknowledged frames were deleted"
    return n


def _spawn(env, root, seed, *extra):
    return subprocess.Popen([bundle.micropython_path(), WRITER, root, str(seed)] + list(extra), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=bundle.REPO)


def new_dev():
    return {"labels": {}, "add": None, "del": None, "config": None, "config_next": None, "tokens": None,
            "tokens_next": None}


def _parse(out, err, stats, dev):
    """(start, last ack) of a killed run from its output, or None if it never opened the store. ``dev`` is
    updated with the labels, config and tokens acknowledged (and what is in flight)."""
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
        elif f[0] == "l":
            dev["add"] = (int(f[1]), int(f[2]), f[3])
        elif f[0] == "L":
            dev["labels"][int(f[1])] = (int(f[2]), int(f[3]), f[4])
            dev["add"] = None
            stats["labels"] += 1
        elif f[0] == "d":
            dev["del"] = int(f[1])
        elif f[0] == "D":
            dev["labels"].pop(int(f[1]))
            dev["del"] = None
        elif f[0] == "c":
            dev["config_next"] = int(f[1])
        elif f[0] == "C":
            dev["config"] = int(f[1])
            stats["configs"] += 1
        elif f[0] == "t":
            dev["tokens_next"] = f[1]
        elif f[0] == "T":
            dev["tokens"] = f[1]
            stats["tokens"] += 1
    if start is None:
        return None
    stats["acked_runs"] += ack is not None
    return start, ack


def _rest(p):
    """What a killed writer printed after what was already read: through the same buffered readers (a
    ``readline()`` may have buffered more than its line, which ``communicate()`` would never see)."""
    out = p.stdout.read()
    err = p.stderr.read()
    p.wait()
    return out, err


def _dump(env, root, dev=None):
    """Export through the store's own reader (in MicroPython) and load it here; with ``dev``, check the labels,
    config and tokens as the device reads them."""
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
    if dev is not None:
        labels = {x[0]: (x[1], x[2], x[3]) for x in json.load(open(os.path.join(root, "labels.out")))}
        check_device_files(labels, _text(root, "config.json.out"), _text(root, "tokens.json.out"), dev)
    return acc, pred, events


def _stats():
    return {"torn": 0, "acked_runs": 0, "labels": 0, "configs": 0, "tokens": 0}


@pytest.mark.proof
def test_sigkill_on_littlefs_image(tmp_path):
    """The same on littlefs (os.VfsLfs2 over a file as the block device): a kill is a power cut in the middle of
    littlefs's own operations. Checked after every kill through the store's export and the device's readers."""
    env = dict(bundle.micropython_env(bundle.build("unix")), STORE_LFS_IMAGE=str(tmp_path / "flash.img"))
    root = str(tmp_path)
    _dump(env, root)  # formats the image (not killed)
    rnd = random.Random(7)
    runs = []
    stats = _stats()
    dev = new_dev()
    for i in range(LFS_KILLS):
        p = _spawn(env, root, 5000 + i)
        head = p.stdout.readline()
        time.sleep(rnd.uniform(0.0, 0.4))
        p.kill()
        out, err = _rest(p)
        run = _parse(head + out, err, stats, dev)
        if run:
            runs.append(run)
        check_rows(*_dump(env, root, dev), runs)
    assert stats["acked_runs"] >= LFS_KILLS * 4 // 10
    rows = len(_dump(env, root)[0])
    assert rows > 100 * LFS_KILLS
    print("proof kill -9 on littlefs: {} kills, {} rows, {} labels, {} config and {} token writes acknowledged, "
          "0 lost".format(LFS_KILLS, rows, stats["labels"], stats["configs"], stats["tokens"]))


def _after_acks(p, rnd, lo, hi):
    """The writer's output once it is open ("S ...") and has acknowledged between ``lo`` and ``hi`` flushes, and a
    moment into the next writes: counted in flushes, not seconds, so a loaded machine kills as much written data
    as an idle one."""
    head = p.stdout.readline()
    acks = rnd.randint(lo, hi)
    while acks:
        line = p.stdout.readline()
        head += line
        if not line:
            break
        acks -= line.startswith(b"A ")
    time.sleep(rnd.uniform(0.0, 0.03))
    return head


def run_series(k, env, root, kills):
    rnd = random.Random(k)
    runs = []
    stats = _stats()
    dev = new_dev()
    waited = 0  # acknowledgements the kills waited for (the time-based quarter waits for none)
    for i in range(kills):
        p = _spawn(env, root, k * 1000 + i)
        head = b""
        if rnd.random() < 0.25:
            time.sleep(rnd.uniform(0.0, 0.3))  # any moment: start-up, recovery in open(), writing
        else:
            # The store is open ("S ...") and has acknowledged a random number of flushes: kill while it writes.
            head = _after_acks(p, rnd, 1, 12)
            waited += head.count(b"\nA ")
        p.kill()
        out, err = _rest(p)
        run = _parse(head + out, err, stats, dev)
        if run:
            runs.append(run)
        check(root, runs, dev)
    # The store's own reader, through export, agrees with the independent one.
    acc, pred, events = check(root, runs, dev)
    acc2, pred2, events2 = _dump(env, root, dev)
    assert np.array_equal(acc2, acc) and np.array_equal(pred2, pred) and events2 == events
    stats["rows"] = len(acc)
    # frames acknowledged (a flush point passed them before the kill): counted by the writer's own output, so
    # what the kills landed on does not depend on how fast a loaded machine writes
    stats["acked_rows"] = sum(len([s for s in range(start, ack[0]) if s % 997 >= 3]) for start, ack in runs
                              if ack is not None)
    stats["acks_waited"] = waited
    return stats


def run_pins_series(k, env, root, kills):
    rnd = random.Random(100 + k)
    runs = []
    stats = _stats()
    stats["pinned_checked"] = stats["deleted"] = 0
    dev = new_dev()
    for i in range(kills):
        p = _spawn(env, root, 7000 + k * 1000 + i)
        head = _after_acks(p, rnd, 10, 120)  # (with seconds it once checked 286 pinned frames, 1,000 wanted)
        p.kill()
        out, err = _rest(p)
        run = _parse(head + out, err, stats, dev)
        if run:
            runs.append(run)
            if run[1] is not None:
                stats["deleted"] += run[1][5]
        check_device_files(read_labels(os.path.join(root, "store", "labels.bin")), _text(root, "config.json"),
                           _text(root, "tokens.json"), dev)
        stats["pinned_checked"] += check_pins(read_store(root)[0], runs, dev)
    acc, pred, events = _dump(env, root, dev)
    check_pins(acc, runs, dev)  # the store's own reader agrees
    return stats


@pytest.mark.proof
def test_sigkill_during_retention_never_loses_pinned_labelled_frames(tmp_path):
    """Issue 16.2 under kills: a 4 KB accelerometer budget (retention deletes segments several times a second)
    with labels over the frames just written; after every kill every acknowledged frame of a live label is there."""
    env = dict(bundle.micropython_env(bundle.build("unix")), STORE_PINS="1")
    n = PIN_SERIES
    with ThreadPoolExecutor(max_workers=2) as ex:
        futs = [ex.submit(run_pins_series, k, env, str(tmp_path / "p{}".format(k)), PIN_KILLS) for k in range(n)]
        stats = [f.result() for f in futs]
    total = {k: sum(s[k] for s in stats) for k in ("labels", "pinned_checked", "deleted", "acked_runs")}
    assert total["labels"] >= 5 and total["pinned_checked"] > 1000 and total["deleted"] > 50, total
    print("proof kill -9 during retention: {} kills, {} segments deleted by retention in the killed runs, {} labels "
          "acknowledged, {} pinned frame checks, 0 lost".format(n * PIN_KILLS, total["deleted"], total["labels"],
                                                              total["pinned_checked"]))


@pytest.mark.proof
def test_sigkill_at_random_moments_loses_no_acknowledged_write(tmp_path):
    out = bundle.build("unix")
    env = bundle.micropython_env(out)
    with ThreadPoolExecutor(max_workers=3) as ex:
        futs = [ex.submit(run_series, k, env, str(tmp_path / "s{}".format(k)), KILLS_PER_SERIES)
                for k in range(SERIES)]
        stats = [f.result() for f in futs]
    kills = SERIES * KILLS_PER_SERIES
    assert kills >= (1000 if FULL else 70)
    # The kills really landed while writing: most runs acknowledged flushes, and data accumulated.
    assert sum(s["acked_runs"] for s in stats) >= kills // 2
    # Data accumulated: every acknowledgement a kill waited for brought frames (the writer acknowledges a flush
    # point after at least one batch of 1..60 frames, 92 a flush point on average), counted from what was
    # acknowledged, not from what a kill at a random time happened to find written (a loaded machine writes less).
    assert all(s["acks_waited"] >= KILLS_PER_SERIES and s["acked_rows"] > 20 * s["acks_waited"] for s in stats), \
        [(s["acks_waited"], s["acked_rows"]) for s in stats]
    total = {k: sum(s[k] for s in stats) for k in ("rows", "labels", "configs", "tokens", "torn")}
    assert total["labels"] and total["configs"] and total["tokens"]
    print("proof kill -9: {} kills in {} series, {} rows, {} labels, {} config and {} token writes acknowledged, "
          "{} torn tails recovered, 0 lost".format(kills, SERIES, total["rows"], total["labels"], total["configs"],
                                                   total["tokens"], total["torn"]))
