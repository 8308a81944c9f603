"""Reading the device's own files on flash, whatever they hold: bytes that are not UTF-8, JSON of the wrong shape,
a file cut short, a directory in a file's place. What is valid is kept; a file that is not (or the part of it
that is not) is set aside as ``<name>.bad`` (replacing an older one), logged, and listed in ``/api/status`` ->
``files`` (``log.files``, the newest 8): the device always boots. Loaded only while it runs (``lazy``): at boot
and when a request reads such a file. The store's files (segments, labels, cursors, the class table) go to
``store/quarantine`` instead (``store/recover.py``).

The checks of each JSON file's shape are here too, so every reader of a file uses the same: ``auth_ok``
(auth.json), ``good_tokens`` (tokens.json), ``recording_ok`` (recording.json), ``wifi_ok`` (wifi.json).
"""

import json
import os

_DIR = 0x4000


def read(path, log, limit=8192):
    """The bytes of file ``path``; None when there is none; False when what was there (a directory, a file over
    ``limit`` bytes, one that cannot be read) was set aside."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if st[0] & _DIR:
        aside(path, log, "a directory where a file belongs")
        return False
    if st[6] > limit:
        aside(path, log, "{} bytes, more than such a file ever holds".format(st[6]))
        return False
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        aside(path, log, "unreadable ({})".format(e))
        return False


def load_json(path, log, check=None, limit=8192):
    """The JSON value in ``path`` for which ``check(value)`` is true (None when there is no file). Anything else
    (not UTF-8, not JSON, the wrong shape) is set aside (None). ``check`` may name a check of this module, for a
    module that loads this one just for the call (``lazy.call(FILES, "load_json", path, log, "auth_ok")``); a
    wifi.json value then comes back as ``wifi_ok`` reads it."""
    if isinstance(check, str):
        check = globals()[check]
        v = load_json(path, log, check, limit)
        return check(v) if v is not None and check is wifi_ok else v
    b = read(path, log, limit)
    if not b:
        if b is not None and b is not False:  # an empty file
            aside(path, log, "empty")
        return None
    try:
        v = json.loads(b)
    except (ValueError, RuntimeError, MemoryError) as e:  # UnicodeError is a ValueError; nesting: RuntimeError
        aside(path, log, "not JSON ({})".format(e))
        return None
    if check is not None and not check(v):
        aside(path, log, "not the expected JSON")
        return None
    return v


def aside(path, log, why):
    """Move ``path`` (a file or a directory) to ``path.bad`` and report why."""
    bad = path + ".bad"
    rmtree(bad)
    try:
        os.rename(path, bad)
    except OSError:
        rmtree(path)
        bad = "nowhere (removed)"
    report(log, "{}: {}; kept as {}".format(path, why, bad))


def report(log, msg):
    log.error("files", msg)
    log.files.append(msg)
    if len(log.files) > 8:
        log.files.pop(0)


def rmtree(path):
    """Remove a file, or a directory and what is in it (no error when there is nothing)."""
    try:
        os.remove(path)
        return
    except OSError:
        pass
    try:
        for e in list(os.ilistdir(path)):
            rmtree(path + "/" + e[0])
        os.rmdir(path)
    except OSError:
        pass


def _int(v, lo, hi):
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _hex(v, n):
    if not isinstance(v, str) or len(v) != n:
        return False
    for c in v.encode():  # (bytes: a loop over a str interns each character as a name)
        if c not in b"0123456789abcdef":
            return False
    return True


def _name(v, most):
    """A printable string of 1 to ``most`` characters."""
    return isinstance(v, str) and 0 < len(v) <= most and min(v.encode()) >= 32


def auth_ok(v):
    return isinstance(v, dict) and _hex(v.get("salt"), 32) and _hex(v.get("hash"), 64) and \
        _int(v.get("iterations"), 1, 1000000)


def good_tokens(v):
    """The entries of a tokens.json value that are tokens (and how many were not), or (None, 0) when it is not a
    list at all."""
    if not isinstance(v, list):
        return None, 0
    out = []
    ids = []
    for t in v:
        if isinstance(t, dict) and _int(t.get("id"), 1, 1 << 30) and t["id"] not in ids and \
                _name(t.get("name"), 32) and t.get("scope") in ("read", "admin") and _hex(t.get("hash"), 64):
            out.append({"id": t["id"], "name": t["name"], "scope": t["scope"], "hash": t["hash"]})
            ids.append(t["id"])
    return out, len(v) - len(out)


def recording_ok(v):
    """[current label or None, start of the open recording or None, its label or None]."""
    return isinstance(v, list) and len(v) == 3 and (v[0] is None or _name(v[0], 40)) and (
        (v[1] is None and v[2] is None) or (_int(v[1], 0, 1 << 53) and _name(v[2], 40)))


def wifi_ok(v):
    """The known Wi-Fi networks of a wifi.json value, [(ssid, password), ...] in its order (empty: not valid): a
    list of ``{"ssid", "password"}``, or one (what ``sensorbox deploy --wifi`` writes); entries of another shape
    are left out."""
    out = []
    for n in v if isinstance(v, list) else [v]:
        if isinstance(n, dict) and _name(n.get("ssid"), 32) and isinstance(n.get("password", ""), str):
            out.append((n["ssid"], n.get("password", "")))
    return out


def tokens(path, log):
    """The valid entries of tokens.json ([] when there is none); when some were not valid, the file as it was
    becomes ``.bad`` and the valid ones are written again (a ``.tmp`` and a rename)."""
    v = load_json(path, log, lambda v: isinstance(v, list))
    if v is None:
        return []
    good, bad = good_tokens(v)
    if bad:
        aside(path, log, "{} entries that are not tokens (the others kept)".format(bad))
        try:
            with open(path + ".tmp", "w") as f:
                f.write(json.dumps(good))
            os.rename(path + ".tmp", path)
        except OSError as e:
            log.error("files", "cannot write {} again ({})".format(path, e))
    return good


def device_id(path, log):
    """The simulated device's id, kept in ``path`` (a board reads its own from eFuse): made once at random; anything
    but 1 to 32 letters and digits there (random bytes, a directory) is set aside and a new id made."""
    b = read(path, log, 64)
    if b is not None and b is not False:
        v = b.strip()
        if 0 < len(v) <= 32 and all(48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122 for c in v):
            return v.decode()
        aside(path, log, "not a device id")
    import binascii

    v = binascii.hexlify(os.urandom(6)).decode()
    with open(path, "w") as f:
        f.write(v)
    return v


def check_boot(device):
    """At boot, the files read later (per request, or when a service starts): tokens.json and recording.json,
    so what is wrong with them is set aside and reported now."""
    d = device.platform.data_dir
    tokens(device.auth.path.rpartition("/")[0] + "/tokens.json" if "/" in device.auth.path else "tokens.json",
           device.log)
    load_json(d + "/recording.json", device.log, recording_ok)
    for which in ("active", "previous", "staged"):
        p = d + "/models/" + which
        try:
            if not os.stat(p)[0] & _DIR:
                aside(p, device.log, "a file where a model's directory belongs")
        except OSError:
            pass
