"""Test double of emlearn-micropython's native ``emlearn_trees`` (tests/support/emlearn_api.py records its API;
tests/host/test_emlearn_doubles.py checks this file against it). For CI, where the real module cannot be installed.

Behaviour as in ``src/emlearn_trees/trees.c``: ``new`` reserves capacity; ``setdata(features, classes)`` stores the
two counts (int8); ``addnode(left, right, feature, value)`` stores int16 values (children relative, as in the CSV),
refusing a feature > 127 or < -1 and a full model with ValueError; ``addroot``/``addleaf`` likewise; ``outputs()``
is the class count (ValueError before ``setdata``); ``predict(inputs, outputs)`` needs an int16 input and a float
output of exactly the class count and writes each class's share of the trees' votes (eml_trees_predict_proba,
majority voting): votes / n_trees in float32, bit for bit. ``predict`` allocates nothing once it has seen its arrays.
"""

import array

import micropython

from _double import require


def _i16(v):
    return ((v + 32768) & 0xFFFF) - 32768


def _i8(v):
    return ((v + 128) & 0xFF) - 128


@micropython.viper
def _put(tab, votes, out, n: int):
    # out[c] = tab[votes[c]]: float32 bits copied, no float object made
    pt = ptr32(tab)
    pv = ptr16(votes)
    po = ptr32(out)
    c = 0
    while c < n:
        po[c] = pt[int(pv[c])]
        c += 1


def _table(nt):
    # float32 k / nt for k = 0..nt, as the C code divides (one rounding from double gives the same float32 for
    # every nt <= 1024). Not inline in predict: a comprehension there would make nt a cell, allocated per call.
    return array.array("f", [k / nt if nt else float("nan") for k in range(nt + 1)])


class _Model:
    def __init__(self, max_trees, max_nodes, max_leaves):
        self._max = (max_trees, max_nodes, max_leaves)
        self._nodes = array.array("h", bytes(8 * max_nodes))  # feature, value, left, right
        self._roots = array.array("h", bytes(2 * max_trees))
        self._leaves = bytearray(max_leaves)
        self._n = [0, 0, 0]  # trees, nodes, leaves
        self._features = 0
        self._classes = 0
        self._votes = None
        self._tab = None  # float32 k / n_trees for k = 0..n_trees
        self._seen = []

    def setdata(self, features, classes):
        self._features = _i8(features)
        self._classes = _i8(classes)

    def addnode(self, left, right, feature, value):
        if feature > 127 or feature < -1:
            raise ValueError("feature out of bounds")
        i = self._n[1]
        if i >= self._max[1]:
            raise ValueError("max nodes")
        n = self._nodes
        n[4 * i] = _i8(feature)
        n[4 * i + 1] = _i16(value)
        n[4 * i + 2] = _i16(left)
        n[4 * i + 3] = _i16(right)
        self._n[1] = i + 1

    def addroot(self, root):
        i = self._n[0]
        if i >= self._max[0]:
            raise ValueError("max trees")
        self._roots[i] = _i16(root)
        self._n[0] = i + 1

    def addleaf(self, value):
        i = self._n[2]
        if i >= self._max[2]:
            raise ValueError("max leaves")
        self._leaves[i] = value & 0xFF
        self._n[2] = i + 1

    def outputs(self):
        if self._classes == 0:
            raise ValueError("model not loaded")
        return self._classes

    def predict(self, inputs, outputs):
        require(inputs, "h", self._seen)
        nc = self._classes
        if len(inputs) == 0 or nc == 0:
            raise ValueError("model not loaded")
        require(outputs, "f", self._seen)
        if len(outputs) != nc:
            raise RuntimeError("eml_trees_predict_proba error")
        nt = self._n[0]
        if self._tab is None or len(self._tab) != nt + 1:
            self._tab = _table(nt)
        if self._votes is None or len(self._votes) != nc:
            self._votes = array.array("H", bytes(2 * nc))
        v = self._votes
        for c in range(nc):
            v[c] = 0
        nodes = self._nodes
        for t in range(nt):
            i = self._roots[t]
            while i >= 0:
                j = 4 * i
                child = nodes[j + 2] if inputs[nodes[j]] < nodes[j + 1] else nodes[j + 3]
                i = i + child if child >= 0 else child
            v[self._leaves[-i - 1]] += 1
        _put(self._tab, v, outputs, nc)


def new(max_trees, max_nodes, max_leaves):
    return _Model(max_trees, max_nodes, max_leaves)


def load_model(trees, file):
    # as the module's Python half: every line, then setdata with the f and c counts
    n_classes = None
    n_features = None
    for line in file:
        tok = line.rstrip("\r").rstrip("\n").split(",")
        kind = tok[0]
        if kind == "r":
            trees.addroot(int(tok[1]))
        elif kind == "n":
            trees.addnode(int(tok[3]), int(tok[4]), int(tok[1]), int(float(tok[2])))
        elif kind == "l":
            trees.addleaf(int(tok[1]))
        elif kind == "f":
            n_features = int(tok[1])
        elif kind == "c":
            n_classes = int(tok[1])
    trees.setdata(n_features, n_classes)
