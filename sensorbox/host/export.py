"""Export a scikit-learn tree ensemble as a sensorbox model: ``model.csv`` (emlearn's CSV) + ``meta.json``.

Two pitfalls make a naive export disagree with what a device computes (measured, see FIELD-NOTES):

- scikit-learn goes left on ``x <= t`` with float thresholds; emlearn's device loader truncates the threshold to an
  int and goes left on ``x < t``. For int16 features, ``x <= t`` is exactly ``x < floor(t) + 1``, so the export
  rewrites every threshold to ``floor(t) + 1`` (an integer: truncation is then a no-op). The estimator is changed
  in place: afterwards scikit-learn, emlearn's C code and the device all split the same way.
- The device votes hard (each tree one vote, first class with most votes wins); scikit-learn averages
  probabilities. ``hard_vote_predict`` gives the device's answer on the host.
"""

import hashlib
import json
import os

import numpy as np

from sensorbox.host import client
from sensorbox.shared import model as model_fmt
from sensorbox.shared import trees, trees_csv


_builds = None  # where emlearn compiles this process's loadable models


def _emlearn():
    """emlearn, with its loadable models (the C code behind ``.predict``) compiled in a directory of this process's
    own: emlearn compiles them into ``./tmp/<fixed name>``, so two processes in one directory (two trainings,
    parallel tests) overwrote each other's program and one predicted with the other's model."""
    global _builds
    try:
        import emlearn
        from emlearn import common
    except ModuleNotFoundError as e:  # pragma: no cover - depends on the environment
        raise SystemExit("emlearn is not importable ({}); on Python >= 3.12 it also needs setuptools: "
                         "pip install -e '.[train]'".format(e))
    if _builds is None:
        import atexit
        import shutil
        import tempfile

        _builds = tempfile.mkdtemp(prefix="sensorbox-emlearn-")
        atexit.register(shutil.rmtree, _builds, True)
        build = common.build_classifier

        def build_here(*args, **kw):
            if kw.get("temp_dir") != "tmp":  # (emlearn's default, which CompiledClassifier passes by name)
                return build(*args, **kw)
            kw["temp_dir"] = _builds
            # distutils puts the object files under the working directory, at the build directory's path: they
            # go once the program is linked, with the folders made for them (a folder another process uses stays)
            cwd = os.getcwd()
            objs = os.path.join(cwd, _builds.lstrip(os.sep))
            made = []
            d = os.path.dirname(objs)
            while d != cwd and not os.path.exists(d):
                made.append(d)
                d = os.path.dirname(d)
            try:
                return build(*args, **kw)
            finally:
                shutil.rmtree(objs, ignore_errors=True)
                for d in made:
                    try:
                        os.rmdir(d)
                    except OSError:
                        break

        common.build_classifier = build_here
    return emlearn


def estimators(est):
    return list(est.estimators_) if hasattr(est, "estimators_") else [est]


def device_estimator(est):
    """A copy of ``est`` with the device's thresholds (see module doc): what the export converts. Only for
    conversion: scikit-learn's own ``x <= t`` rule on the copy would be off by one."""
    import copy

    return fix_thresholds(copy.deepcopy(est))


def fix_thresholds(est):
    """Rewrite every split threshold t of ``est`` to floor(t) + 1, in place."""
    for e in estimators(est):
        t = e.tree_
        split = t.children_left != -1
        t.threshold[split] = np.clip(np.floor(t.threshold[split]) + 1, -32768, 32767)
    return est


def hard_vote_predict(est, X):
    """Class indices as a device computes them: majority vote of the trees, ties to the lowest class index."""
    votes = np.zeros((len(X), len(est.classes_)), dtype=int)
    rows = np.arange(len(X))
    for e in estimators(est):
        votes[rows, np.argmax(e.predict_proba(X), axis=1)] += 1
    return np.argmax(votes, axis=1)  # argmax returns the first maximum


