"""The device's classifier models on flash: upload, validate, activate at runtime, roll back.

Layout under the data directory::

    models/active/{meta.json,model.csv}     the model in use (absent: the bundled default is in use)
    models/previous/...                     the one before it, for rollback (absent: the bundled default)
    models/staged/...                       an upload in progress

Kinds: ``trees`` (emlearn's tree CSV: ``analysis.trees``, ``emlearn_trees`` when installed), ``knn`` and ``anomaly``
(``sensorbox.shared.neighbors``, its examples in ``emlearn_neighbors`` when installed and the model has at most 10
classes). The model's pipeline spec configures the analysis: its window (``ml.window`` follows it), its rate
(``accel.rate_hz`` follows it when it is activated), its channels and its features (all the extractor computes, or
a part of them in the same order: the loaders number its inputs in the whole vector).

An upload writes ``staged/meta.json`` (checked at once: format, kind, feature version and names, channels, window,
rate, RAM)
and then ``staged/model.csv`` in chunks appended at an offset, so a model is never whole in RAM (nor over
4 x ``ml.model_max_kb`` KB on flash: a bigger meta.json or chunk is refused, so an upload cannot fill the flash). ``activate()``
checks size and SHA-256 with the old model still running, parses the CSV and rotates the directories (active ->
previous, staged -> active). A new model that fits the old evaluator's arrays is parsed into them: the old model
is let go first (one model in RAM: that is what lets a model be replaced inside the app's heap). One that needs
bigger arrays gets new ones while the old model keeps classifying. Activation is atomic: if it fails or is
cancelled part-way (a bad CSV, MemoryError, the request's task cancelled), the old model runs again, at once or,
when its arrays were being refilled, after a restore task (not cancelled with the request) has loaded it from
flash again (as at boot). Anything wrong raises ``ModelError`` with a reason. ``rollback()`` swaps active and
previous the same way. At boot: active, else previous, else the bundled default; an active or previous model
whose files are damaged (meta.json not JSON or of the wrong shape, model.csv not the one meta.json names) is
set aside as ``<dir>.bad`` (``device/files.py``) and reported.

Loading is a coroutine (``boot``, ``activate``, ``rollback``): it yields every few CSV lines and file chunks, so a
model load (~40 ms of parsing on the unix port, seconds on an ESP32) never stalls the samplers. One load at a time
(``device.ml.held``, also by a restore task); a second request is refused with a reason.

This module is loaded only while it works (``lazy.load``/``unload``: at boot and per API request); it and the CSV
reader (``sensorbox.shared.trees_csv``) stay loaded across the awaits of one load, held by that coroutine, and are
unloaded when it ends. What stays in RAM is ``device.ml.model`` (a ``Model``: the evaluator and a few meta fields) and
``device.ml.error``. Every function takes the ``device`` (platform, config, log, sensors).
"""

import os

import asyncio
from micropython import const

from sensorbox.device import lazy
from sensorbox.device.analysis.stored import _exists, _model_dir, _read_meta, info
from sensorbox.shared import ModelError

# (gc, json, the tree evaluator, the features and pipeline.Model imported where they are used: all resident or
# built in, and a module of at most 37 globals grows its table no further than 592 bytes: test_heap_blocks)

_CHUNK = const(512)
_YIELD_LINES = 8  # CSV lines parsed between yields: ~0.5 ms on the unix port (~25-50 ms on an ESP32)
_YIELD_CHUNKS = const(8)  # file chunks hashed between yields
_RESTORING = const("restoring")  # device.ml.held while a restore task runs (truthy: other loads are refused)


def _rmtree(path):
    """Remove ``path``: a directory and what is in it, or a file in its place."""
    if _exists(path):
        try:
            os.remove(path)
            return
        except OSError:
            pass
        for name in os.listdir(path):
            _rmtree(path + "/" + name)
        os.rmdir(path)


