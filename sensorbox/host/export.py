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

from sensorbox.shared import model as model_fmt
from sensorbox.shared import trees, trees_csv


def _emlearn():
    try:
        import emlearn
    except ModuleNotFoundError as e:  # pragma: no cover - depends on the environment
        raise SystemExit("emlearn is not importable ({}); on Python >= 3.12 it also needs setuptools: "
                         "pip install -e '.[train]'".format(e))
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


class PushError(Exception):
    pass


def _request(url, method, path, body, password, content_type="application/octet-stream"):
    import base64
    import urllib.error
    import urllib.parse
    import urllib.request

    u = urllib.parse.urlsplit(url if "://" in url else "http://" + url)
    if u.password:
        password = urllib.parse.unquote(u.password)
    if password is None:
        password = os.environ.get("SENSORBOX_PASSWORD")
    if password is None:
        import getpass
        import sys

        if not sys.stdin.isatty():
            raise PushError("no admin password for {}: give --password or set $SENSORBOX_PASSWORD".format(u.hostname))
        password = getpass.getpass("admin password of {}: ".format(u.hostname))
    base = "{}://{}{}".format(u.scheme, u.hostname, ":{}".format(u.port) if u.port else "")
    req = urllib.request.Request(base + path, data=body, method=method, headers={
        "Authorization": "Basic " + base64.b64encode(("admin:" + password).encode()).decode(),
        "Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"null"), password
    except urllib.error.HTTPError as e:
        try:
            reason = json.loads(e.read()).get("error")
        except ValueError:
            reason = e.reason
        hint = {401: " (wrong admin password: --password or $SENSORBOX_PASSWORD)",
                429: " (logins are locked for a while after a wrong password: wait, then retry)"}.get(e.code, "")
        raise PushError("{} {} -> {}: {}{}".format(method, path, e.code, reason, hint))
    except OSError as e:
        raise PushError("cannot reach {}: {}".format(base, e))


def push(url, model_dir, password=None):
    """Upload ``model_dir`` to the device at ``url`` and activate it. Returns the device's model info."""
    meta, data = read(model_dir)
    if meta.get("csv_bytes") != len(data):
        raise PushError("{}: model.csv is {} bytes but meta.json says {}".format(model_dir, len(data),
                                                                                 meta.get("csv_bytes")))
    with open(os.path.join(model_dir, "meta.json"), "rb") as f:
        raw_meta = f.read()
    _, password = _request(url, "PUT", "/api/model/meta.json", raw_meta, password, "application/json")
    for off in range(0, len(data), PUSH_CHUNK):
        _request(url, "PUT", "/api/model/model.csv?offset={}".format(off), data[off:off + PUSH_CHUNK],
                 password)
    return _request(url, "POST", "/api/model/activate", b"", password)[0]


def device_call(url, action, password=None):
    """``info`` (GET /api/model) or ``rollback``."""
    if action == "info":
        return _request(url, "GET", "/api/model", None, password)[0]
    return _request(url, "POST", "/api/model/" + action, b"", password)[0]