def convert(est):
    """emlearn's converter (its real C code behind ``.predict``) for the device version of ``est``."""
    return _emlearn().convert(device_estimator(est), method="loadable", dtype="int16_t")


def export(est, out_dir, meta):
    """Write ``out_dir/model.csv`` and ``out_dir/meta.json``. ``meta`` holds the descriptive fields (features,
    feature_version, channels, window, hop, rate_hz, classes, scaling, training, metrics); counts, size and hash
    are filled in here. Returns the complete meta. ``est`` is not modified."""
    os.makedirs(out_dir, exist_ok=True)
    csv_path = os.path.join(out_dir, "model.csv")
    text = convert(est).save(name="model", format="csv")
    data = (text + "\r\n").encode()
    with open(csv_path, "wb") as f:
        f.write(data)
    t = trees.Trees(len(estimators(est)), trees.MAX_NODES, 255)
    n_features, n_classes, n_trees, n_nodes, n_leaves = trees_csv.load(text.splitlines(), t)
    out = dict(meta)
    out.update({"format": model_fmt.FORMAT, "kind": "trees", "trees": n_trees, "nodes": n_nodes,
                "leaves": n_leaves, "csv_bytes": len(data), "csv_sha256": hashlib.sha256(data).hexdigest()})
    out["ram_bytes"] = model_fmt.ram_bytes(out)
    if n_features != len(out["features"]) or n_classes != len(out["classes"]):
        raise ValueError("estimator has {} features/{} classes, meta says {}/{}".format(
            n_features, n_classes, len(out["features"]), len(out["classes"])))
    with open(os.path.join(out_dir, "meta.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    return out


def read(model_dir):
    """(meta, csv bytes) of a model directory, checked against each other. Raises ModelError."""
    try:
        with open(os.path.join(model_dir, "meta.json")) as f:
            meta = json.load(f)
        with open(os.path.join(model_dir, "model.csv"), "rb") as f:
            data = f.read()
    except (OSError, ValueError) as e:
        raise model_fmt.ModelError("cannot read the model in {}: {}".format(model_dir, e))
    return meta, data


def load_trees(model_dir, kernel=None):
    """The exported model loaded with the shared evaluator (what a device without viper runs)."""
    meta, data = read(model_dir)
    t = trees.Trees(meta["trees"], meta["nodes"], meta["leaves"], kernel)
    model_fmt.load(data.decode().splitlines(), meta, t)
    return meta, t


def device_predict(t, X):
    """Class indices from the shared evaluator for int16 feature rows ``X``."""
    import array

    x = array.array("h", bytes(2 * X.shape[1]))
    out = np.empty(len(X), dtype=int)
    for i, row in enumerate(np.asarray(X, dtype=np.int16)):
        for j, v in enumerate(row.tolist()):
            x[j] = v
        out[i] = t.classify(x)
    return out


# --- pushing to a device ----------------------------------------------------------------------------------------

PUSH_CHUNK = 2048  # bytes of model.csv per request: small enough for a device's RAM


PushError = client.DeviceError

# What to do when a device refuses a 6-channel model (docs/datasets.md "Six channels"): said with its 400.
GYRO_REFUSAL = ("A 6-channel model needs the gyroscope: turn it on (accel.gyro in the web UI's settings, or PUT "
                "/api/config {\"accel.gyro\": true}), restart the device (POST /api/restart) and push again; or train "
                "with --channels 3 (the default)")


def push_refusal(kind):
    """Why a model of ``kind`` (meta.json's, or train's ``--kind``) cannot go to a device, or None."""
    if kind in ("trees", "forest", "extra-trees", "knn", "anomaly"):
        return None
    return ("devices run tree models (forest, extra-trees), knn and anomaly models; a {} model is evaluated on the "
            "host (sensorbox evaluate)".format(kind))


def push(url, model_dir, password=None, token=None, progress=False, ask=False):
    """Upload ``model_dir`` to the device at ``url`` (or a ``client.Client``) and activate it. Returns the
    device's model info. Credentials as ``client.Client`` takes them (an admin token or the admin password)."""
    meta, data = read(model_dir)
    why = push_refusal(meta.get("kind"))
    if why:  # before any request: the device would refuse it only after the upload
        raise PushError("{}: {}".format(model_dir, why))
    if meta.get("csv_bytes") != len(data):
        raise PushError("{}: model.csv is {} bytes but meta.json says {}".format(model_dir, len(data),
                                                                                 meta.get("csv_bytes")))
    with open(os.path.join(model_dir, "meta.json"), "rb") as f:
        raw_meta = f.read()
    dev = url if isinstance(url, client.Client) else client.Client(url, password, token, ask=ask)
    q = "?sensor=sound" if meta.get("sensor") == "sound" else ""  # the sound classifier's model
    try:
        dev.json("/api/model/meta.json" + q, "PUT", raw_meta)
    except PushError as e:
        if meta.get("channels") == 6 and "channels" in str(e):  # (before any of model.csv was sent)
            raise PushError("{}. {}".format(e, GYRO_REFUSAL))
        raise
    n = (len(data) + PUSH_CHUNK - 1) // PUSH_CHUNK
    bar = client.Progress("upload", n, force=progress, unit="chunks")
    for off in range(0, len(data), PUSH_CHUNK):
        dev.json("/api/model/model.csv?offset={}{}".format(off, "&sensor=sound" if q else ""), "PUT",
                 data[off:off + PUSH_CHUNK], "application/octet-stream")
        bar.add(1)
    bar.close()
    return dev.json("/api/model/activate" + q, "POST", b"")


def device_call(url, action, password=None, token=None, ask=False, sensor="accel"):
    """``info`` (GET /api/model, any credential) or ``rollback`` (admin); ``sensor`` "sound": the sound model's."""
    dev = client.Client(url, password, token, ask=ask)
    q = "?sensor=sound" if sensor == "sound" else ""
    if action == "info":
        return dev.json("/api/model" + q)
    return dev.json("/api/model/" + action + q, "POST", b"")


def summary(info, url=None):
    """``GET /api/model``'s answer as text for people (``sensorbox model info``/``push``/``rollback``)."""
    url = url or "URL"
    a = info.get("active") if isinstance(info, dict) else None
    lines = []
    if not a:
        lines.append("active model: none (the device classifies nothing; push one: sensorbox model push {} "
                     "MODEL_DIR)".format(url))
    else:
        classes = a.get("classes") or []
        lines += ["active model: {} {}{}".format(a.get("origin", "?"), a.get("sha256", "?"),
                                                 " (created {})".format(a["created"]) if a.get("created") else ""),
                  "  classes      {} ({})".format(", ".join(str(c) for c in classes), len(classes)),
                  "  trees        {} trees, {} decision nodes".format(a.get("trees", "?"), a.get("nodes", "?")),
                  "  input        {} features (feature version {}), windows of {} frames, hop {}".format(
                      _count(a.get("features")), a.get("feature_version", "?"), a.get("window", "?"),
                      a.get("hop", "?"))]
        acc = a.get("cv_accuracy")
        lines.append("  CV accuracy  {}".format("{:.3f}".format(acc) if isinstance(acc, (int, float)) else
                                                  "not recorded"))
    lines.append("previous model: {}".format(
        "kept (sensorbox model rollback {} switches back to it)".format(url) if info.get("previous") else "none"))
    if info.get("staged"):
        lines.append("staged upload: an upload was started but not activated (push again to finish it)")
    lines.append("last error: {}".format(info.get("last_error") or "none"))
    return "\n".join(lines)


def _count(x):
    return len(x) if isinstance(x, (list, tuple)) else (x if x is not None else "?")


def below_chance(meta):
    """The warning a model's meta.json carries when its cross-validated accuracy was at or below chance, or None."""
    m = meta.get("metrics") or {}
    return m.get("warning")
