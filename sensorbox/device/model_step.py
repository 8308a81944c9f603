"""What a model other than trees on all the features needs on the device: the classification step of knn and anomaly
models (``Model.step``: the pipeline calls ``classify`` and ``event``), ``Part`` for a tree model on a part of the
features, ``prepare``, which ``models.make`` calls for such a model, and the neighbours file's reading around
``shared.neighbors_csv`` (``reader``, ``finish``). Loaded with such a model, which keeps it: in
RAM only while one runs (an idle device with a tree model pays nothing for it).

knn: the k neighbours' votes, smoothed and decided as the trees' are. anomaly: per window (not smoothed, as
``sensorbox evaluate`` scores it) class 1 (``anomaly``) when the score is above the threshold, else 0 (the normal
class); the confidence is the score in permille of the threshold (1000: at the threshold; at most 32767).
"""

import array

from sensorbox.device.trees_fast import smooth
from sensorbox.shared.trees import decide

ANOMALY = "anomaly"


def prepare(m, cols):
    """Fit ``m`` (a ``pipeline.Model`` as ``models.make`` fills it) to the extractor's features: ``cols`` are the
    positions of the model's inputs in them, or None when it takes them all. A tree model on a part of them gets
    a ``Part`` as its evaluator; a knn or anomaly model's examples pick their inputs out of the whole vector (its
    scaling lines' input numbers mapped here, once). An anomaly model's classes gain ``anomaly``. The caller makes
    this module ``m.step`` for a knn or anomaly model."""
    t = m.trees
    kind = m.info["kind"]
    if kind == "trees":
        m.trees = Part(t, cols)
        if m.emlearn is not None:
            m.emlearn = m.trees
        return
    if cols is not None:
        for j in range(t.n_features):
            t.src[j] = cols[t.src[j]]
        t.n_inputs = cols[-1] + 1  # (the model's features are in the extractor's order)
    if kind == ANOMALY:
        m.classes = m.info["classes"] = m.classes + [ANOMALY]


def reader(meta, csv):
    """A reader (``csv``: the module ``shared.neighbors_csv``) of a knn or anomaly model's file, ``meta`` its
    meta.json: the examples go into ``emlearn_neighbors`` when it is installed and the model has at most 10
    classes (its C code counts the votes of at most 10)."""
    c = None
    if len(meta["classes"]) <= 10:
        try:
            import emlearn_neighbors

            c = emlearn_neighbors.new
        except ImportError:
            pass
    return csv.Loader((meta["items"], meta["inputs"], meta["k"]), c)


def finish(ld, meta):
    """The model ``ld`` read, checked against ``meta``. Raises ValueError."""
    t = ld.finish()
    if t.n_inputs != meta["features"] or (meta["kind"] == ANOMALY) != (t.threshold >= 0) \
            or t.n_classes != len(meta["classes"]):
        raise ValueError("its x, c and t lines do not match meta.json's features, classes and kind")
    if t.threshold >= 0 and t.threshold != meta["threshold"]:
        raise ValueError("threshold {} but meta.json says {}".format(t.threshold, meta["threshold"]))
    return t


def classify(m, feats, hist, slot, count, threshold):
    """``pipeline.classify`` for a knn or anomaly model."""
    t = m.trees
    if t.threshold < 0:  # knn: its votes, smoothed
        t.classify(feats)
        nc = len(m.classes)
        return decide(smooth(t.votes, 0, m.n_trees, hist, slot * nc, count, nc), count, m.n_trees, threshold)
    s = t.score(feats)
    h = t.threshold
    return (1 if s > h else 0), (s * 1000 // h if h > 0 and s < 32767 else (32767 if s > 0 else 0))


def event(m, e):
    """An anomaly model's class change also says the window's score and the threshold."""
    t = m.trees
    if t.threshold >= 0:
        e["score"] = t.dist[t.found - 1] if t.found else -1
        e["threshold"] = t.threshold


class Part:
    """A tree model's evaluator (``ev``: trees_fast's, with emlearn_trees' model or not) on a part of the features:
    each call picks the model's inputs (at positions ``cols`` of the extractor's vector) into ``x`` first. Has
    what the pipeline calls on an evaluator: ``classify``/``votes``, or ``predict`` and ``out``."""

    def __init__(self, ev, cols):
        self.ev = ev
        self.cols = cols
        self.x = array.array("h", bytes(2 * len(cols)))
        self.out = getattr(ev, "out", None)
        self.n_features = ev.n_features

    def pick(self, feats):
        c = self.cols
        x = self.x
        for i in range(len(c)):
            x[i] = feats[c[i]]
        return x

    def classify(self, feats):
        return self.ev.classify(self.pick(feats))

    def votes(self):
        return self.ev.votes()

    def predict(self, feats, out):
        self.ev.model.predict(self.pick(feats), out)
