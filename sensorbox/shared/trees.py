"""Tree ensembles (random forest, extra trees) from emlearn's CSV model format: compact arrays and hard
majority-vote prediction, bit-identical to emlearn's C code (``eml_trees.h``) and ``emlearn_trees``.

Rule: go left if ``x[feature] < threshold`` (the threshold truncated to an int when the CSV is read). Only
majority voting (a leaf holds a class index) is supported. Reading and validating the CSV is in
``sensorbox.shared.trees_csv`` (``load(lines, builder)``): a device needs that code only while a model loads,
this module while one runs.

``Trees`` has the builder interface of ``emlearn_trees`` (``setdata``, ``addnode``, ``addroot``, ``addleaf``,
``outputs``, ``predict(x, out)``), so ``trees_csv.load`` fills either one. Storage, 8 bytes per node like
emlearn: ``nodes`` is one int16 array of (feature, threshold, left, right) per node with children stored as
absolute node indices (>= 0) or leaf codes (< 0); ``roots`` int16; ``leaves`` a bytearray of class indices.
Once ``trees_csv`` has accepted a file every walk ends inside the arrays (children point strictly forward), so
fast kernels over the same arrays (``sensorbox.device.trees_fast``) need no bounds checks.
"""

import array

MAX_NODES = 32767  # node indices are int16
MAX_FEATURES = 127  # the feature index is an int8 in emlearn's node


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
        self.leaf_bits = 0
        self.kernel = kernel or vote
        self._votes = None

    def reset(self):
        """Empty the ensemble, keeping its arrays (capacity), to load another model into them."""
        self.n_trees = self.n_nodes = self.n_leaves = self.n_features = self.leaf_bits = 0
        self.n_classes = -1
        self._votes = None

    # The emlearn_trees builder interface.
    def setdata(self, n_features, n_classes, leaf_bits):
        if not 0 < n_features <= MAX_FEATURES:
            raise TreesError("n_features {} out of range 1..{}".format(n_features, MAX_FEATURES))
        if not 0 < n_classes <= 255:
            raise TreesError("n_classes {} out of range 1..255".format(n_classes))
        if leaf_bits != 0:
            raise TreesError("leaf_bits {} unsupported: only majority voting (lb,0)".format(leaf_bits))
        self.n_features = n_features
        self.n_classes = n_classes
        self.leaf_bits = leaf_bits
        self._votes = array.array("H", bytes(2 * n_classes))

    def addnode(self, left, right, feature, value):
        i = self.n_nodes
        if i >= self.max_nodes:
            raise TreesError("more than {} nodes (capacity)".format(self.max_nodes))
        if not -32768 <= value <= 32767:
            raise TreesError("node {}: threshold {} is not int16".format(i, value))
        if not 0 <= feature <= MAX_FEATURES:
            raise TreesError("node {}: feature {} out of range".format(i, feature))
        left = i + left if left >= 0 else left
        right = i + right if right >= 0 else right
        if not (-32768 <= left <= MAX_NODES and -32768 <= right <= MAX_NODES):
            raise TreesError("node {}: child out of range".format(i))
        j = i * 4
        n = self.nodes
        n[j] = feature
        n[j + 1] = value
        n[j + 2] = left
        n[j + 3] = right
        self.n_nodes = i + 1

    def addroot(self, root):
        if self.n_trees >= self.max_trees:
            raise TreesError("more than {} trees (capacity)".format(self.max_trees))
        if not 0 <= root < MAX_NODES:
            raise TreesError("root {} out of range".format(root))
        self.roots[self.n_trees] = root
        self.n_trees += 1

    def addleaf(self, leaf):
        if self.n_leaves >= self.max_leaves:
            raise TreesError("more than {} leaves (capacity)".format(self.max_leaves))
        if not 0 <= leaf <= 255:
            raise TreesError("leaf class {} out of range".format(leaf))
        self.leaves[self.n_leaves] = leaf
        self.n_leaves += 1

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
