# MicroPython script for tests/host/test_proof_files.py: boots the device (app.Device, the model, the per-request
# and per-service files) over a data directory in which one persisted file was replaced by something else.
#     micropython corrupt_run.py WORKDIR FIRST STEP [SEED]
# Makes WORKDIR/base once (a device's data directory with every file the device keeps: config, auth, tokens,
# recording, device-id, wifi.json, the store's segments, labels, cursors and class table, an uploaded model, the
# log files), then for case FIRST, FIRST + STEP, ... of the list below: copies it, corrupts one file, boots, reads
# /api/status's figures, and writes again (rows, a label, a token, the config). Prints one line per case:
#     C <n> <file> <corruption> <ok> <reported> <what the report said>
# and at the end "E <cases>". A case fails (ok = 0) when anything raised, when a file that was read and was not
# valid is not reported (reported = 0 where a report is due), when a stored row is not one that was written, or
# when the labels and tokens that were not hit are not all there.
import json
import os
import sys

sys.path.append(__file__.rpartition("/")[0] + "/../support")  # testrng: the tests' random numbers
from testrng import Rng, spread  # noqa: E402

T0 = 1700000000000
WORK = sys.argv[1]
FIRST = int(sys.argv[2])
STEP = int(sys.argv[3])
rand = Rng(spread(int(sys.argv[4]) if len(sys.argv) > 4 else 1)).below


def rbytes(n):
    return bytes(rand(256) for _ in range(n))


