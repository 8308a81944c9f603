"""Model files and their validation: ``model.csv`` (emlearn's tree CSV, or the neighbours format of
``sensorbox.shared.neighbors``) + ``meta.json``.

``meta.json`` (written by ``sensorbox.host.export``) says what the model needs and was made from::

    format            1 (this layout)
    kind              "trees" (majority-vote tree ensemble, int16 inputs), "knn" (k-nearest neighbours) or "anomaly"
                      (distance to the k-th nearest normal example; ``sensorbox.shared.neighbors``)
    feature_version   FEATURE_VERSION of sensorbox.shared.features the model was trained with
    features          feature names in model input order: features.names(channels), or a part of it in the same
                      order (the device computes them all and hands the model these)
    channels, window, hop, rate_hz      what the features were computed over (the pipeline spec: a device
                      samples at rate_hz and cuts windows of ``window`` frames every ``hop``)
    classes           class names; the CSV's class index i is classes[i]
    class_names       optional: a display name per class (``classes`` may be codes such as "FEL")
    class_descriptions  optional: a sentence per class saying what it means (shown by the UI)
    scaling           how the int16 features are scaled (from the feature extractor), for documentation/UI
    trees, nodes, leaves                trees: counts, the capacity a device reserves (8 bytes per node)
    k, items, inputs, threshold         knn/anomaly: neighbours, stored examples, the names of the inputs used
                                        (as the model file's scaling lines pick them), anomaly's threshold
    csv_bytes, csv_sha256               size and hash of model.csv: a truncated or altered file is caught
    training, metrics                   data summary and cross-validated scores (informational)

``check_meta`` and ``load`` raise ``ModelError`` whose ``reason`` says what is wrong in words a user can act on.
"""

from sensorbox.shared import trees
from sensorbox.shared import ModelError  # noqa: F401 - raised here; callers catch it as model.ModelError

FORMAT = 1
NODE_BYTES = 8
#: A loaded model's RAM beyond its arrays (objects, array headers), measured on the unix port (64-bit).
OVERHEAD_BYTES = 600

_INTS = ("format", "feature_version", "channels", "window", "hop", "csv_bytes")
_KIND_INTS = {"trees": ("trees", "nodes", "leaves"), "knn": ("k", "items"), "anomaly": ("k", "items", "threshold")}


def ram_bytes(meta):
    """RAM a device needs to hold the model (``meta``: meta.json, or a running model's info): trees: nodes, roots,
    leaves; neighbours: the examples (int16) and per example 11 bytes (its label, and emlearn's label and distance
    record when the C module holds them), scaling and scratch; plus overhead."""
    if meta.get("kind", "trees") == "trees":
        return NODE_BYTES * meta["nodes"] + 2 * meta["trees"] + meta["leaves"] + OVERHEAD_BYTES
    f = meta["inputs"]
    f = len(f) if isinstance(f, list) else f
    m = meta["items"]
    return 2 * m * f + 11 * m + 9 * f + 4 * meta["k"] + 2 * len(meta["classes"]) + OVERHEAD_BYTES


def _channels(model_ch, sensor_ch):
    # check_meta's refusal of a model of ``model_ch`` channels on a sensor of ``sensor_ch`` (apart: a function's
    # bytecode is one block). A 3-channel model on a 6-channel sensor (accel.gyro) is none: it takes its features
    # from the 6 channels' (the accelerometer's: the same values, in the same order; check_meta gives their
    # positions). (Argument names no other source spells: the bundle renames them, no interned name each.)
    if model_ch == 3 and sensor_ch == 6:
        return
    raise ModelError("model needs {} channels, the sensor delivers {}{}".format(model_ch, sensor_ch, (
        ": the gyroscope is off (turn on accel.gyro; it applies at the next restart)"
        if model_ch == 6 and sensor_ch == 3 else "")), "channels")