def _compatible(device, meta):
    """Raise ModelError unless ``meta`` fits this device's features, sensor and RAM limit, with a window that
    ``ml.window`` can take and a rate ``accel.rate_hz`` can (the model's window becomes ``ml.window`` when it runs,
    its rate ``accel.rate_hz``: ``_follow``). For the sound model (``device`` a ``soundclass.SoundClassifier``,
    which has a ``sensor``): its ``check_meta``. Returns None when the model takes all the extractor's features,
    else where its features are in them (``shared.model.check_meta``) and their count, the loaders' ``cols``."""
    from sensorbox.shared import features

    sm = lazy.load("sensorbox.shared.model")
    try:
        if getattr(device, "sensor", None) is not None:  # another model's place: it knows what fits there
            return device.check_meta(meta, sm)
        s = meta.get("sensor") if isinstance(meta, dict) else None
        if s is not None and s != "accel":
            raise ModelError("a {0} model cannot run as the activity model: push it with ?sensor={0} (sensorbox "
                             "model push does)".format(s), "sensor")
        ch = device.sensors["accel"].ring.channels
        cols = sm.check_meta(meta, features.FEATURE_VERSION, features.iter_names(ch), ch, None,
                             device.config.get("ml.model_max_kb") * 1024)
    except (TypeError, KeyError, IndexError, AttributeError) as e:  # a field of the wrong type or missing
        raise ModelError("meta.json: a field is missing or of the wrong type ({}: {})".format(
            type(e).__name__, e), "meta.json", True)
    finally:
        lazy.unload("sensorbox.shared.model")
    schema = lazy.load("sensorbox.shared.config_schema")
    try:
        for f, key, unit in (("window", "ml.window", "-frame windows"), ("rate_hz", "accel.rate_hz", " Hz")):
            v = meta.get(f, features.RATE_HZ)  # (a window is always there: check_meta)
            try:
                schema.check_value(key, v)
            except ValueError:
                raise ModelError("the model needs {}{}: {} can be {}".format(
                    v, unit, key, " or ".join(str(c) for c in schema.entry(key)[4])), f)
    finally:
        lazy.unload("sensorbox.shared.config_schema")
    return cols


def _follow(device, rate=False):
    """Make ``ml.window`` the running model's window: a model that runs always gets the windows it was trained on;
    with ``rate`` (a model activated or rolled back to) ``ml.hop`` its hop (the one it was trained with; set
    another after, it stays until the next model) and ``accel.rate_hz`` its rate too; its hop whenever the window
    changes. The config change restarts the pipeline.
    Called once no load is in progress (config_file refuses ml.window changes while one is)."""
    m = device.ml.model
    cfg = device.config
    if m is None or getattr(device, "sensor", None) is not None:
        return
    up = {}
    h = m.info["hop"]
    h = h if 8 <= h <= m.window else m.window // 2  # (ml.hop's bounds)
    w = cfg.get("ml.window") != m.window
    if w:
        up["ml.window"] = m.window
    if (w or rate) and cfg.get("ml.hop") != h:
        up["ml.hop"] = h
    r = m.info["rate_hz"]
    if rate and r is not None and cfg.get("accel.rate_hz") != r:
        up["accel.rate_hz"] = r
    if not up:
        return
    try:
        cfg.update(up)
        device.log.info("model", "set to the model's: {}".format(up))
    except (ValueError, OSError) as e:  # not saved (flash): the pipeline says why it does not classify
        device.log.error("model", "cannot set {}: {}".format(up, e))


async def _verify(device, path):
    """Check meta.json and the file's size and hash (no model in RAM needed). Returns meta, slimmed to what a
    running model needs: ``features`` becomes the count of names (the list is ~5 KB of strings), ``training``
    and ``scaling`` are dropped. Raises ModelError."""
    import gc

    meta = _read_meta(path)
    meta["cols"] = _compatible(device, meta)
    meta["features"] = len(meta["features"])
    if isinstance(meta.get("inputs"), list):
        meta["inputs"] = len(meta["inputs"])
    for k in ("training", "scaling", "class_names", "class_descriptions", "normal"):  # read from flash when asked
        meta.pop(k, None)
    gc.collect()
    await _check_file(path + "/model.csv", meta)
    return meta


def _fits(ev, meta):
    # an evaluator (a released model's) whose arrays can take this model: refilled instead of reallocated
    return (ev is not None and hasattr(ev, "reset") and ev.max_trees >= meta["trees"]
            and ev.max_nodes >= meta["nodes"] and ev.max_leaves >= meta["leaves"])


