"""``emlearn_trees`` (emlearn's C tree evaluator, a native module installed with mip on real devices) behind the
interface of ``sensorbox.shared.trees.Trees``. Loaded only when ``emlearn_trees`` is importable."""

import array

from sensorbox.shared import trees


class CTrees:
    """``emlearn_trees`` behind the same interface: its float outputs (votes / n_trees) turned back into votes."""

    def __init__(self, model):
        self.model = model
        self.n_trees = self.n_nodes = self.n_leaves = 0
        self.n_classes = self.n_features = 0
        self._out = None
        self._votes = None
        self._far = 0  # the furthest node/leaf any reference points at, checked against the counts at the end
        self._far_leaf = 0

    def setdata(self, n_features, n_classes, leaf_bits):
        self.model.setdata(n_features, n_classes, leaf_bits)
        self.n_classes = n_classes
        self.n_features = n_features
        self._out = array.array("f", bytes(4 * n_classes))
        self._votes = array.array("H", bytes(2 * n_classes))

    def addnode(self, left, right, feature, value):
        # The C code does not check the structure: do it here, in O(1) memory.
        i = self.n_nodes
        if feature >= self.n_features or left == 0 or right == 0:
            raise trees.TreesError("node {}: bad feature or child".format(i))
        for c in (left, right):
            if c > 0:
                self._far = max(self._far, i + c)
            else:
                self._far_leaf = max(self._far_leaf, -c - 1)
        self.model.addnode(left, right, feature, value)
        self.n_nodes += 1

    def addroot(self, root):
        self.model.addroot(root)
        self._far = max(self._far, root)
        self.n_trees += 1

    def addleaf(self, leaf):
        if leaf >= self.n_classes:
            raise trees.TreesError("leaf class {} >= n_classes".format(leaf))
        self.model.addleaf(leaf)
        self.n_leaves += 1

    def outputs(self):
        return self.model.outputs()

    def check(self):
        if self.n_trees == 0 or self._far >= self.n_nodes or self._far_leaf >= self.n_leaves:
            raise trees.TreesError("incomplete model: a reference points past the nodes or leaves")

    def predict(self, x, out):
        self.model.predict(x, out)

    def classify(self, x):
        out = self._out
        self.model.predict(x, out)
        v = self._votes
        best = -1
        most = 0
        for c in range(self.n_classes):
            v[c] = int(out[c] * self.n_trees + 0.5)
            if v[c] > most:
                most = v[c]
                best = c
        return best

    def votes(self):
        return self._votes
