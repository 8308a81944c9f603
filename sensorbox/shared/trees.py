"""Tree ensembles (random forest, extra trees) from emlearn's CSV model format: compact arrays and hard
majority-vote prediction, bit-identical to emlearn's C code (``eml_trees.h``) and ``emlearn_trees``.

Rule: go left if ``x[feature] < threshold`` (the threshold truncated to an int when the CSV is read). Only
majority voting (a leaf holds a class index) is supported. Reading and validating the CSV is in
``sensorbox.shared.trees_csv`` (``load(lines, builder)``): a device needs that code only while a model loads,
this module while one runs.

``Trees`` evaluates like ``emlearn_trees`` (``outputs``, ``predict(x, out)``); its builder interface (``setdata``,
``addnode``, ``addroot``, ``addleaf``) is ``trees_csv.Builder`` over it, so ``trees_csv.load`` fills a ``Trees``
or an ``emlearn_trees`` model alike, and the checks of the builder (~2 KB of heap) are loaded only while a model
loads, not for as long as one runs. Storage, 8 bytes per node like emlearn: ``nodes`` is one int16 array of
(feature, threshold, left, right) per node with children stored as absolute node indices (>= 0) or leaf codes
(< 0); ``roots`` int16; ``leaves`` a bytearray of class indices. Once ``trees_csv`` has accepted a file every
walk ends inside the arrays (children point strictly forward), so fast kernels over the same arrays
(``sensorbox.device.analysis.trees``) need no bounds checks.
"""

import array

MAX_NODES = 32767  # node indices are int16
MAX_FEATURES = 127  # the feature index is an int8 in emlearn's node
MAX_CLASSES = 127  # n_classes is an int8 in emlearn's EmlTrees


class TreesError(ValueError):
    pass


def vote(nodes, roots, n_trees, leaves, x, votes, n_classes):
    """Plain-Python kernel: fill ``votes`` (int array, n_classes) with each class's tree count over the features
    ``x`` (int16 array) and return the winning class: the first with the most votes (-1 if there are no trees)."""
    for c in range(n_classes):
        votes[c] = 0
    for t in range(n_trees):
        i = roots[t]
        while i >= 0:
            j = i << 2
            if x[nodes[j]] < nodes[j + 1]:
                i = nodes[j + 2]
            else:
                i = nodes[j + 3]
        votes[leaves[-i - 1]] += 1
    best = -1
    most = 0
    for c in range(n_classes):
        if votes[c] > most:
            most = votes[c]
            best = c
    return best


def decide(r, count, n_trees, threshold):
    """The pipeline's decision after smoothing (``sensorbox.device.analysis.trees.smooth``'s result ``r``: the
    winning class + 1 and its votes summed over ``count`` windows, as ``sum << 8 | (class + 1)``): (class,
    confidence permille), the confidence being the winner's share of all the votes, the class -1 ("unknown") below
    ``threshold``. The device
    and the browser (``sensorbox.shared.analysis``) decide with this one function."""
    conf = (r >> 8) * 1000 // (count * n_trees)
    return ((r & 0xFF) - 1 if conf >= threshold else -1), conf


class Trees:
    """A tree ensemble with fixed capacity (allocated once). ``kernel`` is a function with the signature of
    ``vote`` (the device passes its viper version)."""

    def __init__(self, max_trees, max_nodes, max_leaves, kernel=None):
        if max_nodes > MAX_NODES or max_trees < 1 or max_nodes < 1 or max_leaves < 1:
            raise TreesError("capacity out of range: trees {}, nodes {}, leaves {}".format(
                max_trees, max_nodes, max_leaves))
        self.nodes = array.array("h", bytes(8 * max_nodes))
        self.roots = array.array("h", bytes(2 * max_trees))
        self.leaves = bytearray(max_leaves)
        self.max_trees = max_trees
        self.max_nodes = max_nodes
        self.max_leaves = max_leaves
        self.n_trees = 0
        self.n_nodes = 0
        self.n_leaves = 0
        self.n_features = 0
        self.n_classes = -1
        self.kernel = kernel or vote
        self._votes = None

    def reset(self):
        """Empty the ensemble, keeping its arrays (capacity), to load another model into them (``trees_csv``)."""
        self.n_trees = self.n_nodes = self.n_leaves = self.n_features = 0
        self.n_classes = -1
        self._votes = None

    def outputs(self):
        if self.n_classes < 0:
            raise TreesError("model not loaded")
        return self.n_classes

    def classify(self, x):
        """The winning class for int16 features ``x``; the vote counts are left in ``self.votes()``."""
        if len(x) < self.n_features:
            raise TreesError("{} features given, model needs {}".format(len(x), self.n_features))
        return self.kernel(self.nodes, self.roots, self.n_trees, self.leaves, x, self._votes, self.n_classes)

    def votes(self):
        return self._votes

    def predict(self, x, out):
        """emlearn_trees-compatible: ``out`` (float array, n_classes) gets each class's share of the trees."""
        if len(out) != self.n_classes:
            raise TreesError("output length {} != n_classes {}".format(len(out), self.n_classes))
        self.classify(x)
        v = self._votes
        for c in range(self.n_classes):
            out[c] = v[c] / self.n_trees
