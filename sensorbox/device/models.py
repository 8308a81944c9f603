"""The device's classifier models on flash: upload, validate, activate at runtime, roll back.

Layout under the data directory::

    models/active/{meta.json,model.csv}     the model in use (absent: the bundled default is in use)
    models/previous/...                     the one before it, for rollback (absent: the bundled default)
    models/staged/...                       an upload in progress

An upload writes ``staged/meta.json`` (checked at once: format, feature version and names, channels, window, RAM)
and then ``staged/model.csv`` in chunks appended at an offset, so a model is never whole in RAM. ``activate()``
checks size and SHA-256, parses the CSV into a new evaluator and only then swaps it in and rotates the directories
(active -> previous, staged -> active). Anything wrong raises ``ModelError`` with a reason and the running model
stays. ``rollback()`` swaps active and previous. At boot: active, else previous, else the bundled default.

This module is loaded only while it works (``lazy.load``/``unload``: at boot and per API request); what stays
in RAM is ``device.model`` (a ``Model``: the evaluator and a few meta fields) and ``device.model_error``.
Every function takes the ``device`` (platform, config, log, sensors).
"""

import gc
import json
import os

from sensorbox.device import lazy, trees_fast
from sensorbox.device.pipeline import Model  # defined there: resident, unlike this module
from sensorbox.shared import features

_CHUNK = 512


class ModelError(ValueError):
    def __init__(self, reason, field=None):
        super().__init__(reason)
        self.reason = reason
        self.field = field


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _rmtree(path):
    if _exists(path):
        for name in os.listdir(path):
            os.remove(path + "/" + name)
        os.rmdir(path)


def _path(device, which):
    if which == "default":
        # The bundle's root holds models/default (the device's file system root; on the unix port the bundle dir).
        www = getattr(device.platform, "www_dir", "/www")
        return (www[:www.rfind("/")] if "/" in www else ".") + "/models/default"
    d = device.platform.data_dir + "/models"
    if not _exists(d):
        os.mkdir(d)
    return d + "/" + which


def _compatible(device, meta):
    """Raise ModelError unless ``meta`` fits this device's features, sensor, window and RAM limit."""
    sm = lazy.load("sensorbox.shared.model")
    try:
        ch = device.sensors["accel"].ring.channels
        cfg = device.config
        sm.check_meta(meta, features.FEATURE_VERSION, features.names(ch), ch, cfg.get("ml.window"),
                      cfg.get("ml.model_max_kb") * 1024)
    except sm.ModelError as e:
        raise ModelError(e.reason, e.field)
    finally:
        lazy.unload("sensorbox.shared.model")


def _check(device, path, origin):
    """Validate the model in ``path`` completely and return it loaded. Raises ModelError."""
    try:
        with open(path + "/meta.json") as f:
            meta = json.load(f)
    except (OSError, ValueError) as e:
        raise ModelError("meta.json missing or not JSON ({})".format(e))
    _compatible(device, meta)
    _check_file(path + "/model.csv", meta)
    sm = lazy.load("sensorbox.shared.model")
    try:
        gc.collect()
        ev = trees_fast.new(meta["trees"], meta["nodes"], meta["leaves"])
        with open(path + "/model.csv") as f:
            sm.load(f, meta, ev)
        return Model(meta, ev, origin)
    except sm.ModelError as e:
        raise ModelError(e.reason, e.field)
    except OSError as e:
        raise ModelError("cannot read the model: {}".format(e))
    except MemoryError:
        raise ModelError("not enough RAM to load the model next to the running one")
    finally:
        lazy.unload("sensorbox.shared.model")


def _check_file(path, meta):
    import binascii
    import hashlib

    h = hashlib.sha256()
    buf = bytearray(_CHUNK)
    n = 0
    try:
        with open(path, "rb") as f:
            while True:
                k = f.readinto(buf)
                if not k:
                    break
                h.update(buf if k == _CHUNK else buf[:k])
                n += k
    except OSError as e:
        raise ModelError("model.csv missing ({})".format(e))
    if n != meta["csv_bytes"]:
        raise ModelError("model.csv is {} bytes, meta.json says {}: upload incomplete".format(n, meta["csv_bytes"]),
                         "csv")
    if binascii.hexlify(h.digest()).decode() != meta["csv_sha256"]:
        raise ModelError("model.csv does not match meta.json's csv_sha256: corrupted or from another model", "csv")