async def _load(device, path, meta, origin, spare=None):
    """Parse model.csv of a verified model into an evaluator, yielding every few lines. Raises ModelError.
    ``spare``: the released model's evaluator, refilled when the new model fits its capacity, so replacing a
    model needs no new large block of a fragmented heap. Otherwise the new arrays are allocated first, before
    the CSV reader is loaded."""
    import gc

    from sensorbox.device.analysis import trees

    ev = ld = None
    nb = meta.get("kind", "trees") != "trees"
    csv = "sensorbox.shared.neighbors_csv" if nb else "sensorbox.shared.trees_csv"
    c = meta.get("cols")  # a model on a part of the features: the loaders number its inputs in the whole vector
    try:
        gc.collect()
        if nb:  # knn, anomaly: arrays made by the loader when it has read the counts; emlearn's C code holds the
            # examples when installed (it counts the votes of at most 10 classes)
            try:  # (named by a string: interned when a neighbours model loads, as shared.neighbors* are)
                cnew = __import__("emlearn_neighbors").new if len(meta["classes"]) <= 10 else None
            except ImportError:
                cnew = None
            ld = lazy.load(csv).Loader((meta["items"], meta["inputs"], meta["k"], len(meta["classes"]),
                                        meta.get("threshold", -1)), cnew, c)
        else:
            if _fits(spare, meta):
                ev = spare
                ev.reset()
            else:
                ev = trees.new(meta["trees"], meta["nodes"], meta["leaves"])
            ld = lazy.load(csv).Loader(ev, c)
        n = 0
        with open(path + "/model.csv") as f:
            for line in f:
                ld.feed(line)
                n += 1
                if n == _YIELD_LINES:
                    n = 0
                    await asyncio.sleep_ms(0)
        if nb:
            ev = ld.finish()
        else:
            ld.finish((meta["features"], len(meta["classes"]), meta["trees"], meta["nodes"], meta["leaves"]))
        m = make(meta, ev, origin)
        m.cols = ld.inputs  # (trees_csv.Loader: a tree model on a part of 169 features, which the pipeline gathers)
        m.gids = device.store.class_ids(m.classes)  # ids in the store's class table (None: the pipeline retries)
        return m
    except ValueError as e:  # trees.TreesError, neighbors.NeighborsError: a line, a reference or a count
        raise ModelError("model.csv: {}".format(e), "csv")
    except OSError as e:
        raise ModelError("cannot read the model: {}".format(e))
    except MemoryError:
        raise ModelError("not enough RAM to load the model")
    finally:
        ev = ld = spare = None
        lazy.unload(csv)


def make(meta, evaluator, origin):
    """The ``pipeline.Model`` of a loaded ``evaluator`` and its ``meta`` (as ``_verify`` slims it: ``features`` the
    count, ``cols`` where its inputs are in the extractor's features or None for all of them). A knn or anomaly
    model's evaluator is a ``shared.neighbors.Neighbors``: a knn model votes as trees do (``votes()``), an
    anomaly model answers through ``step`` (its ``anomaly``)."""
    from sensorbox.device.analysis.pipeline import Model as M

    m = M()
    M.serial += 1  # (the class's: models made so far)
    m.serial = M.serial
    m.trees = evaluator
    m.emlearn = getattr(evaluator, "model", None)  # emlearn_trees' own model (kernels_emlearn.CTrees), else None
    kind = meta.get("kind", "trees")
    m.classes = meta["classes"]
    m.n_trees = meta["trees"] if kind == "trees" else meta["k"]  # votes per window
    m.window = meta["window"]
    m.channels = meta.get("channels")
    m.origin = origin
    m.gids = None
    x = meta.get("metrics") or {}
    m.info = i = {"origin": origin, "kind": kind, "classes": m.classes, "features": meta["features"],
                  "feature_version": meta["feature_version"], "channels": m.channels, "window": m.window,
                  "hop": meta["hop"], "rate_hz": meta.get("rate_hz"), "sha256": meta["csv_sha256"][:16],
                  "cv_accuracy": x.get("cv_accuracy_mean"), "created": meta.get("created")}
    for k in ("trees", "nodes", "leaves", "k", "items", "inputs", "threshold"):  # (of its kind)
        if k in meta:
            i[k] = meta[k]
    if kind == "anomaly":  # its class and score per window (shared.neighbors), not smoothed
        m.classes = i["classes"] = m.classes + ["anomaly"]
        m.step = evaluator.anomaly
    return m


async def _check(device, path, origin, spare=None):
    """Validate the model in ``path`` completely and return it loaded. Raises ModelError."""
    try:
        meta = await _verify(device, path)
    except MemoryError:  # (a reason the pipeline tries again for: "RAM")
        raise ModelError("not enough RAM to check the model")
    return await _load(device, path, meta, origin, spare)


async def _check_file(path, meta):
    import binascii
    import hashlib

    h = hashlib.sha256()
    buf = bytearray(_CHUNK)
    n = 0
    chunks = 0
    try:
        with open(path, "rb") as f:
            while True:
                k = f.readinto(buf)
                if not k:
                    break
                h.update(buf if k == _CHUNK else buf[:k])
                n += k
                chunks += 1
                if chunks % _YIELD_CHUNKS == 0:
                    await asyncio.sleep_ms(0)
    except OSError as e:
        raise ModelError("model.csv missing ({})".format(e), None, True)
    if n != meta["csv_bytes"]:
        raise ModelError("model.csv is {} bytes, meta.json says {}: upload incomplete".format(n, meta["csv_bytes"]),
                         "csv", True)
    if binascii.hexlify(h.digest()).decode() != meta["csv_sha256"]:
        raise ModelError("model.csv does not match meta.json's csv_sha256: corrupted or from another model", "csv",
                         True)