def check_meta(meta, feature_version, feature_names, channels=None, window=None, max_bytes=None):
    """Raise ModelError unless ``meta`` describes a model that can run on features ``feature_names`` (any
    iterable, e.g. ``features.iter_names(channels)``) of ``feature_version`` (and ``channels``/``window`` when
    given) within ``max_bytes`` of RAM. Returns None when the model takes all of ``feature_names``, else (the
    position in them of each of its inputs, a bytearray; their count): the model takes a part of them, in their
    order (``trees_csv``/``neighbors_csv`` number its inputs in the whole vector with it). A ``rate_hz`` of a
    whole float (50.0, read from a recording's sidecar) becomes an int."""
    if not isinstance(meta, dict):
        raise ModelError("meta.json is not a JSON object")
    kind = meta.get("kind")
    if kind not in _KIND_INTS:
        raise ModelError("model kind {} unsupported (expected trees, knn or anomaly)".format(kind), "kind")
    for k in _INTS + _KIND_INTS[kind]:
        v = meta.get(k)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ModelError("meta.json: {} missing or not a non-negative integer".format(k), k)
    if meta["format"] != FORMAT:
        raise ModelError("model format {} unsupported (this device reads format {})".format(meta["format"], FORMAT),
                         "format")
    if meta["feature_version"] != feature_version:
        raise ModelError("model needs feature version {}, this device computes version {}; retrain it with "
                         "this sensorbox".format(meta["feature_version"], feature_version), "feature_version")
    names = meta.get("features")
    if not isinstance(names, list):
        raise ModelError("meta.json: features missing", "features")
    if channels is not None and meta["channels"] != channels:
        _channels(meta["channels"], channels)
    # the model's names in the device's order: all of them, or a part (then their positions)
    n = 0
    i = 0
    cols = bytearray(len(names)) if len(names) < 256 else None
    for want in feature_names:
        if i < len(names) and names[i] == want:
            if cols is not None:
                cols[i] = n
            i += 1
        n += 1
    if i < len(names):
        raise ModelError("feature {} is {} in the model: not one of the {} features (version {}, {} channels) this "
                         "device computes, or not in their order (a model may take a part of them, in their "
                         "order)".format(i, names[i], n, feature_version, meta["channels"]), "features")
    if len(names) == n:
        cols = None
    r = meta.get("rate_hz")
    if isinstance(r, float) and r == int(r):
        meta["rate_hz"] = int(r)
    if window is not None and meta["window"] != window:
        raise ModelError("model was trained on {}-frame windows, ml.window is {}".format(meta["window"], window),
                         "window")
    classes = meta.get("classes")
    least = 1 if kind == "anomaly" else 2  # (an anomaly model's one class: what is normal)
    if not isinstance(classes, list) or not least <= len(classes) <= (1 if least == 1 else trees.MAX_CLASSES) \
            or [c for c in classes if not isinstance(c, str)]:  # (the bound of the CSV loaders)
        raise ModelError("meta.json: classes must list {}..{} names{}".format(
            least, 1 if least == 1 else trees.MAX_CLASSES, " (what is normal)" if least == 1 else ""), "classes")
    for k, most in (("class_names", 40), ("class_descriptions", 200)):  # optional, for people (the UI)
        v = meta.get(k)
        if v is not None and (not isinstance(v, list) or len(v) != len(classes) or
                              [x for x in v if not isinstance(x, str) or len(x) > most]):
            raise ModelError("meta.json: {} must list one text of at most {} characters per class".format(k, most), k)
    if kind == "trees":
        if meta["trees"] < 1 or meta["nodes"] < 1 or meta["leaves"] < 1 or meta["nodes"] > trees.MAX_NODES:
            raise ModelError("meta.json: trees/nodes/leaves out of range", "nodes")
    else:
        used = meta.get("inputs")
        if not isinstance(used, list) or not used or [u for u in used if u not in names]:
            raise ModelError("meta.json: inputs must list the features the model uses (names from features)",
                             "inputs")
        if not 0 < meta["k"] <= meta["items"]:
            raise ModelError("meta.json: k must be 1..items", "k")
    if not isinstance(meta.get("csv_sha256"), str) or len(meta["csv_sha256"]) != 64:
        raise ModelError("meta.json: csv_sha256 missing", "csv_sha256")
    if max_bytes is not None and ram_bytes(meta) > max_bytes:
        raise ModelError("model needs {} bytes of RAM ({} {}); this device allows {} (ml.model_max_kb)".format(
            ram_bytes(meta), meta["nodes"] if kind == "trees" else meta["items"], "nodes" if kind == "trees" else
            "examples of {} inputs".format(len(meta["inputs"])), max_bytes), "nodes" if kind == "trees" else "items")
    return None if cols is None else (cols, n)


def counts(meta):
    """What model.csv must hold according to ``meta``: (features, classes, trees, nodes, leaves), as
    ``trees_csv.Loader.finish(expect)`` takes them."""
    return len(meta["features"]), len(meta["classes"]), meta["trees"], meta["nodes"], meta["leaves"]


def load(lines, meta, builder):
    """Parse ``lines`` of model.csv into ``builder`` (capacity from ``meta``) and check that the file holds
    exactly what ``meta`` announces. Returns the builder. Raises ModelError. (The device, which yields between
    lines, feeds a ``trees_csv.Loader`` itself and ends it with ``finish(counts(meta))``.)"""
    from sensorbox.shared import trees_csv

    ld = trees_csv.Loader(builder)
    try:
        for line in lines:
            ld.feed(line)
        ld.finish(counts(meta))
    except trees.TreesError as e:
        raise ModelError("model.csv: {}".format(e), "csv")
    return builder
