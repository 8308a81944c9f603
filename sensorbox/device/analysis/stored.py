"""The models on flash (``models/active``, ``previous``, ``staged`` under the data directory, the bundle's
``models/default``) and what the model API reads of them: ``GET /api/model`` (``info``), ``/api/model/classes``,
``/api/model/file`` (``file_path``). Loaded for those requests by ``http/model_api`` instead of the model manager
(``models.py``: uploads, activation, loading; it imports the helpers here), ~8 KB less at such a request's peak
from the file system.
"""

import os

from sensorbox.shared import ModelError


def _exists(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False


def _model_dir(device, which):
    if which == "default":
        # The bundle's root holds models/default (the device's file system root; on the unix port the bundle dir).
        www = getattr(device.platform, "www_dir", "/www")
        return (www[:www.rfind("/")] if "/" in www else ".") + "/models/default"
    d = device.platform.data_dir + "/models"
    if not _exists(d):
        os.mkdir(d)
    return d + "/" + which


def _read_meta(path):
    import json

    try:
        with open(path + "/meta.json", "rb") as f:
            meta = json.load(f)  # from the stream: no block of the file's size (2.3 KB for the default)
    except (OSError, ValueError, RuntimeError) as e:  # not UTF-8 (UnicodeError) or not JSON: ValueError
        raise ModelError("meta.json missing or not JSON ({})".format(e), None, True)
    if not isinstance(meta, dict):
        raise ModelError("meta.json is not a JSON object", None, True)
    return meta


def running(device):
    """The running model's directory (the one whose hash is its, of those it may have been loaded from) and its
    meta.json, or None."""
    m = device.ml.model
    for w in () if m is None else ("default",) if m.origin == "default" else ("active", "previous"):
        try:
            meta = _read_meta(_model_dir(device, w))
        except ModelError:
            continue
        if (meta.get("csv_sha256") or "")[:16] == m.info["sha256"]:
            return _model_dir(device, w), meta
    return None


def classes(device):
    """GET /api/model/classes: the running model's class codes with the display names and descriptions its
    meta.json may carry (read from flash now: they cost no RAM while the model runs)."""
    m = device.ml.model
    r = running(device)
    meta = r[1] if r else {}
    return {"classes": m.classes if m else None, "names": meta.get("class_names"),
            "descriptions": meta.get("class_descriptions")}


def info(device):
    ml = device.ml
    cur = ml.model
    return {"active": cur.info if cur else None,
            "previous": _exists(_model_dir(device, "previous")) or (cur is not None and cur.origin != "default"),
            "staged": _exists(_model_dir(device, "staged") + "/meta.json"), "last_error": ml.error}


def file_path(device, which, name):
    """GET /api/model/file: where a model's ``meta.json`` or ``model.csv`` is on flash (the Analysis page runs the
    model in the browser). ``which``: active (the running model's files), previous (what a rollback would run),
    staged or default. Raises ModelError (field "model": 404) when there is no such file."""
    if name not in ("meta.json", "model.csv"):
        raise ModelError("name must be meta.json or model.csv", "name")
    m = device.ml.model
    if which == "active":
        if m is None:
            raise ModelError("no model running", "model")
        r = running(device)
        if r is None:
            raise ModelError("the running model's files are not on flash", "model")
        return r[0] + "/" + name
    if which == "previous":
        which = "previous" if _exists(_model_dir(device, "previous") + "/meta.json") else "default"
        if which == "default" and (m is None or m.origin == "default"):
            raise ModelError("no previous model", "model")
    elif which not in ("staged", "default"):
        raise ModelError("which must be active, previous, staged or default", "which")
    path = _model_dir(device, which) + "/" + name
    if not _exists(path):
        raise ModelError("no {} model".format(which), "model")
    return path