def _claim(device):
    ml = device.ml
    if ml.held:
        raise ModelError("a model is being loaded; try again in a moment", "state")
    ml.held = True


def spare(device):
    """At start-up, while the heap is whole (``boot.start``, before the services): the arrays of the model ``boot`` will load (the first
    of active, previous, default whose meta.json reads), as ``device.spare``. ``boot`` fills them: a heap that a
    day of services and requests has cut into small pieces may have no block for them later (a model found none
    after a restart with MQTT over TLS and three webhooks on). Nothing with emlearn_trees (its arrays are its own)."""
    from sensorbox.device.analysis import trees

    for which in ("active", "previous", "default"):
        try:
            m = _read_meta(_model_dir(device, which))
        except ModelError:  # absent or damaged: boot says why
            continue
        try:
            ev = trees.new(m["trees"], m["nodes"], m["leaves"])
        except (KeyError, TypeError, ValueError, MemoryError):  # not a tree model's counts (boot says why)
            return
        if hasattr(ev, "reset"):
            device.spare = ev
        return


async def boot(device):
    """Load the model to run at start: active, else previous, else the bundled default (into ``device.spare``,
    the arrays ``spare`` set aside, when it fits them)."""
    ml = device.ml
    _claim(device)
    try:
        spare = getattr(device, "spare", None)
        await _boot(device, spare)
        if spare is not None and ml.model is not None:
            device.spare = None  # the model's now (a later model too big for it frees it)
    finally:
        ml.held = False
    m = ml.model
    if m is not None and m.window != device.config.get("ml.window"):  # config.json edited or reset meanwhile
        asyncio.create_task(_follow_soon(device))  # from a task of its own: the change restarts the caller
    return m


async def _follow_soon(device):
    _follow(device)


async def _boot(device, spare=None):
    ml = device.ml
    for which in ("active", "previous", "default"):
        path = _model_dir(device, which)
        # (the sound model's place has no bundled default: none is no error there)
        if (which != "default" or getattr(device, "sensor", None) is not None) and not _exists(path + "/meta.json"):
            continue
        try:
            ml.model = await _check(device, path, which if which == "default" else "uploaded", spare)
            device.log.info("model", "running the {} model ({}, {})".format(which, ml.model.info["kind"],
                                                                           ml.model.n_trees))
            return ml.model
        except ModelError as e:
            ml.error = "{} model refused: {}".format(which, e.reason)
            device.log.error("model", ml.error)
            if e.damaged and which != "default":
                lazy.call("sensorbox.device.files", "aside", path, device.log, e.reason)
    return None


async def _replace(device, path, origin):
    """Verify the model in ``path`` with the old one running, then load the new one. Returns it, running.

    Atomic: whatever stops this part-way (a bad model, MemoryError, the task being cancelled), the old model
    runs again. If the new model needs arrays of its own, the old one keeps running while they fill and
    nothing needs restoring. If it fits the old model's arrays, the old model is released and its arrays are
    refilled (one model in RAM); on failure a restore task (``_restore``) loads the old model from flash into
    them again. A neighbours model (knn, anomaly: its examples are most of its RAM), coming or going, is loaded
    the same way after the old one is released, into new arrays. The restore task is not part of the caller:
    cancelling the caller does not stop it. On an error the caller waits for it (so the error reports what runs);
    when cancelled it does not."""
    import gc

    ml = device.ml
    try:
        meta = await _verify(device, path)
    except MemoryError:
        raise ModelError("not enough RAM to check the model")
    old = ml.model
    spare = old.trees if old is not None else None
    first = old is not None and (old.info["kind"] != "trees" or meta.get("kind", "trees") != "trees")  # release first
    if not first and not _fits(spare, meta):
        spare = None
        new = await _load(device, path, meta, origin)  # the old model runs on meanwhile (``old`` holds it)
        ml.model = new
        return new
    if first:  # a neighbours model coming or going: the old one's arrays go before the new are made
        spare = None
    old = None
    ml.model = None  # its arrays are about to be overwritten; only ``spare`` holds them now
    gc.collect()
    try:
        new = await _load(device, path, meta, origin, spare)
    except BaseException as e:  # ModelError, MemoryError, CancelledError, anything
        gc.collect()  # the refused model's data: room for the restore
        try:
            done = asyncio.Event()
            asyncio.create_task(_restore(device, spare, done))
        except MemoryError:  # not even that: the old model comes back at the next start
            ml.error = "not enough RAM to reload the model that ran; it loads at the next start"
            device.log.error("model", ml.error)
            raise e
        ml.held = _RESTORING  # the restore task's now: activate/rollback leave it set
        spare = None
        if not isinstance(e, asyncio.CancelledError):
            await done.wait()
        raise e
    ml.model = new
    return new



