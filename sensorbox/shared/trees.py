"""Tree ensembles (random forest, extra trees) in emlearn's CSV model format: loading into compact arrays and
hard majority-vote prediction, bit-identical to emlearn's C code (``eml_trees.h``) and ``emlearn_trees``.

CSV lines (emlearn ``convert(...).save(format='csv')``)::

    f,<n_features>   c,<n_classes>   lb,<leaf_bits>   l,<class>   r,<root node>   n,<feature>,<threshold>,<left>,<right>

A child >= 0 is a relative offset to a later node; a child < 0 is leaf ``-child-1``. The threshold is truncated to
an int (``int(float(t))``, as the device loader does) and the rule is: go left if ``x[feature] < threshold``.
Only majority voting (``lb,0``: a leaf holds a class index) is supported.

``Trees`` has the builder interface of ``emlearn_trees`` (``setdata``, ``addnode``, ``addroot``, ``addleaf``,
``outputs``, ``predict(x, out)``), so ``load(lines, builder)`` fills either one. Storage, 8 bytes per node like
emlearn: ``nodes`` is one int16 array of (feature, threshold, left, right) per node with children stored as
absolute node indices (>= 0) or leaf codes (< 0); ``roots`` int16; ``leaves`` a bytearray of class indices.
``check()`` proves every walk ends inside the arrays (children point strictly forward), so fast kernels over the
same arrays (``sensorbox.device.trees_fast``) need no bounds checks.
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

    def check(self):
        """Raise TreesError unless the loaded ensemble is complete and every walk stays inside the arrays."""
        if self.n_classes < 0:
            raise TreesError("no f/c lines: model not loaded")
        if self.n_trees == 0 or self.n_nodes == 0 or self.n_leaves == 0:
            raise TreesError("empty model: {} trees, {} nodes, {} leaves".format(
                self.n_trees, self.n_nodes, self.n_leaves))
        n = self.nodes
        nn = self.n_nodes
        nl = self.n_leaves
        for i in range(nn):
            j = i * 4
            if n[j] >= self.n_features:
                raise TreesError("node {}: feature {} >= n_features {}".format(i, n[j], self.n_features))
            for c in (n[j + 2], n[j + 3]):
                if c >= 0 and not i < c < nn:
                    raise TreesError("node {}: child {} is not a later node".format(i, c))
                if c < 0 and -c - 1 >= nl:
                    raise TreesError("node {}: leaf {} does not exist".format(i, -c - 1))
        for t in range(self.n_trees):
            if self.roots[t] >= nn:
                raise TreesError("tree {}: root {} does not exist".format(t, self.roots[t]))
        for k in range(nl):
            if self.leaves[k] >= self.n_classes:
                raise TreesError("leaf {}: class {} >= n_classes {}".format(k, self.leaves[k], self.n_classes))

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


def load(lines, builder):
    """Parse emlearn CSV ``lines`` (any iterable of str or bytes lines, e.g. an open file) into ``builder``
    (a ``Trees`` or an ``emlearn_trees`` model). Returns (n_features, n_classes, n_trees, n_nodes, n_leaves) as
    counted in the file. Raises TreesError naming the line (the builder's own errors included)."""
    n_features = n_classes = None
    leaf_bits = 0
    trees = nodes = leaves = 0
    ready = False
    lineno = 0
    for line in lines:
        lineno += 1
        if isinstance(line, bytes):
            line = line.decode()
        line = line.strip()
        if not line:
            continue
        tok = line.split(",")
        kind = tok[0]
        try:
            if kind in ("n", "l", "r"):
                if not ready:
                    if n_features is None or n_classes is None:
                        raise TreesError("data before the f and c lines")
                    builder.setdata(n_features, n_classes, leaf_bits)
                    ready = True
                if kind == "n":
                    if len(tok) != 5:
                        raise TreesError("a node line has 5 fields")
                    builder.addnode(int(tok[3]), int(tok[4]), int(tok[1]), int(float(tok[2])))
                    nodes += 1
                elif len(tok) != 2:
                    raise TreesError("a leaf/root line has 2 fields")
                elif kind == "l":
                    builder.addleaf(int(tok[1]))
                    leaves += 1
                else:
                    builder.addroot(int(tok[1]))
                    trees += 1
            elif kind in ("f", "c", "lb"):
                if len(tok) != 2:
                    raise TreesError("a header line has 2 fields")
                if ready:
                    raise TreesError("header line after the data")
                if kind == "f":
                    n_features = int(tok[1])
                elif kind == "c":
                    n_classes = int(tok[1])
                else:
                    leaf_bits = int(tok[1])
            # other kinds are ignored, as emlearn's loader does
        except TreesError as e:
            raise TreesError("line {}: {}".format(lineno, e))
        except ValueError as e:  # int()/float() of a broken number, or the builder's own check
            raise TreesError("line {}: {} ({})".format(lineno, e, line[:40]))
    if not ready:
        raise TreesError("no tree data (f, c, then l/r/n lines): not an emlearn tree model")
    return n_features, n_classes, trees, nodes, leaves