def exists(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False


def isdir(p):
    try:
        return bool(os.stat(p)[0] & 0x4000)
    except OSError:
        return False


def rmtree(p):
    if isdir(p):
        for n in os.listdir(p):
            rmtree(p + "/" + n)
        os.rmdir(p)
    elif exists(p):
        os.remove(p)


def copytree(a, b):
    if isdir(a):
        os.mkdir(b)
        for n in os.listdir(a):
            copytree(a + "/" + n, b + "/" + n)
    else:
        with open(a, "rb") as f, open(b, "wb") as g:
            g.write(f.read())


def read(p):
    with open(p, "rb") as f:
        return f.read()


def write(p, b):
    with open(p, "wb") as f:
        f.write(b)


def boot(data):
    from sensorbox.device import platform as platform_mod

    os.putenv("SENSORBOX_DATA", data)
    os.putenv("SENSORBOX_ADMIN_PASSWORD", "pw")
    os.putenv("SENSORBOX_WWW", "build/unix/www")
    platform_mod._platform = None
    from sensorbox.device.app import Device

    return Device(platform_mod.get(), echo_log=False)


def run(coro):
    import asyncio

    return asyncio.run(coro)


LABELS = [(T0 + 100000 * i, T0 + 100000 * i + 5000, "label {}".format(i)) for i in range(6)]


def make_base(data):
    """A data directory holding every kind of file the device keeps."""
    os.mkdir(data)
    dev = boot(data)
    from sensorbox.device.analysis import models
    from sensorbox.device.http import admin
    from sensorbox.device.store import meta

    dev.config.update({"device.name": "base", "log.level": "debug"})
    for a, e, name in LABELS:
        meta.label_add(dev.store, {"start": a, "end": e, "label": name})
    admin._save(dev.auth, [{"id": 1, "name": "one", "scope": "read", "hash": "ab" * 32},
                               {"id": 2, "name": "two", "scope": "admin", "hash": "cd" * 32}])
    run(models.boot(dev))  # the class table gets the model's classes
    _write_rows(dev.store, 0, 600)
    dev.store.cursor("mqtt.predictions", "predictions", T0)
    dev.store.advance("mqtt.predictions", T0 + 2000)
    dev.store.save_cursors()
    dev.store.close()
    write(data + "/recording.json", json.dumps(["walk", T0, "walk"]).encode())
    write(data + "/wifi.json", json.dumps({"ssid": "net", "password": "pw"}).encode())
    if not exists(data + "/models"):
        os.mkdir(data + "/models")
    os.mkdir(data + "/models/active")
    for n in ("meta.json", "model.csv"):
        write(data + "/models/active/" + n, read("models/default/" + n))
    for i in range(40):
        dev.log.info("test", "a line of the log {}".format(i))
    dev.log.flush()
    write(data + "/log.1.txt", read(data + "/log.txt"))


def _write_rows(st, seq, n):
    import array

    buf = array.array("h", bytes(6 * 50))
    mv = memoryview(buf)
    end = seq + n
    while seq < end:
        for i in range(50):
            s = seq + i
            buf[3 * i] = s % 30000
            buf[3 * i + 1] = -(s % 20000)
            buf[3 * i + 2] = (s * 7) % 32000
        st.append_frames(T0 + 20 * seq, seq, 1, 50, mv, 50)
        seq += 50
        st.on_bus("predictions", T0 + 20 * (seq - 1), ((seq - 1) % 7, (seq - 1) % 1000))
        st.on_bus("events", T0 + 20 * (seq - 1), {"type": "tick", "seq": seq - 1})
        st.flush()


def seg(data, res):
    d = data + "/store/" + res
    return d + "/" + sorted(os.listdir(d))[0]


JSON_FILES = ("config.json", "auth.json", "tokens.json", "recording.json", "wifi.json", "store/cursors.json",
              "models/active/meta.json")
WRONG = {  # the right shape with one field of the wrong type
    "config.json": b'{"device.name": 5, "log.level": "debug"}',
    "auth.json": None,  # filled in from the real file: iterations as a string
    "tokens.json": b'[{"id": 1, "name": "one", "scope": "read"}, {"id": 2, "name": "two", "scope": "admin", '
                   b'"hash": "' + b"cd" * 32 + b'"}]',
    "recording.json": b'["walk", "soon", "walk"]',
    "wifi.json": b'{"ssid": 5, "password": "pw"}',
    "store/cursors.json": b'{"mqtt.predictions": ["predictions", 1700000002000, 0], "x": ["nowhere", 1, 2]}',
    "models/active/meta.json": None,  # from the real file: classes as a string
}


def corruptions(name, b):
    """(label, new content: bytes, or None for a directory in its place)."""
    out = [("empty", b""), ("directory", None), ("one byte", rbytes(1)), ("random 17", rbytes(17)),
           ("random 300", rbytes(300)), ("random 3000", rbytes(3000)), ("cut at 1", b[:1]),
           ("cut at half", b[:len(b) // 2]), ("cut 1 short", b[:-1]),
           ("600 random in the middle", b[:len(b) // 3] + rbytes(600) + b[len(b) // 3 + 600:]),
           ("a byte flipped", b[:len(b) // 2] + bytes([b[len(b) // 2] ^ 0x5A]) + b[len(b) // 2 + 1:] if b else b"x"),
           ("not UTF-8", b[:len(b) // 2] + b"\xff\xfe\xc3" + b[len(b) // 2:]),
           ("random tail", b + rbytes(50))]
    if name in JSON_FILES:
        for v in (b"5", b'"text"', b"null", b"[]", b"{}", b"[1, 2, 3]", b'{"a": {"b": [1]}}', b"true",
                  b"[" * 300 + b"]" * 300, b"[" * 20000):
            out.append(("JSON " + v[:12].decode(), v))
        w = WRONG.get(name)
        if w is None:
            v = json.loads(b)
            if name == "auth.json":
                v["iterations"] = str(v["iterations"])
            else:
                v["classes"] = "walk,run"
            w = json.dumps(v).encode()
        out.append(("wrong field type", w))
    return out


# What must be reported when it is not valid any more (a log file is never read: no report is due, but a
# directory in its place is set aside when the log is written).
TARGETS = ("config.json", "auth.json", "tokens.json", "recording.json", "device-id", "wifi.json", "log.txt",
           "log.1.txt", "store/labels.bin", "store/cursors.json", "store/classes.txt", "store/accel/",
           "store/predictions/", "store/events/", "models/active/meta.json", "models/active/model.csv",
           "models/active")


def cases(base):
    out = []
    for t in TARGETS:
        path = seg(base, t[6:-1]) if t.endswith("/") else base + "/" + t
        b = read(path) if not isdir(path) else b"x" * 64
        for label, content in corruptions(t, b):
            if t == "models/active" and content is None:
                continue
            out.append((t, path[len(base) + 1:], label, content))
    return out


def reported(dev, before):
    st = dev.store.status()
    said = list(dev.log.files) + ([dev.config.boot_error] if dev.config.boot_error else []) + \
        ([dev.ml.error] if dev.ml.error else []) + list(st["notes"])
    n = len(dev.log.files) + (dev.config.boot_error is not None) + (dev.ml.error is not None) + \
        st["quarantined"] + st["torn_tails"] + st["corrupt_blocks"]
    return n > 0, "; ".join(s for s in said if s)[:300]


def check_rows(dev):
    """Every row the store exports is one that was written (its values are a function of its time)."""
    from sensorbox.device.store import export

    st = dev.store
    p = export.plan(st, "accel", {}, T0)
    for t, v in export._rows(st, p):
        if t is None:
            continue
        s = (t - T0) // 20
        if (t - T0) % 20 or v != (s % 30000, -(s % 20000), (s * 7) % 32000):
            raise AssertionError("accel row {} {} was never written".format(t, v))
    p = export.plan(st, "predictions", {}, T0)
    for t, v in export._rows(st, p):
        if t is not None and v[1] != ((t - T0) // 20) % 1000:
            raise AssertionError("prediction row {} {} was never written".format(t, v))
    p = export.plan(st, "events", {}, T0)
    for t, v in export._event_rows(st, p):
        if t is not None and json.loads(v) != {"type": "tick", "seq": (t - T0) // 20}:
            raise AssertionError("event {} {} was never written".format(t, v))


def one(base, case, work):
    from sensorbox.device import files
    from sensorbox.device.analysis import models
    from sensorbox.device.http import authz, admin
    from sensorbox.device.integrations import mqtt_control
    from sensorbox.device.store import meta

    target, rel, label, content = case
    rmtree(work)
    copytree(base, work)
    path = work + "/" + rel
    rmtree(path)
    if content is None:
        os.mkdir(path)
    else:
        write(path, content)
    dev = boot(work)
    run(models.boot(dev))
    sink = type("Sink", (), {"d": dev, "rec": [None, None, None]})()
    mqtt_control.restore(sink)
    toks = authz.tokens(dev.auth)
    files.load_json(work + "/wifi.json", dev.log, files.wifi_ok)  # (as the ESP32's station reads it: net/station.py)
    dev.log.info("test", "booted")
    dev.log.flush()
    "".join(dev.health.status())  # (the document in pieces)
    check_rows(dev)  # (reads every segment: a corrupt block in any of them is counted)
    rep, said = reported(dev, 0)
    labels = [r[1][1] for r in meta.label_rows(dev.store, type("All", (), {"start": -1, "end": 1 << 60}))
              if r[0] is not None]
    if target != "store/labels.bin" and labels != [x[2] for x in LABELS]:
        raise AssertionError("labels lost: {}".format(labels))
    if target != "tokens.json" and [t["id"] for t in toks] != [1, 2]:
        raise AssertionError("tokens lost: {}".format(toks))
    if target == "tokens.json" and label == "wrong field type" and [t["id"] for t in toks] != [2]:
        raise AssertionError("the good token was not kept: {}".format(toks))
    # and the device writes on
    _write_rows(dev.store, 100000, 100)
    meta.label_add(dev.store, {"start": T0 + 10 ** 9, "end": T0 + 10 ** 9 + 1, "label": "after"})
    admin._save(dev.auth, toks + [{"id": 9, "name": "new", "scope": "read", "hash": "ef" * 32}])
    dev.config.update({"device.name": "after"})
    sink.rec = ["x", None, None]
    mqtt_control._record(sink, "label_set", {"label": "y"}, {})
    dev.store.close()
    check_rows(dev)
    return rep, said


def due(target, label, content, old):
    """Is a report due? Not for the log files (never read), nor when the file is still valid as it is."""
    if target in ("log.txt", "log.1.txt", "models/active"):
        return content is None and target == "log.txt"  # (never read; a directory is set aside when written)
    if content is None:
        return True
    if content == old:
        return False
    if (target, content) in (("config.json", b"{}"), ("tokens.json", b"[]"), ("store/cursors.json", b"{}"),
                             ("store/classes.txt", b"")):
        return False  # valid: the defaults, no tokens, no cursors, an empty class table
    if target == "models/active/meta.json" and label in ("cut 1 short", "random tail"):
        return False  # the JSON object is whole (what follows it is not read) and model.csv matches it
    if target == "device-id" and 0 < len(content.strip()) <= 32 and all(
            48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122 for c in content.strip()):
        return False  # still an id (a shorter one, or a letter changed)
    if target.startswith("store/") and not target.endswith(".json") and label.startswith("cut"):
        return False  # a cut at a block or record boundary is a valid (shorter) file
    if target == "store/labels.bin" and label == "random tail":
        return False  # (may read as torn)
    if target == "store/classes.txt" and label in ("cut 1 short",):
        return False
    return True


base = WORK + "/base"
if not exists(base):
    make_base(base)
todo = cases(base)
n = FIRST
done = 0
while n < len(todo):
    case = todo[n]
    old = read(base + "/" + case[1]) if not isdir(base + "/" + case[1]) else None
    try:
        rep, said = one(base, case, WORK + "/case")
        ok = 1 if rep or not due(case[0], case[2], case[3], old) else 0
    except Exception as e:  # noqa: BLE001 - any failure is the finding
        import io

        buf = io.StringIO()
        sys.print_exception(e, buf)
        rep, said, ok = 0, buf.getvalue().replace("\n", " | ")[-600:], 0
    print("C", n, case[1].replace(" ", "_"), case[2].replace(" ", "_"), ok, 1 if rep else 0, said.replace("\n", " "))
    done += 1
    n += STEP
print("E", done, len(todo))