async def _restore(device, spare, done):
    """Load the model that ran before an interrupted replacement again (the directories on flash are unchanged,
    so ``_boot`` finds it) into ``spare``, its arrays."""
    ml = device.ml
    err = ml.error
    try:
        await _boot(device, spare)
        if ml.model is not None:
            ml.error = err  # else _boot's reason stays: why no model runs now
    finally:
        ml.held = False
        done.set()


def stage_meta(device, body):
    """Start an upload with meta.json; checked at once so an incompatible model is refused before its data."""
    import json

    st = _model_dir(device, "staged")
    _rmtree(st)
    try:
        meta = json.loads(body)
    except ValueError as e:
        raise ModelError("meta.json is not JSON ({})".format(e))
    _compatible(device, meta)
    _room(device, meta["csv_bytes"])
    os.mkdir(st)
    with open(st + "/meta.json", "wb") as f:
        f.write(body)
    open(st + "/model.csv", "wb").close()
    return {"staged": True, "csv_bytes": meta["csv_bytes"]}


def _room(device, n):
    """Refuse a model.csv over 4 x ml.model_max_kb (64 KB at the default; a CSV takes ~2-3 bytes per byte of
    model RAM), so an upload can never fill the flash and make retention delete sensor data."""
    kb = 4 * device.config.get("ml.model_max_kb")
    if n > kb * 1024:
        raise ModelError("model.csv of {} bytes is over the limit of {} KB (4 x ml.model_max_kb): refused".format(
            n, kb), "model.csv")


def stage_chunk(device, offset, body):
    """Append a chunk of model.csv at ``offset`` (must be the staged file's current size)."""
    path = _model_dir(device, "staged") + "/model.csv"
    try:
        size = os.stat(path)[6]
    except OSError:
        raise ModelError("no upload in progress: PUT meta.json first", "state")
    if offset != size:
        raise ModelError("offset {} but {} bytes are staged; continue at {}".format(offset, size, size), "offset")
    _room(device, size + len(body))
    with open(path, "ab") as f:
        f.write(body)
    return {"received": size + len(body)}


async def activate(device):
    """Validate the staged model; if good, run it from now on and keep the old one as previous."""
    ml = device.ml
    st = _model_dir(device, "staged")
    if not _exists(st + "/meta.json"):
        raise ModelError("nothing staged to activate", "state")
    _claim(device)
    try:
        new = await _replace(device, st, "uploaded")
    except ModelError as e:
        ml.error = "upload refused: " + e.reason
        device.log.warning("model", ml.error)
        _rmtree(st)
        raise
    finally:
        if ml.held is True:  # (not while a restore task owns it)
            ml.held = False
    _swap(device, "staged")
    _follow(device, True)
    ml.error = None
    device.log.info("model", "activated an uploaded model ({}, {})".format(new.info["kind"], new.info["sha256"]))
    return info(device)


async def rollback(device):
    """Run the previous model again (the bundled default if none was kept); the current becomes previous."""
    prev = _model_dir(device, "previous")
    origin = "uploaded" if _exists(prev + "/meta.json") else "default"
    if origin == "default" and not _exists(_model_dir(device, "active")):
        raise ModelError("no previous model to roll back to", "state")
    _claim(device)
    try:
        await _replace(device, prev if origin == "uploaded" else _model_dir(device, "default"), origin)
    finally:
        if device.ml.held is True:  # (not while a restore task owns it)
            device.ml.held = False
    _swap(device, "previous")
    _follow(device, True)
    device.log.info("model", "rolled back to the previous model ({})".format(origin))
    return info(device)


def _swap(device, src):
    """staged: previous <- active <- staged. previous: active <-> previous (a missing dir is the default)."""
    a, p, t = _model_dir(device, "active"), _model_dir(device, "previous"), _model_dir(device, "tmp")
    _rmtree(t)
    if src == "staged":
        _rmtree(p)
        if _exists(a):
            os.rename(a, p)
        os.rename(_model_dir(device, "staged"), a)
        return
    if _exists(a):
        os.rename(a, t)
    if _exists(p):
        os.rename(p, a)
    if _exists(t):
        os.rename(t, p)
