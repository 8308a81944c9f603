"""``emlearn_trees`` (emlearn's C tree evaluator, a native module installed with mip on real devices) behind the
evaluation interface of ``sensorbox.shared.trees.Trees``. Loaded only when ``emlearn_trees`` is importable.

Every call into the module follows emlearn-micropython's ``stubs/emlearn_trees.py``: ``new(max_trees, max_nodes,
max_leaves)``, ``setdata(features, classes)``, ``addnode(left, right, feature, value)`` (children relative, as in
the CSV), ``addroot(root)``, ``addleaf(value)``, ``outputs()``, ``predict(inputs, outputs)`` with an int16 input
and a float output of exactly ``outputs()``. ``sensorbox.shared.trees_csv`` fills it (its ``Builder`` checks what
the C code would silently truncate). The pipeline calls ``model.predict`` itself and decodes the float outputs
(votes / n_trees) in its smoothing kernel (``trees_fast.smooth``), so nothing runs between it and the C code.
"""

from sensorbox.device.trees_fast import smooth
from sensorbox.shared.trees import TreesError


class CTrees:
    """An ``emlearn_trees`` model (``model``) with what the device needs around it: the counts ``trees_csv`` filled
    it with, ``out`` (the float outputs ``model.predict`` writes), and ``classify(x) -> class`` / ``votes()``."""

    def __init__(self, model, max_trees, max_nodes, max_leaves):
        self.model = model
        self.max_trees = max_trees
        self.max_nodes = max_nodes
        self.max_leaves = max_leaves
        self.n_trees = self.n_nodes = self.n_leaves = self.n_features = 0
        self.n_classes = -1
        self.out = None  # array('f', n_classes), made when trees_csv sets the model's data
        self._votes = None

    def outputs(self):
        return self.model.outputs()

    def predict(self, x, out):
        self.model.predict(x, out)

    def classify(self, x):
        """The winning class for int16 features ``x``; the vote counts are left in ``votes()``."""
        if len(x) < self.n_features:  # the C code reads x[feature] unchecked
            raise TreesError("{} features given, model needs {}".format(len(x), self.n_features))
        out = self.out
        self.model.predict(x, out)
        return (smooth(out, 1, self.n_trees, self._votes, 0, 1, self.n_classes) & 0xFF) - 1

    def votes(self):
        return self._votes
