"""Classifier model files and their validation: ``model.csv`` (emlearn's tree CSV) + ``meta.json``.

``meta.json`` (written by ``sensorbox.host.export``) says what the model needs and was made from::

    format            1 (this layout)
    kind              "trees" (majority-vote tree ensemble, int16 inputs)
    feature_version   FEATURE_VERSION of sensorbox.shared.features the model was trained with
    features          feature names in model input order (must equal features.names(channels) on the device)
    channels, window, hop, rate_hz      what the features were computed over
    classes           class names; the CSV's class index i is classes[i]
    class_names       optional: a display name per class (``classes`` may be codes such as "FEL")
    class_descriptions  optional: a sentence per class saying what it means (shown by the UI)
    scaling           how the int16 features are scaled (from the feature extractor), for documentation/UI
    trees, nodes, leaves                counts: the capacity a device reserves (8 bytes per node)
    csv_bytes, csv_sha256               size and hash of model.csv: a truncated or altered file is caught
    training, metrics                   data summary and cross-validated scores (informational)

``check_meta`` and ``load`` raise ``ModelError`` whose ``reason`` says what is wrong in words a user can act on.
"""

from sensorbox.shared import trees

FORMAT = 1
NODE_BYTES = 8
#: A loaded model's RAM beyond its arrays (objects, array headers), measured on the unix port (64-bit).
OVERHEAD_BYTES = 600

_INTS = ("format", "feature_version", "channels", "window", "hop", "trees", "nodes", "leaves", "csv_bytes")


class ModelError(ValueError):
    def __init__(self, reason, field=None):
        super().__init__(reason)
        self.reason = reason
        self.field = field


def ram_bytes(meta):
    """RAM a device needs to hold the model: nodes, roots, leaves and overhead."""
    return NODE_BYTES * meta["nodes"] + 2 * meta["trees"] + meta["leaves"] + OVERHEAD_BYTES


def check_meta(meta, feature_version, feature_names, channels=None, window=None, max_bytes=None):
    """Raise ModelError unless ``meta`` describes a model that can run on features ``feature_names`` (any
    iterable, e.g. ``features.iter_names(channels)``) of ``feature_version`` (and ``channels``/``window`` when
    given) within ``max_bytes`` of RAM."""
    if not isinstance(meta, dict):
        raise ModelError("meta.json is not a JSON object")
    for k in _INTS:
        v = meta.get(k)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ModelError("meta.json: {} missing or not a non-negative integer".format(k), k)
    if meta["format"] != FORMAT:
        raise ModelError("model format {} unsupported (this device reads format {})".format(meta["format"], FORMAT),
                         "format")
    if meta.get("kind") != "trees":
        raise ModelError("model kind {} unsupported (expected trees)".format(meta.get("kind")), "kind")
    if meta["feature_version"] != feature_version:
        raise ModelError("model needs feature version {}, this device computes version {}; retrain it with "
                         "this sensorbox".format(meta["feature_version"], feature_version), "feature_version")
    names = meta.get("features")
    if not isinstance(names, list):
        raise ModelError("meta.json: features missing", "features")
    if channels is not None and meta["channels"] != channels:
        raise ModelError("model needs {} channels, the sensor delivers {}".format(meta["channels"], channels),
                         "channels")
    n = 0
    bad = None  # the first difference
    for want in feature_names:
        if bad is None and n < len(names) and names[n] != want:
            bad = (n, names[n], want)
        n += 1
    if len(names) != n:
        raise ModelError("model takes {} features, this device computes {}".format(len(names), n), "features")
    if bad is not None:
        raise ModelError("feature {} is {} in the model but {} on this device".format(*bad), "features")
    if window is not None and meta["window"] != window:
        raise ModelError("model was trained on {}-frame windows, ml.window is {}".format(meta["window"], window),
                         "window")
    classes = meta.get("classes")
    if not isinstance(classes, list) or not 2 <= len(classes) <= trees.MAX_CLASSES:  # the bound of the CSV loader
        raise ModelError("meta.json: classes must list 2..{} names".format(trees.MAX_CLASSES), "classes")
    for k, most in (("class_names", 40), ("class_descriptions", 200)):  # optional, for people (the UI)
        v = meta.get(k)
        if v is not None and (not isinstance(v, list) or len(v) != len(classes) or
                              [x for x in v if not isinstance(x, str) or len(x) > most]):
            raise ModelError("meta.json: {} must list one text of at most {} characters per class".format(k, most), k)
    if meta["trees"] < 1 or meta["nodes"] < 1 or meta["leaves"] < 1 or meta["nodes"] > trees.MAX_NODES:
        raise ModelError("meta.json: trees/nodes/leaves out of range", "nodes")
    if not isinstance(meta.get("csv_sha256"), str) or len(meta["csv_sha256"]) != 64:
        raise ModelError("meta.json: csv_sha256 missing", "csv_sha256")
    if max_bytes is not None and ram_bytes(meta) > max_bytes:
        raise ModelError("model needs {} bytes of RAM ({} nodes); this device allows {} (ml.model_max_kb)".format(
            ram_bytes(meta), meta["nodes"], max_bytes), "nodes")


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