def boot(device):
    """Load the model to run at start: active, else previous, else the bundled default."""
    for which in ("active", "previous", "default"):
        path = _path(device, which)
        if which != "default" and not _exists(path + "/meta.json"):
            continue
        try:
            device.model = _check(device, path, which if which == "default" else "uploaded")
            device.log.info("model", "running the {} model ({} trees)".format(which, device.model.n_trees))
            return device.model
        except ModelError as e:
            device.model_error = "{} model refused: {}".format(which, e.reason)
            device.log.error("model", device.model_error)
    return None


def stage_meta(device, body):
    """Start an upload with meta.json; checked at once so an incompatible model is refused before its data."""
    st = _path(device, "staged")
    _rmtree(st)
    try:
        meta = json.loads(body)
    except ValueError as e:
        raise ModelError("meta.json is not JSON ({})".format(e))
    _compatible(device, meta)
    os.mkdir(st)
    with open(st + "/meta.json", "wb") as f:
        f.write(body)
    open(st + "/model.csv", "wb").close()
    return {"staged": True, "csv_bytes": meta["csv_bytes"]}


def stage_chunk(device, offset, body):
    """Append a chunk of model.csv at ``offset`` (must be the staged file's current size)."""
    path = _path(device, "staged") + "/model.csv"
    try:
        size = os.stat(path)[6]
    except OSError:
        raise ModelError("no upload in progress: PUT meta.json first")
    if offset != size:
        raise ModelError("offset {} but {} bytes are staged; continue at {}".format(offset, size, size), "offset")
    with open(path, "ab") as f:
        f.write(body)
    return {"received": size + len(body)}


def activate(device):
    """Validate the staged model; if good, run it from now on and keep the old one as previous."""
    st = _path(device, "staged")
    if not _exists(st + "/meta.json"):
        raise ModelError("nothing staged to activate")
    try:
        new = _check(device, st, "uploaded")
    except ModelError as e:
        device.model_error = "upload refused: " + e.reason
        device.log.warning("model", device.model_error)
        _rmtree(st)
        raise
    _swap(device, "staged")
    device.model = new
    device.model_error = None
    device.log.info("model", "activated an uploaded model ({} trees, {})".format(new.n_trees, new.info["sha256"]))
    return info(device)


def rollback(device):
    """Run the previous model again (the bundled default if none was kept); the current becomes previous."""
    prev = _path(device, "previous")
    origin = "uploaded" if _exists(prev + "/meta.json") else "default"
    if origin == "default" and not _exists(_path(device, "active")):
        raise ModelError("no previous model to roll back to")
    new = _check(device, prev if origin == "uploaded" else _path(device, "default"), origin)
    _swap(device, "previous")
    device.model = new
    device.log.info("model", "rolled back to the previous model ({})".format(origin))
    return info(device)


def _swap(device, src):
    """staged: previous <- active <- staged. previous: active <-> previous (a missing dir is the default)."""
    a, p, t = _path(device, "active"), _path(device, "previous"), _path(device, "tmp")
    _rmtree(t)
    if src == "staged":
        _rmtree(p)
        if _exists(a):
            os.rename(a, p)
        os.rename(_path(device, "staged"), a)
        return
    if _exists(a):
        os.rename(a, t)
    if _exists(p):
        os.rename(p, a)
    if _exists(t):
        os.rename(t, p)


def info(device):
    cur = device.model
    return {"active": cur.info if cur else None,
            "previous": _exists(_path(device, "previous")) or (cur is not None and cur.origin != "default"),
            "staged": _exists(_path(device, "staged") + "/meta.json"), "last_error": device.model_error}
